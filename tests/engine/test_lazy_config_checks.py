"""The checks of a LazyConfig before a run (dropblock_det/engine/lazy_config_checks.py): bad
values, overrides, loaders, samplers, models that do not build or do not fit their inputs,
evaluators, schedules and checkpoints are refused naming the config key, before anything is
built or written."""
import re
import warnings

import pytest
import torch

from conftest import CONFIGS, LAZY_TWINS, lazy_cfg, lazy_rcnn_cfg

SYNTHETIC = str(CONFIGS / LAZY_TWINS[0][0])
COCO = str(CONFIGS / LAZY_TWINS[1][0])
DEEPLAB = str(CONFIGS / LAZY_TWINS[3][0])


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("opts, error, match", [
    (["train.max_iter=0"], ValueError, r"train\.max_iter=0"),
    (["train.checkpointer.period=0"], ValueError, r"train\.checkpointer\.period=0"),
    (["train.eval_period=-1"], ValueError, r"train\.eval_period=-1"),
    (["train.amp.enabled=True"], ValueError, r"train\.amp\.enabled=True needs a CUDA"),
    (["train.device=gpu0"], ValueError, r"train\.device='gpu0'"),
    (["train.output_dir=''"], ValueError, r"train\.output_dir=''"),
    # Hydra reads it as an int, which no path joins with.
    (["train.output_dir=123"], ValueError, r"^train\.output_dir=123: expected a folder"),
    (["train.init_checkpoint=/nonexistent/model.pth"], FileNotFoundError, r"train\.init_checkpoint="),
    (["dataloader.train.dataset.names=no_such_set"], KeyError, r"dataloader\.train\.dataset\.names names 'no_such_set'"),
    (["dataloader.test.dataset.names=no_such_set"], KeyError, r"dataloader\.test\.dataset\.names names 'no_such_set'"),
    # The evaluator evaluates one dataset: a list fails only at the first evaluation.
    (["dataloader.test.dataset.names=[synthetic_det_val]"], ValueError, r"dataloader\.evaluator\.dataset_name=\['synthetic_det_val'\]: expected one"),
    # What the loop instantiates only after train.output_dir is made (and the data loaded).
    (["train.dropblock_schedule.end_iter=-5"], ValueError, r"train\.dropblock_schedule: .*end_iter"),
    (["train.dropblock_schedule.keep_prob=1.5"], ValueError, r"train\.dropblock_schedule: .*keep_prob"),
    (["train.dropblock_schedule._target_=torch.nn.Identity"], ValueError, r"train\.dropblock_schedule"),
    (["train.dropblock_schedule.start_iter=5000"], ValueError,
     r"train\.dropblock_schedule with train\.max_iter=1500: ValueError: .*start_iter=5000 with the trainer's "
     r"max_iter=1500: keep_prob would stay 1\.0"),
    (["train.seed=null"], ValueError, r"train\.seed=None"),
    # A bool is no count or seed (Python's True == 1).
    (["train.max_iter=true"], ValueError, r"^train\.max_iter=True: expected an integer >= 1"),
    (["train.seed=true"], ValueError, r"^train\.seed=True: expected an integer"),
    # detectron2's PeriodicWriter takes the iteration modulo the period: a ZeroDivisionError at the first step.
    (["train.log_period=0"], ValueError, r"^train\.log_period=0: expected an integer >= 1"),
    # The LRScheduler hook gets a value it cannot call only once the training starts.
    (["lr_multiplier=1.0"], ValueError, r"^lr_multiplier: TypeError: 'float' object is not callable"),
    # Hydra reads it as an int: "TypeError: argument of type 'int' is not iterable", unnamed.
    (["train.init_checkpoint=123"], ValueError, r"^train\.init_checkpoint=123: expected a checkpoint's path or URL"),
    (["dataloader.train.total_batch_size=0"], ValueError, r"dataloader\.train\.total_batch_size=0"),
    # torch refused these once the loader was built (the test loader's after the whole training),
    # and detectron2 asserted "No valid data found in ." for no training set, both unnamed.
    (["dataloader.train.num_workers=-1"], ValueError, r"^dataloader\.train\.num_workers=-1: expected an integer >= 0"),
    (["dataloader.test.num_workers=-1"], ValueError, r"^dataloader\.test\.num_workers=-1: expected an integer >= 0"),
    # Hydra reads an unquoted number as an int: a bare "TypeError: 'int' object is not iterable".
    (["dataloader.train.dataset.names=[1,2]"], ValueError,
     r"^dataloader\.train\.dataset\.names=\[1, 2\]: expected a dataset name or a list of names"),
    (["dataloader.train.dataset.names=5"], ValueError, r"^dataloader\.train\.dataset\.names=5: expected a dataset name"),
    (["dataloader.test.dataset.names=5"], ValueError, r"^dataloader\.test\.dataset\.names=5: expected a dataset name"),
    (["dataloader.evaluator.dataset_name=[synthetic_det_val]"], ValueError,
     r"^dataloader\.evaluator\.dataset_name=\['synthetic_det_val'\]: expected one dataset name, .*give that one "
     r"name, not a list\)$"),
    (["dataloader.evaluator.dataset_name=5"], ValueError,
     r"^dataloader\.evaluator\.dataset_name=5: expected one dataset name, a string .*give it quoted where Hydra "
     r"reads another type: dataloader\.evaluator\.dataset_name=\"'name'\"\)$"),
    (["dataloader.train.dataset.names=[]"], ValueError, r"^dataloader\.train\.dataset\.names=\[\]: no dataset to train on"),
    (["dataloader.test.dataset.names=[]"], ValueError, r"^dataloader\.test\.dataset\.names=\[\]: no dataset to evaluate"),
    # A misspelt argument in the config file (here added with "+"): the test loader was built,
    # and failed, only after the training; the training loader's after the data was loaded.
    (["+dataloader.test.num_worker=2"], ValueError,
     r"^dataloader\.test \(build_detection_test_loader\): no argument 'num_worker' \(did you mean 'num_workers'\?\)"),
    (["+dataloader.train.total_batch_sizes=2"], ValueError,
     r"^dataloader\.train \(build_detection_train_loader\): no argument 'total_batch_sizes' "
     r"\(did you mean 'total_batch_size'\?\)"),
    # ... and inside the loaders and the evaluator: the test mapper's and the evaluator's failed
    # only after the whole training, the training mapper's after its data was loaded.
    (["+dataloader.test.mapper.image_fromat=BGR"], ValueError,
     r"^dataloader\.test\.mapper \(DatasetMapperNamingFiles\): no argument 'image_fromat' \(did you mean 'image_format'\?\)"),
    (["+dataloader.test.dataset.filter_empt=True"], ValueError,
     r"^dataloader\.test\.dataset \(get_detection_dataset_dicts\): no argument 'filter_empt' "),
    (["+dataloader.test.mapper.augmentations.0.max_siz=96"], ValueError,
     r"^dataloader\.test\.mapper\.augmentations\.0 \(ResizeShortestEdge\): no argument 'max_siz' "),
    (["+dataloader.train.mapper.use_instance_msk=True"], ValueError,
     r"^dataloader\.train\.mapper \(DatasetMapperNamingFiles\): no argument 'use_instance_msk' "),
    (["+dataloader.evaluator.output_dri=x"], ValueError,
     r"^dataloader\.evaluator \(dataset_evaluator\): no argument 'output_dri' \(did you mean 'output_dir'\?\)"),
    # The yacs DATALOADER.SAMPLER_TRAIN way: "Expect a Sampler but got <class 'str'>" once the data was loaded.
    (["dataloader.train.sampler=RepeatFactorTrainingSampler"], ValueError,
     r"^dataloader\.train\.sampler='RepeatFactorTrainingSampler': expected L\(SamplerClass\)\(\.\.\.\)"),
    (["dataloader.train.mapper.augmentations.0.sample_style=rand"], ValueError,
     r"^dataloader\.train\.mapper\.augmentations\.0 \(ResizeShortestEdge\): "),
    (["optimizer.lr=-1"], ValueError, r"optimizer: .*learning rate"),
    (["train.checkpointer.max_to_keep=0"], ValueError, r"train\.checkpointer: "),
    # The model's classes against the datasets' (3): 80 trained fully and failed in the evaluation.
    (["model.num_classes=80"], ValueError, r"^model\.num_classes=80, but dataloader\.train\.dataset\.names names "
     r"'synthetic_det_train', which has 3 classes .*set model\.num_classes to 3"),
    (["model.num_classes=2"], ValueError, r"^model\.num_classes=2, .*which has 3 classes.*as background"),
    # Failed on the first image read, naming the image (the test loader's after the whole training).
    (["dataloader.test.mapper.augmentations.0.max_size=0"], ValueError,
     r"^dataloader\.test\.mapper\.augmentations\.0: short_edge_length=96, max_size=0: a longest edge < 1"),
    (["dataloader.train.mapper.augmentations.0.short_edge_length=[-5]"], ValueError,
     r"^dataloader\.train\.mapper\.augmentations\.0: short_edge_length=\[-5\], max_size=96: a negative"),
    (["dataloader.train.mapper.image_format=FOO"], ValueError,
     r"^dataloader\.train\.mapper\.image_format='FOO': detectron2's convert_PIL_to_numpy refuses it"),
    # Read, but with channels the model's pixel_mean does not normalize.
    (["dataloader.train.mapper.image_format=RGBA"], ValueError,
     r"^dataloader\.train\.mapper\.image_format='RGBA': it gives 4-channel images, the model normalizes 3 channels"),
    # A bare broadcast error at the first step; NaN losses from it.
    (["model.pixel_std=[57.0,57.0]"], ValueError,
     r"^model\.pixel_std=\[57\.0, 57\.0\]: 2 value\(s\) for the 3 channels of the pixel mean .*\(model\.pixel_mean="),
    (["model.pixel_std=[57.0,0.0,57.0]"], ValueError, r"^model\.pixel_std=\[57\.0, 0\.0, 57\.0\]: a std of 0 divides"),
    # The heads' values, as the yacs MODEL keys: built, then failed at the first step naming no
    # key (or asserted at the build, a bare IndexError), or nothing detected, silently.
    (["model.anchor_matcher.thresholds=[]"], ValueError,
     r"^model\.anchor_matcher\.thresholds=\[\]: expected IoU values in \[0, 1\]"),
    (["model.anchor_matcher.labels=[0,1]"], ValueError,
     r"^model\.anchor_matcher\.labels=\[0, 1\]: expected 3 labels, one per IoU interval of "
     r"model\.anchor_matcher\.thresholds=\[0\.4, 0\.5\]"),
    (["model.box2box_transform.weights=[1.0,1.0]"], ValueError,
     r"^model\.box2box_transform\.weights=\[1\.0, 1\.0\]: expected 4 weights, none 0"),
    (["model.anchor_generator.offset=1.0"], ValueError, r"^model\.anchor_generator\.offset=1\.0: expected the anchors' offset"),
    (["model.anchor_generator.aspect_ratios=[0.0]"], ValueError,
     r"^model\.anchor_generator\.aspect_ratios=\[0\.0\]: expected height / width ratios > 0"),
    (["model.focal_loss_alpha=1.5"], ValueError, r"^model\.focal_loss_alpha=1\.5: expected the foreground weight"),
    (["+model.test_score_thresh=1.0"], ValueError, r"^model\.test_score_thresh=1\.0: scores are probabilities"),
    (["+model.max_detections_per_image=0"], ValueError, r"^model\.max_detections_per_image=0: no detection is kept"),
    (["+model.box_reg_loss_type=smoothl1"], ValueError, r"^model\.box_reg_loss_type='smoothl1': not a box loss"),
])
def test_bad_values_are_refused_by_key(opts, error, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(error, match=match):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, *opts), check_files=False)


def test_an_evaluation_checks_the_arguments_of_the_test_loader_and_evaluator_it_builds():
    # --eval-only built the evaluator only after the model and its weights were loaded, and a
    # COCOEvaluator argument misspelt in a config file failed then with a bare TypeError.
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", max_dets_per_imag=100)
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator \(COCOEvaluator\): no argument 'max_dets_per_imag' "
                       r"\(did you mean 'max_dets_per_image'\?\)"):
        check_lazy_config_before_run(cfg, train=False, check_files=False)
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper \(DatasetMapperNamingFiles\): no argument 'image_fromat'"):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "+dataloader.test.mapper.image_fromat=BGR"), train=False,
                                     check_files=False)
    # The training loader is not built for an evaluation, so its arguments are not its concern.
    check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "+dataloader.train.mapper.image_fromat=BGR"), train=False,
                                 check_files=False)
    # Nor its resize, which would refuse every image.
    check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "dataloader.train.mapper.augmentations.0.short_edge_length=[-5]"),
                                 train=False, check_files=False)


def test_an_init_checkpoint_that_is_no_string_is_named_for_an_evaluation_too():
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=r"^train\.init_checkpoint=\[1\]: expected a checkpoint's path"):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "train.init_checkpoint=[1]"), train=False, check_files=False)


def test_training_in_several_processes_on_the_cpu_needs_ddp_device_ids_given(monkeypatch):
    # create_ddp_model gives each process's model its GPU unless train.ddp says device_ids:
    # `--num-gpus 2 train.device=cpu` failed with torch's "device_ids ... only work with ...
    # GPU modules" after the data loader was built and config.yaml written.
    from detectron2.utils import comm

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"^train\.device='cpu' with 2 training processes .*train\.ddp\.device_ids=null"):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC), check_files=False)
    check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "+train.ddp.device_ids=null"), check_files=False)  # DDP on the CPU
    # Each process loads total_batch_size / processes images.
    with pytest.raises(ValueError, match=r"^dataloader\.train\.total_batch_size=3: not divisible by the 2 processes"):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "+train.ddp.device_ids=null", "dataloader.train.total_batch_size=3"),
                                     check_files=False)
    check_lazy_config_before_run(lazy_cfg(SYNTHETIC), train=False, check_files=False)  # evaluating: no DDP


def test_ddp_on_the_cpu_is_refused_in_processes_launched_with_nccl(monkeypatch):
    # detectron2's launch uses NCCL on a machine with GPUs (v0.6 always): DDP of a CPU model
    # with train.ddp.device_ids=null then failed after the data loader was built.
    import torch.distributed as dist
    from detectron2.utils import comm

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    cfg = lazy_cfg(SYNTHETIC, "+train.ddp.device_ids=null")
    with pytest.raises(ValueError, match=r"^train\.device='cpu' with 2 training processes: .*NCCL backend"):
        check_lazy_config_before_run(cfg, check_files=False)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    check_lazy_config_before_run(cfg, check_files=False)


def test_a_training_sampler_that_fails_only_once_the_data_is_loaded_is_refused_naming_the_key():
    # build_detection_train_loader gets its sampler after the training set is loaded: a
    # TypeError or assertion then, naming no key. A sampler that reads the data is not built.
    from detectron2.config import LazyCall as L
    from detectron2.data import DatasetCatalog
    from detectron2.data.samplers import RandomSubsetTrainingSampler, RepeatFactorTrainingSampler, TrainingSampler

    from dropblock_det.engine.lazy_config_checks import check_lazy_train_sampler

    def never_loaded():
        raise AssertionError("the sampler check loaded the training set")

    repeat = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency
    cfg = lazy_cfg(SYNTHETIC, "dataloader.train.dataset.names=dropblock_test_never_loaded")
    DatasetCatalog.register("dropblock_test_never_loaded", never_loaded)
    try:
        # A sampler built in the config file is a value detectron2's instantiate passes on as it is.
        for sampler in (None, TrainingSampler(100, seed=3), L(TrainingSampler)(size=100, seed=3), L(RandomSubsetTrainingSampler)(size=100, subset_ratio=0.5),
                        L(RepeatFactorTrainingSampler)(repeat_factors=L(repeat)(
                            dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001))):
            cfg.dataloader.train.sampler = sampler
            check_lazy_train_sampler(cfg)
    finally:
        DatasetCatalog.remove("dropblock_test_never_loaded")
    for sampler, match in [
        (L(list)(), r"^dataloader\.train\.sampler builds a list, not a torch Sampler"),
        ({"_target_": "detectron2.data.samplers.NoSuchSampler", "size": 100},
         r"^dataloader\.train\.sampler\._target_='detectron2\.data\.samplers\.NoSuchSampler': not found"),
        (L(RepeatFactorTrainingSampler)(repeat_factors=L(repeat)(dataset_dicts=[], repeat_threshold=0.001)),
         r"^dataloader\.train\.sampler\.repeat_factors \(.*repeat_factors_from_category_frequency\): no argument "
         r"'repeat_threshold' \(did you mean 'repeat_thresh'\?\); the required argument 'repeat_thresh' is not given"),
        (L(TrainingSampler)(size=0), r"^dataloader\.train\.sampler=TrainingSampler\(size=0\): the sampler refuses it "
                                     r"\(ValueError: .*positive"),
        (L(RandomSubsetTrainingSampler)(size=100, subset_ratio=2.0),
         r"^dataloader\.train\.sampler=RandomSubsetTrainingSampler\(size=100, subset_ratio=2\.0\): the sampler refuses it"),
    ]:
        cfg.dataloader.train.sampler = sampler
        with pytest.raises(ValueError, match=match):
            check_lazy_train_sampler(cfg)


@pytest.mark.parametrize("opts, match", [
    # The innermost node that raised, by its config key and target, then the component's error.
    (["model.backbone.bottom_up.stages.depth=42"],
     r"^model\.backbone\.bottom_up\.stages \(make_dropblock_resnet_stages\): ValueError: depth=42"),
    (["model.backbone.bottom_up.stem.norm=XX"], r"^model\.backbone\.bottom_up\.stem \(BasicStem\): KeyError: 'XX'"),
    (["model.head.dropblock_towers=[cls,foo]"], r"^model\.head \(DropBlockRetinaNetHead\): ValueError: .*'foo'"),
    # A name where a list goes: the positions were taken letter by letter ("unknown name 'c'"),
    # a number for the scales failed in Python ("'float' object is not iterable").
    (["model.backbone.bottom_up.stages.dropblock_positions=conv1"],
     r"^model\.backbone\.bottom_up\.stages \(make_dropblock_resnet_stages\): ValueError: dropblock_positions='conv1': "
     r"expected a list of names from \['conv1', 'conv2', 'conv3', 'shortcut'\]"),
    (["model.backbone.bottom_up.stages.stage_drop_scales=0.5"],
     r"^model\.backbone\.bottom_up\.stages \(make_dropblock_resnet_stages\): ValueError: stage_drop_scales=0\.5: "
     r"expected a list, one scale per stage of dropblock_stages=\['res4', 'res5'\]"),
    # A copy of the top-level node is named with the key an override changes, and, where the
    # component's message begins with an argument of it, with that argument's key (the error
    # named only the copy's key, model.backbone.bottom_up.stages.dropblock).
    (["dropblock.block_size=0"],
     r"^dropblock\.block_size=0: model\.backbone\.bottom_up\.stages\.dropblock=\$\{dropblock\} "
     r"\(build_regularizer\): ValueError: block_size"),
    (["dropblock.keep_prob=1.5"],
     r"^dropblock\.keep_prob=1\.5: model\.backbone\.bottom_up\.stages\.dropblock=\$\{dropblock\} "
     r"\(build_regularizer\): ValueError: keep_prob must be in \(0, 1\], got 1\.5$"),
    (["dropblock.type=Foo"],  # named only as the copy (stop 55: its message began "unknown regularizer type")
     r"^dropblock\.type='Foo': model\.backbone\.bottom_up\.stages\.dropblock=\$\{dropblock\} \(build_regularizer\): "
     r"ValueError: type must be one of \('DropBlock', 'Dropout', 'SpatialDropout'\), got 'Foo'$"),
    # An error torch raises (not a checked value) is placed too.
    (["model.backbone.out_channels=-3"], r"^model\.backbone\.top_block \(DropBlockLastLevelP6P7\): RuntimeError: .*negative"),
    # An argument misspelt in the config file ("+" adds it as the file would) is named with the
    # closest one, not as Python's "RetinaNetHead.__init__() got an unexpected keyword argument".
    (["+model.head.prior_probb=0.01"],
     r"^model\.head \(DropBlockRetinaNetHead\): no argument 'prior_probb' \(did you mean 'prior_prob'\?\)"),
    (["+dropblock.blocksize=5"], r"^model\.backbone\.bottom_up\.stages\.dropblock=\$\{dropblock\} \(build_regularizer\): "
                                 r"no argument 'blocksize' \(did you mean 'block_size'\?\)"),
    # A target that does not import: the closest names its module has, where detectron2's
    # ImportError took three lines.
    (["model.head._target_=dropblock_det.modeling.DropBlockRetinaNetHed"],
     r"^model\.head \(dropblock_det\.modeling\.DropBlockRetinaNetHed\): _target_='dropblock_det\.modeling\."
     r"DropBlockRetinaNetHed' does not import: dropblock_det\.modeling has no 'DropBlockRetinaNetHed' \(did you mean "
     r"dropblock_det\.modeling\.DropBlockRetinaNetHead"),
    (["model.backbone._target_=dropblock_det.modelling.DropBlockFPN"],
     r"^model\.backbone \(.*\): .*: dropblock_det has no 'modelling' \(did you mean dropblock_det\.modeling\?\)$"),
    (["model.backbone.bottom_up._target_=nosuchpkg.X"],
     r"^model\.backbone\.bottom_up \(nosuchpkg\.X\): _target_='nosuchpkg\.X' does not import: no module 'nosuchpkg'$"),
])
def test_a_model_that_does_not_build_is_refused_naming_the_config_key(opts, match, caplog):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run
    from dropblock_det.engine.lazy import build_lazy_model

    cfg = lazy_cfg(SYNTHETIC, *opts)
    with pytest.raises(ValueError, match=match):  # on the meta device
        check_lazy_config_before_run(cfg, check_files=False)
    with pytest.raises(ValueError, match=match):  # the real build
        build_lazy_model(cfg)
    # detectron2's "Error when instantiating X!" per node, logged above the refusal, is not.
    assert "Error when instantiating" not in caplog.text


@pytest.mark.parametrize("opt, match", [
    # The test mapper's and the evaluator's failed after the whole training, the others'
    # with detectron2's three-line ImportError, not refused as the checks' one line.
    ("dataloader.test.mapper._target_=dropblock_det.data.file_errors.DatasetMapperNamingFile",
     r"^dataloader\.test\.mapper \(.*\): .* dropblock_det\.data\.file_errors has no 'DatasetMapperNamingFile' "
     r"\(did you mean dropblock_det\.data\.file_errors\.DatasetMapperNamingFiles"),
    ("dataloader.evaluator._target_=dropblock_det.engine.evaluation.dataset_evaluatr",
     r"^dataloader\.evaluator \(.*\): .* has no 'dataset_evaluatr' \(did you mean dropblock_det\.engine\.evaluation\.dataset_evaluator"),
    ("dataloader.train.sampler._target_=detectron2.data.samplers.TrainingSamplr",
     r"^dataloader\.train\.sampler \(.*\): .* has no 'TrainingSamplr' \(did you mean detectron2\.data\.samplers\.TrainingSampler"),
    ("optimizer._target_=torch.optim.SDG", r"^optimizer \(torch\.optim\.SDG\): .* torch\.optim has no 'SDG' \(did you mean torch\.optim\.SGD\?\)$"),
    ("optimizer.params._target_=detectron2.solver.build.get_default_optimizer_param",
     r"^optimizer\.params \(.*\): .* has no 'get_default_optimizer_param' \(did you mean .*get_default_optimizer_params\?\)$"),
    ("lr_multiplier.scheduler._target_=fvcore.common.param_scheduler.CosineParamSchedulr",
     r"^lr_multiplier\.scheduler \(.*\): .* has no 'CosineParamSchedulr' \(did you mean .*CosineParamScheduler"),
    ("train.dropblock_schedule._target_=dropblock_det.engine.DropBlockScheduleHok",
     r"^train\.dropblock_schedule \(.*\): .* has no 'DropBlockScheduleHok' \(did you mean dropblock_det\.engine\.DropBlockScheduleHook\?\)$"),
])
def test_a_target_that_does_not_import_outside_the_model_is_refused_naming_the_key(opt, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=match):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, opt), check_files=False)


