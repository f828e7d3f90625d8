"""The LazyConfig configs (configs/**/*.py) and dropblock_det/engine/lazy.py: each Python
config builds the model, data pipeline, optimizer and schedules of its yacs twin, overrides
reach every DropBlock, a saved config loads back, and the loop names a corrupt dataset file
and checks the model it builds. The checks before a run: test_lazy_config_checks.py."""
import contextlib
from typing import Iterator

import pytest
import torch

from conftest import CONFIGS, LAZY_TWINS, lazy_cfg

SYNTHETIC = str(CONFIGS / LAZY_TWINS[0][0])
COCO = str(CONFIGS / LAZY_TWINS[1][0])


def _yacs(path):
    from dropblock_det.engine.config_checks import load_config

    return load_config(str(CONFIGS / path), ["MODEL.DEVICE", "cpu"])


def _meta(build):
    with torch.device("meta"):
        return build()


def _regularizers(model):
    from dropblock_det.layers import iter_regularizers

    return {name: (type(m).__name__, round(m.target_keep_prob, 12), getattr(m, "block_size", None),
                   getattr(m, "shared_mask", None), getattr(m, "gamma_mode", None), getattr(m, "impl", None))
            for name, m in iter_regularizers(model)}


def _model_settings(model):
    """What a model's state_dict shapes do not show: its settings, and every conv's
    dilation, stride and padding (a DeepLab backbone's multi-grid)."""
    convs = [(n, m.dilation, m.stride, m.padding) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    common = dict(type=type(model).__name__, convs=convs, mean=model.pixel_mean.flatten().tolist(),
                  std=model.pixel_std.flatten().tolist(), frozen=[n for n, p in model.named_parameters() if not p.requires_grad],
                  outputs={k: (v.channels, v.stride) for k, v in model.backbone.output_shape().items()})
    if hasattr(model, "sem_seg_head"):
        head = model.sem_seg_head
        aspp = head.decoder[head.in_features[-1]]["project_conv"]
        return dict(common, in_features=head.in_features, ignore_value=head.ignore_value,
                    common_stride=head.common_stride, loss_weight=head.loss_weight, loss_type=head.loss_type,
                    pool_kernel_size=aspp.pool_kernel_size, aspp_dropout=aspp.dropout,
                    classes=head.predictor.out_channels)
    return dict(common, **_retinanet_settings(model))


def _retinanet_settings(model):
    return dict(
        type=type(model).__name__, num_classes=model.num_classes, head_in_features=model.head_in_features,
        alpha=model.focal_loss_alpha, gamma=model.focal_loss_gamma, beta=model.smooth_l1_beta,
        loss=model.box_reg_loss_type, score=model.test_score_thresh, topk=model.test_topk_candidates,
        nms=model.test_nms_thresh, max_det=model.max_detections_per_image, format=model.input_format,
        weights=model.box2box_transform.weights, thresholds=model.anchor_matcher.thresholds,
        labels=model.anchor_matcher.labels, low_quality=model.anchor_matcher.allow_low_quality_matches,
        strides=model.anchor_generator.strides, offset=model.anchor_generator.offset,
        anchors=[a.tolist() for a in model.anchor_generator.cell_anchors],
        fpn=(model.backbone.in_features, model.backbone._fuse_type, type(model.backbone.top_block).__name__),
    )


@pytest.mark.parametrize("lazy, yacs", LAZY_TWINS)
def test_each_lazy_config_builds_its_yaml_twins_model(lazy, yacs):
    from detectron2.config import instantiate
    from detectron2.modeling import build_model

    # From one seed, the same initial weights: the twins draw them in the same order.
    torch.manual_seed(5)
    lazy_model = instantiate(lazy_cfg(CONFIGS / lazy).model)
    lazy_rng = torch.get_rng_state()
    torch.manual_seed(5)
    yacs_model = build_model(_yacs(yacs))
    # And the same draws after (masks, data order): parts built and dropped are rolled back.
    assert torch.equal(torch.get_rng_state(), lazy_rng)
    lazy_state, yacs_state = lazy_model.state_dict(), yacs_model.state_dict()
    assert {k: v.shape for k, v in lazy_state.items()} == {k: v.shape for k, v in yacs_state.items()}
    differ = [k for k in lazy_state if not torch.equal(lazy_state[k], yacs_state[k])]
    assert not differ, f"from one seed, the twins start from other values of {differ}"
    assert _regularizers(lazy_model) == _regularizers(yacs_model) and _regularizers(lazy_model)
    assert _model_settings(lazy_model) == _model_settings(yacs_model)
    # Module types too (GN everywhere, the same block classes), in the same order.
    assert [type(m).__name__ for m in lazy_model.modules()] == [type(m).__name__ for m in yacs_model.modules()]
    assert [m.num_groups for m in lazy_model.modules() if isinstance(m, torch.nn.GroupNorm)] == [
        m.num_groups for m in yacs_model.modules() if isinstance(m, torch.nn.GroupNorm)]


def _augmentations(augmentations):
    """Each augmentation's class and settings (a list and a tuple of sizes alike, a nested
    augmentation by its repr)."""
    from detectron2.data import transforms as T

    def value(v):
        return list(v) if isinstance(v, (list, tuple)) else repr(v) if isinstance(v, T.Augmentation) else v

    augmentations = getattr(augmentations, "augs", augmentations)  # an AugmentationList
    return [(type(a).__name__, {k: value(v) for k, v in vars(a).items()}) for a in augmentations]


@pytest.mark.parametrize("lazy, yacs", LAZY_TWINS)
def test_each_lazy_config_trains_as_its_yaml_twin(lazy, yacs):
    from detectron2.config import instantiate
    from detectron2.solver import LRMultiplier, build_optimizer

    from dropblock_det import solver
    from dropblock_det.config import dropblock_schedule_range
    from dropblock_det.engine.trainer import build_train_augmentation

    cfg, ycfg = lazy_cfg(CONFIGS / lazy), _yacs(yacs)
    assert cfg.train.max_iter == ycfg.SOLVER.MAX_ITER
    assert cfg.train.checkpointer.period == ycfg.SOLVER.CHECKPOINT_PERIOD
    assert cfg.train.eval_period == ycfg.TEST.EVAL_PERIOD
    assert cfg.train.seed == ycfg.SEED
    assert cfg.train.init_checkpoint == ycfg.MODEL.WEIGHTS
    loader = cfg.dataloader
    names = lambda value: [value] if isinstance(value, str) else list(value)  # noqa: E731
    assert names(loader.train.dataset.names) == list(ycfg.DATASETS.TRAIN)
    assert names(loader.test.dataset.names) == list(ycfg.DATASETS.TEST)
    assert loader.evaluator.dataset_name == loader.test.dataset.names
    assert loader.train.total_batch_size == ycfg.SOLVER.IMS_PER_BATCH
    assert loader.train.num_workers == loader.test.num_workers == ycfg.DATALOADER.NUM_WORKERS
    assert loader.train.mapper.image_format == loader.test.mapper.image_format == ycfg.INPUT.FORMAT
    assert _augmentations(instantiate(loader.train.mapper.augmentations)) == _augmentations(
        build_train_augmentation(ycfg))
    from detectron2.data import DatasetMapper

    assert _augmentations(instantiate(loader.test.mapper.augmentations)) == _augmentations(
        DatasetMapper(ycfg, is_train=False).augmentations)

    # The same parameter groups (weight decay off on norms), LR and momentum ...
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(2, 4))
    cfg.optimizer.params.model = model
    lazy_optimizer, yacs_optimizer = instantiate(cfg.optimizer), build_optimizer(ycfg, model)
    describe = lambda o: [(g["lr"], g["weight_decay"], g["momentum"], len(g["params"])) for g in o.param_groups]  # noqa: E731
    assert describe(lazy_optimizer) == describe(yacs_optimizer)
    # ... and the same LR at every iteration (warm-up, steps / cosine).
    lazy_lr = LRMultiplier(lazy_optimizer, instantiate(cfg.lr_multiplier), cfg.train.max_iter)
    yacs_lr = solver.build_lr_scheduler(ycfg, yacs_optimizer)
    max_iter = cfg.train.max_iter
    probes = sorted({1, 2, 149, 150, 151, 999, 1000, 1001, max_iter // 2, max_iter - 1}
                    | {s + d for s in ycfg.SOLVER.STEPS for d in (-1, 0, 1)})
    lrs = {}
    for iteration in range(max(probes) + 1):
        if iteration in probes:
            lrs[iteration] = (lazy_optimizer.param_groups[0]["lr"], yacs_optimizer.param_groups[0]["lr"])
        lazy_lr.step()
        yacs_lr.step()
    assert all(a == pytest.approx(b, rel=1e-12, abs=1e-15) for a, b in lrs.values()), lrs
    # The keep_prob ramp: over the whole training in both.
    hook = instantiate(cfg.train.dropblock_schedule)
    # end_iter None: the ramp ends at whatever max_iter the trainer runs to.
    assert (hook.schedule.start_iter, hook.schedule_for(123).end_iter, hook.schedule_for(max_iter).end_iter) == (
        0, 123, max_iter)
    assert dropblock_schedule_range(ycfg) == (0, max_iter)


def test_one_override_reaches_every_dropblock_and_the_baseline_is_keep_prob_one():
    from detectron2.config import instantiate

    from dropblock_det.layers import DropBlock2d, iter_regularizers

    model = _meta(lambda: instantiate(lazy_cfg(COCO, "dropblock.keep_prob=0.8", "dropblock.block_size=5").model))
    placed = [(name, m) for name, m in iter_regularizers(model)]
    # res4: 6 blocks x 4 positions, res5: 3 x 4, FPN: 3 lateral + 3 output + P6 + P7,
    # head: 2 towers x 4 convs.
    assert len(placed) == 24 + 12 + 8 + 8
    targets = {}
    for name, m in placed:
        key = name.split(".")[2] if name.startswith("backbone.bottom_up") else name.split(".")[0]
        targets.setdefault(key, set()).add(round(m.target_keep_prob, 9))
        assert isinstance(m, DropBlock2d) and m.block_size == 5
    # res4 at a quarter of res5's drop rate, everything else at the override.
    assert targets == {"res4": {0.95}, "res5": {0.8}, "backbone": {0.8}, "head": {0.8}}

    baseline = instantiate(lazy_cfg(SYNTHETIC, "dropblock.keep_prob=1.0").model).train()
    assert all(not m.active for _, m in iter_regularizers(baseline))


@pytest.mark.parametrize("kind", ["Dropout", "SpatialDropout"])
def test_one_override_swaps_the_regularizer_as_the_yaml_type_does(kind):
    # README: `dropblock.type=Dropout` swaps the regularizer at every location, as
    # MODEL.DROPBLOCK.TYPE in the yacs twin.
    from detectron2.config import instantiate
    from detectron2.modeling import build_model

    from dropblock_det.engine.config_checks import load_config

    lazy_model = instantiate(lazy_cfg(SYNTHETIC, f"dropblock.type={kind}").model)
    yacs_model = build_model(load_config(str(CONFIGS / LAZY_TWINS[0][1]), ["MODEL.DEVICE", "cpu", "MODEL.DROPBLOCK.TYPE", kind]))
    placed = _regularizers(lazy_model)
    assert placed and {t for t, *_ in placed.values()} == {kind}
    assert placed == _regularizers(yacs_model)


def test_the_config_saved_by_a_run_loads_back_to_the_same_model(tmp_path):
    from detectron2.config import LazyConfig, instantiate

    cfg = lazy_cfg(SYNTHETIC, "dropblock.keep_prob=0.85")
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    assert not (tmp_path / "config.yaml.pkl").exists()  # plain YAML: every node is a LazyCall
    again = lazy_cfg(tmp_path / "config.yaml")
    assert _regularizers(instantiate(again.model)) == _regularizers(instantiate(cfg.model))
    assert again.dataloader.evaluator.dataset_name == "synthetic_det_val"


@contextlib.contextmanager
def _coco_set_with_a_truncated_json(folder, name: str) -> Iterator[str]:
    """`name` registered as a COCO-format set whose annotation file, `folder`/<name>.json, is
    cut off mid-way; removed from the catalogs on exit."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    broken = folder / f"{name}.json"
    broken.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "wid')
    register_coco_instances(name, {}, str(broken), str(folder))
    try:
        yield name
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_corrupt_annotation_file_is_named_by_the_training_loader(tmp_path):
    # configs/common/data/coco_detection.py: "The loaders' errors name the image or
    # annotation file that fails", as train_net's loaders (naming_dataset_files) do.
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.lazy import do_train

    with _coco_set_with_a_truncated_json(tmp_path, "lazy_test_broken_annotations") as name:
        cfg = lazy_cfg(SYNTHETIC, f"dataloader.train.dataset.names={name}", "model.head.conv_dims=[64]",
                       f"train.output_dir={tmp_path / 'out'}")
        with pytest.raises(DatasetFileError, match=r"lazy_test_broken_annotations.*lazy_test_broken_annotations\.json"):
            do_train(cfg)


def test_the_lazy_class_count_is_checked_on_the_real_build_too():
    from dropblock_det.engine.lazy import build_lazy_model

    with pytest.raises(ValueError, match=r"^model\.num_classes=80, but dataloader\.train\.dataset\.names"):
        build_lazy_model(lazy_cfg(SYNTHETIC, "model.num_classes=80"))
    with pytest.raises(ValueError, match=r"^model\.num_classes=80, but dataloader\.test\.dataset\.names names 'synthetic_det_val'"):
        build_lazy_model(lazy_cfg(SYNTHETIC, "model.num_classes=80"), train=False)


def test_a_corrupt_annotation_file_is_named_by_the_evaluations_loader(tmp_path):
    # do_test's loader names the test set's files, not the training set's.
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.lazy import do_test

    with _coco_set_with_a_truncated_json(tmp_path, "lazy_test_broken_val_annotations") as name:
        cfg = lazy_cfg(SYNTHETIC, f"dataloader.test.dataset.names={name}", f"dataloader.evaluator.dataset_name={name}")
        with pytest.raises(DatasetFileError,
                           match=r"lazy_test_broken_val_annotations.*lazy_test_broken_val_annotations\.json"):
            do_test(cfg, torch.nn.Identity())
        del cfg.dataloader.evaluator
        assert do_test(cfg, torch.nn.Identity()) is None  # nothing to evaluate with: nothing loaded


@pytest.mark.filterwarnings("ignore:.*GradScaler")  # AMP on the CPU: the scaler disables itself
def test_do_train_runs_the_trainer_and_hooks_that_train_asks_for(tmp_path, monkeypatch):
    # train.amp.enabled, train.checkpointer (period, max_to_keep), train.eval_period and
    # train.log_period each reach the loop, and the DropBlock schedule hook runs first.
    from detectron2.engine import AMPTrainer, SimpleTrainer, hooks

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine.hooks import DropBlockScheduleHook
    from dropblock_det.engine.lazy import do_train

    started = []
    monkeypatch.setattr(SimpleTrainer, "train", lambda self, start, end: started.append((self, start, end)))
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        for amp in (False, True):
            cfg = lazy_cfg(SYNTHETIC, "model.head.conv_dims=[64]", "dataloader.train.total_batch_size=2",
                           "dataloader.train.num_workers=0", f"train.output_dir={tmp_path / 'run'}",
                           f"train.amp.enabled={amp}", "train.max_iter=30", "train.checkpointer.period=7",
                           "train.checkpointer.max_to_keep=3", "train.eval_period=11", "train.log_period=5")
            assert do_train(cfg) == {}
            trainer, start, end = started.pop()
            assert isinstance(trainer, AMPTrainer) is amp and (start, end) == (0, 30)
            assert isinstance(trainer._hooks[0], DropBlockScheduleHook)
            (checkpointing,) = [h for h in trainer._hooks if isinstance(h, hooks.PeriodicCheckpointer)]
            assert (checkpointing.period, checkpointing.max_to_keep) == (7, 3)
            assert [h._period for h in trainer._hooks if isinstance(h, hooks.EvalHook)] == [11]
            assert [h._period for h in trainer._hooks if isinstance(h, hooks.PeriodicWriter)] == [5]


def test_the_lazy_model_is_built_on_train_device():
    # Left where instantiate built it, a train.device=cuda run trained on the CPU, saying
    # nothing (detectron2's models move their inputs to their own device). The meta device
    # stands in for a GPU here.
    from dropblock_det.engine.lazy import build_lazy_model

    model = build_lazy_model(lazy_cfg(SYNTHETIC, "train.device=meta"))
    assert {p.device.type for p in model.parameters()} == {"meta"}


def _sem_seg_model(ignore_value=255):
    """A model with what build_lazy_train_loader reads of a DeepLab / SemSegFPN head: a
    3-class predictor conv and (unless None) its ignore_value."""
    head = torch.nn.Module()
    head.predictor = torch.nn.Conv2d(4, 3, 1)
    if ignore_value is not None:
        head.ignore_value = ignore_value
    model = torch.nn.Module()
    model.sem_seg_head = head
    return model


def test_the_label_range_comes_from_the_heads_predictor_and_ignore_value():
    from dropblock_det.engine.lazy import _sem_seg_label_range

    assert _sem_seg_label_range(_sem_seg_model()) == (3, 255, "model.sem_seg_head.num_classes=3, ignore_value=255")
    assert _sem_seg_label_range(_sem_seg_model(ignore_value=None)) is None  # nothing to check the labels against
    assert _sem_seg_label_range(torch.nn.Linear(1, 1)) is None


def _arguments(**kwargs):
    return kwargs


def test_a_sem_seg_training_loader_without_a_dataset_node_is_instantiated_as_it_is():
    # Labels are checked through dataloader.train.dataset and .mapper; a loader built some
    # other way is instantiated whole, as detectron2 does, not given a dataset=None.
    from detectron2.config import LazyCall as L
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy import build_lazy_train_loader

    cfg = OmegaConf.create({"dataloader": {"train": L(_arguments)(batches=2)}}, flags={"allow_objects": True})
    assert build_lazy_train_loader(cfg, _sem_seg_model()) == {"batches": 2}


def test_an_evaluation_without_an_evaluator_leaves_the_results_empty(tmp_path, monkeypatch):
    # do_test gives None without dataloader.evaluator: the loop's evaluations (each
    # train.eval_period and the last) keep no results, and do_train returns {}.
    from detectron2.engine import SimpleTrainer, hooks

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine.lazy import do_train

    evaluated = []

    def train(self, start, end):
        (evaluation,) = [h for h in self._hooks if isinstance(h, hooks.EvalHook)]
        evaluated.append(evaluation._func())

    monkeypatch.setattr(SimpleTrainer, "train", train)
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        cfg = lazy_cfg(SYNTHETIC, "model.head.conv_dims=[64]", "dataloader.train.total_batch_size=2",
                       "dataloader.train.num_workers=0", f"train.output_dir={tmp_path / 'run'}", "train.max_iter=1")
        del cfg.dataloader.evaluator
        assert do_train(cfg) == {} and evaluated == [None]


def test_the_lazy_training_loader_names_a_training_image_that_is_missing_before_the_first_step(tmp_path):
    # A RetinaNet's loader was instantiated whole, its dataset unchecked: the mapper failed on
    # the item only when the sampler reached it, anywhere in the first epoch.
    from conftest import tiny_synthetic_datasets
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.lazy import build_lazy_train_loader

    with tiny_synthetic_datasets(tmp_path, num_train=3, num_val=1) as root:
        missing = root / "synthetic_det" / "train" / "000001.jpg"
        missing.unlink()
        with pytest.raises(DatasetFileError, match=r"^dataloader\.train\.dataset\.names=\['synthetic_det_train'\] lists "
                                                   rf"an item whose file_name {missing} does not exist"):
            build_lazy_train_loader(lazy_cfg(SYNTHETIC), torch.nn.Identity())


# --- mutation run 55 ---
def test_the_label_range_keeps_a_heads_ignore_value_other_than_255():
    # A head ignoring another value (e.g. 0 for a set whose 0 is void) has its labels
    # checked against that value, not VOC's 255.
    from dropblock_det.engine.lazy import _sem_seg_label_range

    assert _sem_seg_label_range(_sem_seg_model(ignore_value=0)) == (
        3, 0, "model.sem_seg_head.num_classes=3, ignore_value=0")


def test_do_train_steps_the_lr_by_the_configs_lr_multiplier(tmp_path, monkeypatch):
    # Without the LRScheduler hook the run trained at the base lr throughout (no warm-up,
    # no decay), saying nothing.
    from detectron2.config import instantiate
    from detectron2.engine import SimpleTrainer, hooks

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine.lazy import do_train

    started = []
    monkeypatch.setattr(SimpleTrainer, "train", lambda self, start, end: started.append(self))
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        cfg = lazy_cfg(SYNTHETIC, "model.head.conv_dims=[64]", "dataloader.train.total_batch_size=2",
                       "dataloader.train.num_workers=0", f"train.output_dir={tmp_path / 'run'}", "train.max_iter=30")
        do_train(cfg)
    (stepping,) = [h for h in started.pop()._hooks if isinstance(h, hooks.LRScheduler)]
    assert type(stepping._scheduler) is type(instantiate(cfg.lr_multiplier))


def test_the_label_range_is_read_through_a_data_parallel_wrapper():
    # A caller passing its wrapped model (DataParallel here; DistributedDataParallel alike)
    # still has the labels checked.
    from dropblock_det.engine.lazy import _sem_seg_label_range

    assert _sem_seg_label_range(torch.nn.DataParallel(_sem_seg_model())) == (
        3, 255, "model.sem_seg_head.num_classes=3, ignore_value=255")


# --- mutation 56 ---
def test_do_test_logs_the_results_in_detectron2s_copypaste_format(monkeypatch):
    # As detectron2's own LazyConfig loop: the log's "copypaste:" lines of each evaluation
    # (dropping them passed every test).
    from detectron2.config import LazyCall as L
    from detectron2.evaluation import DatasetEvaluator

    from dropblock_det.engine import lazy

    results = {"bbox": {"AP": 12.5}}
    printed = []
    monkeypatch.setattr(lazy, "_build_loader", lambda cfg, split: [])
    monkeypatch.setattr(lazy, "inference_on_dataset", lambda model, loader, evaluator: results)
    monkeypatch.setattr(lazy, "print_csv_format", printed.append)
    cfg = lazy_cfg(SYNTHETIC)
    cfg.dataloader.evaluator = L(DatasetEvaluator)()
    assert lazy.do_test(cfg, torch.nn.Identity()) == results and printed == [results]


# --- mutation 58L ---
def test_do_train_wraps_the_model_for_ddp_with_train_ddp_and_trains_the_wrapped_model(tmp_path, monkeypatch):
    # In one process create_ddp_model returns the model as it is, so dropping the wrapping
    # (or train.ddp's broadcast_buffers / find_unused_parameters) passed every test: a
    # multi-GPU run trained each process's copy apart, or failed on an unused parameter.
    from detectron2.engine import SimpleTrainer

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine import lazy

    wrapped, started = [], []

    def create_ddp_model(model, **kwargs):
        wrapper = torch.nn.Module()
        wrapper.module = model
        wrapped.append((model, kwargs, wrapper))
        return wrapper

    monkeypatch.setattr(lazy, "create_ddp_model", create_ddp_model)
    monkeypatch.setattr(SimpleTrainer, "train", lambda self, start, end: started.append(self))
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        cfg = lazy_cfg(SYNTHETIC, "model.head.conv_dims=[64]", "dataloader.train.total_batch_size=2",
                       "dataloader.train.num_workers=0", f"train.output_dir={tmp_path / 'run'}", "train.max_iter=3",
                       "train.ddp.find_unused_parameters=True")
        lazy.do_train(cfg)
    ((model, kwargs, wrapper),) = wrapped
    assert kwargs == {"broadcast_buffers": False, "find_unused_parameters": True, "fp16_compression": False}
    (trainer,) = started
    assert trainer.model is wrapper
    # The optimizer holds the parameters of the model inside (as detectron2's loop builds it).
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}


def test_a_resumed_lazy_run_continues_from_the_checkpoints_iteration_with_its_optimizer_state(tmp_path, monkeypatch):
    # A resume that loaded the weights but not the trainer's state (SGD's momentum, the
    # iteration) restarted the momentum from zero mid-run; the tool's end-to-end test reads
    # only the iterations and the LR.
    from detectron2.engine import SimpleTrainer

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine.lazy import do_train

    opts = ["model.head.conv_dims=[64]", "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
            "dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
            "dataloader.train.mapper.augmentations.0.max_size=64", f"train.output_dir={tmp_path / 'run'}"]
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        cfg = lazy_cfg(SYNTHETIC, *opts, "train.max_iter=2")
        del cfg.dataloader.evaluator
        do_train(cfg)
        saved = torch.load(tmp_path / "run" / "model_final.pth", map_location="cpu", weights_only=False)
        assert saved["iteration"] == 1
        started = []
        monkeypatch.setattr(SimpleTrainer, "train", lambda self, start, end: started.append((self, start, end)))
        cfg = lazy_cfg(SYNTHETIC, *opts, "train.max_iter=4")
        do_train(cfg, resume_from=str(tmp_path / "run" / "model_final.pth"))
    ((trainer, start, end),) = started
    assert (start, end) == (2, 4)
    state, saved_state = trainer.optimizer.state_dict()["state"], saved["trainer"]["optimizer"]["state"]
    assert state and sorted(state) == sorted(saved_state)
    for index, buffers in saved_state.items():
        for name, value in buffers.items():
            assert torch.equal(state[index][name], value), (index, name)


# --- stop 59: mutation 58L's Z32 ---
def test_do_train_runs_the_training_checks_of_the_model_before_the_loader(monkeypatch):
    # do_train is also called without the tool, which checks the config first: its own build
    # of the model runs the training-only checks (mutation 58L's Z32 built it with train=False,
    # and a DropBlock impl='triton' on a device without Triton went on to the data loader).
    from dropblock_det.engine import lazy
    from dropblock_det.layers import triton_unavailable_reason

    if not triton_unavailable_reason("cpu"):
        pytest.skip("Triton's kernels run on this CPU")
    monkeypatch.setattr(lazy, "build_lazy_train_loader", lambda *args: pytest.fail("the loader was built"))
    with pytest.raises(ValueError, match=r"model\.backbone\.bottom_up\.res4\.0\.dropblock_conv1: impl='triton'"):
        lazy.do_train(lazy_cfg(SYNTHETIC, "dropblock.impl=triton", "model.head.conv_dims=[64]"))