def test_naming_the_key_finds_list_items_and_leaves_a_missing_meta_kernel_to_the_fallback():
    from detectron2.config import LazyCall as L
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import instantiate_naming_key
    from dropblock_det.engine.config_checks import build_on_meta_device

    def refuse(**kwargs):
        raise ValueError(f"refused {sorted(kwargs)}")

    def no_meta_kernel():
        raise NotImplementedError("no meta kernel")

    cfg = OmegaConf.create({"model": L(torch.nn.ModuleList)(modules=[
        L(torch.nn.Identity)(), L(torch.nn.ModuleList)(modules=[L(torch.nn.ReLU)(), L(refuse)(a=1)])])})
    with pytest.raises(ValueError, match=r"^model\.modules\.1\.modules\.1 \(.*refuse\): ValueError: refused \['a'\]"):
        instantiate_naming_key(cfg.model, "model")
    assert isinstance(instantiate_naming_key(cfg.model.modules[0], "x"), torch.nn.Identity)
    for model in (L(torch.nn.ModuleList)(modules=[L(no_meta_kernel)()]), L(no_meta_kernel)()):  # inside, or the node itself
        cfg = OmegaConf.create({"model": model})
        with pytest.raises(NotImplementedError):
            instantiate_naming_key(cfg.model, "model")
        assert build_on_meta_device(lambda: instantiate_naming_key(cfg.model, "model")) is None


class _DropPathRates(torch.nn.Module):
    """Reads tensor values in __init__, as detectron2's ViT, MViT and Swin backbones do
    (`[x.item() for x in torch.linspace(0, drop_path_rate, depth)]`)."""

    def __init__(self, drop_path_rate: float = 0.1, depth: int = 3):
        super().__init__()
        self.rates = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]


def test_a_component_reading_tensor_values_at_init_is_left_to_the_real_build():
    # ViTDet's LazyConfigs (model.backbone.net: ViT) were refused before training with
    # "model.backbone.net (ViT): RuntimeError: Tensor.item() cannot be called on meta
    # tensors": the meta device cannot give a value, which the real build can.
    from detectron2.config import LazyCall as L
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import instantiate_naming_key
    from dropblock_det.engine.config_checks import build_on_meta_device

    cfg = OmegaConf.create({"model": L(torch.nn.ModuleList)(modules=[L(_DropPathRates)()])})
    assert build_on_meta_device(lambda: instantiate_naming_key(cfg.model, "model")) is None
    assert instantiate_naming_key(cfg.model, "model")[0].rates == pytest.approx([0.0, 0.05, 0.1])
    assert build_on_meta_device(_DropPathRates) is None  # a yacs builder's component too


def test_the_schedule_is_checked_where_the_meta_device_cannot_build_the_model():
    # A ViTDet-like model is left to the real build; its train.dropblock_schedule is still
    # checked before the output folder is made (else it failed after the data was loaded).
    from detectron2.config import LazyCall as L

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC, "train.dropblock_schedule.keep_prob=1.5")
    cfg.model = L(torch.nn.ModuleList)(modules=[L(_DropPathRates)()])
    with pytest.raises(ValueError, match=r"^train\.dropblock_schedule: .*keep_prob"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_the_checks_leave_the_config_as_it_was():
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    before = OmegaConf.to_yaml(cfg)
    check_lazy_config_before_run(cfg, check_files=False)  # builds the optimizer on the meta model
    assert "model" not in cfg.optimizer.params and OmegaConf.to_yaml(cfg) == before


def test_a_missing_key_and_a_bad_opt_are_named(tmp_path):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    del cfg.train["log_period"]
    with pytest.raises(KeyError, match=r"train\.log_period"):
        check_lazy_config_before_run(cfg, check_files=False)
    cfg = lazy_cfg(SYNTHETIC)
    del cfg.dataloader["test"]  # read by the evaluation after the training
    for train in (True, False):  # --eval-only failed once the model and its weights were loaded
        with pytest.raises(KeyError, match=r"^\"the config has no dataloader\.test "):
            check_lazy_config_before_run(cfg, train=train, check_files=False)
    with pytest.raises(ValueError, match=r"command-line opt 'train\.max_iter': expected key=value \(LazyConfig overrides\)$"):
        lazy_cfg(SYNTHETIC, "train.max_iter")
    # A yacs KEY VALUE pair is shown as the override to write, with the config's own key.
    with pytest.raises(ValueError, match=r"command-line opt 'MODEL\.DROPBLOCK\.KEEP_PROB': expected key=value "
                                         r"\(LazyConfig overrides\): write dropblock\.keep_prob=0\.8$"):
        lazy_cfg(SYNTHETIC, "MODEL.DROPBLOCK.KEEP_PROB", "0.8")
    with pytest.raises(ValueError, match=r"'train\.max_iter': expected key=value .*: write train\.max_iter=100$"):
        lazy_cfg(SYNTHETIC, "train.max_iter", "100")
    with pytest.raises(FileNotFoundError, match="nope.py"):
        lazy_cfg(tmp_path / "nope.py")
    with pytest.raises(ValueError, match=r"is not a LazyConfig.*tools/train_net\.py"):
        lazy_cfg(CONFIGS / LAZY_TWINS[0][1])


@pytest.mark.parametrize("code, imported, match", [
    # ImportError, NameError and SyntaxError printed detectron2's whole traceback, a RuntimeError its
    # message alone: none named the file.
    ("x = 1\nraise RuntimeError('boom')\n", None, r"RuntimeError: boom at .*cfg\.py:2$"),
    ("from dropblock_det.modelling import DropBlockFPN\n", None,
     r"ModuleNotFoundError: No module named 'dropblock_det\.modelling' at .*cfg\.py:1$"),
    ("x = undefined_name\n", None, r"NameError: name 'undefined_name' is not defined at .*cfg\.py:1$"),
    # (a message of several lines in one)
    ("raise RuntimeError('two\\nlines')\n", None, r"RuntimeError: two lines at .*cfg\.py:1$"),
    ("x = (\n", None, r"SyntaxError: Config file .*cfg\.py has syntax error! \('\(' was never closed, line 1\)$"),
    ("from .base import x\n", "y = 1\nx = 1 / 0\n", r"ZeroDivisionError: division by zero at .*base\.py:2$"),
])
def test_a_config_file_whose_code_fails_is_named_with_the_line(tmp_path, code, imported, match):
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    (tmp_path / "cfg.py").write_text(code)
    if imported:
        (tmp_path / "base.py").write_text(imported)
    with pytest.raises(ValueError, match=r"^--config-file '.*cfg\.py' does not load: " + match):
        load_lazy_config(str(tmp_path / "cfg.py"))


def test_a_required_value_left_at_question_marks_is_named_as_missing_not_as_an_absent_key(tmp_path):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    cfg.train.max_iter = "???"  # a value the config file leaves to the command line
    with pytest.raises(KeyError, match=r"^'train\.max_iter: Missing mandatory value"):
        check_lazy_config_before_run(cfg, check_files=False)


@pytest.mark.parametrize("key, node", [
    ("dataloader.test.mapper", r"dataloader\.test \(build_detection_test_loader\)"),
    # An argument with a default, left at '???': it passed every check, and omegaconf's
    # MissingMandatoryValue came when the evaluation built the loader / evaluator, after the
    # whole training (or once the weights were loaded).
    ("dataloader.test.num_workers", r"dataloader\.test \(build_detection_test_loader\)"),
    ("dataloader.evaluator.output_dir", r"dataloader\.evaluator \(dataset_evaluator\)"),
])
def test_a_loader_argument_left_at_question_marks_is_named_for_training_and_evaluation(key, node):
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    parent, name = key.rsplit(".", 1)
    OmegaConf.select(cfg, parent)[name] = "???"  # a value the config file leaves to the command line
    for train in (True, False):
        with pytest.raises(ValueError, match=rf"^{node}: the argument '{name}' is left at '\?\?\?', without a value"):
            check_lazy_config_before_run(cfg, train=train, check_files=False)


def test_a_config_without_train_seed_or_train_ddp_is_accepted():
    # detectron2's configs/common/train.py has no seed (default_setup reads it as -1: random),
    # and a train dict of the user's own may have no ddp (do_train reads it as {}).
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    del cfg.train["seed"]
    del cfg.train["ddp"]
    assert check_lazy_config_before_run(cfg, check_files=False) is not None


def test_no_init_checkpoint_as_null_is_accepted_as_the_empty_string_is():
    # detectron2's checkpointer starts from scratch for either; only another type is refused.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    for train in (True, False):
        assert check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "train.init_checkpoint=null"), train=train,
                                            check_files=False) is not None


def test_a_folder_given_for_the_init_checkpoint_is_named_as_a_folder(tmp_path):
    # (a run's folder for its model_final.pth): it was "does not exist"
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC, f"train.init_checkpoint={tmp_path}", "train.device=cpu")
    with pytest.raises(FileNotFoundError, match=r"train\.init_checkpoint='.*' is a folder, not a checkpoint file"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_a_lazy_runs_config_yaml_that_does_not_load_is_named_as_such_not_as_a_yacs_config(tmp_path):
    # detectron2's LazyConfig.save writes a config holding a function defined in the config
    # file as a config.yaml that does not load, and pickles it to config.yaml.pkl: both were
    # refused as "not a LazyConfig ... a yacs .yaml config is for tools/train_net.py".
    from detectron2.config import LazyConfig

    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file

    source = tmp_path / "cfg.py"
    source.write_text("def double(x):\n    return 2 * x\n\nmodel = dict(fn=double)\n")
    saved = tmp_path / "config.yaml"
    LazyConfig.save(LazyConfig.load(str(source)), str(saved))
    assert (tmp_path / "config.yaml.pkl").is_file()
    with pytest.raises(ValueError, match=r"config\.yaml' is a LazyConfig that does not load \(ConstructorError: "
                                         r".*function or lambda defined in the config file.*config\.yaml\.pkl"
                                         r".*give the Python config it was made from"):
        lazy_cfg(saved)
    assert is_lazy_config_file(str(saved) + ".pkl")
    with pytest.raises(ValueError, match=r"config\.yaml\.pkl' is a LazyConfig that does not load .*pickled copy"):
        lazy_cfg(str(saved) + ".pkl")


@pytest.mark.parametrize("opt, match", [
    # detectron2's apply_overrides adds any key: these trained with the config's max_iter.
    ("train.max_iters=3", r"command-line opt 'train\.max_iters=3': train has no key 'max_iters' "
                          r"\(did you mean train\.max_iter\?\); to add it on purpose write \+train\.max_iters=3"),
    # A yacs habit: the keys' case is not the config's.
    # The whole key, case aside, first (the near names at the top level reach only "train").
    ("TRAIN.MAX_ITER=3", r"the config's top level has no key 'TRAIN' \(did you mean train\.max_iter, train\?\)"),
    ("train.MAX_ITER=3", r"train has no key 'MAX_ITER' \(did you mean train\.max_iter\?\)"),
    # Every close spelling (up to three), the closest first.
    ("train.EVAL_PERIOD=5", r"train has no key 'EVAL_PERIOD' \(did you mean train\.eval_period, train\.log_period\?\)"),
    # Under a LazyCall node the close matches include its target's arguments.
    ("model.pixel_meen=[1,2,3]", r"model has no key 'pixel_meen' \(did you mean model\.pixel_mean"),
    # detectron2 main's training loader passes **kwargs on to torch's DataLoader: the name is
    # checked against that one's arguments too (it failed inside DataLoader, after data loading).
    ("dataloader.train.total_batch_sizes=2",
     r"dataloader\.train has no key 'total_batch_sizes' \(did you mean dataloader\.train\.total_batch_size[,?]"),
    ("dataloader.train.mapper.augmentations.0.max_sise=64",
     r"dataloader\.train\.mapper\.augmentations\.0 has no key 'max_sise' \(did you mean .*\.0\.max_size\?\)"),
    # The project's components take **kwargs (passed on to the detectron2 class they extend, or
    # refused): these were refused only at the model build, with Python's "unexpected keyword".
    ("model.head.prior_probb=0.01", r"model\.head has no key 'prior_probb' \(did you mean model\.head\.prior_prob\?\)"),
    ("dropblock.blocksize=5", r"dropblock has no key 'blocksize' \(did you mean dropblock\.block_size\?\)"),
    ("model.backbone.fuse_typ=avg", r"model\.backbone has no key 'fuse_typ' \(did you mean model\.backbone\.fuse_type\?\)"),
    ("model.backbone.bottom_up.stages.nrom=BN",
     r"model\.backbone\.bottom_up\.stages has no key 'nrom' \(did you mean model\.backbone\.bottom_up\.stages\.norm\?\)"),
])
def test_an_override_that_would_add_a_misspelt_key_is_refused_naming_it(opt, match):
    with pytest.raises(KeyError, match=match):
        lazy_cfg(SYNTHETIC, opt)


@pytest.mark.parametrize("opt, match", [
    # The yacs node MODEL.DROPBLOCK is the twins' top-level `dropblock`: "model has no key
    # 'dropblock'" named nothing to write instead, and "did you mean model?" led there.
    ("model.dropblock.keep_prob=0.8",
     r"model has no key 'dropblock' \(did you mean dropblock\.keep_prob\?\)"),
    ("MODEL.DROPBLOCK.KEEP_PROB=0.8",
     r"top level has no key 'MODEL' \(did you mean dropblock\.keep_prob, model\?\)"),
])
def test_an_override_of_a_yacs_path_is_told_the_key_where_the_config_has_it(opt, match):
    with pytest.raises(KeyError, match=match):
        lazy_cfg(SYNTHETIC, opt)


@pytest.mark.parametrize("opts, match", [
    # yacs keys whose LazyConfig key has another name: "expected key=value" alone, or "did you
    # mean model?" (or nothing), led nowhere; the keys are detectron2's configs/common ones.
    (["SOLVER.MAX_ITER", "100"], r"'SOLVER\.MAX_ITER': expected key=value \(LazyConfig overrides\): write train\.max_iter=100$"),
    (["SOLVER.BASE_LR", "0.01"], r": write optimizer\.lr=0\.01$"),
    (["SOLVER.MOMENTUM", "0.8"], r": write optimizer\.momentum=0\.8$"),
    (["OUTPUT_DIR", "out"], r": write train\.output_dir=out$"),
    (["MODEL.DEVICE", "cpu"], r": write train\.device=cpu$"),
    (["TEST.EVAL_PERIOD", "50"], r": write train\.eval_period=50$"),
    (["SOLVER.AMP.ENABLED", "True"], r": write train\.amp\.enabled=True$"),
    (["MODEL.RETINANET.NUM_CLASSES", "3"], r": write model\.num_classes=3$"),
    # one yacs key, both loaders
    (["DATALOADER.NUM_WORKERS", "2"], r": write dataloader\.train\.num_workers=2 dataloader\.test\.num_workers=2$"),
    (["SOLVER.MAX_ITER=100"], r"top level has no key 'SOLVER' \(did you mean train\.max_iter\?\)"),
    (["SOLVER.IMS_PER_BATCH=4"], r"top level has no key 'SOLVER' \(did you mean dataloader\.train\.total_batch_size\?\)"),
    (["SOLVER.WEIGHT_DECAY=0.0"], r"top level has no key 'SOLVER' \(did you mean optimizer\.weight_decay\?\)"),
    (["SOLVER.CHECKPOINT_PERIOD=500"], r"top level has no key 'SOLVER' \(did you mean train\.checkpointer\.period\?\)"),
    (["SEED=3"], r"top level has no key 'SEED' \(did you mean train\.seed\?\)"),
    (["MODEL.WEIGHTS=w.pth"], r"top level has no key 'MODEL' \(did you mean train\.init_checkpoint, model\?\)"),
    (["model.weights=w.pth"], r"model has no key 'weights' \(did you mean train\.init_checkpoint\?\)"),
    (["MODEL.RETINANET.NUM_CLASSES=3"], r"top level has no key 'MODEL' \(did you mean model\.num_classes, model\?\)"),
    (["DATALOADER.NUM_WORKERS=2"], r"top level has no key 'DATALOADER' \(did you mean dataloader\.train\.num_workers, "
                                   r"dataloader\.test\.num_workers, dataloader\?\)"),
])
def test_a_yacs_key_given_to_a_lazy_config_is_told_the_lazy_config_key_of_that_name(opts, match):
    with pytest.raises((KeyError, ValueError), match=match):
        lazy_cfg(SYNTHETIC, *opts)


def test_a_yacs_keys_lazy_config_key_is_named_only_where_the_config_has_it(tmp_path):
    from dropblock_det.engine.lazy_config_checks import check_override_key

    config = tmp_path / "cfg.py"
    config.write_text("model = dict(num_classes=3)\ntrain = dict(max_iter=5)\noptimizer = dict(lr=0.1)\n")
    with pytest.raises(ValueError, match=r"'SOLVER\.MAX_ITER': expected key=value .*: write train\.max_iter=100$"):
        lazy_cfg(config, "SOLVER.MAX_ITER", "100")
    # no train.seed, no optimizer.momentum (e.g. AdamW's), no R-CNN heads: nothing to write
    for opts in (["SEED", "3"], ["SOLVER.MOMENTUM", "0.8"], ["MODEL.ROI_HEADS.NUM_CLASSES", "3"]):
        with pytest.raises(ValueError, match=rf"'{re.escape(opts[0])}': expected key=value \(LazyConfig overrides\)$"):
            lazy_cfg(config, *opts)
    with pytest.raises(KeyError, match=r"top level has no key 'SEED'; to add it on purpose"):
        lazy_cfg(config, "SEED=3")
    # An R-CNN's class count is its ROI heads'.
    cfg = lazy_rcnn_cfg()
    with pytest.raises(KeyError, match=r"top level has no key 'MODEL' \(did you mean model\.roi_heads\.num_classes, model\?\)"):
        check_override_key(cfg, "MODEL.ROI_HEADS.NUM_CLASSES=3")
    with pytest.raises(KeyError, match=r"top level has no key 'MODEL' \(did you mean model\?\)"):
        check_override_key(cfg, "MODEL.RETINANET.NUM_CLASSES=3")
    # A semantic segmentation head's, where the config has one.
    with pytest.raises(KeyError, match=r"top level has no key 'MODEL' \(did you mean model\.sem_seg_head\.num_classes, "
                                       r"model\?\)"):
        check_override_key(lazy_cfg(DEEPLAB), "MODEL.SEM_SEG_HEAD.NUM_CLASSES=3")
    # A top-level key named as the LazyConfig key's last part is another key (a YAML config's
    # `lr: 0.01`): no optimizer.lr here, and `lr` is not what the optimizer reads.
    from omegaconf import OmegaConf

    with pytest.raises(KeyError, match=r"top level has no key 'SOLVER'; to add it on purpose"):
        check_override_key(OmegaConf.create({"lr": 0.01, "optimizer": {"momentum": 0.9}}), "SOLVER.BASE_LR=0.1")


def test_a_key_followed_by_an_override_is_not_told_to_take_the_override_as_its_value():
    # 'dropblock.keep_prob' with its "=0.8" left out: the next opt is an override, not its value.
    with pytest.raises(ValueError, match=r"^command-line opt 'dropblock\.keep_prob': expected key=value "
                                         r"\(LazyConfig overrides\)$"):
        lazy_cfg(SYNTHETIC, "dropblock.keep_prob", "train.max_iter=5")


def test_an_override_key_close_to_one_of_the_configs_is_told_that_key_in_the_configs_case():
    # Matched case aside, and named as the config spells it: written as typed, the suggested
    # key would be refused in turn.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_override_key

    cfg = OmegaConf.create({"train": {"evalPeriod": 5}})
    with pytest.raises(KeyError, match=r"train has no key 'evalperiod' \(did you mean train\.evalPeriod\?\)"):
        check_override_key(cfg, "train.evalperiod=3")
    # So is a yacs key's LazyConfig key.
    cfg = OmegaConf.create({"train": {"MAX_ITER": 5}})
    with pytest.raises(KeyError, match=r"top level has no key 'SOLVER' \(did you mean train\.MAX_ITER\?\)"):
        check_override_key(cfg, "SOLVER.MAX_ITER=3")


def test_an_override_past_a_lists_end_is_named_and_one_of_a_missing_value_is_taken(tmp_path):
    # An index past the end failed with omegaconf's bare ConfigIndexError, naming no opt.
    length = len(lazy_cfg(SYNTHETIC).dataloader.train.mapper.augmentations)
    opt = f"dataloader.train.mapper.augmentations.{length}.max_size=64"
    with pytest.raises(ValueError, match=rf"^command-line opt '{re.escape(opt)}': "):
        lazy_cfg(SYNTHETIC, opt)
    # A "???" in the config file is a value to give on the command line.
    config = tmp_path / "cfg.py"
    config.write_text("model = dict(num_classes=3)\ntrain = dict(init_checkpoint='???')\n")
    assert lazy_cfg(config, "train.init_checkpoint=w.pth").train.init_checkpoint == "w.pth"


def test_the_arguments_of_every_project_component_taking_kwargs_are_known():
    # A component whose **kwargs go nowhere known lets any misspelt override through to its build.
    import inspect

    import dropblock_det.layers
    import dropblock_det.modeling
    from dropblock_det.engine.lazy_config_checks import _accepted_arguments

    found = []
    for module in (dropblock_det.layers, dropblock_det.modeling):
        for name in dir(module):
            target = getattr(module, name)
            if name.startswith("_") or not callable(target) or not target.__module__.startswith("dropblock_det."):
                continue
            parameters = inspect.signature(target).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in parameters):
                found.append(name)
                # DropBlockRes5ROIHeads' **kwargs are Res5ROIHeads' own (it defines no __init__).
                assert _accepted_arguments(target)[1] is (name == "DropBlockRes5ROIHeads"), name
    assert {"build_regularizer", "DropBlock2d", "DropBlockFPN", "DropBlockRetinaNetHead",
            "make_dropblock_resnet_stages"} <= set(found)


def test_an_override_may_add_an_argument_of_its_nodes_target_or_any_key_with_a_plus(tmp_path):
    from detectron2.config import LazyConfig

    from dropblock_det.engine.lazy_config_checks import lazy_meta_model

    # Arguments the L(...) calls leave at their defaults (RetinaNet's vis_period, the
    # training loader's aspect_ratio_grouping), and any key with Hydra's "+key=value".
    assert "vis_period" not in lazy_cfg(SYNTHETIC).model
    cfg = lazy_cfg(SYNTHETIC, "model.vis_period=7", "dataloader.train.aspect_ratio_grouping=False",
                   "+train.my_note=hello")
    # An argument a project component passes on to the detectron2 one it extends (FPN's
    # fuse_type, the ResNet stages' width_per_group).
    cfg2 = lazy_cfg(SYNTHETIC, "model.backbone.fuse_type=avg", "model.backbone.bottom_up.stages.width_per_group=64")
    assert lazy_meta_model(cfg2).backbone._fuse_type == "avg"
    assert cfg.dataloader.train.aspect_ratio_grouping is False and cfg.train.my_note == "hello"
    assert lazy_meta_model(cfg).vis_period == 7
    # Where the training loader passes **kwargs on to torch's DataLoader (detectron2 main), an
    # argument of DataLoader is one of the loader's.
    import inspect

    from detectron2.data import build_detection_train_loader

    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(build_detection_train_loader).parameters.values()):
        from dropblock_det.engine.lazy_config_checks import check_lazy_loaders

        cfg = lazy_cfg(SYNTHETIC, "dataloader.train.pin_memory=True")
        assert cfg.dataloader.train.pin_memory is True
        check_lazy_loaders(cfg)
    # The optional key the tool reads, given to a config that leaves it out.
    del cfg.train["dropblock_schedule"]
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    assert lazy_cfg(tmp_path / "config.yaml", "train.dropblock_schedule=null").train.dropblock_schedule is None


def test_an_override_under_a_target_taking_any_keyword_or_not_found_is_left_to_the_build():
    # Res5ROIHeads (and DropBlockRes5ROIHeads) take ROIHeads' arguments as **kwargs: one the
    # config leaves out is taken, as is any key under a target not found now.
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_override_key

    cfg = lazy_rcnn_cfg(c4=True)
    assert "proposal_append_gt" not in cfg.model.roi_heads
    check_override_key(cfg, "model.roi_heads.proposal_append_gt=False")
    cfg.model.roi_heads._target_ = "no_such_module.NoSuchHeads"
    check_override_key(cfg, "model.roi_heads.any_argument=1")
    with pytest.raises(KeyError, match=r"model\.roi_heads\.box_predictor has no key 'num_classs'"):
        check_override_key(cfg, "model.roi_heads.box_predictor.num_classs=3")


def test_none_for_the_schedule_on_the_command_line_is_explained():
    # Hydra reads None as the string 'None' (null is its None).
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model, lazy_schedule_hook

    cfg = lazy_cfg(SYNTHETIC, "+train.dropblock_schedule='None'")  # the string, quoted on purpose
    with pytest.raises(ValueError, match=r"gives a value of type str \('None'\): .*train\.dropblock_schedule=null"):
        lazy_schedule_hook(cfg, lazy_meta_model(cfg))


@pytest.mark.parametrize("opt", [
    "train.dropblock_schedule=None",
    "train.dropblock_schedule.end_iter=None",  # the README's end_iter=None, on the command line
    "model.head.norm=None",  # the head failed with "KeyError: 'None'"
    "dataloader.train.sampler=None",  # "sampler='None': expected ... or None for the default"
    "model.backbone.bottom_up.stages.stage_drop_scales=[None,1.0]",
    "+train.note={a:None}",  # in a dict too
])
def test_an_unquoted_none_in_an_override_is_refused_naming_null(opt):
    with pytest.raises(ValueError, match=rf"command-line opt '{re.escape(opt)}': None in an override is the string "
                                         rf"'None'.*write null \({re.escape(opt.replace('None', 'null'))}\)"):
        lazy_cfg(SYNTHETIC, opt)
    lazy_cfg(SYNTHETIC, opt.replace("None", "null"))  # what it advises loads


@pytest.mark.parametrize("opt", ["dataloader.train.dataset.names=synthetic_det_train,synthetic_det_val",
                                 "dropblock.keep_prob=choice(0.8,0.9)", "model.test_score_thresh=interval(0.01,0.1)",
                                 "train.max_iter=range(1,5)"])
def test_a_hydra_sweep_in_an_override_is_refused_naming_the_opt(opt):
    # detectron2's apply_overrides set interval(...) as a dict of its fields: the score
    # threshold failed only in the evaluation after the training; "a,b" failed naming no key.
    with pytest.raises(ValueError, match=rf"^command-line opt '{re.escape(opt)}': Hydra's grammar reads the value "
                       r"as a sweep .*write a list in brackets"):
        lazy_cfg(SYNTHETIC, opt)
    lazy_cfg(SYNTHETIC, "dataloader.train.dataset.names=[synthetic_det_train,synthetic_det_val]")


def test_the_deeplab_export_advice_on_the_command_line_loads():
    # export_stock_config.py advised model.sem_seg_head.train_size=None, which Hydra read as
    # 'None': the head then failed with "TypeError: not all arguments converted during
    # string formatting".
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model

    deeplab = str(CONFIGS / LAZY_TWINS[3][0])
    with pytest.raises(ValueError, match=r"train_size=null"):
        lazy_cfg(deeplab, "model.sem_seg_head.train_size=None")
    cfg = lazy_cfg(deeplab, "model.sem_seg_head.train_size=null")
    assert cfg.model.sem_seg_head.train_size is None
    assert lazy_meta_model(cfg).sem_seg_head.decoder["res5"]["project_conv"].pool_kernel_size is None


def test_the_model_checks_name_the_evaluator_set_and_a_triton_impl_off_its_device():
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, "dataloader.test.dataset.names=synthetic_sem_seg_val")
    with pytest.raises(ValueError, match=r"dataloader\.evaluator\.dataset_name='synthetic_sem_seg_val'.*DropBlockRetinaNet"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg = lazy_cfg(SYNTHETIC, "dropblock.impl=triton")
    model = lazy_meta_model(cfg)
    from dropblock_det.layers import triton_unavailable_reason

    if triton_unavailable_reason("cpu"):
        with pytest.raises(ValueError, match=r"model\.backbone\.bottom_up\.res4\.0\.dropblock_conv1: impl='triton'"):
            check_lazy_model(cfg, model)
    check_lazy_model(cfg, model, train=False)  # evaluation runs no kernel


def test_a_training_without_an_evaluator_is_warned_of_and_an_evaluation_refused():
    # do_test evaluated nothing at eval_period and at the end, and said nothing.
    import warnings

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    null, deleted = lazy_cfg(SYNTHETIC, "dataloader.evaluator=null"), lazy_cfg(SYNTHETIC)
    del deleted.dataloader.evaluator
    for cfg in (null, deleted):
        with pytest.warns(UserWarning, match=r"^dataloader\.evaluator is missing \(or null\): the run trains and "
                                             r"evaluates nothing"):
            check_lazy_config_before_run(cfg, check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the config's own evaluator: no warning
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC), check_files=False)
        # An evaluation's checks say nothing of it: the evaluation tools refuse it themselves.
        check_lazy_config_before_run(null, train=False, check_files=False)


def test_a_list_of_evaluators_is_checked_entry_by_entry():
    # inference_on_dataset runs a list of evaluators (detectron2's PanopticFPN LazyConfig
    # gives three): the checks read dataloader.evaluator.dataset_name and failed on a list
    # with omegaconf's "Index 'dataset_name' (str) is not an int".
    from detectron2.config import LazyCall as L
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import (
        check_lazy_config_before_run,
        lazy_dataset_names,
        lazy_evaluator_nodes,
    )
    from dropblock_det.engine.evaluation import dataset_evaluator

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = [L(dataset_evaluator)(dataset_name="synthetic_det_val") for _ in range(2)]
    assert [key for key, _ in lazy_evaluator_nodes(cfg)] == ["dataloader.evaluator.0", "dataloader.evaluator.1"]
    assert ("dataloader.evaluator.1.dataset_name", "synthetic_det_val") in lazy_dataset_names(cfg)
    check_lazy_config_before_run(cfg, check_files=False)
    cfg.dataloader.evaluator[1].dataset_name = "no_such_set"
    with pytest.raises(KeyError, match=r"dataloader\.evaluator\.1\.dataset_name names 'no_such_set'"):
        check_lazy_config_before_run(cfg, check_files=False)
    cfg.dataloader.evaluator[1].dataset_name = ["synthetic_det_val"]
    with pytest.raises(ValueError, match=r"dataloader\.evaluator\.1\.dataset_name=\['synthetic_det_val'\]: expected one"):
        check_lazy_config_before_run(cfg, check_files=False)
    # The model check names the entry whose dataset the model's outputs do not fit.
    cfg.dataloader.evaluator[1].dataset_name = "synthetic_sem_seg_val"
    with pytest.raises(ValueError, match=r"dataloader\.evaluator\.1\.dataset_name='synthetic_sem_seg_val'.*DropBlockRetinaNet"):
        check_lazy_config_before_run(cfg, check_files=False)
    assert OmegaConf.is_list(cfg.dataloader.evaluator)


def test_stage_scales_need_a_regularizer_with_a_keep_prob():
    from detectron2.config import instantiate

    cfg = lazy_cfg(SYNTHETIC, "dropblock._target_=torch.nn.Identity", "dropblock.keep_prob=null",
                   "dropblock.block_size=null", "dropblock.shared_mask=null", "dropblock.gamma_mode=null",
                   "dropblock.impl=null")
    for key in ("keep_prob", "block_size", "shared_mask", "gamma_mode", "impl"):
        del cfg.dropblock[key]
    with pytest.raises(ValueError, match=r"stage_drop_scales for res4: the dropblock regularizer Identity"):
        instantiate(cfg.model)


class _OwnMapper:
    """A training mapper of the user's own, no DatasetMapper: what it loads is its business."""

    def __init__(self, is_train, augmentations, image_format, use_instance_mask=False):
        self.is_train = is_train


def test_a_mask_rcnn_mapper_of_the_users_own_is_not_judged_by_detectron2s_flag():
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import (
        check_lazy_model,
        check_lazy_rcnn_mapper,
        lazy_meta_model,
    )

    cfg = lazy_rcnn_cfg(mask=True, mapper=_OwnMapper)
    check_lazy_rcnn_mapper(cfg, lazy_meta_model(cfg))
    cfg = lazy_rcnn_cfg(mask=True)  # detectron2's DatasetMapper with the same flag
    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.use_instance_mask=False, but"):
        check_lazy_rcnn_mapper(cfg, lazy_meta_model(cfg))
    # An evaluation builds no training loader: its mapper is not judged then.
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_a_resize_without_max_size_is_accepted_as_detectron2s_unbounded_one():
    from dropblock_det.engine.lazy_config_checks import check_lazy_inputs

    cfg = lazy_cfg(SYNTHETIC)
    for split in ("train", "test"):
        del cfg.dataloader[split].mapper.augmentations[0]["max_size"]
    check_lazy_inputs(cfg, None)


def test_the_schedule_key_none_gives_no_ramp_and_a_config_without_it_the_whole_training_ramp():
    # README: `None` for train.dropblock_schedule keeps the targets throughout; a config
    # without the key gets the ramp over the whole training when its model has a regularizer.
    from dropblock_det.engine import DropBlockScheduleHook
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model, lazy_schedule_hook

    cfg = lazy_cfg(SYNTHETIC, "train.dropblock_schedule=null")
    model = lazy_meta_model(cfg)
    assert lazy_schedule_hook(cfg, model) is None
    cfg = lazy_cfg(SYNTHETIC)
    del cfg.train["dropblock_schedule"]
    hook = lazy_schedule_hook(cfg, model)
    assert isinstance(hook, DropBlockScheduleHook) and hook.schedule.start_iter == 0 and hook.schedule_for(77).end_iter == 77
    assert lazy_schedule_hook(cfg, torch.nn.Conv2d(3, 3, 1)) is None  # no regularizer, no ramp


@pytest.mark.parametrize("norm, shapes, refused", [
    ("BN", 1, True), ("BN", 4, True), ("BN", 6, True), ("SyncBN", 1, True), ("BN", 5, False), ("GN", 1, False),
    ("", 1, False)])
def test_a_retinanet_head_with_per_level_bn_needs_one_input_shape_per_level(norm, shapes, refused):
    # One BN per input_shape entry, cycled level by level: fewer entries than the five
    # levels would share (or mix up) statistics between levels, and more entries than levels
    # fail detectron2's head at its first step; checked when the model is built.
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, f"model.head.norm='{norm}'")
    cfg.model.head.input_shape = [L(ShapeSpec)(channels=64)] * shapes
    if refused:
        with pytest.raises(ValueError, match=rf"^model\.head\.input_shape \(against model\.head_in_features\): "
                                             rf"{shapes} ShapeSpec\(s\) for the 5 levels \['p3', 'p4', 'p5', 'p6', 'p7'\]"):
            check_lazy_model(cfg, lazy_meta_model(cfg))
    else:
        check_lazy_model(cfg, lazy_meta_model(cfg))


@pytest.mark.parametrize("opts, match", [
    # model.head.num_anchors is given by hand (9): an anchor override alone failed at the first
    # step ("IndexError: The shape of the mask [2, 582] ... does not match ... [2, 1746, 3]").
    (["model.anchor_generator.aspect_ratios=[1.0]"],
     r"model\.head\.num_anchors=9: the anchor generator \(model\.anchor_generator: sizes x aspect_ratios per "
     r"level\) gives 3 anchors per location: set model\.head\.num_anchors=3"),
    (["model.anchor_generator.sizes=[[16],[32],[64],[128],[256]]"], r"num_anchors=9: .* gives 3 anchors"),
    (["model.head.num_anchors=3"], r"num_anchors=3: .* gives 9 anchors per location: set model\.head\.num_anchors=9"),
    (["model.anchor_generator.sizes=[[16],[32],[64],[128],[256,300,400]]"],
     r"gives 3, 3, 3, 3, 9 \(per level\) anchors per location: the head predicts one count for every level"),
    # The strides are given by hand too: detectron2 pairs them with the levels in order and
    # drops the extra ones, so p4's anchors were placed at stride 8 on its stride-16 map.
    (["model.head_in_features=[p4,p5,p6,p7]"],
     r"model\.anchor_generator\.strides=\[8, 16, 32, 64, 128\]: the levels model\.head_in_features=\['p4', 'p5', "
     r"'p6', 'p7'\] have strides \[16, 32, 64, 128\] .*set model\.anchor_generator\.strides=\[16, 32, 64, 128\]"),
    (["model.anchor_generator.strides=[8,16,32,64,64]"], r"strides=\[8, 16, 32, 64, 64\]: .* have strides \[8, 16, 32, 64, 128\]"),
    # A level the backbone does not give: built, then a KeyError at the first step.
    (["model.head_in_features=[res3,p4,p5,p6,p7]"],
     r"model\.head_in_features=\['res3', 'p4', 'p5', 'p6', 'p7'\]: 'res3' not among the backbone's outputs \['p3', "),
])
def test_a_retinanet_head_anchor_count_the_anchor_generator_does_not_give_is_refused(opts, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, *opts)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg = lazy_cfg(SYNTHETIC, "model.anchor_generator.aspect_ratios=[1.0]", "model.head.num_anchors=3")
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_a_retinanet_on_fewer_levels_keeps_the_anchor_strides_left_over(tmp_path):
    # detectron2 pairs the strides with the levels in order and drops those left over: a
    # RetinaNet on P3-P5 only, with the five strides of P3-P7, is a valid model (it was
    # refused: "set model.anchor_generator.strides=[8, 16, 32]").
    from detectron2.config import instantiate

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    opts = ["model.head_in_features=[p3,p4,p5]"]
    cfg = lazy_cfg(SYNTHETIC, *opts)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    model = instantiate(lazy_cfg(SYNTHETIC, *opts).model).eval()
    with torch.no_grad():
        detections = model([{"image": torch.rand(3, 64, 64) * 255, "height": 64, "width": 64}])
    assert len(detections) == 1 and "instances" in detections[0]
    features = model.backbone(torch.zeros(1, 3, 64, 64))
    anchors = model.anchor_generator([features[f] for f in model.head_in_features])
    assert [len(a) for a in anchors] == [9 * features[f].shape[-2] * features[f].shape[-1] for f in ("p3", "p4", "p5")]
    # the next location's anchors lie one stride to the right: each level at its own stride
    assert [float(a.tensor[9, 0] - a.tensor[0, 0]) for a in anchors] == pytest.approx([8.0, 16.0, 32.0])


def test_detectron2s_coco_evaluator_with_its_fast_evaluation_but_no_compiled_operators_is_refused(monkeypatch):
    # detectron2's own LazyConfigs (common/data/coco.py) build L(COCOEvaluator)(dataset_name=...),
    # use_fast_impl=True by default: without the compiled operators (make env's detectron2
    # v0.6) the first evaluation raised "detectron2._C.InstanceAnnotation is a compiled
    # operator", after the whole training.
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine import lazy_config_checks

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", output_dir="out")
    model = lazy_config_checks.lazy_meta_model(cfg)
    monkeypatch.setattr(lazy_config_checks, "has_compiled_ops", lambda: False)
    for train in (True, False):
        with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.use_fast_impl=True: .*compiled operators.*"
                                             r"set dataloader\.evaluator\.use_fast_impl=False"):
            lazy_config_checks.check_lazy_model(cfg, model, train=train)
    cfg.dataloader.evaluator.use_fast_impl = False
    lazy_config_checks.check_lazy_model(cfg, model)
    monkeypatch.setattr(lazy_config_checks, "has_compiled_ops", lambda: True)
    cfg.dataloader.evaluator.use_fast_impl = True
    lazy_config_checks.check_lazy_model(cfg, model)
    monkeypatch.setattr(lazy_config_checks, "has_compiled_ops", lambda: False)
    lazy_config_checks.check_lazy_model(lazy_cfg(SYNTHETIC), model)  # dataset_evaluator picks the evaluation itself


def test_a_coco_evaluator_that_would_not_use_the_fast_evaluation_is_not_refused(monkeypatch):
    # use_fast_impl=None is false to COCOEvaluator (the official COCOeval), and detectron2 main
    # falls back to it by itself where its fast_eval_api did not import: both were refused as
    # needing the compiled operators.
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator, coco_evaluation

    from dropblock_det.engine import lazy_config_checks

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", output_dir="out", use_fast_impl=None)
    model = lazy_config_checks.lazy_meta_model(cfg)
    monkeypatch.setattr(lazy_config_checks, "has_compiled_ops", lambda: False)
    lazy_config_checks.check_lazy_model(cfg, model)
    cfg.dataloader.evaluator.use_fast_impl = True
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.use_fast_impl=True: "):
        lazy_config_checks.check_lazy_model(cfg, model)
    monkeypatch.setattr(coco_evaluation, "COCOeval_opt", coco_evaluation.COCOeval)  # main's fallback
    lazy_config_checks.check_lazy_model(cfg, model)


@pytest.mark.parametrize("change, match", [
    (lambda rpn: rpn.anchor_generator.update(aspect_ratios=[1.0]),
     r"model\.proposal_generator\.head\.num_anchors=3: the anchor generator \(model\.proposal_generator\."
     r"anchor_generator: .*\) gives 1 anchors per location: set model\.proposal_generator\.head\.num_anchors=1"),
    (lambda rpn: rpn.update(in_features=["p3", "p4", "p5", "p6"]),
     r"model\.proposal_generator\.anchor_generator\.strides=\[4, 8, 16, 32, 64\]: the levels "
     r"model\.proposal_generator\.in_features=\['p3', 'p4', 'p5', 'p6'\] have strides \[8, 16, 32, 64\]"),
    (lambda rpn: rpn.update(in_features=["p2", "p3", "p4", "p5", "p7"]),
     r"model\.proposal_generator\.in_features=\[.*\]: 'p7' not among the backbone's outputs"),
])
def test_an_rpn_whose_anchors_do_not_fit_its_head_or_levels_is_refused(change, match):
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    change(cfg.model.proposal_generator)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


@pytest.mark.parametrize("change, match", [
    # Each failed at the first step, in a conv or matmul, after the earlier run was moved aside.
    (lambda model: model.proposal_generator.head.update(in_channels=16),
     r"^model\.proposal_generator\.head\.in_channels: the head's first conv takes 16 channels, but the features "
     r"it runs on, \['p2', .*\], have 32: set its channels to 32"),
    (lambda model: model.roi_heads.box_head.input_shape.update(channels=256),
     r"^model\.roi_heads\.box_head\.input_shape: the head's first layer takes 12544 values, but the features it runs "
     r"on, \[.*\], pooled to 7x7, give 1568: set it to channels=32, height=7, width=7"),
    (lambda model: model.roi_heads.box_head.input_shape.update(height=14),
     r"^model\.roi_heads\.box_head\.input_shape: .* takes 3136 values, .* give 1568"),
    (lambda model: model.roi_heads.mask_head.input_shape.update(channels=64),
     r"^model\.roi_heads\.mask_head\.input_shape: the head's first conv takes 64 channels, .* have 32"),
])
def test_an_rcnn_head_whose_input_channels_do_not_fit_the_backbone_is_refused(change, match):
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(mask=True)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    change(cfg.model)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


class _HeadOfTheUsersOwn(torch.nn.Module):
    """A box head whose first registered layer is not the one the features enter."""

    def __init__(self, input_shape):
        super().__init__()
        self.extra = torch.nn.Linear(1024, 1024)  # applied after `fc`
        self.fc = torch.nn.Linear(input_shape.channels * input_shape.height * input_shape.width, 1024)
        self._output_size = 1024

    @property
    def output_shape(self):
        from detectron2.layers import ShapeSpec

        return ShapeSpec(channels=self._output_size)

    def forward(self, x):
        return self.extra(self.fc(x.flatten(1)))


def test_a_head_of_the_users_own_is_not_judged_by_its_first_registered_layer():
    # Only detectron2's heads (and their subclasses) register the layer the features enter first.
    from conftest import lazy_rcnn_cfg
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_head = L(_HeadOfTheUsersOwn)(input_shape=ShapeSpec(channels=32, height=7, width=7))
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_a_retinanet_head_whose_input_channels_do_not_fit_the_backbone_is_refused():
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    # The twin's head copies model.backbone.out_channels; a head stating them by hand did not
    # follow an out_channels override, and failed at the first step.
    cfg = lazy_cfg(SYNTHETIC, "model.head.input_shape.0.channels=64")
    cfg.model.head.input_shape = [cfg.model.head.input_shape[0]] * 5
    check_lazy_config_before_run(cfg, check_files=False)
    cfg.model.backbone.out_channels = 128
    with pytest.raises(ValueError, match=r"^model\.head\.input_shape: the head's first conv takes 64 channels, but the "
                                         r"features it runs on, \['p3', 'p4', 'p5', 'p6', 'p7'\], have 128: set its channels to 128"):
        check_lazy_config_before_run(cfg, check_files=False)


@pytest.mark.parametrize("config, opts, match", [
    # The P6 conv's in_channels is given by hand (512: ResNet-18's res5): a depth override
    # alone failed at the first step, in the conv, naming no key.
    (SYNTHETIC, ["model.backbone.bottom_up.stages.depth=50"],
     r"model\.backbone\.top_block\.in_channels=512: its P6 conv reads model\.backbone\.bottom_up's res5 "
     r"\(in_feature='res5'\), which has 2048 channels"),
    (COCO, ["model.backbone.bottom_up.stages.depth=34"], r"top_block\.in_channels=2048: .* which has 512 channels"),
    # From the FPN's own P5 (detectron2 main's use of LastLevelP6P7 on p5): FPN channels.
    (SYNTHETIC, ["model.backbone.top_block.in_feature=p5"], r"in_channels=512: .*the FPN's p5 .* which has 64 channels"),
])
def test_an_fpn_top_block_input_that_no_longer_fits_its_backbone_is_refused(config, opts, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=match):
        check_lazy_config_before_run(lazy_cfg(config, "train.device=cpu", *opts), check_files=False)
    fixed = lazy_cfg(config, "train.device=cpu", *opts, "model.backbone.top_block.in_channels="
                     + ("64" if "p5" in opts[0] else "2048" if opts[0].endswith("50") else "512"))
    check_lazy_config_before_run(fixed, check_files=False)


@pytest.mark.parametrize("opts, match", [
    # The head's input_shape is given by hand: stride 16 no longer fits an OS8 / OS32 backbone.
    (["model.backbone.stages.res4_dilation=2", "model.backbone.stages.res5_dilation=4"],
     r"model\.sem_seg_head\.input_shape\.res5: channels=2048, stride=16, but the backbone's res5 has channels=2048, stride=8"),
    (["model.backbone.stages.res5_dilation=1"], r"input_shape\.res5: .*stride=32"),
    # train_size is INPUT.CROP.SIZE in the yacs builder: a crop override alone would not move it.
    (["dataloader.train.mapper.augmentations.1.crop_size=[768,768]"],
     r"model\.sem_seg_head\.train_size=\[384, 384\]: not the training crop dataloader\.train\.mapper\.augmentations\.1\.crop_size=\[768, 768\]"),
    # ... nor a crop of a size relative to each image (the yacs head asserts an absolute one).
    (["dataloader.train.mapper.augmentations.1.crop_type=relative_range", "dataloader.train.mapper.augmentations.1.crop_size=[0.5,0.5]"],
     r"model\.sem_seg_head\.train_size=\[384, 384\]: the training crop dataloader\.train\.mapper\.augmentations\.1\."
     r"crop_type='relative_range' is not of one size .*train_size=null"),
])
def test_a_deeplab_head_input_that_no_longer_fits_its_backbone_or_crop_is_refused(opts, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(DEEPLAB, *opts)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_relative_crop_is_accepted_with_global_pooling():
    # train_size=null: the ASPP pools each crop globally, whatever its size.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(DEEPLAB, "dataloader.train.mapper.augmentations.1.crop_type=relative_range",
                   "dataloader.train.mapper.augmentations.1.crop_size=[0.5,0.5]", "model.sem_seg_head.train_size=null")
    check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_deeplab_class_count_or_ignore_value_the_datasets_do_not_have_is_refused():
    # VOC: 21 stuff_classes, ignore_label 255 (the real build: the next test).
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(DEEPLAB, "model.sem_seg_head.num_classes=20", "train.device=cpu")
    with pytest.raises(ValueError, match=r"^model\.sem_seg_head\.num_classes=20, but dataloader\.train\.dataset\.names "
                                         r"names 'voc_2012_sem_seg_train_aug', which has 21 classes"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg = lazy_cfg(DEEPLAB, "model.sem_seg_head.ignore_value=0", "train.device=cpu")
    with pytest.raises(ValueError, match=r"^model\.sem_seg_head\.ignore_value=0, but dataloader\.train\.dataset\.names "
                                         r"names 'voc_2012_sem_seg_train_aug', whose labels mark the pixels to ignore with 255"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)  # an evaluation reads no training labels


def test_a_segmentation_evaluator_set_without_the_metadata_it_reads_is_refused():
    # Else the evaluator fails when it is built, after the whole training.
    from detectron2.config import LazyCall as L
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import SemSegEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    MetadataCatalog.get("dropblock_test_lazy_seg_no_ignore").set(evaluator_type="sem_seg",
                                                                 stuff_classes=list(map(str, range(21))))
    cfg = lazy_cfg(DEEPLAB, "train.device=cpu", "dataloader.evaluator.dataset_name=dropblock_test_lazy_seg_no_ignore")
    model = lazy_meta_model(cfg)
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.dataset_name='dropblock_test_lazy_seg_no_ignore': "
                                         r"a 'sem_seg' dataset whose metadata has no 'ignore_label'"):
        check_lazy_model(cfg, model, train=False)
    # detectron2's SemSegEvaluator given by hand with its ignore_label needs only the classes.
    cfg.dataloader.evaluator = L(SemSegEvaluator)(dataset_name="dropblock_test_lazy_seg_no_ignore", ignore_label=255)
    check_lazy_model(cfg, model, train=False)


def test_a_coco_evaluator_of_a_set_without_json_and_without_output_dir_is_refused():
    # COCOEvaluator writes such a set's annotations as COCO json into output_dir and raised
    # "output_dir must be provided" when built: after the whole training.
    from detectron2.config import LazyCall as L
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model
    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_lazy_coco_no_json"
    MetadataCatalog.get(name).set(evaluator_type="coco", thing_classes=["a", "b", "c"])
    cfg = lazy_cfg(SYNTHETIC, "train.device=cpu")
    model = lazy_meta_model(cfg)
    # use_fast_impl=False: this detectron2 may lack the compiled operators the fast one needs.
    for evaluator in (L(dataset_evaluator)(dataset_name=name), L(COCOEvaluator)(dataset_name=name, use_fast_impl=False)):
        cfg.dataloader.evaluator = evaluator
        with pytest.raises(ValueError, match=rf"^dataloader\.evaluator\.output_dir=None: '{name}' has no COCO "
                                             r"json_file, which COCOEvaluator writes into its output_dir"):
            check_lazy_model(cfg, model, train=False)
        cfg.dataloader.evaluator.output_dir = "${train.output_dir}/inference"
        check_lazy_model(cfg, model, train=False)


def test_the_deeplab_poly_schedule_is_refused_by_its_own_key():
    # It named the yacs key SOLVER.POLY_LR_POWER, which a LazyConfig does not have.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=r"^lr_multiplier: ValueError: power must be >= 0, got -1$"):
        check_lazy_config_before_run(lazy_cfg(DEEPLAB, "lr_multiplier.power=-1", "train.device=cpu"), check_files=False)


def test_a_deeplab_head_input_overridden_with_its_backbone_and_crop_is_accepted():
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    for opts in ([], ["model.backbone.stages.res4_dilation=2", "model.backbone.stages.res5_dilation=4",
                      "model.sem_seg_head.input_shape.res5.stride=8"],
                 ["dataloader.train.mapper.augmentations.1.crop_size=[64,64]", "model.sem_seg_head.train_size=[64,64]"]):
        cfg = lazy_cfg(DEEPLAB, *opts)
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg = lazy_cfg(DEEPLAB, "dataloader.train.mapper.augmentations.1.crop_size=[768,768]")
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)  # an evaluation uses no crop


def _loop_checkpoint(tmp_path, cfg, **inner_state):
    """(path, optimizer): a checkpoint of iteration 4 as the LazyConfig loop's checkpointer saves
    it (the SimpleTrainer's own state, and `inner_state`, under "trainer") for cfg's model; the
    optimizer has an LR multiplier on it, as the loop's LRScheduler hook puts (initial_lr)."""
    from detectron2.solver import LRMultiplier
    from fvcore.common.param_scheduler import ConstantParamScheduler

    from dropblock_det.engine.lazy import build_lazy_model
    from dropblock_det.engine.lazy_config_checks import lazy_optimizer

    model = build_lazy_model(cfg)
    optimizer = lazy_optimizer(cfg, model)
    LRMultiplier(optimizer, ConstantParamScheduler(1.0), cfg.train.max_iter)
    path = tmp_path / "model_0000004.pth"
    trainer = {"iteration": 4, "optimizer": optimizer.state_dict(), **inner_state}
    torch.save({"model": model.state_dict(), "trainer": trainer, "iteration": 4}, path)
    return path, optimizer


def test_a_resume_whose_optimizer_groups_the_parameters_otherwise_is_refused_naming_the_key(tmp_path):
    # The checkpoint fits the model, but its optimizer state does not fit the optimizer the
    # changed optimizer.params build: torch refused it when the loop loaded the checkpoint,
    # after the data loader was built and config.yaml rewritten, naming no key.
    from dropblock_det.engine.lazy_config_checks import check_lazy_checkpoint, lazy_meta_model, lazy_optimizer

    cfg = lazy_cfg(SYNTHETIC, "train.max_iter=10")
    path, optimizer = _loop_checkpoint(tmp_path, cfg)
    check_lazy_checkpoint(cfg, lazy_meta_model(cfg), str(path))  # the run's own values resume
    changed = lazy_cfg(SYNTHETIC, "train.max_iter=10", "optimizer.params.base_lr=0.02", "optimizer.params.bias_lr_factor=2.0")
    with pytest.raises(ValueError, match="parameter group"):  # what the resumed run hit
        lazy_optimizer(changed, lazy_meta_model(changed)).load_state_dict(optimizer.state_dict())
    with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' holds the optimizer state "
                                         r"of \d+ parameter groups .*optimizer\.params \(.*bias_lr_factor.*"
                                         r"train\.init_checkpoint"):
        check_lazy_checkpoint(changed, lazy_meta_model(changed), str(path))


def test_a_resume_with_changed_optimizer_settings_is_refused_as_they_would_not_take_effect(tmp_path):
    # The loop's checkpoint restores the optimizer's hyperparameters and the LR multiplier's base
    # LRs: optimizer.lr=0.001 on a --resume trained on with the saved lr, silently.
    from dropblock_det.engine.lazy_config_checks import check_lazy_checkpoint, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, "train.max_iter=10")
    path, _ = _loop_checkpoint(tmp_path, cfg)
    check_lazy_checkpoint(cfg, lazy_meta_model(cfg), str(path))  # the run's own values resume
    changed = lazy_cfg(SYNTHETIC, "train.max_iter=10", "optimizer.lr=0.001", "optimizer.momentum=0.5")
    with pytest.raises(ValueError, match=r"^--resume: checkpoint '.*model_0000004\.pth' holds an optimizer with "
                                         rf"lr {cfg.optimizer.lr} \(this config: 0\.001\), momentum 0\.9 \(this config: 0\.5\): "
                                         r".*optimizer \(lr, momentum.*train\.init_checkpoint"):
        check_lazy_checkpoint(changed, lazy_meta_model(changed), str(path))


def test_a_resume_with_amp_of_a_checkpoint_saved_without_it_is_refused_naming_the_key(tmp_path):
    # AMPTrainer.load_state_dict reads the grad scaler's state unconditionally: turning
    # train.amp.enabled on for a resume failed with "KeyError: 'grad_scaler'" once the loop
    # loaded the checkpoint, after the data loader was built.
    from dropblock_det.engine.lazy_config_checks import check_lazy_checkpoint, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, "train.max_iter=10")
    path, _ = _loop_checkpoint(tmp_path, cfg)
    amp = lazy_cfg(SYNTHETIC, "train.max_iter=10", "train.amp.enabled=True")
    with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' was saved by a run without "
                                         r"mixed precision .*train\.amp\.enabled=True.*train\.init_checkpoint"):
        check_lazy_checkpoint(amp, lazy_meta_model(amp), str(path))
    check_lazy_checkpoint(cfg, lazy_meta_model(cfg), str(path))  # resumed without AMP, as it ran
    path, _ = _loop_checkpoint(tmp_path, cfg, grad_scaler={"scale": 1024.0})
    check_lazy_checkpoint(amp, lazy_meta_model(amp), str(path))  # an AMP run's checkpoint resumes with AMP


def test_missing_dataset_files_are_named_with_the_key_that_names_the_set(tmp_path):
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    name = "test_lazy_set_without_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(tmp_path / "none.json"), str(tmp_path / "images"))
    cfg = lazy_cfg(SYNTHETIC, f"dataloader.test.dataset.names={name}", f"dataloader.evaluator.dataset_name={name}")
    for train in (True, False):  # --eval-only: else the test loader failed once the weights were loaded
        with pytest.raises(FileNotFoundError, match=rf"\n  {name} \(dataloader\.test\.dataset\.names\): .*none\.json"):
            check_lazy_config_before_run(cfg, train=train)


def test_a_missing_test_image_is_named_by_its_loader_key_before_a_lazy_training(tmp_path):
    # The test loader reads its images only in the evaluations, after the whole training.
    from conftest import tiny_synthetic_datasets
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with tiny_synthetic_datasets(tmp_path, num_train=2, num_val=2) as root:
        cfg = lazy_cfg(SYNTHETIC, "train.device=cpu")
        check_lazy_config_before_run(cfg)
        missing = root / "synthetic_det" / "val" / "000001.jpg"
        missing.unlink()
        with pytest.raises(DatasetFileError, match=rf"^dataloader\.test\.dataset\.names names 'synthetic_det_val', "
                                                   rf"whose file_name {re.escape(str(missing))} does not exist"):
            check_lazy_config_before_run(cfg)


def test_a_one_iteration_run_of_a_model_without_regularizer_passes_the_schedule_check():
    # keep_prob 1.0 through the only iteration is refused where it leaves a DropBlock idle;
    # a baseline (no regularizer: the schedule's start does not matter) is accepted.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=r"^train\.dropblock_schedule with train\.max_iter=1: .*keep_prob would stay 1\.0"):
        check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "train.max_iter=1"), check_files=False)
    baseline = lazy_cfg(SYNTHETIC, "dropblock=null", "model.backbone.bottom_up.stages.dropblock_stages=[]",
                        "model.backbone.bottom_up.stages.stage_drop_scales=null", "train.max_iter=1")
    assert "dropblock_schedule" in baseline.train
    check_lazy_config_before_run(baseline, check_files=False)


def test_an_assertion_without_a_message_is_named_by_its_source_line():
    # fvcore's PeriodicCheckpointer asserts max_to_keep > 0 with no message: the check said
    # only "train.checkpointer: AssertionError: ".
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC, "train.checkpointer.max_to_keep=-1")
    with pytest.raises(ValueError, match=r"^train\.checkpointer: AssertionError \(at fvcore/common/checkpoint\.py:\d+: "
                                         r"assert max_to_keep > 0\)$"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_an_assertion_a_model_component_raises_is_named_by_its_key_and_source_line():
    # detectron2's box head asserts it has a layer with no message: the model build said only
    # "model.roi_heads.box_head (FastRCNNConvFCHead): AssertionError: ".
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import FastRCNNConvFCHead

    from dropblock_det.engine.lazy_config_checks import instantiate_naming_key

    node = L(FastRCNNConvFCHead)(input_shape=ShapeSpec(channels=4, height=7, width=7), conv_dims=[], fc_dims=[])
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_head \(FastRCNNConvFCHead\): AssertionError "
                                         r"\(at detectron2/modeling/roi_heads/box_head\.py:\d+: assert .*fc_dims.*\)$"):
        instantiate_naming_key(node, "model.roi_heads.box_head")


@pytest.mark.parametrize("opts", [
    ["+model.test_nms_thresh=1.5"],  # no suppression, as 1.0
    ["+model.box_reg_loss_type=giou", "model.focal_loss_alpha=-1.0"],  # detectron2's "no weighting"
    ["+model.max_detections_per_image=-1"],
    ["model.anchor_matcher.thresholds=[0.5,0.5]"],
])
def test_head_values_detectron2_takes_are_not_refused(opts):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    check_lazy_config_before_run(lazy_cfg(SYNTHETIC, *opts), check_files=False)


def _rcnn_reading(node_key, name, value, **elsewhere):
    """lazy_rcnn_cfg(mask=True) whose `model.<node_key>.<name>` is `value` (an interpolation),
    with the top-level nodes `elsewhere` (name: a node of the model, copied, or a plain value)."""
    from omegaconf import OmegaConf

    cfg = lazy_rcnn_cfg(mask=True)
    for top, node in elsewhere.items():
        cfg[top] = OmegaConf.select(cfg, node) if isinstance(node, str) and node.startswith("model.") else node
    OmegaConf.select(cfg.model, node_key)[name] = value
    return cfg


@pytest.mark.parametrize("node_key, name, value, elsewhere, change, match", [
    # A value read through an interpolation was judged, named by the model's key only.
    ("roi_heads.proposal_matcher", "thresholds", "${bad.iou}", {"bad": {"iou": [1.5]}}, None,
     r"^model\.roi_heads\.proposal_matcher\.thresholds=\[1\.5\]: expected IoU values in \[0, 1\].*; it is bad\.iou, "
     r"read through model\.roi_heads\.proposal_matcher\.thresholds=\$\{bad\.iou\}$"),
    ("roi_heads.box_pooler", "output_size", "${..mask_pooler.output_size}", {}, ("roi_heads.mask_pooler.output_size", 0),
     r"^model\.roi_heads\.box_pooler\.output_size=0: expected the side >= 1 .*; it is model\.roi_heads\.mask_pooler\."
     r"output_size, read through model\.roi_heads\.box_pooler\.output_size=\$\{\.\.mask_pooler\.output_size\}$"),
    ("proposal_generator", "pre_nms_topk", "${topk}", {"topk": [200, -1]}, None,
     r"^model\.proposal_generator\.pre_nms_topk\.1=-1: expected a number of proposals >= 1.*; it is topk, read through "
     r"model\.proposal_generator\.pre_nms_topk=\$\{topk\}$"),
    # A whole node read through an interpolation (from outside the model) was not looked into.
    ("roi_heads", "proposal_matcher", "${matcher}", {"matcher": "model.roi_heads.proposal_matcher"},
     ("roi_heads.proposal_matcher.labels", [0]),
     r"^model\.roi_heads\.proposal_matcher\.labels=\[0\]: expected 2 labels.*; it is matcher\.labels, read through "
     r"model\.roi_heads\.proposal_matcher=\$\{matcher\}$"),
    ("", "roi_heads", "${heads}", {"heads": "model.roi_heads"}, ("roi_heads.box_predictor.test_score_thresh", 1.0),
     r"^model\.roi_heads\.box_predictor\.test_score_thresh=1\.0: .*; it is heads\.box_predictor\.test_score_thresh, "
     r"read through model\.roi_heads=\$\{heads\}$"),
    # A list's entry is named as the overrides write it (OmegaConf named it 'topks0').
    ("proposal_generator", "pre_nms_topk", "${topks.0}", {"topks": [[200, -1]]}, None,
     r"^model\.proposal_generator\.pre_nms_topk\.1=-1: .*; it is topks\.0, read through "
     r"model\.proposal_generator\.pre_nms_topk=\$\{topks\.0\}$"),
    # A resolver's value is written at no key (it was told "; it is , read through ..."), and
    # oc.decode's at the model's own.
    ("roi_heads.proposal_matcher", "thresholds", "${oc.create:[1.5]}", {}, None,
     r"^model\.roi_heads\.proposal_matcher\.thresholds=\[1\.5\]: expected IoU values in \[0, 1\], lowest first "
     r"\(e\.g\. \[0\.4, 0\.5\]\)$"),
    ("roi_heads.proposal_matcher", "thresholds", '${oc.decode:"[1.5]"}', {}, None,
     r"^model\.roi_heads\.proposal_matcher\.thresholds=\[1\.5\]: expected IoU values in \[0, 1\], lowest first "
     r"\(e\.g\. \[0\.4, 0\.5\]\)$"),
])
def test_a_head_value_read_through_an_interpolation_is_judged_naming_the_key_it_is_written_at(
        node_key, name, value, elsewhere, change, match):
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = _rcnn_reading(node_key, name, value, **elsewhere)
    check_lazy_model_values(lazy_rcnn_cfg(mask=True))  # the config as written passes
    if change:  # (through the interpolation, set where it is written)
        parent, _, last = change[0].rpartition(".")
        OmegaConf.select(cfg.model, parent)[last] = change[1]
    with pytest.raises(ValueError, match=match):
        check_lazy_model_values(cfg)


@pytest.mark.parametrize("node_key, name, value, elsewhere, match", [
    # OmegaConf's InterpolationKeyError came out of the check (and the meta build), naming the
    # key only on a line of its own.
    ("roi_heads.box_pooler", "output_size", "${nowhere.side}", {},
     r"^model\.roi_heads\.box_pooler\.output_size=\$\{nowhere\.side\}: InterpolationKeyError: Interpolation key "
     r"'nowhere\.side' not found \(the model's build reads it"),
    ("roi_heads", "proposal_matcher", "${nowhere}", {},
     r"^model\.roi_heads\.proposal_matcher=\$\{nowhere\}: InterpolationKeyError: "),
    ("roi_heads.box_pooler", "output_size", "${side}", {"side": "???"},
     r"^model\.roi_heads\.box_pooler\.output_size=\$\{side\}: InterpolationToMissingValueError: .*Missing mandatory "
     r"value: side"),
    # in a list: instantiate resolves a list's entries too
    ("proposal_generator", "pre_nms_topk", [2000, "${nowhere}"], {},
     r"^model\.proposal_generator\.pre_nms_topk\.1=\$\{nowhere\}: InterpolationKeyError: "),
])
def test_an_interpolation_in_the_model_that_does_not_resolve_is_refused_naming_the_key(
        node_key, name, value, elsewhere, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    with pytest.raises(ValueError, match=match):
        check_lazy_model_values(_rcnn_reading(node_key, name, value, **elsewhere))


def test_an_unresolved_interpolation_is_refused_before_the_model_build_and_one_nothing_builds_is_left():
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, check_lazy_model_values

    cfg = lazy_cfg(SYNTHETIC)
    cfg.model.anchor_matcher.thresholds = "${nowhere}"
    with pytest.raises(ValueError, match=r"^model\.anchor_matcher\.thresholds=\$\{nowhere\}: InterpolationKeyError: "):
        check_lazy_config_before_run(cfg, check_files=False)
    # A plain dict goes to its component unresolved (detectron2's instantiate resolves only
    # the arguments of L(...) nodes and list entries): whether it is read is the component's.
    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_head.input_shape = {"channels": 32, "height": 7, "width": 7, "note": "${nowhere}"}
    check_lazy_model_values(cfg)
    # An interpolated _target_ that does not resolve is the build's to name (OmegaConf's error
    # came out of the check).
    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_head._target_ = "${nowhere}"
    check_lazy_model_values(cfg)


# (key, who reads it, whether an evaluation (train=False) reads it too): every key the
# checks read or the run builds outside the model.
_READ_KEYS = [
    ("dataloader.test.mapper.image_format", "the test loader's build", True),
    # (which the config's test mapper reads too: ${...train.mapper.image_format})
    ("dataloader.train.mapper.image_format", "the training loader's build", False),
    ("dataloader.train.total_batch_size", "the training loader's build", False),
    ("dataloader.train.num_workers", "the training loader's build", False),
    ("dataloader.test.num_workers", "the test loader's build", True),
    ("dataloader.train.dataset.names", "the training loader's build", False),
    ("dataloader.test.dataset.names", "the test loader's build", True),
    ("dataloader.train.mapper.augmentations.0", "the training loader's build", False),  # a list's entry
    ("dataloader.train.mapper.augmentations.0.short_edge_length", "the training loader's build", False),
    ("dataloader.test.mapper.augmentations.0.max_size", "the test loader's build", True),
    ("dataloader.train.mapper", "the training loader's build", False),
    ("dataloader.train", "the training loader's build", False),
    ("dataloader.test", "the test loader's build", True),
    ("dataloader.evaluator.output_dir", "the evaluator's build", True),
    ("dataloader.evaluator.dataset_name", "the evaluator's build", True),
    ("dataloader.evaluator", "the evaluator's build", True),
    ("train.max_iter", "the run", False),
    ("train.output_dir", "the run", True),
    ("train.init_checkpoint", "the run", True),
    ("train.device", "the run", True),
    ("train.seed", "the run", False),
    ("train.amp.enabled", "the run", False),
    ("train", "the run", True),
    ("train.checkpointer.max_to_keep", "the checkpointer's build", False),
    ("train.ddp.broadcast_buffers", "the DDP wrapper's build", False),
    ("train.dropblock_schedule.end_iter", "the DropBlock schedule's build", False),
    ("optimizer.lr", "the optimizer's build", False),
    ("optimizer.params.weight_decay_norm", "the optimizer's build", False),
    ("lr_multiplier.warmup_length", "the LR schedule's build", False),
    ("lr_multiplier.scheduler.start_value", "the LR schedule's build", False),
]


def _set(cfg, key, value):
    from omegaconf import OmegaConf

    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    node[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize("key, reader, evaluated", _READ_KEYS)
def test_an_interpolation_the_run_reads_that_does_not_resolve_is_refused_naming_the_key(key, reader, evaluated):
    # As the model's: OmegaConf's error came out of the checks (or, for what they did not
    # read, out of the run: the test loader's and the evaluator's after the whole training),
    # naming the key only on a line of its own ("full_key: dataloader.test.mapper.image_format").
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    refusal = (rf"^{re.escape(key)}=\$\{{nope\}}: InterpolationKeyError: Interpolation key 'nope' not found "
               rf"\({re.escape(reader)} reads it: point it to a key that has a value\)$")
    for train in (True, False) if evaluated else (True,):
        cfg = lazy_cfg(SYNTHETIC)
        _set(cfg, key, "${nope}")
        with pytest.raises(ValueError, match=refusal):
            check_lazy_config_before_run(cfg, train=train, check_files=False)


def test_an_interpolation_in_a_plain_dict_its_component_resolves_is_refused_in_one_line():
    # get_default_optimizer_params resolves overrides={"bias": {"lr": ...}} while the optimizer
    # builds (the walk before leaves a plain dict to its component): OmegaConf's 3-line error,
    # "optimizer: InterpolationKeyError: ...\n    full_key: optimizer.params.overrides.bias.lr".
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, load_lazy_config

    opt = '+optimizer.params.overrides={bias: {lr: "${nope}"}}'
    with pytest.raises(ValueError, match=r"^optimizer\.params\.overrides\.bias\.lr=\$\{nope\}: InterpolationKeyError: "
                                         r"Interpolation key 'nope' not found \(the optimizer's build reads it: "
                                         r"point it to a key that has a value\)$"):
        check_lazy_config_before_run(load_lazy_config(SYNTHETIC, [opt]), check_files=False)
    # Resolving, it is accepted; another error of the build keeps the node's key.
    check_lazy_config_before_run(load_lazy_config(SYNTHETIC, [opt.replace("${nope}", "${optimizer.lr}")]),
                                 check_files=False)
    with pytest.raises(ValueError, match=r"^optimizer: "):
        check_lazy_config_before_run(load_lazy_config(SYNTHETIC, ["+optimizer.params.overrides={bias: 3}"]),
                                     check_files=False)


def test_the_training_parts_interpolations_are_not_refused_for_an_evaluation():
    # An evaluation reads neither the training loader nor the optimizer, schedule or checkpointer.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    for key, _, evaluated in _READ_KEYS:
        if not evaluated and not key.startswith(("dataloader.train.mapper", "dataloader.train")):
            _set(cfg, key, "${nope}")
    cfg.dataloader.train.total_batch_size = "${nope}"
    cfg.dataloader.train.mapper.augmentations = "${nope}"
    check_lazy_config_before_run(cfg, train=False, check_files=False)
    # ... but the test mapper reads the training mapper's image format in this config:
    # refused at the key the test loader reads it through.
    cfg.dataloader.train.mapper.image_format = "${nope}"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper\.image_format=\$\{\.\.\.train\.mapper\.image_format\}: "
                                         r"InterpolationKeyError: Interpolation key 'nope' not found \(the test loader's"):
        check_lazy_config_before_run(cfg, train=False, check_files=False)


def test_an_unresolved_interpolation_outside_the_model_is_refused_as_the_models_other_ways():
    from detectron2.config import LazyCall as L
    from omegaconf import OmegaConf

    from dropblock_det.engine.evaluation import dataset_evaluator
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    # To a value left at '???' (to be given on the command line).
    cfg = lazy_cfg(SYNTHETIC)
    cfg.side = "???"
    cfg.dataloader.test.mapper.augmentations[0].short_edge_length = "${side}"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper\.augmentations\.0\.short_edge_length=\$\{side\}: "
                                         r"InterpolationToMissingValueError: .*Missing mandatory value: side "
                                         r"\(the test loader's build reads it"):
        check_lazy_config_before_run(cfg, train=False, check_files=False)
    # In a node the loader reads through an interpolation: named at the key the loader reads.
    cfg = lazy_cfg(SYNTHETIC)
    cfg.mapper = OmegaConf.to_container(cfg.dataloader.test.mapper)
    cfg.mapper["image_format"] = "${nope}"
    cfg.dataloader.test.mapper = "${mapper}"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper\.image_format=\$\{nope\}: InterpolationKeyError: "):
        check_lazy_config_before_run(cfg, train=False, check_files=False)
    # An entry of a list of evaluators.
    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = [L(dataset_evaluator)(dataset_name="synthetic_det_val"), "${nope}"]
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.1=\$\{nope\}: InterpolationKeyError: .*"
                                         r"\(the evaluator's build reads it"):
        check_lazy_config_before_run(cfg, train=False, check_files=False)


@pytest.mark.parametrize("key, reader, evaluated", _READ_KEYS)
def test_an_interpolation_the_run_reads_that_resolves_is_accepted_and_judged_by_its_value(key, reader, evaluated):
    # The same keys read through an interpolation that resolves (to the value the config
    # has, written elsewhere): accepted as before, for training and evaluation.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    value = OmegaConf.select(cfg, key)
    if key in ("dataloader.test", "dataloader.evaluator"):
        # Beside it: its own relative interpolations (${...train.mapper.image_format}) read from there.
        cfg.dataloader[key.split(".")[1] + "_elsewhere"] = value
        _set(cfg, key, f"${{{key}_elsewhere}}")
    else:
        cfg.elsewhere = {"value": value}
        _set(cfg, key, "${elsewhere.value}")
    for train in (True, False):
        check_lazy_config_before_run(cfg, train=train, check_files=False)


def test_values_read_through_interpolations_that_resolve_are_judged_and_keys_nothing_reads_are_left():
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    # configs/common's way of giving the evaluator a folder, a string with an interpolation.
    cfg.dataloader.evaluator.output_dir = "${train.output_dir}/inference"
    cfg.sets = {"train": "synthetic_det_train"}
    cfg.dataloader.train.dataset.names = "${sets.train}"
    cfg.batch = 8
    cfg.dataloader.train.total_batch_size = "${batch}"
    # Read by nothing (not the run, not the build): not looked into.
    cfg.notes = "${nope}"
    cfg.train.notes = "${nope}"
    check_lazy_config_before_run(cfg, check_files=False)
    # The value an interpolation resolves to is what is judged.
    cfg.batch = 0
    with pytest.raises(ValueError, match=r"^dataloader\.train\.total_batch_size=0: expected an integer >= 1"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_nodes_that_read_each_other_are_left_to_the_builds_recursion_error():
    # The walk into interpolations does not go round a cycle (it recursed until Python's
    # limit, then refused the key with a 400-part name).
    from types import SimpleNamespace

    from detectron2.config import LazyCall as L

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    cfg.a = L(SimpleNamespace)(other="${b}")
    cfg.b = L(SimpleNamespace)(other="${a}")
    cfg.model.roi_heads.box_head.extra = "${a}"
    check_lazy_model_values(cfg)


def test_a_config_without_a_model_has_no_head_values_to_judge():
    # lazy_meta_model builds nothing for it; the check has nothing to look into.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    check_lazy_model_values(OmegaConf.create({"train": {"max_iter": 1}}))


def test_the_values_of_a_model_read_through_interpolations_are_told_the_first_the_model_writes():
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    cfg.rcnn = cfg.model
    cfg.model = "${rcnn}"
    cfg.rcnn.roi_heads.box_predictor.test_score_thresh = 1.0
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictor\.test_score_thresh=1\.0: .*; it is "
                                         r"rcnn\.roi_heads\.box_predictor\.test_score_thresh, read through model=\$\{rcnn\}$"):
        check_lazy_model_values(cfg)
    # Through two: the one at the model's key (written so in the config), not the one inside.
    cfg = lazy_rcnn_cfg()
    cfg.heads = cfg.model.roi_heads
    cfg.matcher = cfg.model.roi_heads.proposal_matcher
    cfg.heads.proposal_matcher = "${matcher}"
    cfg.model.roi_heads = "${heads}"
    cfg.matcher.labels = [0]
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.proposal_matcher\.labels=\[0\]: .*; it is matcher\.labels, "
                                         r"read through model\.roi_heads=\$\{heads\}$"):
        check_lazy_model_values(cfg)
    cfg.matcher.labels = [0, 1]
    cfg.bad = OmegaConf.create({"iou": [1.5]})
    cfg.matcher.thresholds = "${bad.iou}"
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.proposal_matcher\.thresholds=\[1\.5\]: .*; it is bad\.iou, "
                                         r"read through model\.roi_heads=\$\{heads\}$"):
        check_lazy_model_values(cfg)


def test_a_short_edge_list_holding_an_interpolation_is_judged_by_the_values_it_resolves_to():
    # ResizeShortestEdge gets them resolved: [64, "${side}"] was refused as "expected numbers
    # of pixels" (the check read the interpolation's text).
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    cfg.side = 80
    cfg.dataloader.train.mapper.augmentations[0].short_edge_length = [64, "${side}"]
    check_lazy_config_before_run(cfg, check_files=False)
    cfg.side = -5
    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.augmentations\.0: short_edge_length=\[64, -5\], "
                                         r"max_size=96: a negative shortest edge"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_a_pooler_output_size_given_as_height_and_width_is_accepted():
    # ROIPooler takes (height, width): the check got OmegaConf's ListConfig and refused [7, 7].
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg(mask=True)
    cfg.model.roi_heads.box_pooler.output_size = [7, 7]
    check_lazy_model_values(cfg)
    cfg.model.roi_heads.box_pooler.output_size = [7, 0]
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_pooler\.output_size=\[7, 0\]: expected the side >= 1"):
        check_lazy_model_values(cfg)
    # A list's interpolations are judged by the values the build resolves them to.
    cfg.side = 7
    cfg.model.roi_heads.box_pooler.output_size = ["${side}", "${side}"]
    check_lazy_model_values(cfg)
    cfg.side = 0
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_pooler\.output_size=\[0, 0\]: expected the side >= 1"):
        check_lazy_model_values(cfg)


@pytest.mark.parametrize("c4, rotated_heads, node_key, pooler_type, match", [
    # detectron2 built these and failed at the first step, in ROIAlignRotated's forward: a bare
    # "assert rois.dim() == 2 and rois.size(1) == 6" (an axis-aligned box is 5 columns).
    (False, False, "roi_heads.box_pooler", "ROIAlignRotated",
     r"^model\.roi_heads\.box_pooler\.pooler_type='ROIAlignRotated': expected one of \['ROIAlign', 'ROIAlignV2', "
     r"'ROIPool'\] for model\.roi_heads \(StandardROIHeads\), whose proposals are axis-aligned boxes: ROIAlignRotated "
     r"pools rotated ones, RROIHeads' \(detectron2 failed at the first step, asserting boxes of 6 columns\)$"),
    (False, False, "roi_heads.mask_pooler", "ROIAlignRotated",
     r"^model\.roi_heads\.mask_pooler\.pooler_type='ROIAlignRotated': expected one of .* for model\.roi_heads "
     r"\(StandardROIHeads\)"),
    (True, False, "roi_heads.pooler", "ROIAlignRotated",
     r"^model\.roi_heads\.pooler\.pooler_type='ROIAlignRotated': expected .* for model\.roi_heads \(Res5ROIHeads\)"),
    # ... and RROIHeads' rotated boxes (6 columns) in ROIAlign's "rois.size(1) == 5".
    (False, True, "roi_heads.box_pooler", "ROIAlign",
     r"^model\.roi_heads\.box_pooler\.pooler_type='ROIAlign': expected one of \['ROIAlignRotated'\] for "
     r"model\.roi_heads \(RROIHeads\), whose proposals are rotated boxes"),
    (False, True, "roi_heads.box_pooler", "ROIAlignRotated", None),
    # An unknown type is told the kind's types only.
    (False, False, "roi_heads.box_pooler", "ROIAlignV3",
     r"^model\.roi_heads\.box_pooler\.pooler_type='ROIAlignV3': expected one of \['ROIAlign', 'ROIAlignV2', "
     r"'ROIPool'\] for model\.roi_heads \(StandardROIHeads\)$"),
])
def test_a_rotated_pooler_is_accepted_only_under_rotated_roi_heads_as_in_the_yacs_check(
        c4, rotated_heads, node_key, pooler_type, match):
    from detectron2.modeling.roi_heads import RROIHeads
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg(c4=c4, mask=not c4)
    if rotated_heads:  # (RROIHeads has no mask head)
        cfg.model.roi_heads._target_ = RROIHeads
        for name in ("mask_in_features", "mask_pooler", "mask_head"):
            cfg.model.roi_heads.pop(name, None)
    OmegaConf.select(cfg.model, node_key).pooler_type = pooler_type
    if match is None:
        check_lazy_model_values(cfg)
    else:
        with pytest.raises(ValueError, match=match):
            check_lazy_model_values(cfg)


def _built_by_a_function(**kwargs):
    return kwargs


def test_a_pooler_in_a_node_a_function_builds_is_judged_against_the_roi_heads_above_it():
    # A node between them whose _target_ is a function (L(f)(...)), not a class, is passed over.
    from detectron2.config import LazyCall as L
    from detectron2.modeling.poolers import ROIPooler

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.extra = L(_built_by_a_function)(
        pooler=L(ROIPooler)(output_size=7, scales=[0.25], sampling_ratio=0, pooler_type="ROIAlignRotated"))
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.extra\.pooler\.pooler_type='ROIAlignRotated': expected one "
                                         r"of \['ROIAlign', 'ROIAlignV2', 'ROIPool'\] for model\.roi_heads \(StandardROIHeads\)"):
        check_lazy_model_values(cfg)


def test_lazy_config_value_reads_keys_and_list_entries_and_gives_the_default_past_them():
    # A list entry by its index; one past the list's end, an absent key or one left at '???'
    # is the default; an interpolation on the way that does not resolve is refused naming its
    # own key (at the top level too) and "the run" where no component's build reads it.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import lazy_config_value

    cfg = OmegaConf.create({"a": [1, {"b": 2}], "c": "???", "d": {"e": "${nope}"}, "f": "${nope}"})
    assert lazy_config_value(cfg, "a.1.b") == 2 and lazy_config_value(cfg, "a.0") == 1
    for key in ("a.2", "a.5", "a.x", "c", "c.y", "z", "a.0.b"):
        assert lazy_config_value(cfg, key, "default") == "default", key
    with pytest.raises(ValueError, match=r"^d\.e=\$\{nope\}: InterpolationKeyError: Interpolation key 'nope' not "
                                         r"found \(the run reads it: point it to a key that has a value\)$"):
        lazy_config_value(cfg, "d.e")
    with pytest.raises(ValueError, match=r"^f=\$\{nope\}: InterpolationKeyError: "):
        lazy_config_value(cfg, "f.g")


def test_an_interpolation_in_an_entry_of_a_list_of_evaluators_is_named_as_the_evaluators_build_reads_it():
    # The entries' keys are dataloader.evaluator.i (as an override writes them): the reader is the
    # evaluator's build, not "the run".
    from detectron2.config import LazyCall as L

    from dropblock_det.engine.evaluation import dataset_evaluator
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = [L(dataset_evaluator)(dataset_name="synthetic_det_val"),
                                L(dataset_evaluator)(dataset_name="synthetic_det_val", output_dir="${nope}")]
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.1\.output_dir=\$\{nope\}: InterpolationKeyError: "
                                         r".* \(the evaluator's build reads it: point it to a key that has a value\)$"):
        check_lazy_config_before_run(cfg, train=False, check_files=False)


def test_an_interpolation_in_a_list_the_ddp_wrapper_takes_is_refused_naming_the_entry():
    # create_ddp_model(model, **cfg.train.ddp) hands DDP device_ids as it is, which reads each entry.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = lazy_cfg(SYNTHETIC)
    OmegaConf.update(cfg, "train.ddp", {"device_ids": ["${nope}"]}, force_add=True)
    with pytest.raises(ValueError, match=r"^train\.ddp\.device_ids\.0=\$\{nope\}: InterpolationKeyError: .* \(the "
                                         r"DDP wrapper's build reads it: point it to a key that has a value\)$"):
        check_lazy_config_before_run(cfg, check_files=False)


def test_the_whole_configs_interpolation_check_names_a_copied_node_where_it_is_written():
    # A node read through an interpolation is looked into at its own key: an interpolation in it
    # that does not resolve is named there, not at the copy read first.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_interpolations_resolve

    cfg = OmegaConf.create({"a": "${b}", "b": {"c": "${nope}"}})
    with pytest.raises(ValueError, match=r"^b\.c=\$\{nope\}: InterpolationKeyError: "):
        check_lazy_interpolations_resolve(cfg)


def test_a_loader_node_copied_from_another_is_judged_at_the_key_it_is_written_at():
    # dataloader.train.mapper="${dataloader.test.mapper}": an argument its target does not take
    # is named at dataloader.test.mapper, where it is written, not at the copy built first.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_loaders

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.test.mapper.image_format = "BGR"  # (not read from the training mapper: no loop)
    OmegaConf.update(cfg, "dataloader.test.mapper.not_an_argument", 1, force_add=True)
    cfg.dataloader.train.mapper = "${dataloader.test.mapper}"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper \(.*not_an_argument"):
        check_lazy_loaders(cfg)


def test_a_training_part_copied_from_another_with_a_target_that_does_not_import_is_named_where_it_is_written():
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_train_parts

    cfg = lazy_cfg(SYNTHETIC)
    target = "fvcore.common.param_scheduler.MultiStepParamSchedulr"
    OmegaConf.update(cfg, "lr_multiplier.scheduler._target_", target)
    OmegaConf.update(cfg, "optimizer.params.copied", "${lr_multiplier.scheduler}", force_add=True)
    with pytest.raises(ValueError, match=r"^lr_multiplier\.scheduler \(.*MultiStepParamSchedulr.*\): _target_="):
        check_lazy_train_parts(cfg, None)


def test_a_target_that_does_not_import_is_told_the_public_names_of_the_object_that_lacks_the_part():
    # The owner is the object that lacks the part (a class's attribute: the class), and the
    # closest names are its public ones; detectron2's instantiate log is left as it was.
    import logging

    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import _unimportable_target, instantiate_naming_key

    assert _unimportable_target("torch.optim.SGD.stepp") == (
        "_target_='torch.optim.SGD.stepp' does not import: torch.optim.SGD has no 'stepp' "
        "(did you mean torch.optim.SGD.step?)")
    assert "_default_decoder" not in _unimportable_target("json._default_decodr")
    assert _unimportable_target("torch.optim.SGD") == ""
    instantiate_logger = logging.getLogger("detectron2.config.instantiate")
    filters = list(instantiate_logger.filters)
    with pytest.raises(ValueError, match=r"^optimizer.*: _target_='torch\.optim\.SDG' does not import"):
        instantiate_naming_key(OmegaConf.create({"_target_": "torch.optim.SDG"}), "optimizer")
    assert instantiate_logger.filters == filters


def test_an_fc_box_heads_input_is_judged_by_the_poolers_height_and_width_and_a_c4_mask_head_is_left():
    # ROIPooler(output_size=(7, 5)) gives 7 x 5 values per channel; Res5ROIHeads' mask head runs
    # on res5's output, not on the in_features it pools (res4): not judged against them.
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(mask=True)
    cfg.model.roi_heads.box_pooler.output_size = [7, 5]
    cfg.model.roi_heads.box_head.input_shape.update(height=7, width=5)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg.model.roi_heads.box_head.input_shape.update(width=7)
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_head\.input_shape: .* takes 1568 values, .* pooled "
                                         r"to 7x5, give 1120: set it to channels=32, height=7, width=5"):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg = lazy_rcnn_cfg(c4=True, mask=True)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_the_dataset_names_read_directly_refuse_an_interpolation_that_does_not_resolve_in_one_line():
    # lazy_split_names serves the run too (lazy.py reads a loader's names through it).
    from dropblock_det.engine.lazy_config_checks import lazy_dataset_names, lazy_split_names

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.test.dataset.names = "${nope}"
    for names in (lambda: lazy_dataset_names(cfg), lambda: lazy_split_names(cfg, "test")):
        with pytest.raises(ValueError, match=r"^dataloader\.test\.dataset\.names=\$\{nope\}: InterpolationKeyError: "
                                             r".* \(the test loader's build reads it"):
            names()
    assert lazy_split_names(cfg, "train") == ("dataloader.train.dataset.names", ["synthetic_det_train"])


def test_the_names_of_one_split_are_its_loaders_alone_not_the_evaluators():
    from dropblock_det.engine.lazy_config_checks import lazy_split_names

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.test.dataset.names = ["synthetic_det_val", "synthetic_det_train"]
    cfg.dataloader.evaluator.dataset_name = "synthetic_det_val"
    assert lazy_split_names(cfg, "test") == ("dataloader.test.dataset.names", ["synthetic_det_val", "synthetic_det_train"])
    cfg.dataloader.test.dataset = {"_target_": "builtins.list"}  # a loader built some other way
    assert lazy_split_names(cfg, "test") == ("dataloader.test.dataset.names", [])
    cfg.dataloader.train.dataset.names = 3
    with pytest.raises(ValueError, match=r"^dataloader\.train\.dataset\.names=3: expected a dataset name"):
        lazy_split_names(cfg, "train")


def test_the_model_values_check_alone_refuses_a_model_interpolation_that_does_not_resolve_in_one_line():
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_cfg(SYNTHETIC)
    cfg.model = "${nope}"
    with pytest.raises(ValueError, match=r"^model=\$\{nope\}: InterpolationKeyError: .* \(the model's build reads it"):
        check_lazy_model_values(cfg)


@pytest.mark.parametrize("check, key", [("check_lazy_train_sampler", "dataloader.train.sampler"),
                                        ("check_lazy_loaders", "dataloader.test")])
def test_a_loader_check_alone_refuses_an_interpolation_that_does_not_resolve_in_one_line(check, key):
    from omegaconf import OmegaConf

    from dropblock_det.engine import lazy_config_checks

    cfg = lazy_cfg(SYNTHETIC)
    OmegaConf.update(cfg, key, "${nope}", force_add=True)
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}=\$\{{nope\}}: InterpolationKeyError: [^\n]*$"):
        getattr(lazy_config_checks, check)(cfg)


def test_a_target_in_a_module_whose_import_fails_is_refused_in_one_line(tmp_path, monkeypatch):
    # The module's own error (not an ImportError): the walk goes on from its package, not a traceback.
    from dropblock_det.engine.lazy_config_checks import _unimportable_target

    package = tmp_path / "mut49b_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text("raise RuntimeError('the module fails')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Its own error is named: "mut49b_pkg has no 'broken'" hid that the module is there.
    assert _unimportable_target("mut49b_pkg.broken.Thing") == (
        "_target_='mut49b_pkg.broken.Thing' does not import: importing mut49b_pkg.broken raised RuntimeError: "
        "the module fails")
    # A module that imports a missing one: the import's own error, naming the missing module.
    (package / "needs.py").write_text("import mut49b_not_installed\n")
    assert _unimportable_target("mut49b_pkg.needs.Thing") == (
        "_target_='mut49b_pkg.needs.Thing' does not import: importing mut49b_pkg.needs raised "
        "ModuleNotFoundError: No module named 'mut49b_not_installed'")
    # A module that is not there: the closest names its package has.
    assert _unimportable_target("mut49b_pkg.brokn.Thing").startswith(
        "_target_='mut49b_pkg.brokn.Thing' does not import: mut49b_pkg has no 'brokn'")


def test_a_training_set_the_lazy_model_cannot_train_on_is_refused_naming_the_key():
    # A RetinaNet on a 'sem_seg' set failed at the first step: "Instance annotations are missing in training!".
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_cfg(SYNTHETIC, "dataloader.train.dataset.names=[synthetic_det_train,synthetic_sem_seg_train]")
    model = lazy_meta_model(cfg)
    with pytest.raises(ValueError, match=r"^dataloader.train.dataset.names='synthetic_sem_seg_train': a 'sem_seg' "
                                         r"dataset \(labels per pixel, no boxes\), which a DropBlockRetinaNet cannot "
                                         r"train on \(it trains on boxes\)$"):
        check_lazy_model(cfg, model)
    check_lazy_model(cfg, model, train=False)  # an evaluation reads no training set
    # Only the training loader's sets are trained on: a test set of another kind is the
    # evaluator check's (it is not refused as "cannot train on").
    cfg = lazy_cfg(SYNTHETIC, "dataloader.test.dataset.names=synthetic_sem_seg_val")
    with pytest.raises(ValueError, match=r"^dataloader.evaluator.dataset_name='synthetic_sem_seg_val': a 'sem_seg' "
                                         r"dataset, which a DropBlockRetinaNet cannot be evaluated on"):
        check_lazy_model(cfg, lazy_meta_model(cfg))


# --- R-CNN journey (stop 52) ---
def test_a_dropblock_given_without_its_positions_is_refused_naming_the_key():
    # README "With a LazyConfig": DropBlockFPN and a C4 head's res5 blocks take `dropblock=`
    # and `dropblock_positions=`, whose default is none. A config that gave the dropblock and
    # left the positions out trained without DropBlock there, without a word.
    from dropblock_det.engine.lazy_config_checks import (check_lazy_dropblock_positions, check_lazy_model,
                                                         lazy_meta_model)
    from dropblock_det.modeling.resnet import DropBlockBasicBlock

    cfg = lazy_rcnn_cfg()
    del cfg.model.backbone.dropblock_positions
    with pytest.raises(ValueError, match=r"^model\.backbone\.dropblock_positions is not given, so DropBlockFPN "
                                         r"places model\.backbone\.dropblock nowhere"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg.model.backbone.dropblock_positions = []  # the location turned off on purpose
    check_lazy_dropblock_positions(cfg)
    cfg = lazy_rcnn_cfg(c4=True)
    cfg.model.roi_heads.res5.update(block_class=DropBlockBasicBlock, dropblock="${dropblock}")
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.res5\.dropblock_positions is not given, so "
                                         r"DropBlockBasicBlock places .*model\.roi_heads\.res5\.dropblock_positions="
                                         r"\['conv1', 'conv2', 'shortcut'\]"):
        check_lazy_dropblock_positions(cfg)
    cfg.model.roi_heads.res5.dropblock_positions = ["conv1"]
    check_lazy_dropblock_positions(cfg)
    del cfg.model.roi_heads.res5.dropblock_positions
    cfg.model.roi_heads.res5.dropblock = None  # no dropblock: nothing to place
    check_lazy_dropblock_positions(cfg)


# Regularizer-comparison journey (stop 53)
@pytest.mark.parametrize("opt, advice", [
    # The refusal offered "+INPUT.CUTOUT.ENABLED=True", a key nothing reads: no Cutout, silently.
    ("INPUT.CUTOUT.ENABLED=True", r"a LazyConfig has no INPUT\.CUTOUT: append L\(Cutout\)\(size=\.\.\., .*"
                                  r"to dataloader\.train\.mapper\.augmentations"),
    ("+INPUT.CUTOUT.ENABLED=True", r"a LazyConfig has no INPUT\.CUTOUT: append L\(Cutout\)"),
    ("MODEL.DROPBLOCK.DROP_PATH_RATE=0.2", r"in a LazyConfig DropPath is the drop_path_rate argument of "
                                           r"make_dropblock_resnet_stages: model\.backbone\.bottom_up\.stages\.drop_path_rate=\.\.\.$"),
])
def test_a_yacs_cutout_or_drop_path_opt_names_its_lazyconfig_form(opt, advice):
    with pytest.raises(KeyError) as e:
        lazy_cfg(SYNTHETIC, opt)
    assert re.match(rf"command-line opt '{re.escape(opt)}': {advice}", e.value.args[0]), e.value.args[0]


def test_the_named_drop_path_argument_puts_drop_path_in_every_block():
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run
    from dropblock_det.layers import DropPath, iter_regularizers

    meta = check_lazy_config_before_run(lazy_cfg(SYNTHETIC, "model.backbone.bottom_up.stages.drop_path_rate=0.2"),
                                        check_files=False)
    paths = [m for _, m in iter_regularizers(meta) if isinstance(m, DropPath)]
    assert len(paths) == 8 and all(m.target_keep_prob == pytest.approx(0.8) for m in paths)


def _with_cutout(size, index=None):
    from detectron2.config import LazyCall as L

    from dropblock_det.data.cutout import Cutout

    cfg = lazy_cfg(SYNTHETIC)  # its resize: ResizeShortestEdge((96,), max_size=96), then a flip
    augmentations = list(cfg.dataloader.train.mapper.augmentations)
    cutout = L(Cutout)(size=size, fill_value="${model.pixel_mean}")
    augmentations.insert(len(augmentations) if index is None else index, cutout)
    cfg.dataloader.train.mapper.augmentations = augmentations
    return cfg


def test_a_lazy_cutout_is_checked_against_the_resize_before_it():
    # As INPUT.CUTOUT.SIZE: L(Cutout)(size=191) after a resize to 96 px blanked every image,
    # and one before the resize had its size in pixels of the image as read; both trained.
    import warnings

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.augmentations\.2\.size=191: every hole covers "
                                         r"the whole image .*augmentations\.0: ResizeShortestEdge\("):
        check_lazy_config_before_run(_with_cutout(191), check_files=False)
    with pytest.warns(UserWarning, match=r"^dataloader\.train\.mapper\.augmentations\.2\.size=100 is larger than the "
                                         r"training images' shorter side \(at most 96 px"):
        check_lazy_config_before_run(_with_cutout(100), check_files=False)
    with pytest.warns(UserWarning, match=r"^dataloader\.train\.mapper\.augmentations\.0 \(Cutout, size=16\) comes "
                                         r"before the resize"):
        check_lazy_config_before_run(_with_cutout(16, index=0), check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_lazy_config_before_run(_with_cutout(16), check_files=False)  # README's form: nothing to say


# Yacs keys added with "+" (stop 53)
@pytest.mark.parametrize("opt, written", [
    ("+MODEL.DROPBLOCK.TYPE=Dropout", "dropblock.type=Dropout"),
    ("++MODEL.DROPBLOCK.KEEP_PROB=0.8", "dropblock.keep_prob=0.8"),
    ("+SOLVER.MAX_ITER=3", "train.max_iter=3"),
    # The config's own key in yacs' upper case (mutation run 53's L2).
    ("+DROPBLOCK.TYPE=Dropout", "dropblock.type=Dropout"),
    ("+TRAIN.MAX_ITER=3", "train.max_iter=3"),
])
def test_a_yacs_key_added_with_plus_to_a_lazyconfig_is_refused_naming_its_lazyconfig_form(opt, written):
    # The refusal of MODEL.DROPBLOCK.TYPE=Dropout offered "+": so added, the key was stored and
    # read by nothing, and the run trained DropBlock (or 1500 iterations).
    from dropblock_det.engine.lazy_config_checks import check_override_key

    cfg = lazy_cfg(SYNTHETIC)
    with pytest.raises(KeyError, match=rf"'{re.escape(opt)}': {re.escape(opt.lstrip('+').split('=')[0])} is a yacs "
                                       rf"key, which nothing reads .*: write {re.escape(written)}\"$"):
        check_override_key(cfg, opt)
    # Without "+", the key the config reads is named and "+" is no longer offered.
    with pytest.raises(KeyError) as error:
        check_override_key(cfg, opt.lstrip("+"))
    assert written.split("=")[0] in str(error.value) and "to add it on purpose" not in str(error.value)


def test_a_key_of_ones_own_is_still_added_with_plus():
    from dropblock_det.engine.lazy_config_checks import check_override_key

    cfg = lazy_cfg(SYNTHETIC)
    for opt in ("+my_note=1", "+NOTES.RUN=a", "+train.my_flag=1"):
        check_override_key(cfg, opt)  # no yacs key stands for them: added on purpose
    with pytest.raises(KeyError, match=r"to add it on purpose write \+NOTES\.RUN=a"):
        check_override_key(cfg, "NOTES.RUN=a")


# Mutation run 53
def test_keys_of_ones_own_ending_in_a_config_key_are_still_added_with_plus():
    from dropblock_det.engine.lazy_config_checks import check_override_key

    cfg = lazy_cfg(SYNTHETIC)
    # A tail of one part (TRAIN: the config's train), a tail found in part (X.TRAIN), and a
    # first part in lower case (notes): no yacs key stands for them.
    for opt in ("+NOTES.TRAIN=a", "+NOTES.X.TRAIN=a", "+notes.train.max_iter=1"):
        check_override_key(cfg, opt)
    # A config of one's own with upper-case nodes: their keys are its, not yacs ones.
    cfg.NOTES = {"RUN": "a"}
    cfg.INPUT = {"SIZE": 1}
    for opt in ("+NOTES.DROPBLOCK.TYPE=Dropout", "+INPUT.CUTOUT.ENABLED=True"):
        check_override_key(cfg, opt)


@pytest.mark.parametrize("opt", ["INPUT.CUTOUT=1", "input.cutout.enabled=True", "+Input.Cutout.Size=8"])
def test_the_cutout_advice_takes_the_node_itself_and_any_case(opt):
    from dropblock_det.engine.lazy_config_checks import check_override_key

    with pytest.raises(KeyError) as e:
        check_override_key(lazy_cfg(SYNTHETIC), opt)
    assert e.value.args[0].startswith(f"command-line opt {opt!r}: a LazyConfig has no INPUT.CUTOUT: "), e.value.args[0]


def test_the_drop_path_advice_for_a_config_without_dropblock_stages_says_it_builds_none():
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import _yacs_only_key_advice

    assert _yacs_only_key_advice(OmegaConf.create({"model": {}}), "MODEL.DROPBLOCK.DROP_PATH_RATE") == (
        "in a LazyConfig DropPath is the drop_path_rate argument of make_dropblock_resnet_stages (the config "
        "builds none)")
    assert _yacs_only_key_advice(OmegaConf.create({"model": {}}), "MODEL.DROPBLOCK.KEEP_PROB") == ""


def test_a_lazy_cutout_is_checked_against_the_last_resize_before_it_and_only_for_training():
    import warnings

    from detectron2.config import LazyCall as L
    from detectron2.data.transforms import ResizeShortestEdge

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    def checked(cfg, train=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            check_lazy_config_before_run(cfg, train=train, check_files=False)

    checked(_with_cutout(191), train=False)  # evaluation reads no training augmentation
    # No resize at all: the size is in pixels of the image as read, as the user gave it.
    cfg = _with_cutout(16, index=0)
    del cfg.dataloader.train.mapper.augmentations[1]
    checked(cfg)
    # The last resize before it gives the images' size (200 px here, not the first's 96).
    cfg = _with_cutout(150)
    cfg.dataloader.train.mapper.augmentations.insert(
        2, L(ResizeShortestEdge)(short_edge_length=(200,), max_size=200, sample_style="choice"))
    checked(cfg)
    # A resize without max_size (detectron2's default sys.maxsize) bounds no side: a warning, no refusal.
    cfg = _with_cutout(2700)
    del cfg.dataloader.train.mapper.augmentations[0].max_size
    with pytest.warns(UserWarning, match=r"size=2700 is larger than the training images' shorter side \(at most 96 px"):
        check_lazy_config_before_run(cfg, check_files=False)
    # A size that is no plain number, and a mapper without augmentations, are left to the build.
    with pytest.raises(ValueError, match=r"size must be an integer >= 1, got \[103\.53, "):
        check_lazy_config_before_run(_with_cutout("${model.pixel_mean}"), check_files=False)
    cfg = lazy_cfg(SYNTHETIC)
    del cfg.dataloader.train.mapper.augmentations
    with pytest.raises(ValueError, match=r"the required argument 'augmentations' is not given"):
        check_lazy_config_before_run(cfg, check_files=False)


# --- bad-input journey 54 ---
def test_a_lazy_cutouts_fill_value_that_cannot_fill_the_images_channels_is_refused_naming_it():
    # L(Cutout)(fill_value=[1.0, 2.0]) on BGR images trained: the data loader failed at the
    # first step ("fill_value has 2 channels but the image has shape (96, 96, 3)"), after the
    # earlier run in train.output_dir had been moved aside. The yacs INPUT.CUTOUT refuses it.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = _with_cutout(16)
    cfg.dataloader.train.mapper.augmentations[2].fill_value = [1.0, 2.0]
    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.augmentations\.2\.fill_value=\[1\.0, 2\.0\] "
                       r"\(Cutout\), which has 2 values, but dataloader\.train\.mapper\.image_format='BGR' images have 3 "):
        check_lazy_config_before_run(cfg, check_files=False)
    for fill in (0.0, [0.0], [1.0, 2.0, 3.0], "${model.pixel_mean}"):  # one value, or one per channel
        cfg.dataloader.train.mapper.augmentations[2].fill_value = fill
        check_lazy_config_before_run(cfg, check_files=False)
    cfg.dataloader.train.mapper.image_format = "L"  # one channel: one value only
    cfg.dataloader.train.mapper.augmentations[2].fill_value = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"image_format='L' images have 1 channel\(s\)"):
        check_lazy_config_before_run(cfg, train=True, check_files=False)
    check_lazy_config_before_run(cfg, train=False, check_files=False)  # an evaluation reads no training augmentation


@pytest.mark.parametrize("argument, match", [
    ("size=0", r"size must be an integer >= 1, got 0"),
    ("num_holes=0", r"num_holes must be an integer >= 1, got 0"),
    ("prob=1.5", r"prob must be a number in \[0, 1\], got 1\.5"),
])
def test_an_augmentation_that_refuses_its_value_is_named_with_its_index_and_target(argument, match):
    # Named "dataloader.train.mapper.augmentations: ValueError: size must be ...": which of
    # the augmentations was left to guess.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = _with_cutout(16)
    name, value = argument.split("=")
    cfg.dataloader.train.mapper.augmentations[2][name] = float(value) if "." in value else int(value)
    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.augmentations\.2 \(Cutout\): ValueError: " + match):
        check_lazy_config_before_run(cfg, check_files=False)


# --- stop 55 ---
def test_a_copied_nodes_error_that_begins_with_no_argument_of_it_is_named_by_the_copys_key_alone():
    # Only a message that begins with an argument of the copied node gets the key the user
    # writes; any other (a word that is no argument, _target_, a value that does not resolve)
    # is left to the copy's key, rather than named by a key that did not fail.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import _copied_argument

    node = OmegaConf.create({"_target_": "x", "keep_prob": 0.5, "block_size": "${missing}"})
    assert _copied_argument(node, "dropblock", ValueError("keep_prob must be in (0, 1]")) == "dropblock.keep_prob=0.5: "
    for message in ("unknown regularizer", "_target_ cannot be imported", "block_size must be an integer",
                    "(keep_prob) ..."):
        assert _copied_argument(node, "dropblock", ValueError(message)) == ""
    assert _copied_argument(node, None, ValueError("keep_prob must be in (0, 1]")) == ""


# --- coverage audit 55b ---
def test_a_train_sampler_left_missing_or_not_resolving_is_refused_naming_the_key():
    # instantiate failed on it after the datasets were loaded, with OmegaConf's error.
    from dropblock_det.engine.lazy_config_checks import check_lazy_train_sampler

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.train.sampler = "???"
    with pytest.raises(ValueError, match=r"^dataloader\.train\.sampler: Missing mandatory value"):
        check_lazy_train_sampler(cfg)
    cfg.dataloader.train.sampler = {"_target_": "detectron2.data.samplers.TrainingSampler", "size": "${nope}"}
    with pytest.raises(ValueError, match=r"^dataloader\.train\.sampler\.size=\$\{nope\}: InterpolationKeyError: "
                                         r"Interpolation key 'nope' not found \(the training loader's build reads it"):
        check_lazy_train_sampler(cfg)


def test_an_override_hydra_cannot_parse_is_refused_naming_the_opt():
    from dropblock_det.engine.lazy_config_checks import check_override_key

    with pytest.raises(ValueError, match=r"^command-line opt 'train\.max_iter=\[1,': "):
        check_override_key(lazy_cfg(SYNTHETIC), "train.max_iter=[1,")


def test_a_config_file_that_is_not_text_is_not_taken_for_a_lazy_config(tmp_path):
    # The yacs reader then names the file; the check must not fail with a UnicodeDecodeError.
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file

    path = tmp_path / "utf16.yaml"
    path.write_text("model:\n  x: 1\n", encoding="utf-16")
    assert not is_lazy_config_file(str(path))
    assert not is_lazy_config_file(str(tmp_path / "gone.yaml"))


@pytest.mark.parametrize("argument, value, match", [
    ("aspect_ratios", [0.0], r"^model\.anchor_generator\.aspect_ratios=\[0\.0\]: expected height / width ratios > 0"),
    ("sizes", [[0]], r"^model\.anchor_generator\.sizes=\[\[0\]\]: expected anchor sizes in pixels, none 0"),
    ("offset", 1.0, r"^model\.anchor_generator\.offset=1\.0: expected the anchors' offset"),
])
def test_rotated_anchor_generator_values_are_refused_by_key(argument, value, match):
    # Checked for DefaultAnchorGenerator only: a ratio of 0 failed the rotated one's build
    # with a bare ZeroDivisionError; the rotated box transform's 5 weights are checked too.
    from detectron2.config import LazyCall as L
    from detectron2.modeling.anchor_generator import RotatedAnchorGenerator
    from detectron2.modeling.box_regression import Box2BoxTransformRotated

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_cfg(SYNTHETIC)
    generator = dict(sizes=[[32]], aspect_ratios=[1.0], angles=[0.0], strides=[8, 16, 32, 64, 128], offset=0.0)
    cfg.model.anchor_generator = L(RotatedAnchorGenerator)(**generator)
    check_lazy_model_values(cfg)
    cfg.model.anchor_generator = L(RotatedAnchorGenerator)(**dict(generator, **{argument: value}))
    with pytest.raises(ValueError, match=match):
        check_lazy_model_values(cfg)
    cfg.model.anchor_generator = L(RotatedAnchorGenerator)(**generator)
    cfg.model.box2box_transform = L(Box2BoxTransformRotated)(weights=[1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^model\.box2box_transform\.weights=\[1\.0, 1\.0, 1\.0, 1\.0\]: expected 5 "
                                         r"weights"):
        check_lazy_model_values(cfg)


# --- coverage audit 56 ---
def test_an_override_into_a_value_or_through_a_missing_value_is_refused_naming_the_opt():
    # train.max_iter is a value: the key check stops there and detectron2's apply_overrides
    # refuses going into it. A yacs-cased key whose path passes a `???` value (train.init_checkpoint):
    # the near-key search stops at it, where reading it raised MissingMandatoryValue.
    with pytest.raises(ValueError, match=r"^command-line opt 'train\.max_iter\.foo=3': .*train\.max_iter is not a "
                                         r"config"):
        lazy_cfg(SYNTHETIC, "train.max_iter.foo=3")
    with pytest.raises(KeyError, match=r"command-line opt 'TRAIN\.INIT_CHECKPOINT\.x=1': the config's top level has "
                                       r"no key 'TRAIN' \(did you mean train\?\)"):
        lazy_cfg(SYNTHETIC, "train.init_checkpoint=???", "TRAIN.INIT_CHECKPOINT.x=1")


def test_loader_parts_a_config_leaves_out_are_not_looked_into():
    # A user's loaders and evaluators need not give every argument detectron2's do: an
    # evaluator without dataset_name, a loader without num_workers or total_batch_size, a
    # mapper without augmentations or image_format, a training loader of one's own (its
    # sampler is its own business). Each is passed over; the same checks still refuse a bad value.
    from dropblock_det.engine.lazy_config_checks import (
        check_lazy_cutout,
        check_lazy_inputs,
        check_lazy_loaders,
        check_lazy_train_parts,
        check_lazy_train_sampler,
        lazy_dataset_names,
    )

    cfg = lazy_cfg(SYNTHETIC)
    del cfg.dataloader.evaluator["dataset_name"]
    assert lazy_dataset_names(cfg) == [("dataloader.train.dataset.names", "synthetic_det_train"),
                                       ("dataloader.test.dataset.names", "synthetic_det_val")]
    cfg = lazy_cfg(SYNTHETIC)
    del cfg.dataloader.train["num_workers"]
    check_lazy_loaders(cfg)
    cfg.dataloader.test.num_workers = -1
    with pytest.raises(ValueError, match=r"^dataloader\.test\.num_workers=-1"):
        check_lazy_loaders(cfg)
    cfg = lazy_cfg(SYNTHETIC)
    del cfg.dataloader.train["total_batch_size"]
    check_lazy_train_parts(cfg, None)
    for split in ("train", "test"):
        cfg.dataloader[split].mapper.image_format = "BGR"  # the test mapper's read the train mapper's
    del cfg.dataloader.train.mapper["image_format"]
    check_lazy_inputs(cfg, None)
    cfg.dataloader.test.mapper.image_format = "XYZ"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.mapper\.image_format='XYZ'"):
        check_lazy_inputs(cfg, None)
    cfg.dataloader.test.mapper.image_format = "BGR"
    del cfg.dataloader.train.mapper["augmentations"]
    check_lazy_cutout(cfg)
    cfg.dataloader.train.mapper = None
    check_lazy_inputs(cfg, None)
    cfg.dataloader.train._target_ = "torch.utils.data.DataLoader"
    cfg.dataloader.train.sampler = "???"  # refused under build_detection_train_loader (coverage audit 55b)
    check_lazy_train_sampler(cfg)


def test_a_cutout_after_a_resize_of_one_length_is_judged_against_it():
    # short_edge_length=64 (one number, not a list): the hole's size is still compared with it.
    from detectron2.config import LazyCall as L
    from detectron2.data.transforms import ResizeShortestEdge

    from dropblock_det.data.cutout import Cutout
    from dropblock_det.engine.lazy_config_checks import check_lazy_cutout

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.train.mapper.augmentations = [L(ResizeShortestEdge)(short_edge_length=64, max_size=64),
                                                 L(Cutout)(size=100)]
    with pytest.warns(UserWarning, match=r"augmentations\.1\.size=100 is larger than the training images' shorter "
                                         r"side .*ResizeShortestEdge\(short_edge_length=64, max_size=64\)"):
        check_lazy_cutout(cfg)


def test_augmentations_given_as_one_node_are_built_before_the_run_naming_the_key():
    # Not a list (an AugmentationList node of one's own, or one augmentation): built as a whole.
    from detectron2.config import LazyCall as L
    from detectron2.data.transforms import ResizeShortestEdge

    from dropblock_det.engine.lazy_config_checks import check_lazy_train_parts

    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.train.mapper.augmentations = L(ResizeShortestEdge)(short_edge_length=64, max_size=64)
    check_lazy_train_parts(cfg, None)
    cfg.dataloader.train.mapper.augmentations.sample_style = "sometimes"
    with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.augmentations: "):
        check_lazy_train_parts(cfg, None)


def test_an_optimizer_without_a_params_node_is_not_built_before_the_run():
    # do_train gives the model to optimizer.params only where it is a node: without one, the
    # config's own optimizer is not built on the model here.
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model, lazy_optimizer

    cfg = lazy_cfg(SYNTHETIC)
    model = lazy_meta_model(cfg)
    assert lazy_optimizer(cfg, model) is not None
    cfg.optimizer.params = None
    assert lazy_optimizer(cfg, model) is None


def test_a_pooler_outside_roi_heads_takes_any_of_detectron2s_pooler_types():
    from detectron2.config import LazyCall as L
    from detectron2.modeling.poolers import ROIPooler

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_cfg(SYNTHETIC)
    cfg.model.extra = L(ROIPooler)(output_size=7, scales=[0.25], sampling_ratio=0, pooler_type="ROIAlignRotated")
    check_lazy_model_values(cfg)
    cfg.model.extra.pooler_type = "ROIAlignV3"
    with pytest.raises(ValueError, match=r"^model\.extra\.pooler_type='ROIAlignV3': expected one of \['ROIAlign', "
                                         r"'ROIAlignV2', 'ROIPool', 'ROIAlignRotated'\]$"):
        check_lazy_model_values(cfg)


def test_a_component_named_by_a_string_target_that_imports_is_named_with_its_own_message():
    # A run's config.yaml writes targets as strings: one that imports but raises keeps the
    # component's message, where _unimportable_target has nothing to say.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import instantiate_naming_key

    node = OmegaConf.create({"_target_": "dropblock_det.layers.base.build_regularizer", "type": "Foo",
                             "keep_prob": 0.9})
    with pytest.raises(ValueError, match=r"^reg \(dropblock_det\.layers\.base\.build_regularizer\): ValueError: "
                                         r"type must be one of \('DropBlock', 'Dropout', 'SpatialDropout'\), "
                                         r"got 'Foo'$"):
        instantiate_naming_key(node, "reg")


def test_class_counts_of_heads_without_a_class_count_are_left_out():
    # A Cascade R-CNN's box_predictor is a ModuleList (one per stage, no num_classes of its
    # own), a user's ROI heads or semantic head may have no num_classes / predictor /
    # ignore_value: only the counts the model has are compared with the dataset's classes.
    from detectron2.modeling import GeneralizedRCNN, SemanticSegmentor

    from dropblock_det.engine.lazy_config_checks import _lazy_class_counts

    rcnn = GeneralizedRCNN.__new__(GeneralizedRCNN)
    torch.nn.Module.__init__(rcnn)
    rcnn.roi_heads = torch.nn.Module()
    assert _lazy_class_counts(rcnn) == ([], [])
    rcnn.roi_heads.num_classes = 3
    rcnn.roi_heads.box_predictor = torch.nn.ModuleList([torch.nn.Linear(2, 4)])
    assert _lazy_class_counts(rcnn) == ([("model.roi_heads.num_classes", 3, "thing")], [])
    segmentor = SemanticSegmentor.__new__(SemanticSegmentor)
    torch.nn.Module.__init__(segmentor)
    segmentor.sem_seg_head = torch.nn.Module()
    assert _lazy_class_counts(segmentor) == ([], [])
    segmentor.sem_seg_head.ignore_value = 255
    assert _lazy_class_counts(segmentor) == ([], [("model.sem_seg_head.ignore_value", 255)])


# --- stop 56 ---
@pytest.mark.parametrize("in_features, top_block, reads", [
    # detectron2's max-pooled P6 reads p5, which res2-res4 give no more.
    (["res2", "res3", "res4"], "max_pool", "LastLevelMaxPool reads 'p5'"),
    # A P6/P7 block told to read a level the FPN makes only after it.
    (["res2", "res3", "res4", "res5"], "p7", "LastLevelP6P7 reads 'p7'"),
])
def test_a_stock_fpn_whose_top_block_reads_a_feature_it_does_not_have_is_refused_before_the_run(
        in_features, top_block, reads):
    # detectron2's own FPN builds it and failed at the first forward with a bare IndexError.
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate
    from detectron2.modeling import FPN
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    backbone = cfg.model.backbone
    del backbone["dropblock"], backbone["dropblock_positions"]
    backbone._target_ = FPN
    backbone.in_features = in_features
    backbone.top_block = (L(LastLevelMaxPool)() if top_block == "max_pool"
                          else L(LastLevelP6P7)(in_channels=32, out_channels=32, in_feature=top_block))
    cfg.model.proposal_generator.in_features = ["p2", "p3", "p4", "p5"]
    cfg.model.proposal_generator.anchor_generator.sizes = [[32], [64], [128], [256]]
    cfg.model.proposal_generator.anchor_generator.strides = [4, 8, 16, 32]
    cfg.model.roi_heads.box_in_features = ["p2", "p3", "p4"]
    cfg.model.roi_heads.box_pooler.scales = [1.0 / 4, 1.0 / 8, 1.0 / 16]
    with pytest.raises(IndexError):  # what detectron2 does with it
        instantiate(cfg.model.backbone)(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=rf"^model\.backbone\.in_features={re.escape(str(in_features))}, "
                                         rf"model\.backbone\.top_block: the FPN's top_block {reads}, which is neither "
                                         r"a bottom_up output nor a level of in_features=.*would fail at the first forward"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    backbone.in_features = ["res2", "res3", "res4", "res5"]
    backbone.top_block = L(LastLevelMaxPool)()
    check_lazy_model(cfg, lazy_meta_model(cfg))


# --- zoo journey lazy 56 ---
def _stock_retinanet_cfg():
    """A tiny R18 RetinaNet as detectron2's configs/common/models/retinanet.py writes it (its
    own RetinaNetHead, the head's classes "${..num_classes}"), on the synthetic set."""
    from detectron2.config import LazyCall as L
    from detectron2.data import DatasetMapper, build_detection_train_loader, get_detection_dataset_dicts
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import FPN, ResNet, RetinaNet
    from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
    from detectron2.modeling.backbone import BasicStem
    from detectron2.modeling.backbone.fpn import LastLevelP6P7
    from detectron2.modeling.box_regression import Box2BoxTransform
    from detectron2.modeling.matcher import Matcher
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
    from omegaconf import OmegaConf

    cfg = OmegaConf.create()
    cfg.model = L(RetinaNet)(
        backbone=L(FPN)(
            bottom_up=L(ResNet)(stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
                                stages=L(ResNet.make_default_stages)(depth=18, norm="FrozenBN"),
                                out_features=["res3", "res4", "res5"]),
            in_features=["res3", "res4", "res5"], out_channels=32,
            top_block=L(LastLevelP6P7)(in_channels=512, out_channels="${..out_channels}")),
        head=L(RetinaNetHead)(input_shape=[ShapeSpec(channels=32)] * 5, num_classes="${..num_classes}",
                              conv_dims=[32], prior_prob=0.01, num_anchors=9),
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
            aspect_ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128], offset=0.0),
        box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        anchor_matcher=L(Matcher)(thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True),
        num_classes=3, head_in_features=["p3", "p4", "p5", "p6", "p7"],
        pixel_mean=[103.530, 116.280, 123.675], pixel_std=[1.0, 1.0, 1.0], input_format="BGR")
    cfg.dataloader = OmegaConf.create()
    cfg.dataloader.train = L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names="synthetic_det_train"),
        mapper=L(DatasetMapper)(is_train=True, augmentations=[], image_format="BGR"),
        total_batch_size=2, num_workers=0)
    cfg.train = dict(device="cpu")
    return cfg


def _first_training_step(cfg):
    """detectron2's training forward of cfg.model on a two-image batch (CPU)."""
    from detectron2.config import instantiate
    from detectron2.utils.events import EventStorage

    from conftest import detection_batch

    model = instantiate(cfg.model).train()
    with EventStorage(0):
        return model(detection_batch(size=(3, 64, 64)))


def test_a_stock_retinanet_heads_shapes_not_one_per_level_are_refused_before_the_run():
    # detectron2's RetinaNetHead asserts len(features) == len(input_shape), bare, at the first
    # step: head_in_features=[p3,p4,p5] alone, on detectron2's config, failed there.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _stock_retinanet_cfg()
    check_lazy_model(cfg, lazy_meta_model(cfg))  # detectron2's own config passes
    cfg.model.head_in_features = ["p3", "p4", "p5"]
    with pytest.raises(AssertionError):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=r"^model\.head\.input_shape: 5 ShapeSpec\(s\) for the 3 levels "
                                         r"model\.head_in_features=\['p3', 'p4', 'p5'\]: detectron2's RetinaNetHead "
                                         r"asserts one per level.*\* 3$"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    from detectron2.layers import ShapeSpec
    cfg.model.head.input_shape = [ShapeSpec(channels=32)] * 3
    check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_stock_retinanet_heads_own_class_count_is_checked_against_the_datasets():
    # configs/common/models/retinanet.py gives the head "${..num_classes}"; a head count of its
    # own failed at the first step with a bare IndexError ("The shape of the mask ...").
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _stock_retinanet_cfg()
    cfg.model.head.num_classes = 5
    with pytest.raises(IndexError):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=r"^model\.head\.num_classes=5, but dataloader\.train\.dataset\.names "
                                         r"names 'synthetic_det_train', which has 3 classes.*set "
                                         r"model\.head\.num_classes to 3"):
        check_lazy_model(cfg, lazy_meta_model(cfg))


@pytest.mark.parametrize("c4, override, match", [
    # a box head's layers changed alone: the predictor, given its input by hand, kept 32
    (False, {"roi_heads.box_head.fc_dims": [16]},
     r"^model\.roi_heads\.box_predictor\.input_shape: the layer it builds takes 32 values, but "
     r"model\.roi_heads\.box_head \(its output_shape\) gives 16: set it to channels=16"),
    # no FC layers: the predictor takes the pooled features flattened
    (False, {"roi_heads.box_head.fc_dims": [], "roi_heads.box_head.conv_dims": [8]},
     r"gives 392: set it to channels=8, height=7, width=7"),
    # a C4 res5 that does not start from the backbone's res4 (R18: 256 channels)
    (True, {"roi_heads.res5.in_channels": 128},
     r"^model\.roi_heads\.res5\.in_channels: the layer it builds takes 128 values, but the backbone's res4 "
     r"\(model\.roi_heads\.in_features\) gives 256: set it to channels=256"),
    (True, {"roi_heads.box_predictor.input_shape.channels": 256},
     r"^model\.roi_heads\.box_predictor\.input_shape: .* takes 256 values, but model\.roi_heads\.res5 "
     r"\(its out_channels\) gives 512"),
])
def test_what_an_rcnns_roi_heads_hand_on_inside_themselves_is_checked_before_the_run(c4, override, match):
    # Each is stated by hand in detectron2's LazyConfigs; a mismatch built and failed at the
    # first step in a matmul or conv, naming no key.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(c4=c4)
    if c4:  # the README's change for a C4 model: its backbone ends at res4
        cfg.model.backbone.stages.dropblock_stages = ["res4"]
    check_lazy_model(cfg, lazy_meta_model(cfg))  # as detectron2's configs have it
    for key, value in override.items():
        OmegaConf.update(cfg.model, key, value, merge=False)
    with pytest.raises(RuntimeError):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_c4_mask_heads_input_is_checked_against_res5s_output():
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(c4=True, mask=True, use_instance_mask=True)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg.model.roi_heads.mask_head.input_shape.channels = 256
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.mask_head\.input_shape: .* takes 256 values, but "
                                         r"model\.roi_heads\.res5 \(its out_channels\) gives 512"):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


@pytest.mark.parametrize("key, value, match", [
    ("stem.out_channels", 32, r"^model\.backbone\.bottom_up\.stem\.out_channels=32: its first stage "
                              r"\(model\.backbone\.bottom_up\.stages, res2\) takes 64 channels: set it to 64, or "
                              r"model\.backbone\.bottom_up\.stages\.in_channels=32"),
    ("stem.in_channels", 1, r"^model\.backbone\.bottom_up\.stem\.in_channels=1: the images have 3 channels "
                            r"\(one per model\.pixel_mean value\): set it to 3"),
])
def test_a_resnet_stem_that_does_not_fit_the_images_or_its_first_stage_is_refused_before_the_run(key, value, match):
    # Both are stated by hand in detectron2's LazyConfigs (BasicStem(in_channels=3,
    # out_channels=64)); one changed alone failed at the first step in a conv.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    check_lazy_model(cfg, lazy_meta_model(cfg))
    OmegaConf.update(cfg.model.backbone.bottom_up, key, value, merge=False)
    with pytest.raises(RuntimeError):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=match):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    if key == "stem.out_channels":  # stages built for that stem are a valid model
        cfg.model.backbone.bottom_up.stages.in_channels = value
        check_lazy_model(cfg, lazy_meta_model(cfg))
        _first_training_step(cfg)


def test_a_mapper_recomputing_boxes_from_masks_on_a_set_without_masks_is_refused_before_the_run(tmp_path):
    # detectron2's new_baselines set recompute_boxes=True; made a Faster R-CNN as the README
    # says (no mask head) on a box-only set, it failed at the first step: "Cannot find field
    # 'gt_masks' in the given Instances!".
    from detectron2.config import instantiate

    from conftest import own_coco_set
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with own_coco_set(tmp_path / "boxes", "test_lazy_recompute_boxes") as boxes, \
            own_coco_set(tmp_path / "masks", "test_lazy_recompute_masks", segmentation=True) as masks:
        cfg = lazy_cfg(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")
        rcnn = lazy_rcnn_cfg(use_instance_mask=True)
        cfg.model, cfg.dropblock, cfg.dataloader.train = rcnn.model, rcnn.dropblock, rcnn.dataloader.train
        cfg.model.roi_heads.num_classes = cfg.model.roi_heads.box_predictor.num_classes = 2
        cfg.dataloader.test.dataset.names = cfg.dataloader.evaluator.dataset_name = masks
        cfg.dataloader.train.dataset.names = boxes
        check_lazy_config_before_run(cfg)  # boxes as annotated
        cfg.dataloader.train.mapper.recompute_boxes = True
        with pytest.raises(AttributeError, match="gt_masks"):  # what detectron2 does with it
            next(iter(instantiate(cfg.dataloader.train)))
        with pytest.raises(ValueError, match=(
                r"^dataloader\.train\.mapper\.recompute_boxes=True reads every training box from its instance mask, "
                rf"but dataloader\.train\.dataset\.names names '{boxes}', whose json_file .*boxes/train\.json' has no "
                r"'segmentation' \(instance masks\) in any annotation: give dataloader\.train\.dataset\.names a "
                r"dataset with instance masks, or set dataloader\.train\.mapper\.recompute_boxes=False")):
            check_lazy_config_before_run(cfg)
        cfg.dataloader.train.dataset.names = masks
        check_lazy_config_before_run(cfg)


def _cascade_cfg():
    """lazy_rcnn_cfg's Faster R-CNN made a Cascade R-CNN as detectron2's
    configs/common/models/cascade_rcnn.py makes one (three stages, "${...num_classes}")."""
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.box_regression import Box2BoxTransform
    from detectron2.modeling.matcher import Matcher
    from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

    cfg = lazy_rcnn_cfg()
    heads = cfg.model.roi_heads
    for key in ("box_head", "box_predictor", "proposal_matcher"):
        heads.pop(key)
    heads.update(
        _target_=CascadeROIHeads,
        box_heads=[L(FastRCNNConvFCHead)(input_shape=ShapeSpec(channels=32, height=7, width=7), conv_dims=[],
                                         fc_dims=[32]) for _ in range(3)],
        box_predictors=[L(FastRCNNOutputLayers)(input_shape=ShapeSpec(channels=32), cls_agnostic_bbox_reg=True,
                                                box2box_transform=L(Box2BoxTransform)(weights=(w1, w1, w2, w2)),
                                                num_classes="${...num_classes}")
                        for w1, w2 in [(10, 5), (20, 10), (30, 15)]],
        proposal_matchers=[L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False)
                           for th in [0.5, 0.6, 0.7]])
    return cfg


def test_a_cascade_stages_own_class_count_and_input_are_checked_before_the_run():
    # Each stage's predictor is a node of its own: a count changed in one trained, and failed
    # in the evaluation after the whole training, averaging the stages' scores ("The size of
    # tensor a (6) must match ... (4)"); an input failed at the first step in a matmul.
    from detectron2.config import instantiate

    from conftest import detection_batch
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _cascade_cfg()
    check_lazy_model(cfg, lazy_meta_model(cfg))  # as detectron2's config has it
    cfg.model.roi_heads.box_predictors[0].num_classes = 5
    _first_training_step(cfg)
    model = instantiate(cfg.model).eval()
    model.proposal_generator.post_nms_topk = (50, 50)
    with pytest.raises(RuntimeError, match="must match"), torch.no_grad():  # what detectron2 does with it
        model(detection_batch(size=(3, 64, 64), with_instances=False))
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictors\.0\.num_classes=5, but "
                                         r"dataloader\.train\.dataset\.names names 'synthetic_det_train', which has "
                                         r"3 classes"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg = _cascade_cfg()
    cfg.model.roi_heads.box_heads[2].fc_dims = [16]
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictors\.2\.input_shape: the layer it builds "
                                         r"takes 32 values, but model\.roi_heads\.box_heads\.2 \(its output_shape\) "
                                         r"gives 16: set it to channels=16"):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def _lazy_keypoint_rcnn_cfg(num_keypoints: int):
    """The tiny LazyConfig R-CNN with a keypoint head of `num_keypoints` (as
    configs/common/models/keypoint_rcnn_fpn.py adds it) and a keypoint-reading mapper."""
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.poolers import ROIPooler
    from detectron2.modeling.roi_heads import KRCNNConvDeconvUpsampleHead

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.update(
        num_classes=2, keypoint_in_features=["p2", "p3", "p4", "p5"],
        keypoint_pooler=L(ROIPooler)(output_size=14, scales=(1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32),
                                     sampling_ratio=0, pooler_type="ROIAlignV2"),
        keypoint_head=L(KRCNNConvDeconvUpsampleHead)(input_shape=ShapeSpec(channels=32, width=14, height=14),
                                                     num_keypoints=num_keypoints, conv_dims=[16]))
    cfg.model.roi_heads.box_predictor.num_classes = 2
    cfg.dataloader.train.mapper.use_keypoint = True
    return cfg


def test_a_keypoint_heads_count_is_checked_against_the_datasets_keypoint_names(tmp_path):
    # configs/common/models/keypoint_rcnn_fpn.py states num_keypoints=17 by hand; another count
    # on COCO's person keypoints failed at the first step with a bare IndexError in the loss.
    from detectron2.data import MetadataCatalog

    from conftest import own_coco_set
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _lazy_keypoint_rcnn_cfg(17)
    heads = cfg.model.roi_heads
    with own_coco_set(tmp_path / "people", "test_lazy_keypoint_count") as people:
        MetadataCatalog.get(people).keypoint_names = [f"k{i}" for i in range(17)]
        cfg.dataloader.train.dataset.names = people
        check_lazy_model(cfg, lazy_meta_model(cfg))  # 17, as detectron2's config has it
        heads.keypoint_head.num_keypoints = 5
        with pytest.raises(ValueError, match=r"^model\.roi_heads\.keypoint_head\.num_keypoints=5, but "
                                             rf"dataloader\.train\.dataset\.names names '{people}', whose metadata "
                                             r"keypoint_names has 17 keypoints: set it to 17"):
            check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg.dataloader.train.dataset.names = "synthetic_det_train"  # no keypoint_names: not judged
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


@pytest.mark.parametrize("weight, match", [
    (2, r"^model\.roi_heads\.box_predictor\.loss_weight=2: expected a float .*; write 2\.0$"),
    ("2", r"^model\.roi_heads\.box_predictor\.loss_weight='2': expected a float"),
])
def test_a_box_predictor_loss_weight_that_is_no_float_nor_dict_is_refused_by_key(weight, match):
    # FastRCNNOutputLayers makes a float one weight per loss and reads anything else as a dict:
    # loss_weight=2 built and failed at the first step ("'int' object has no attribute 'get'").
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    for valid in (2.0, {"loss_cls": 1.0, "loss_box_reg": 2.0}):
        cfg.model.roi_heads.box_predictor.loss_weight = valid
        check_lazy_model_values(cfg)
    cfg.model.roi_heads.box_predictor.loss_weight = weight
    if weight == 2:
        with pytest.raises(AttributeError, match="'int' object has no attribute 'get'"):  # what detectron2 does
            _first_training_step(cfg)
    with pytest.raises(ValueError, match=match):
        check_lazy_model_values(cfg)


# --- mutation 57L ---


def test_a_c4_res5_whose_out_channels_equal_its_in_channels_is_refused_naming_the_key():
    # detectron2's blocks build their (strided) shortcut conv only where in_channels !=
    # out_channels: res5.out_channels=in_channels, with the box predictor and mask head fitted
    # to it, passed every other check and failed at the first step in the residual sum.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(c4=True, mask=True, use_instance_mask=True)
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)  # res5 256 -> 512: a shortcut conv
    for key in ("res5.out_channels", "box_predictor.input_shape.channels", "mask_head.input_shape.channels"):
        OmegaConf.update(cfg.model.roi_heads, key, 256, merge=False)
    with pytest.raises(RuntimeError, match="must match the size"):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.res5\.out_channels=256: equal to its in_channels, "
                                         r"so detectron2's BasicBlock builds no shortcut conv for block 0, which "
                                         r"strides by 2 \(model\.roi_heads\.res5\.stride_per_block\)"):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg.model.roi_heads.res5.stride_per_block = [1]  # no stride: no shortcut needed
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_a_copied_nodes_string_argument_is_named_with_its_quotes():
    # As the user writes it (`dropblock.type='dropblok'`), told apart from a number or a key.
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import _copied_argument

    node = OmegaConf.create({"_target_": "x", "type": "dropblok"})
    assert _copied_argument(node, "dropblock", ValueError("type must be one of ...")) == "dropblock.type='dropblok': "


@pytest.mark.parametrize("stage", [1, 2])
def test_each_cascade_stages_class_count_is_checked_not_only_the_first(stage):
    # Every stage's predictor is a node of its own (configs/common/models/cascade_rcnn.py):
    # a later stage's count changed alone failed in the evaluation after the whole training.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _cascade_cfg()
    cfg.model.roi_heads.box_predictors[stage].num_classes = 5
    with pytest.raises(ValueError, match=rf"^model\.roi_heads\.box_predictors\.{stage}\.num_classes=5, but "):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_keypoint_head_predicting_more_keypoints_than_the_datasets_names_is_refused_too(tmp_path):
    # The heatmap loss pairs heatmaps with annotated keypoints by position (fewer failed at the
    # first step): more than the datasets name is refused as well.
    from detectron2.data import MetadataCatalog

    from conftest import own_coco_set
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _lazy_keypoint_rcnn_cfg(20)
    with own_coco_set(tmp_path / "people", "test_lazy_keypoint_count_more") as people:
        MetadataCatalog.get(people).keypoint_names = [f"k{i}" for i in range(17)]
        cfg.dataloader.train.dataset.names = people
        with pytest.raises(ValueError, match=r"^model\.roi_heads\.keypoint_head\.num_keypoints=20, but .* "
                                             r"keypoint_names has 17 keypoints: set it to 17"):
            check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_box_predictor_loss_weight_given_as_null_is_refused_by_key():
    # `model.roi_heads.box_predictor.loss_weight=null` built and failed at the first step with
    # "'NoneType' object has no attribute 'get'"; left out, detectron2's 1.0 is kept.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_predictor.loss_weight = None
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):  # what detectron2 does
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictor\.loss_weight=None: expected a float"):
        check_lazy_model_values(cfg)
    del cfg.model.roi_heads.box_predictor.loss_weight
    check_lazy_model_values(cfg)


@pytest.mark.parametrize("key", ["num_classes", "head.num_classes"])
def test_an_fcos_class_count_is_checked_against_the_datasets_as_a_retinanets(key):
    # detectron2's configs/common/models/fcos.py makes its FCOS from retinanet.py's model (the
    # head's classes "${..num_classes}"); FCOS is no RetinaNet, so it is found by its name.
    from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _stock_retinanet_cfg()
    model = cfg.model
    model._target_ = FCOS
    for name in ("anchor_generator", "box2box_transform", "anchor_matcher", "input_format"):
        del model[name]
    model.backbone.top_block.update(in_feature="p5", in_channels=32)
    model.head._target_ = FCOSHead
    del model.head.num_anchors
    check_lazy_model(cfg, lazy_meta_model(cfg))  # as detectron2's config has it
    OmegaConf.update(model, key, 5, merge=False)
    with pytest.raises(ValueError, match=rf"^model\.{re.escape(key)}=5, but dataloader\.train\.dataset\.names "
                                         r"names 'synthetic_det_train', which has 3 classes"):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_stock_retinanet_head_with_fewer_shapes_than_levels_is_refused_too():
    # detectron2's RetinaNetHead asserts one entry per level either way: three ShapeSpecs for
    # detectron2's five levels failed at the first step as five for three did.
    from detectron2.layers import ShapeSpec

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _stock_retinanet_cfg()
    cfg.model.head.input_shape = [ShapeSpec(channels=32)] * 3
    with pytest.raises(AssertionError):  # what detectron2 does with it
        _first_training_step(cfg)
    with pytest.raises(ValueError, match=r"^model\.head\.input_shape: 3 ShapeSpec\(s\) for the 5 levels "):
        check_lazy_model(cfg, lazy_meta_model(cfg))


def test_a_c4_res5_of_several_blocks_is_judged_by_its_first_blocks_input_and_last_blocks_output():
    # detectron2's mask_rcnn_c4.py: res5 of 3 blocks, the first taking res4's 1024 channels;
    # the later blocks take res5's own out_channels, which the backbone's feature need not have.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg(c4=True, mask=True, use_instance_mask=True)
    cfg.model.roi_heads.res5.update(num_blocks=2, stride_per_block=[2, 1])
    check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    cfg.model.roi_heads.res5.in_channels = 128
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.res5\.in_channels: the layer it builds takes 128 "):
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)


def test_a_single_pixel_mean_value_for_every_channel_is_not_taken_for_one_channel_images():
    # detectron2 broadcasts a one-value pixel_mean / pixel_std over the image's channels: the
    # stem still takes the images' 3.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    cfg.model.update(pixel_mean=[115.0], pixel_std=[58.0])
    check_lazy_model(cfg, lazy_meta_model(cfg))


def _own_mapper(recompute_boxes=False):
    """A training mapper of the user's own that takes a recompute_boxes of its own meaning."""
    return lambda dataset_dict: dataset_dict


def test_recompute_boxes_of_a_mapper_of_the_users_own_is_left_to_it():
    # Only detectron2's DatasetMapper (and subclasses) reads every box from its mask for it.
    from detectron2.config import LazyCall as L
    from detectron2.data import DatasetMapper

    from dropblock_det.engine.lazy_config_checks import _recompute_boxes_need

    cfg = lazy_rcnn_cfg()
    cfg.dataloader.train.mapper = L(_own_mapper)(recompute_boxes=True)
    assert _recompute_boxes_need(cfg) is None
    cfg.dataloader.train.mapper = L(DatasetMapper)(is_train=True, augmentations=[], image_format="BGR",
                                                   recompute_boxes=True)
    assert _recompute_boxes_need(cfg)[0].startswith("dataloader.train.mapper.recompute_boxes=True reads")


def test_a_box_predictor_loss_weight_that_is_no_number_is_given_no_float_form():
    # Only a number is told its float form (loss_weight=2: "write 2.0").
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_predictor.loss_weight = "heavy"
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictor\.loss_weight='heavy': expected a float "
                                         r"[^;]*\}$"):
        check_lazy_model_values(cfg)


# --- zoo journey lazy 57 ---
def _stock_parts_cfg(*opts):
    """The synthetic twin with detectron2's own configs/common parts as its files write them
    (coco_schedule.py's 1x lr_multiplier, optim.py's SGD, coco.py's COCOEvaluator; the
    mapper's masks on), then the overrides `opts`."""
    from detectron2.config import LazyCall as L
    from detectron2.config import LazyConfig
    from detectron2.evaluation import COCOEvaluator
    from detectron2.solver import WarmupParamScheduler
    from detectron2.solver.build import get_default_optimizer_params
    from fvcore.common.param_scheduler import MultiStepParamScheduler

    cfg = lazy_cfg(SYNTHETIC)
    cfg.lr_multiplier = L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[60000, 80000, 90000]),
        warmup_length=1000 / 90000, warmup_method="linear", warmup_factor=0.001)
    cfg.optimizer = L(torch.optim.SGD)(params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
                                       lr=0.02, momentum=0.9, weight_decay=1e-4)
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}", use_fast_impl=False)
    cfg.dataloader.train.mapper.use_instance_mask = True
    cfg.dataloader.train.mapper.instance_mask_format = "polygon"
    return LazyConfig.apply_overrides(cfg, list(opts))  # as the tool parses them (Hydra)


@pytest.mark.parametrize("opt, error, match", [
    # fvcore's "where in ParamScheduler must be in [0, 1]: got 1000", naming no key (iterations
    # meant); below 0 it trained, NaN losses at the first step on v0.6.
    ("lr_multiplier.warmup_length=1000", ValueError,
     r"^lr_multiplier\.warmup_length=1000: expected the warm-up's share of train\.max_iter, in \[0, 1\] "
     r"\(1000 iterations of 90000: 1000 / 90000"),
    ("lr_multiplier.warmup_length=-0.1", ValueError, r"^lr_multiplier\.warmup_length=-0\.1: expected"),
    # Trained, silently, with a negative learning rate (the loss ascended).
    ("lr_multiplier.warmup_factor=-1", ValueError,
     r"^lr_multiplier\.warmup_factor=-1: expected a finite number >= 0 .*a negative learning rate$"),
    ("lr_multiplier.scheduler.values=[1.0,-0.1,0.01]", ValueError,
     r"^lr_multiplier\.scheduler\.values=\[1\.0, -0\.1, 0\.01\]: expected multiples of optimizer\.lr that are "
     r"finite and >= 0"),
    # torch refuses these for the optimizer's defaults only, not for the groups they go to.
    ("optimizer.params.weight_decay_norm=-1", ValueError,
     r"^optimizer\.params\.weight_decay_norm=-1: expected a finite number >= 0 \(torch refuses"),
    ("optimizer.params.weight_decay_bias=-0.0001", ValueError, r"^optimizer\.params\.weight_decay_bias=-0\.0001: "),
    ("optimizer.params.overrides={bias: {weight_decay: -1.0}}", ValueError,
     r"^optimizer\.params gives parameter group \d+ \(\d+ parameters\) weight_decay=-1\.0: expected a finite "
     r"number >= 0 \(see optimizer\.params\.overrides"),
    ("optimizer.momentum=1.5", ValueError,
     r"^optimizer\.momentum=1\.5: expected a value in \[0, 1\] \(e\.g\. 0\.9\): above 1 the momentum buffer grows"),
    # "AssertionError: rle" in the loader at the first step.
    ("dataloader.train.mapper.instance_mask_format=rle", ValueError,
     r"^dataloader\.train\.mapper\.instance_mask_format='rle': expected 'polygon' or 'bitmask'"),
    # "Got unknown task: box!" at the first evaluation, after the training.
    ("dataloader.evaluator.tasks=[box]", ValueError,
     r"^dataloader\.evaluator\.tasks=\['box'\]: expected a list of 'bbox', 'segm', 'keypoints', or None"),
    ("dataloader.evaluator.tasks=bbox", ValueError, r"^dataloader\.evaluator\.tasks='bbox': expected a list"),
    # A bare AssertionError once the training set was loaded.
    ("dataloader.train.dataset.proposal_files=[a.pkl,b.pkl]", ValueError,
     r"^dataloader\.train\.dataset\.proposal_files=\['a\.pkl', 'b\.pkl'\]: expected a list of one proposal file "
     r"per name in dataloader\.train\.dataset\.names=\['synthetic_det_train'\]"),
    ("dataloader.test.dataset.proposal_files=a.pkl", ValueError,
     r"^dataloader\.test\.dataset\.proposal_files='a\.pkl': expected a list of one proposal file per name"),
])
def test_the_non_model_values_detectron2_takes_and_fails_on_later_are_refused_by_key(opt, error, match):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(error, match=match):
        check_lazy_config_before_run(_stock_parts_cfg(opt), check_files=False)


def test_detectron2s_own_schedule_optimizers_and_evaluator_pass_the_value_checks():
    # coco_schedule.py's every schedule, optim.py's SGD and (main's) AdamW with its
    # base_lr="${..lr}", a COCOEvaluator with its tasks written out.
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    check_lazy_config_before_run(_stock_parts_cfg(), check_files=False)
    for num_x in (1, 3, 9):
        steps = num_x * 90000
        check_lazy_config_before_run(_stock_parts_cfg(
            f"lr_multiplier.warmup_length={1000 / steps}", "lr_multiplier.warmup_factor=0.0",
            f"lr_multiplier.scheduler.milestones=[{steps - 60000},{steps - 20000},{steps}]"), check_files=False)
    adamw = _stock_parts_cfg()
    adamw.optimizer = L(torch.optim.AdamW)(params=adamw.optimizer.params, lr=1e-4, betas=(0.9, 0.999),
                                           weight_decay=0.1)
    adamw.optimizer.params.base_lr = "${..lr}"
    adamw.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", tasks=("bbox",),
                                                  use_fast_impl=False)  # (a RetinaNet: no 'segm')
    check_lazy_config_before_run(adamw, check_files=False)


def test_detectron2_mains_own_configs_common_parts_pass_the_value_checks():
    # Their files themselves, where the installed detectron2 ships them (main's model_zoo).
    from pathlib import Path

    import detectron2
    from detectron2.config import LazyConfig

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    common = Path(detectron2.__file__).parent / "model_zoo" / "configs" / "common"
    if not common.is_dir():
        pytest.skip("this detectron2 ships no configs/common (v0.6: the journey ran them from its git tree)")
    schedule, optim = LazyConfig.load(str(common / "coco_schedule.py")), LazyConfig.load(str(common / "optim.py"))
    data = LazyConfig.load(str(common / "data" / "coco.py"))
    for name in ("lr_multiplier_1x", "lr_multiplier_2x", "lr_multiplier_3x", "lr_multiplier_6x", "lr_multiplier_9x"):
        cfg = _stock_parts_cfg()
        cfg.lr_multiplier = schedule[name]
        check_lazy_config_before_run(cfg, check_files=False)
    for name in ("SGD", "AdamW"):
        cfg = _stock_parts_cfg()
        cfg.optimizer = optim[name]
        check_lazy_config_before_run(cfg, check_files=False)
    cfg = _stock_parts_cfg()
    cfg.dataloader.train.mapper.instance_mask_format = data.dataloader.train.mapper.get("instance_mask_format",
                                                                                        "polygon")
    cfg.dataloader.evaluator = data.dataloader.evaluator
    cfg.dataloader.evaluator.use_fast_impl = False
    check_lazy_config_before_run(cfg, check_files=False)


def test_a_test_batch_size_below_one_is_refused_before_the_training(tmp_path):
    # detectron2 main's build_detection_test_loader(batch_size=0): torch refused it when the
    # test loader was built, after the whole training. v0.6 has no such argument (refused).
    import inspect

    from detectron2.data import build_detection_test_loader

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    if "batch_size" not in inspect.signature(build_detection_test_loader).parameters:
        pytest.skip("detectron2 v0.6's test loader takes no batch_size")
    with pytest.raises(ValueError, match=r"^dataloader\.test\.batch_size=0: expected an integer >= 1$"):
        check_lazy_config_before_run(_stock_parts_cfg("+dataloader.test.batch_size=0"), check_files=False)
    check_lazy_config_before_run(_stock_parts_cfg("+dataloader.test.batch_size=2"), check_files=False)


def test_a_missing_proposal_file_is_named_by_its_key_before_the_loader_is_built(tmp_path):
    # get_detection_dataset_dicts opened it when the loader was built, after the output folder
    # was set up (the test loader's after the whole training).
    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with tiny_synthetic_datasets(tmp_path, num_train=2, num_val=2):
        missing = tmp_path / "none.pkl"
        cfg = _stock_parts_cfg("train.device=cpu", f"dataloader.test.dataset.proposal_files=[{missing}]")
        cfg.dataloader.train.mapper.use_instance_mask = False
        with pytest.raises(FileNotFoundError, match=rf"^dataloader\.test\.dataset\.proposal_files\.0="
                                                    rf"'{re.escape(str(missing))}': no such file"):
            check_lazy_config_before_run(cfg)


def test_a_mapper_reading_rgb_for_a_bgr_model_is_warned_of_naming_both_keys():
    # It trained without a word, the channels in the other order than pixel_mean's; detectron2's
    # RGB configs (MViTv2, ViTDet) change both, and pass.
    import warnings

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.warns(UserWarning, match=r"^dataloader\.train\.mapper\.image_format='RGB' is not "
                                         r"model\.input_format='BGR': the images reach the model in the other "
                                         r"channel order") as caught:
        check_lazy_config_before_run(_stock_parts_cfg("dataloader.train.mapper.image_format=RGB"), check_files=False)
    assert sum("is not model.input_format" in str(w.message) for w in caught) == 1  # once, not per mapper
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*is not model.input_format")
        check_lazy_config_before_run(_stock_parts_cfg("dataloader.train.mapper.image_format=RGB",
                                                       "model.input_format=RGB"), check_files=False)
        check_lazy_config_before_run(_stock_parts_cfg(), check_files=False)
        # Only RGB against BGR is a swap: YUV is no channel order of the two, and a model
        # without input_format (one of your own) says none.
        check_lazy_config_before_run(_stock_parts_cfg("dataloader.train.mapper.image_format=YUV-BT.601"),
                                     check_files=False)
        cfg = _stock_parts_cfg("dataloader.train.mapper.image_format=RGB")
        del cfg.model.input_format
        check_lazy_config_before_run(cfg, check_files=False)


# --- ROI pooler levels (session 57) ---
def test_roi_head_features_in_no_pyramid_order_with_their_scales_are_refused_naming_the_key():
    # Features and scales shuffled alike (p2 p4 p3 p5): detectron2's ROIPooler asserts only on
    # the first and last scale, built it, and pooled mid-sized boxes from the wrong map.
    from detectron2.config import instantiate

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_in_features = ["p2", "p4", "p3", "p5"]
    cfg.model.roi_heads.box_pooler.scales = [1.0 / 4, 1.0 / 16, 1.0 / 8, 1.0 / 32]
    instantiate(cfg.model.roi_heads.box_pooler)  # builds
    with pytest.raises(ValueError, match=re.escape("model.roi_heads.box_in_features=['p2', 'p4', 'p3', 'p5']: strides "
                                                   "[4, 16, 8, 32], where detectron2's ROIPooler takes a pyramid")
                       + ".*" + re.escape("list them finest first, ['p2', 'p3', 'p4', 'p5'] (with "
                                          "model.roi_heads.box_pooler.scales in their order)")):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg.model.roi_heads.box_in_features = ["p2", "p3", "p4", "p5"]
    cfg.model.roi_heads.box_pooler.scales = [1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32]
    check_lazy_model(cfg, lazy_meta_model(cfg))


# --- mutation 57Lb ---
@pytest.mark.parametrize("value, shown", [("[1,10,100]", "[1, 10, 100]"), ("0", "0"), ("2.5", "2.5")])
def test_a_coco_evaluators_max_dets_per_image_not_an_integer_above_0_is_refused_by_key(value, shown):
    # COCOEvaluator makes COCOeval's maxDets [1, 10, it]: a list or 2.5 failed in COCOeval at
    # the first evaluation, after the training; 0 scored AP on a cut of no detections, silently
    # (AP 100.0, AR 0.0 for one matching box).
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.max_dets_per_image=" + re.escape(shown)
                       + r": expected an integer >= 1, the most detections per image"):
        check_lazy_config_before_run(_stock_parts_cfg(f"+dataloader.evaluator.max_dets_per_image={value}"),
                                     check_files=False)
    check_lazy_config_before_run(_stock_parts_cfg("+dataloader.evaluator.max_dets_per_image=300"), check_files=False)


def test_a_coco_evaluators_segm_task_for_a_model_without_masks_is_refused_by_key():
    # COCOEvaluator scored each task named: 'segm' on predictions without masks failed in
    # pycocotools ("list indices must be integers or slices, not str") after the training.
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, check_lazy_model, lazy_meta_model

    with pytest.raises(ValueError, match=re.escape("dataloader.evaluator.tasks=['bbox', 'segm']: the model ")
                       + r"\(\w*RetinaNet\) predicts no masks for 'segm'; give tasks=\['bbox'\]"):
        check_lazy_config_before_run(_stock_parts_cfg("dataloader.evaluator.tasks=[bbox,segm]"), check_files=False)
    cfg = lazy_rcnn_cfg()
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", tasks=["bbox", "keypoints"],
                                                use_fast_impl=False)
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.tasks=\['bbox', 'keypoints'\]: the model "
                                         r"\(GeneralizedRCNN\) predicts no keypoints for 'keypoints'"):
        check_lazy_model(cfg, lazy_meta_model(cfg))
    cfg = lazy_rcnn_cfg(mask=True, use_instance_mask=True)
    cfg.dataloader.evaluator = L(COCOEvaluator)(dataset_name="synthetic_det_val", tasks=["bbox", "segm"],
                                                use_fast_impl=False)
    check_lazy_model(cfg, lazy_meta_model(cfg))  # a Mask R-CNN has them


def test_warmup_length_0_and_1_and_momentum_1_are_taken():
    # The bounds: detectron2's WarmupParamScheduler runs no warm-up at 0 and all warm-up at 1;
    # torch's SGD takes momentum 1.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    for opt in ("lr_multiplier.warmup_length=0.0", "lr_multiplier.warmup_length=1.0", "optimizer.momentum=1.0"):
        check_lazy_config_before_run(_stock_parts_cfg(opt), check_files=False)


@pytest.mark.parametrize("opts, match", [
    (["lr_multiplier.warmup_factor=inf"], r"^lr_multiplier\.warmup_factor=inf: expected a finite number >= 0"),
    (["+optimizer.params.weight_decay=-1.0"], r"^optimizer\.params\.weight_decay=-1\.0: expected a finite number"),
    (["+optimizer.params.base_lr=-0.02"], r"^optimizer\.params\.base_lr=-0\.02: expected a finite number"),
    (["+optimizer.params.base_lr=0.02", "+optimizer.params.bias_lr_factor=-2.0"],
     r"^optimizer\.params\.bias_lr_factor=-2\.0: expected a finite number"),
    (["optimizer.params.overrides={bias: {momentum: 1.5}}"],
     r"^optimizer\.params gives parameter group \d+ \(\d+ parameters\) momentum=1\.5: expected a finite number "
     r">= 0 and <= 1\.0 "),
])
def test_each_optimizer_and_warmup_value_is_named_by_its_own_key(opts, match):
    # Not by the parameter group it reaches (a negative rate or decay there was caught as
    # "parameter group 0") nor let through (an infinite warm-up factor: NaN losses).
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with pytest.raises(ValueError, match=match):
        check_lazy_config_before_run(_stock_parts_cfg(*opts), check_files=False)


@pytest.mark.parametrize("start, end", [(-1.0, 0.0), (1.0, -0.1)])
def test_a_cosine_schedules_negative_start_or_end_value_is_refused_by_key(start, end):
    # Not only a MultiStep schedule's values: a learning rate below 0 from either end.
    from detectron2.config import LazyCall as L
    from fvcore.common.param_scheduler import CosineParamScheduler

    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = _stock_parts_cfg()
    cfg.lr_multiplier.scheduler = L(CosineParamScheduler)(start_value=start, end_value=end)
    name, value = ("start_value", start) if start < 0 else ("end_value", end)
    with pytest.raises(ValueError, match=rf"^lr_multiplier\.scheduler\.{name}={value}: expected multiples of "):
        check_lazy_config_before_run(cfg, check_files=False)
    cfg.lr_multiplier.scheduler = L(CosineParamScheduler)(start_value=1.0, end_value=0.0)
    check_lazy_config_before_run(cfg, check_files=False)


def test_fewer_proposal_files_than_dataset_names_are_refused_and_every_coco_task_taken():
    # get_detection_dataset_dicts asserted one file per name bare, once the data was loaded;
    # 'keypoints' is one of COCOEvaluator's tasks (for a model that predicts them).
    from dropblock_det.engine.lazy_config_checks import check_lazy_loader_values

    cfg = _stock_parts_cfg("dataloader.train.dataset.names=[synthetic_det_train,synthetic_det_val]",
                           "dataloader.train.dataset.proposal_files=[a.pkl]")
    with pytest.raises(ValueError, match=r"^dataloader\.train\.dataset\.proposal_files=\['a\.pkl'\]: expected a list "
                                         r"of one proposal file per name"):
        check_lazy_loader_values(cfg)
    check_lazy_loader_values(_stock_parts_cfg("dataloader.evaluator.tasks=[bbox,segm,keypoints]"))


def test_bitmask_masks_and_an_unused_mask_format_are_taken_and_one_unknown_task_among_known_is_refused():
    # detectron2's DatasetMapper reads 'bitmask' (LSJ-style users write it); the format is read
    # only with use_instance_mask. Each task is judged, not the list as a whole.
    from dropblock_det.engine.lazy_config_checks import check_lazy_loader_values

    check_lazy_loader_values(_stock_parts_cfg("dataloader.train.mapper.instance_mask_format=bitmask"))
    check_lazy_loader_values(_stock_parts_cfg("dataloader.train.mapper.instance_mask_format=rle",
                                              "dataloader.train.mapper.use_instance_mask=false"))
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.tasks=\['bbox', 'box'\]: expected a list of"):
        check_lazy_loader_values(_stock_parts_cfg("dataloader.evaluator.tasks=[bbox,box]"))


def test_a_proposal_file_given_as_a_url_is_left_to_detectron2():
    # detectron2's PathManager fetches it when the loader is built; only a local path is looked for.
    from dropblock_det.engine.lazy_config_checks import _check_proposal_files

    _check_proposal_files(_stock_parts_cfg(
        "dataloader.test.dataset.proposal_files=[https://dl.fbaipublicfiles.com/detectron2/a.pkl]"), True)


def test_a_keypoint_rcnns_keypoints_task_is_taken():
    # Its ROI heads' keypoint_on gives the predictions keypoints (and mask_on masks).
    from types import SimpleNamespace

    from detectron2.modeling import GeneralizedRCNN

    from dropblock_det.engine.lazy_config_checks import _model_coco_tasks

    model = GeneralizedRCNN.__new__(GeneralizedRCNN)
    torch.nn.Module.__init__(model)
    model.roi_heads = SimpleNamespace(mask_on=False, keypoint_on=True)
    assert _model_coco_tasks(model) == ("bbox", "keypoints")
    model.roi_heads = SimpleNamespace(mask_on=True, keypoint_on=False)
    assert _model_coco_tasks(model) == ("bbox", "segm")


def _lazy_anchor_order_warnings(cfg):
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_lazy_model(cfg, lazy_meta_model(cfg), train=False)
    return [str(w.message) for w in caught if "pairs the sizes with the levels in order" in str(w.message)]


def test_lazy_anchor_sizes_paired_with_levels_listed_coarsest_first_warn_naming_both_keys():
    # The yacs check's twin: levels listed coarsest first, with their strides (which pass the
    # stride check), under sizes listed finest first put 32 px anchors on the coarsest map and
    # 512 px ones on the finest, and trained without a word.
    reversed_retinanet = ("model.head_in_features=[p7,p6,p5,p4,p3]", "model.anchor_generator.strides=[128,64,32,16,8]")
    (message,) = _lazy_anchor_order_warnings(lazy_cfg(SYNTHETIC, *reversed_retinanet))
    assert message.startswith("model.head_in_features=['p7', 'p6', 'p5', 'p4', 'p3'] with model.anchor_generator.sizes=")
    assert "'p7' (stride 128): [16, " in message and "'p3' (stride 8): [256, " in message
    cfg = lazy_rcnn_cfg()
    cfg.model.proposal_generator.in_features = ["p6", "p5", "p4", "p3", "p2"]
    cfg.model.proposal_generator.anchor_generator.strides = [64, 32, 16, 8, 4]
    (message,) = _lazy_anchor_order_warnings(cfg)
    assert message.startswith("model.proposal_generator.in_features=['p6', 'p5', 'p4', 'p3', 'p2'] with "
                              "model.proposal_generator.anchor_generator.sizes=[[32], [64], [128], [256], [512]]")
    assert "'p6' (stride 64): [32]" in message and "'p2' (stride 4): [512] px" in message
    # Sizes in the levels' order, one entry for all levels, and the configs as written: no warning.
    cfg.model.proposal_generator.anchor_generator.sizes = [[512], [256], [128], [64], [32]]
    assert not _lazy_anchor_order_warnings(cfg)
    cfg.model.proposal_generator.anchor_generator.sizes = [[32]]
    assert not _lazy_anchor_order_warnings(cfg)
    assert not _lazy_anchor_order_warnings(lazy_rcnn_cfg())
    assert not _lazy_anchor_order_warnings(lazy_cfg(SYNTHETIC))
    assert not _lazy_anchor_order_warnings(lazy_cfg(SYNTHETIC, *reversed_retinanet,
                                                    "model.anchor_generator.sizes=[[256],[128],[64],[32],[16]]",
                                                    "model.head.num_anchors=3"))


# --- stop 59: mutations 57L's N4 and 57Lb's D15 ---
def test_a_keypoint_heads_count_is_checked_against_every_named_set_not_the_first_alone(tmp_path):
    # Of the two training sets, the first names no keypoints (its metadata has none); the
    # second's 5 do not fit a head of 17: a bare IndexError at its first image (mutation 57L's
    # N4 judged the first set named alone).
    from detectron2.data import MetadataCatalog

    from conftest import own_coco_set
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = _lazy_keypoint_rcnn_cfg(17)
    cfg.model.roi_heads.num_classes = cfg.model.roi_heads.box_predictor.num_classes = 3  # the synthetic set's
    with own_coco_set(tmp_path / "hands", "test_lazy_keypoint_count_of_a_second_set",
                      thing_classes=["circle", "square", "triangle"]) as hands:
        MetadataCatalog.get(hands).keypoint_names = list("abcde")
        cfg.dataloader.train.dataset.names = ["synthetic_det_train", hands]
        with pytest.raises(ValueError, match=r"^model\.roi_heads\.keypoint_head\.num_keypoints=17, but "
                                             rf"dataloader\.train\.dataset\.names names '{hands}', whose metadata "
                                             r"keypoint_names has 5 keypoints: set it to 5"):
            check_lazy_model(cfg, lazy_meta_model(cfg))


def test_the_tasks_of_a_users_own_coco_evaluator_subclass_are_judged_too():
    # A subclass passes its tasks on to COCOEvaluator, which asserts each at the first
    # evaluation, after the training (mutation 57Lb's D15 judged COCOEvaluator itself alone).
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import COCOEvaluator

    from dropblock_det.engine.lazy_config_checks import check_lazy_loader_values

    own = type("OwnCOCOEvaluator", (COCOEvaluator,), {"__module__": __name__})
    cfg = _stock_parts_cfg()
    cfg.dataloader.evaluator = L(own)(dataset_name="synthetic_det_val", tasks=["box"], output_dir="out")
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.tasks=\['box'\]: expected a list of 'bbox'"):
        check_lazy_loader_values(cfg)
    cfg.dataloader.evaluator.tasks = ["bbox"]
    check_lazy_loader_values(cfg)


# --- stop 59: ROI features listed coarsest first (a carried item of stop 57) ---
def test_roi_features_and_scales_both_listed_coarsest_first_are_refused_naming_the_features():
    # box_in_features=[p5, ..., p2] with their scales in the same order: detectron2's ROIPooler
    # asserted "Sizes of input featuremaps do not form a pyramid!" at the build, and the
    # refusal named only model.roi_heads.box_pooler (ROIPooler).
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg()
    check_lazy_model_values(cfg)  # detectron2's order: p2 first, scale 1/4
    cfg.model.roi_heads.box_in_features = ["p5", "p4", "p3", "p2"]
    cfg.model.roi_heads.box_pooler.scales = [1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4]
    with pytest.raises(ValueError, match=re.escape(
            "model.roi_heads.box_pooler.scales=[0.03125, 0.0625, 0.125, 0.25] with model.roi_heads.box_in_features="
            "['p5', 'p4', 'p3', 'p2']: coarsest level first, where detectron2's ROIPooler takes a pyramid finest "
            "first")):
        check_lazy_model_values(cfg)


def test_roi_features_listed_coarsest_first_under_the_stock_scales_are_told_to_list_the_features_finest_first():
    # The scales fit p2 ... p5; the features were told to keep their order and reverse the
    # scales, which the pooler then refused to build (the test above).
    from conftest import lazy_rcnn_cfg
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    cfg = lazy_rcnn_cfg()
    cfg.model.roi_heads.box_in_features = ["p5", "p4", "p3", "p2"]
    with pytest.raises(ValueError, match=re.escape(
            "model.roi_heads.box_in_features=['p5', 'p4', 'p3', 'p2']: strides [32, 16, 8, 4], where detectron2's "
            "ROIPooler takes a pyramid, finest first, each stride twice the last (a power of 2): list them finest "
            "first, ['p2', 'p3', 'p4', 'p5']")):
        check_lazy_model(cfg, lazy_meta_model(cfg))
