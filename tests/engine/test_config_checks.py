"""The checks of a yacs config before a run (dropblock_det/engine/config_checks.py): config
loading errors, the model, the datasets and their classes, devices and processes, solver and
input values, and a --resume against its checkpoint; each names the key."""
import re
import warnings

import numpy as np
import pytest
import torch

from conftest import CONFIGS, LAZY_TWINS, REPO, SYNTH_CONFIG, lazy_cfg, own_coco_set, synthetic_cfg


@pytest.mark.parametrize("opts", [["MODEL.DROPBLOCK.KEEP_PROB=0.8"], ["SOLVER.MAX_ITER=5", "model.dropblock.keep_prob=0.8"]])
def test_an_opt_written_key_equals_value_is_told_to_be_a_key_value_pair(opts):
    # yacs read it as a key: "Non-existent key: MODEL.DROPBLOCK.KEEP_PROB=0.8 (did you mean
    # MODEL.DROPBLOCK.KEEP_PROB?)", or alone as an odd number of opts.
    with pytest.raises(ValueError, match=rf"^command-line opt {re.escape(repr(opts[0]))}: yacs opts are KEY VALUE "
                                         r"pairs separated by a space \((MODEL\.DROPBLOCK\.KEEP_PROB 0\.8|SOLVER\.MAX_ITER 5)\); "
                                         r"key=value is the form of a LazyConfig's overrides$"):
        synthetic_cfg(*opts)
    # A value holding "=" is a value, also where its text before "=" is a key's name (it was
    # refused as the opt 'seed=3', "(SEED 3)").
    assert synthetic_cfg("OUTPUT_DIR", "out/kp=0.9").OUTPUT_DIR == "out/kp=0.9"
    for value in ("seed=3", "solver.base_lr=0.02"):
        assert synthetic_cfg("OUTPUT_DIR", value, "SOLVER.MAX_ITER", 5).OUTPUT_DIR == value


@pytest.mark.parametrize("opts, shown", [
    # The key as yacs needs it (upper case), not as typed.
    (["model.dropblock.keep_prob=0.8", "SOLVER.MAX_ITER", "5"], "MODEL.DROPBLOCK.KEEP_PROB 0.8"),
    # The value is all after the first "=".
    (["SOLVER.MAX_ITER", "5", "OUTPUT_DIR=out/kp=0.9"], "OUTPUT_DIR out/kp=0.9"),
    # A key that is no yacs key: each of its closest keys, in order.
    (["SOLVER.MAX_ITERS=100"], "SOLVER.MAX_ITER 100 or SOLVER.WARMUP_ITERS 100"),
    (["num_classes=3"], "MODEL.ROI_HEADS.NUM_CLASSES 3 or MODEL.SEM_SEG_HEAD.NUM_CLASSES 3 or MODEL.RETINANET.NUM_CLASSES 3"),
])
def test_an_opt_written_key_equals_value_is_shown_as_the_pair_to_write(opts, shown):
    with pytest.raises(ValueError, match=rf"^command-line opt {re.escape(repr(opts[-1] if '=' in opts[-1] else opts[0]))}: "
                                         rf".*separated by a space \({re.escape(shown)}\); "):
        synthetic_cfg(*opts)


@pytest.mark.parametrize("opt, shown", [
    # A LazyConfig override given to the yacs tool: "got an odd number" of opts, naming no key.
    ("train.max_iter=100", r"\(SOLVER\.MAX_ITER 100\)"),
    ("dropblock.keep_prob=0.8", r"\(MODEL\.DROPBLOCK\.KEEP_PROB 0\.8\)"),
    ("dataloader.train.total_batch_size=4", r"\(SOLVER\.IMS_PER_BATCH 4\)"),
    ("foo.bar=1", r"\(this config has no key 'foo\.bar'\)"),
    # The LazyConfig key in upper case (a yacs habit), and one with a list index.
    ("TRAIN.MAX_ITER=100", r"\(SOLVER\.MAX_ITER 100\)"),
    ("dataloader.train.mapper.augmentations.0.max_size=64",
     r"\(this config has no key 'dataloader\.train\.mapper\.augmentations\.0\.max_size'\)"),
    # The whole tail is matched, not its last key (ENABLED ends INPUT.CUTOUT's too); a group of
    # keys takes no value.
    ("crop.enabled=True", r"\(INPUT\.CROP\.ENABLED True\)"),
    ("dropblock.schedule=3", r"\(this config has no key 'dropblock\.schedule'\)"),
])
def test_a_lazy_config_override_is_told_the_yacs_pair_to_write(opt, shown):
    with pytest.raises(ValueError, match=rf"^command-line opt {re.escape(repr(opt))}: yacs opts are KEY VALUE pairs "
                                         rf"separated by a space {shown}; key=value is the form of a LazyConfig's "
                                         r"overrides \(tools/lazyconfig_train_net\.py trains a LazyConfig\)$"):
        synthetic_cfg(opt)


@pytest.mark.parametrize("key, named", [
    # A LazyConfig's key as a yacs KEY VALUE pair: yacs said only "Non-existent key: optimizer.lr".
    ("optimizer.lr", "SOLVER.BASE_LR"),
    ("train.init_checkpoint", "MODEL.WEIGHTS"),
    ("dataloader.train.num_workers", "DATALOADER.NUM_WORKERS"),
    # A key's tail, case aside, where the config has it under another node.
    ("dropblock.block_size", "MODEL.DROPBLOCK.BLOCK_SIZE"),
    ("end_iter", "MODEL.DROPBLOCK.SCHEDULE.END_ITER"),
])
def test_a_lazy_config_key_given_to_the_yacs_tool_names_the_yacs_key(key, named):
    with pytest.raises(KeyError, match=rf"Non-existent key: {re.escape(key)} \(did you mean {re.escape(named)}[,?]"):
        synthetic_cfg(key, "2")


def test_a_value_holding_an_equals_sign_where_a_key_goes_is_not_taken_for_an_override():
    # A value left out before it puts "out/kp=0.9" where a key goes: not a key's spelling,
    # so the opts are counted, not shown as the pair 'out/kp 0.9' of a LazyConfig override.
    with pytest.raises(ValueError, match=r"^command-line opts must be KEY VALUE pairs, got an odd number: "
                                         r"\['MODEL\.WEIGHTS', 'OUTPUT_DIR', 'out/kp=0\.9'\] \('OUTPUT_DIR' is an "
                                         r"opt of its own: MODEL\.WEIGHTS was given no value before it\)$"):
        synthetic_cfg("MODEL.WEIGHTS", "OUTPUT_DIR", "out/kp=0.9")


@pytest.mark.parametrize("opts, named", [
    # Typed keys refuse the next opt as their value: yacs said only "Type mismatch", and a list
    # key was told to write "['MODEL.DEVICE=cpu']".
    (["SOLVER.MAX_ITER", "MODEL.DEVICE=cpu"], "'MODEL.DEVICE=cpu' is an opt of its own: SOLVER.MAX_ITER was given"),
    (["DATASETS.TRAIN", "SOLVER.MAX_ITER=3"], "'SOLVER.MAX_ITER=3' is an opt of its own: DATASETS.TRAIN was given"),
    (["SOLVER.BASE_LR", "SOLVER.MAX_ITER", "3", "4"], "'SOLVER.MAX_ITER' is an opt of its own: SOLVER.BASE_LR"),
    # An odd count names the first key whose value is a key.
    (["SOLVER.MAX_ITER", "3", "SOLVER.BASE_LR", "SOLVER.IMS_PER_BATCH", "2"],
     r"odd number: .* \('SOLVER\.IMS_PER_BATCH' is an opt of its own: SOLVER\.BASE_LR was given no value before it\)$"),
])
def test_an_opt_given_as_the_value_of_the_key_before_it_is_named(opts, named):
    with pytest.raises(ValueError, match=named):
        synthetic_cfg(*opts)


def test_a_str_keys_value_spelt_as_an_opt_is_taken_as_it_is():
    # A run folder named after its override is a valid OUTPUT_DIR; yacs gives it no type to refuse.
    assert synthetic_cfg("OUTPUT_DIR", "SOLVER.BASE_LR=0.1").OUTPUT_DIR == "SOLVER.BASE_LR=0.1"
    # Nor is a value's near miss of a key an opt: only the config's own keys are.
    with pytest.raises(ValueError, match=r"Type mismatch .*for config key: SOLVER\.MAX_ITER$"):
        synthetic_cfg("SOLVER.MAX_ITER", "SOLVER.MAX_ITERS=3")


def test_yacs_keys_for_a_lazy_key_are_the_configs_own_shortest_first_and_at_most_n():
    from detectron2.config import CfgNode

    from dropblock_det.engine.config_checks import yacs_keys_for_lazy_key

    cfg = CfgNode({"MODEL": {"HEAD": {"DEEP": {"ENABLED": True}}}, "INPUT": {"CROP": {"ENABLED": True}},
                   "TEST": {"ENABLED": True}, "SOLVER": {"MAX_ITER": 5}})
    # YACS_TO_LAZY_KEYS' yacs key only where this config has it (no SOLVER.BASE_LR here).
    assert yacs_keys_for_lazy_key(cfg, "train.max_iter") == ["SOLVER.MAX_ITER"]
    assert yacs_keys_for_lazy_key(cfg, "optimizer.lr") == []
    # The keys ending with it, case aside: the shortest first, at most n.
    assert yacs_keys_for_lazy_key(cfg, "enabled") == ["TEST.ENABLED", "INPUT.CROP.ENABLED", "MODEL.HEAD.DEEP.ENABLED"]
    assert yacs_keys_for_lazy_key(cfg, "Enabled", n=2) == ["TEST.ENABLED", "INPUT.CROP.ENABLED"]
    assert yacs_keys_for_lazy_key(cfg, "deep.enabled") == ["MODEL.HEAD.DEEP.ENABLED"]
    # A group of keys is not a key.
    assert yacs_keys_for_lazy_key(cfg, "head.deep") == []


def test_odd_number_of_opts_is_refused():
    with pytest.raises(ValueError, match="odd number"):
        synthetic_cfg("SOLVER.MAX_ITER")
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER"):
        synthetic_cfg("SOLVER.MAX_ITER", "'many'")


@pytest.mark.parametrize("opts, match", [
    # yacs named the key only: "Non-existent key: SOLVER.MAX_ITERS".
    (("SOLVER.MAX_ITERS", "3"), r"Non-existent key: SOLVER\.MAX_ITERS \(did you mean SOLVER\.MAX_ITER[,?]"),
    # Every close spelling, not the closest only.
    (("SOLVER.MAX_ITERS", "3"), r'\(did you mean SOLVER\.MAX_ITER, SOLVER\.WARMUP_ITERS\?\)"$'),
    # A typo in a key typed in lower case: the parts before it in the config's case too.
    (("model.dropblok.block_size", "5"), r'\(did you mean MODEL\.DROPBLOCK\.BLOCK_SIZE\?\)"$'),
    (("model.dropblock.schedule.end_itr", "5"), r'\(did you mean MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER\?\)"$'),
    (("MODEL.DROPBLOCK.KEEP_PROBB", "0.8"), r'\(did you mean MODEL\.DROPBLOCK\.KEEP_PROB\?\)"$'),
    # yacs keys are upper case; the rest of the key is completed under the closest node.
    (("model.dropblock.keep_prob", "0.8"), r'\(did you mean MODEL\.DROPBLOCK\.KEEP_PROB\?\)"$'),
    (("MODEL.DROPBLOK.BLOCK_SIZE", "5"), r'\(did you mean MODEL\.DROPBLOCK\.BLOCK_SIZE\?\)"$'),
    (("MODEL.DROPBLOK.BLOCK_SIZ", "5"), r'\(did you mean MODEL\.DROPBLOCK\?\)"$'),
    # A LazyConfig key's yacs key first, then the near names; each named once.
    (("eval_period", "5"), r'\(did you mean TEST\.EVAL_PERIOD, VIS_PERIOD\?\)"$'),
    (("model.roi_heads.num_classes", "3"), r'\(did you mean MODEL\.ROI_HEADS\.NUM_CLASSES\?\)"$'),
    (("ZZZQX", "5"), r'Non-existent key: ZZZQX"$'),
    # yacs tested `in` on the value: a bare "TypeError: argument of type 'float' is not iterable".
    (("SOLVER.BASE_LR.MIN", "0.1"), r"^\"command-line opt SOLVER\.BASE_LR\.MIN='0\.1': SOLVER\.BASE_LR is a value "
                                    r"\(0\.02\), not a group of keys\"$"),
    (("MODEL.DROPBLOCK.KEEP_PROB.A.B", "1"), r"MODEL\.DROPBLOCK\.KEEP_PROB is a value \(0\.9\), not a group"),
])
def test_an_unknown_opt_key_names_the_closest_keys(opts, match):
    with pytest.raises(KeyError, match=match):
        synthetic_cfg(*opts)


def test_a_renamed_key_is_told_its_new_name_by_yacs_alone():
    # yacs' own message for a key registered as renamed says what to write: no near names.
    from dropblock_det.engine.config_checks import load_config

    def renamed(cfg):
        cfg.register_renamed_key("MODEL.DROPBLOCK.PROB", "MODEL.DROPBLOCK.KEEP_PROB")

    with pytest.raises(KeyError, match=r"^\"command-line opt MODEL\.DROPBLOCK\.PROB='0\.8': Key MODEL\.DROPBLOCK\.PROB was "
                                       r"renamed to MODEL\.DROPBLOCK\.KEEP_PROB; please update your config\.\"$"):
        load_config(str(SYNTH_CONFIG), ["MODEL.DROPBLOCK.PROB", "0.8"], extra_setup=renamed)


def test_an_unknown_key_in_a_config_file_names_the_closest_keys(tmp_path):
    from dropblock_det.engine.config_checks import load_config

    typo = tmp_path / "typo.yaml"
    typo.write_text(f"_BASE_: {SYNTH_CONFIG}\nMODEL:\n  RETINANET:\n    NUM_CLASS: 3\n")
    with pytest.raises(KeyError, match=r"Non-existent config key: MODEL\.RETINANET\.NUM_CLASS \(did you mean "
                                       r"MODEL\.RETINANET\.NUM_CLASSES[,?].*\(add_dropblock_config and "):
        load_config(str(typo))
    # detectron2's configs before v1 named the weights MODEL.WEIGHT.
    old = tmp_path / "old.yaml"
    old.write_text(f"_BASE_: {SYNTH_CONFIG}\nMODEL:\n  WEIGHT: x.pkl\n")
    with pytest.raises(KeyError, match=r"Non-existent config key: MODEL\.WEIGHT \(did you mean MODEL\.WEIGHTS\?\)"):
        load_config(str(old))
    # A value of the wrong type names the file too (yacs names the key only).
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"_BASE_: {SYNTH_CONFIG}\nSOLVER:\n  MAX_ITER: many\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(wrong))}': Type mismatch .*SOLVER\.MAX_ITER$"):
        load_config(str(wrong))


@pytest.mark.parametrize("opts, advice", [
    # yacs takes a value of the default's type only: "1" for a float key was "Type mismatch
    # (<class 'float'> vs. <class 'int'>)" and nothing on how to write it.
    (["MODEL.DROPBLOCK.KEEP_PROB", "1"], r"\(write 1\.0: a float key's value needs a decimal point\)$"),
    (["MODEL.DROPBLOCK.BLOCK_SIZE", "3.0"], r"\(write 3: an integer key\)$"),
    (["MODEL.DROPBLOCK.RESNET.STAGES", "res4"], r"\(write a list: \"\['res4'\]\"\)$"),
    (["MODEL.DROPBLOCK.BLOCK_SIZE", "3.5"], r"for config key: MODEL\.DROPBLOCK\.BLOCK_SIZE$"),  # no rewrite keeps it
])
def test_a_value_of_another_type_than_the_keys_is_shown_how_to_write_it(opts, advice):
    from dropblock_det.engine.config_checks import load_config

    with pytest.raises(ValueError, match=rf"^command-line opt {re.escape(opts[0])}='{re.escape(opts[1])}': Type mismatch "
                                         rf".*{advice}"):
        load_config(SYNTH_CONFIG, opts)


def test_detectron2s_own_retinanet_with_a_head_norm_it_cannot_build_is_refused_naming_the_key():
    # v0.6's RetinaNetHead builds GN as GroupNorm(32, 1): a bare "num_channels (1) must be
    # divisible by num_groups (32)". Current detectron2 builds it: the config is accepted.
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

    from dropblock_det.engine.config_checks import check_model_config

    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "RetinaNet", "MODEL.DROPBLOCK.RESNET.ENABLED", "False")
    assert cfg.MODEL.RETINANET.NORM == "GN"
    try:
        RetinaNetHead(input_shape=[type("S", (), {"channels": 32})()], num_classes=1, num_anchors=1,
                      conv_dims=[32], norm="GN")
    except ValueError:
        with pytest.raises(ValueError, match=r"^MODEL\.RETINANET\.NORM='GN': this detectron2's own RetinaNetHead "
                                             r".*num_groups.*use MODEL\.META_ARCHITECTURE 'DropBlockRetinaNet'"):
            check_model_config(cfg)
    else:
        assert type(check_model_config(cfg)).__name__ == "RetinaNet"


def test_a_bad_lr_schedule_is_refused_before_anything_is_built():
    from dropblock_det.engine.config_checks import check_lr_scheduler

    check_lr_scheduler(synthetic_cfg())
    check_lr_scheduler(synthetic_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR"))
    check_lr_scheduler(synthetic_cfg("SOLVER.MAX_ITER", "1"))  # one iteration is a schedule
    with pytest.raises(ValueError, match=r"SOLVER\.LR_SCHEDULER_NAME='WarmupCosine'.*Unknown LR scheduler"):
        check_lr_scheduler(synthetic_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupCosine"))
    with pytest.raises(ValueError, match=r"'WarmupPolyLR'.*SOLVER\.WARMUP_METHOD.*'exp'"):
        check_lr_scheduler(synthetic_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR", "SOLVER.WARMUP_METHOD", "exp"))
    with pytest.raises(ValueError, match=r"SOLVER\.MAX_ITER=0"):
        check_lr_scheduler(synthetic_cfg("SOLVER.MAX_ITER", "0"))


@pytest.mark.parametrize("opts, match", [
    (["SOLVER.BASE_LR", "-0.1"], r"^SOLVER\.BASE_LR=-0\.1: the optimizer .*Invalid learning rate: -0\.1$"),
    (["SOLVER.MOMENTUM", "-1.0"], r"^SOLVER\.MOMENTUM=-1\.0: .*Invalid momentum value: -1\.0$"),
    (["SOLVER.WEIGHT_DECAY", "-1.0"], r"^SOLVER\.WEIGHT_DECAY=-1\.0: .*Invalid weight_decay value"),
    (["SOLVER.NESTEROV", "True", "SOLVER.MOMENTUM", "0.0"], r"^SOLVER\.NESTEROV=True: .*requires a momentum"),
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norms"],
     r"^SOLVER\.CLIP_GRADIENTS\.CLIP_TYPE='norms': .*not a valid GradientClipType"),
    (["DATALOADER.NUM_WORKERS", "-1"], r"^DATALOADER\.NUM_WORKERS=-1: expected a number of loader processes >= 0$"),
])
def test_solver_and_loader_values_torch_refuses_late_are_refused_before_the_run(opts, match):
    # SGD and the DataLoader refuse them only once the trainer builds them, after the run's
    # config and log are in OUTPUT_DIR; the optimizer is built on the meta-device model.
    from dropblock_det.engine.config_checks import check_config_before_run, check_optimizer

    with pytest.raises(ValueError, match=match):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)
    assert isinstance(check_optimizer(synthetic_cfg()), torch.optim.SGD)


def test_impl_triton_is_checked_against_the_device_for_training_only(monkeypatch):
    from dropblock_det.engine.config_checks import check_config_before_run

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfg = synthetic_cfg("MODEL.DROPBLOCK.IMPL", "triton", "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "()", "DATASETS.TEST", "()")
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.IMPL='triton'.*MODEL\.DEVICE='cpu'"):
        check_config_before_run(cfg)
    check_config_before_run(cfg, train=False)  # evaluation: DropBlock is the identity


@pytest.mark.parametrize("opts, match", [
    # 10 iterations for 1 process are 2 for 4 (round(2.5)): the ramp from 8 starts at 2 = MAX_ITER.
    (["SOLVER.MAX_ITER", "10", "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "8"],
     r"SCHEDULE\.START_ITER.*, once scaled to SOLVER\.MAX_ITER=2 \(SOLVER\.REFERENCE_WORLD_SIZE=1 scales"),
    (["SOLVER.MAX_ITER", "2"], r"SOLVER\.MAX_ITER=2 becomes 0 iterations"),  # round(0.5)
    (["SOLVER.REFERENCE_WORLD_SIZE", "3"], r"SOLVER\.IMS_PER_BATCH=2 is not divisible by SOLVER\.REFERENCE_WORLD_SIZE=3"),
    # A negative one was said to be a reference the batch "is not divisible by" (2 by -2).
    (["SOLVER.REFERENCE_WORLD_SIZE", "-2"], r"^SOLVER\.REFERENCE_WORLD_SIZE=-2: expected the number of processes the "
                                            r"config was set for \(0: no scaling\)$"),
])
def test_a_config_that_cannot_be_scaled_to_this_runs_processes_is_refused_before_the_run(monkeypatch, opts, match):
    # DropBlockTrainer scales the config to the world size when it is built, after the tool
    # has moved an earlier run's files aside: the tools check the scaled config first.
    from dropblock_det.engine import config_checks

    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 4)
    cfg = synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2", *opts)
    with pytest.raises(ValueError, match=match):
        config_checks.check_config_before_run(cfg, check_files=False)
    # Scaled fine: only the last check, 4 training processes on the config's CPU, is left.
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 4 training processes"):
        config_checks.check_config_before_run(synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2",
                                             "SOLVER.MAX_ITER", "100"), check_files=False)


def test_a_batch_indivisible_by_the_processes_it_was_set_for_is_refused(monkeypatch):
    # REFERENCE_WORLD_SIZE equal to the world size scales nothing: the batch must still
    # split over the processes (detectron2 asserts it only once the data loader is built).
    from dropblock_det.engine import config_checks

    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 2)
    for reference in ("0", "2"):
        with pytest.raises(ValueError, match=r"^SOLVER\.IMS_PER_BATCH=3: not divisible by the 2 processes$"):
            config_checks.check_config_before_run(synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", reference, "SOLVER.IMS_PER_BATCH", "3"),
                                                  check_files=False)
        # A batch that divides: only the last check, 2 training processes on the config's CPU, is left.
        with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 2 training processes"):
            config_checks.check_config_before_run(synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", reference, "SOLVER.IMS_PER_BATCH", "4"),
                                                  check_files=False)


def test_training_in_several_processes_on_the_cpu_is_refused_before_the_run_and_evaluating_is_not(monkeypatch):
    # detectron2's trainer gives each process's model its GPU in DistributedDataParallel:
    # `--num-gpus 2 MODEL.DEVICE cpu` failed there with torch's "device_ids ... only work with
    # ... GPU modules", after data loading and after config.yaml and log.txt were written.
    from dropblock_det.engine import config_checks

    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 2 training processes \(--num-gpus x "
                                         r"--num-machines\).*--num-gpus 1"):
        config_checks.check_config_before_run(synthetic_cfg(), check_files=False)
    config_checks.check_config_before_run(synthetic_cfg(), train=False, check_files=False)  # no DDP: runs there
    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 1)
    config_checks.check_config_before_run(synthetic_cfg(), check_files=False)


def test_a_test_set_named_twice_is_refused_and_a_repeated_training_set_is_not():
    # detectron2 keys the evaluation results by name: one entry's would stand for both (the
    # main job then found no per-set results and printed n/a). Repeating a training set is
    # oversampling it.
    from dropblock_det.engine.config_checks import check_config_before_run

    with pytest.raises(ValueError, match=r"^DATASETS\.TEST=\('synthetic_det_val', 'synthetic_det_val'\) names "
                                         r"'synthetic_det_val' more than once"):
        check_config_before_run(synthetic_cfg("DATASETS.TEST", "('synthetic_det_val','synthetic_det_val')"), check_files=False)
    check_config_before_run(synthetic_cfg("DATASETS.TRAIN", "('synthetic_det_train','synthetic_det_train')"), check_files=False)


@pytest.mark.parametrize("opts, match", [
    (["MODEL.DEVICE", "gpu"], r"^MODEL\.DEVICE='gpu': not a device torch knows"),
    (["MODEL.DEVICE", "cuda:x"], r"^MODEL\.DEVICE='cuda:x': not a device torch knows"),
    (["MODEL.DEVICE", "cuda:64"], r"^MODEL\.DEVICE='cuda:64': torch sees (no CUDA device|\d+ CUDA device)"),
    (["MODEL.DEVICE", "cpu", "SOLVER.AMP.ENABLED", "True"],
     r"^SOLVER\.AMP\.ENABLED=True needs a CUDA MODEL\.DEVICE, got 'cpu'$"),
])
def test_a_device_the_run_cannot_use_is_refused_before_anything_is_written(opts, match):
    # detectron2 fails moving the model (or, for AMP, at the first step) with a message
    # naming no key, after the output folder has the run's config and log.
    from dropblock_det.engine.config_checks import check_config_before_run

    with pytest.raises(ValueError, match=match):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)
    if "SOLVER.AMP.ENABLED" in opts:  # an evaluation does not use AMP
        check_config_before_run(synthetic_cfg(*opts), train=False, check_files=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cuda': torch sees no CUDA device here; use 'cpu'$"):
            check_config_before_run(synthetic_cfg("MODEL.DEVICE", "cuda"), train=False, check_files=False)


def test_a_cuda_device_index_past_the_devices_torch_sees_is_refused_naming_the_key(monkeypatch):
    # cuda:2 on a machine with 2 GPUs (cuda:0, cuda:1) failed moving the model there, after
    # the run's files were written.
    from dropblock_det.engine.config_checks import checked_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert checked_device("MODEL.DEVICE", "cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cuda:2': torch sees 2 CUDA device\(s\) here$"):
        checked_device("MODEL.DEVICE", "cuda:2")


@pytest.mark.parametrize("opts, match", [
    # The synthetic set has 3 classes: with 80 the run trained fully and its evaluation failed
    # ("A prediction has class=48, but the dataset only has 3 classes"); with 2 class id 2
    # trained as background, silently.
    (["MODEL.RETINANET.NUM_CLASSES", "80"],
     r"^MODEL\.RETINANET\.NUM_CLASSES=80, but DATASETS\.TRAIN names 'synthetic_det_train', which has 3 classes "
     r"\(its metadata thing_classes: \['circle', 'square', 'triangle'\]\): set MODEL\.RETINANET\.NUM_CLASSES to 3 "
     r"\(.*evaluation fails after the whole training\)$"),
    (["MODEL.RETINANET.NUM_CLASSES", "2"], r"^MODEL\.RETINANET\.NUM_CLASSES=2, .*which has 3 classes.*as background"),
    # An image resized to nothing: "height and width must be > 0" naming a val image, after training.
    (["INPUT.MAX_SIZE_TEST", "0"], r"^INPUT\.MIN_SIZE_TEST=96 with INPUT\.MAX_SIZE_TEST=0: a longest edge < 1"),
    (["INPUT.MIN_SIZE_TEST", "-5"], r"^INPUT\.MIN_SIZE_TEST=-5 with INPUT\.MAX_SIZE_TEST=96: a negative shortest edge"),
    # At the first step, naming a train image.
    # (PIL's words differ by version: "conversion from RGB to FOO not supported", "image has wrong mode")
    (["INPUT.FORMAT", "FOO"], r"^INPUT\.FORMAT='FOO': detectron2's convert_PIL_to_numpy refuses it \(ValueError: .*\)"),
    (["INPUT.FORMAT", "RGBA"], r"^INPUT\.FORMAT='RGBA': it gives 4-channel images, the model normalizes 3 channels "
                               r".*MODEL\.PIXEL_MEAN has 3 values"),
    (["INPUT.FORMAT", "I"], r"^INPUT\.FORMAT='I': detectron2 reads it as images without a channel axis"),
    # At the first step, "The size of tensor a (3) must match the size of tensor b (2)"; a std
    # of 0 made the inputs infinite and the losses NaN.
    (["MODEL.PIXEL_STD", "[57.0, 57.0]"], r"^MODEL\.PIXEL_STD=\[57\.0, 57\.0\]: 2 value\(s\) for the 3 channels of the "
                                          r"pixel mean \(one per channel\) \(MODEL\.PIXEL_MEAN=\[103\.53, 116\.28, 123\.675\]\)$"),
    (["MODEL.PIXEL_STD", "[57.0, 0.0, 57.0]"], r"^MODEL\.PIXEL_STD=\[57\.0, 0\.0, 57\.0\]: a std of 0 divides"),
    # After the output folder was prepared and config.yaml written.
    (["DATALOADER.SAMPLER_TRAIN", "Foo"], r"^DATALOADER\.SAMPLER_TRAIN='Foo': not a sampler .* expected one of "
                                          r"\['TrainingSampler', 'RepeatFactorTrainingSampler', 'RandomSubsetTrainingSampler'"),
    # A bare "FileNotFoundError: ''" from archive_previous_run.
    (["OUTPUT_DIR", ""], r"^OUTPUT_DIR='': expected a folder"),
])
def test_inputs_that_failed_late_naming_a_file_are_refused_by_key_before_the_run(opts, match):
    from dropblock_det.engine.config_checks import check_config_before_run

    with pytest.raises(ValueError, match=match):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)
    if opts[0] != "DATALOADER.SAMPLER_TRAIN":  # an evaluation uses these too (not the training sampler)
        with pytest.raises(ValueError, match=match.replace("DATASETS\\.TRAIN names 'synthetic_det_train'",
                                                           "DATASETS\\.TEST names 'synthetic_det_val'")):
            check_config_before_run(synthetic_cfg(*opts), train=False, check_files=False)
    else:
        check_config_before_run(synthetic_cfg(*opts), train=False, check_files=False)


@pytest.mark.parametrize("opts", [
    ["INPUT.MIN_SIZE_TEST", "0", "INPUT.MAX_SIZE_TEST", "0"],  # detectron2's "no resizing"
    ["INPUT.FORMAT", "RGB"], ["INPUT.FORMAT", "L"],  # one channel broadcasts to PIXEL_MEAN's three
    ["INPUT.FORMAT", "YUV-BT.601"],
    ["DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler"],
    ["MODEL.PIXEL_MEAN", "[0.0, 0.0, 0.0]", "MODEL.PIXEL_STD", "[-1.0, 2.0, 3.0]"],  # odd, but it normalizes
])
def test_inputs_detectron2_accepts_are_not_refused(opts):
    from dropblock_det.engine.config_checks import check_config_before_run

    check_config_before_run(synthetic_cfg(*opts), check_files=False)


@pytest.mark.parametrize("crop_type, size", [
    ("relative", [1.0, 1.0]), ("relative_range", [0.5, 1.0]),  # up to the whole image
    ("absolute", [32, 48]), ("absolute_range", [32, 32]),  # a range of one size
])
def test_crops_detectron2_takes_are_not_refused(crop_type, size):
    from dropblock_det.engine.config_checks import check_crop

    check_crop(crop_type, size)


@pytest.mark.parametrize("crop_type, size", [
    ("relative", [0.5, 0.5, 0.5]), ("absolute", [32]),  # not (height, width): detectron2 unpacks two
    ("absolute", [True, 32]), ("relative", [0.5, False]),  # a bool is no size
    ("absolute", [32.5, 32]), ("relative_range", [0.0, 0.5]), ("absolute", "32"),
    ("absolute", [0, 32]), ("absolute_range", [0, 32]),  # a crop 0 pixels high: an empty image
])
def test_crops_detectron2_fails_on_are_refused_naming_the_keys(crop_type, size):
    from dropblock_det.engine.config_checks import check_crop

    with pytest.raises(ValueError, match=rf"^INPUT\.CROP\.SIZE={re.escape(repr(size))} with "
                                         rf"INPUT\.CROP\.TYPE='{crop_type}': expected two"):
        check_crop(crop_type, size)


def test_a_sampling_range_of_one_size_is_refused_naming_the_key():
    # detectron2's ResizeShortestEdge asserted "short_edge_length must be two values using
    # 'range' sample style" once the training loader was built.
    from dropblock_det.engine.config_checks import check_train_inputs

    check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", "(48, 64)"))
    for sizes in ("(64,)", "(32, 48, 64)"):
        with pytest.raises(ValueError, match=r"^INPUT\.MIN_SIZE_TRAIN=\(.*\): expected sizes >= 1 \(two: the range's ends; 0: "):
            check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", sizes))
    check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN", "(32, 48, 64)"))  # "choice" picks one of any number


def test_a_training_shortest_edge_of_zero_is_no_resizing_as_in_detectron2():
    # ResizeShortestEdge returns no transform for a drawn size of 0, in training too; it was
    # refused as "expected sizes >= 1". A longest edge < 1 still fails wherever a size resizes.
    from detectron2.data import transforms as T

    from dropblock_det.engine.config_checks import check_train_inputs
    from dropblock_det.engine.trainer import build_train_augmentation

    cfg = synthetic_cfg("INPUT.MIN_SIZE_TRAIN", "(0,)", "INPUT.MAX_SIZE_TRAIN", "0")
    check_train_inputs(cfg)
    resize = build_train_augmentation(cfg)[0]
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    assert T.AugInput(image).apply_augmentations([resize]).apply_image(image).shape == (30, 50, 3)
    for opts, match in (((0, 64), r"^INPUT\.MAX_SIZE_TRAIN=0: expected a size >= 1 \(INPUT\.MIN_SIZE_TRAIN=\(0, 64\) resizes\)"),
                        ((-1,), r"^INPUT\.MIN_SIZE_TRAIN=\(-1,\): expected sizes >= 1 to choose from \(0: no resizing\)"),
                        ((True,), r"^INPUT\.MIN_SIZE_TRAIN=\(True,\): expected sizes >= 1")):
        with pytest.raises(ValueError, match=match):
            check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN", repr(opts), "INPUT.MAX_SIZE_TRAIN", "0" if 0 in opts else "64"))


@pytest.mark.parametrize("key, value", [("SOLVER.MAX_ITER", True), ("DATALOADER.NUM_WORKERS", True),
                                        ("DATALOADER.NUM_WORKERS", 1.0)])
def test_a_count_set_in_code_to_a_bool_or_float_is_refused_naming_the_key(key, value):
    # yacs refuses them from a file or the command line; a config built in code need not.
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = synthetic_cfg()
    node, leaf = key.split(".")
    cfg[node][leaf] = value
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}={value!r}: expected a number of"):
        check_config_before_run(cfg, check_files=False)


def test_an_output_dir_set_in_code_to_no_string_is_refused_naming_the_key():
    # yacs refuses it from a file or the command line; a config built in code need not.
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = synthetic_cfg()
    cfg.OUTPUT_DIR = ("./output",)
    for train in (True, False):
        with pytest.raises(ValueError, match=r"^OUTPUT_DIR=\('\./output',\): expected a folder"):
            check_config_before_run(cfg, train=train, check_files=False)


def test_a_training_checks_the_files_its_evaluations_will_read_and_an_evaluation_does_not(tmp_path):
    # A test image missing: the run trained to the end and failed at its evaluation.
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.data.synthetic import make_synthetic_detection, register_synthetic_datasets
    from dropblock_det.engine.config_checks import check_config_before_run

    make_synthetic_detection(tmp_path, num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    register_synthetic_datasets(tmp_path)
    try:
        cfg = synthetic_cfg("MODEL.DEVICE", "cpu")
        check_config_before_run(cfg)
        (val_image,) = (tmp_path / "synthetic_det" / "val").iterdir()
        val_image.unlink()
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names 'synthetic_det_val', whose file_name "
                                                   rf".*{re.escape(val_image.name)} does not exist"):
            check_config_before_run(cfg)
        check_config_before_run(cfg, train=False)  # an evaluation reads the set itself, naming the file
        check_config_before_run(cfg, check_files=False)
    finally:
        register_synthetic_datasets()


@pytest.mark.parametrize("meta_architecture", ["DropBlockRetinaNet", "RetinaNet", "SemanticSegmentor", "PanopticFPN",
                                               "ProposalNetwork"])
def test_test_time_augmentation_is_refused_for_models_detectron2_has_none_for(meta_architecture):
    # DefaultTrainer never reads TEST.AUG; the trainer's TTA is detectron2's GeneralizedRCNNWithTTA,
    # which asserts an R-CNN (a PanopticFPN is one, but its inference takes no boxes) after the training.
    from dropblock_det.engine.config_checks import check_config_before_run, check_test_inputs

    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", meta_architecture, "TEST.AUG.ENABLED", "True")
    with pytest.raises(ValueError, match=rf"^TEST\.AUG\.ENABLED=True: detectron2 has test-time augmentation for R-CNN "
                                         rf"models only .*MODEL\.META_ARCHITECTURE='{meta_architecture}': set "
                                         rf"TEST\.AUG\.ENABLED False$"):
        check_test_inputs(cfg)
    check_test_inputs(synthetic_cfg("MODEL.META_ARCHITECTURE", meta_architecture, "TEST.AUG.MIN_SIZES", "(-1,)"))  # unread
    if meta_architecture == "DropBlockRetinaNet":  # an --eval-only run's check too
        with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True"):
            check_config_before_run(cfg, train=False, check_files=False)


@pytest.mark.parametrize("opts, match", [
    (["TEST.AUG.MIN_SIZES", "()"], r"^TEST\.AUG\.MIN_SIZES=\(\): expected a non-empty list of shortest edges"),
    (["TEST.AUG.MIN_SIZES", "(400, -1)"], r"^TEST\.AUG\.MIN_SIZES=\(400, -1\) with TEST\.AUG\.MAX_SIZE=4000: a "
                                          r"negative shortest edge"),
    (["TEST.AUG.MIN_SIZES", "('400',)"], r"^TEST\.AUG\.MIN_SIZES=\('400',\) with .*: expected numbers of pixels"),
    (["TEST.AUG.MAX_SIZE", "0"], r"^TEST\.AUG\.MIN_SIZES=\(400, .*\) with TEST\.AUG\.MAX_SIZE=0: a longest edge < 1"),
    (["MODEL.KEYPOINT_ON", "True"], r"^TEST\.AUG\.ENABLED=True with MODEL\.KEYPOINT_ON=True: .* no test-time "
                                    r"augmentation for keypoints"),
    (["MODEL.LOAD_PROPOSALS", "True"], r"^TEST\.AUG\.ENABLED=True with MODEL\.LOAD_PROPOSALS=True: .*precomputed "
                                       r"proposals"),
])
def test_rcnn_test_time_augmentation_values_it_would_fail_on_are_refused_naming_the_key(opts, match):
    # GeneralizedRCNNWithTTA runs after the whole training: an empty MIN_SIZES failed there
    # in torch.cat, a negative size on the first image, KEYPOINT_ON / LOAD_PROPOSALS on its asserts.
    from dropblock_det.engine.config_checks import check_test_inputs

    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "TEST.AUG.ENABLED", "True")
    check_test_inputs(cfg)  # detectron2's defaults: 400..1200, MAX_SIZE 4000, FLIP
    cfg.merge_from_list(opts)
    with pytest.raises(ValueError, match=match):
        check_test_inputs(cfg)
    cfg.TEST.AUG.ENABLED = False
    check_test_inputs(cfg)  # unread without TTA


def test_rcnn_test_time_augmentation_accepts_what_resizes_and_refuses_a_flip_that_is_no_bool():
    from conftest import rcnn_cfg

    from dropblock_det.engine.config_checks import check_config_before_run, check_test_inputs

    cfg = rcnn_cfg("TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(0, 96)", "TEST.AUG.MAX_SIZE", "96",
                   "TEST.AUG.FLIP", "False")
    # 0: detectron2's "no resizing" (the image at the test resize), as for INPUT.MIN_SIZE_TEST.
    check_config_before_run(cfg, train=False, check_files=False)
    cfg.TEST.AUG.FLIP = 1  # yacs keeps a YAML/opts value a bool; a config built in code need not
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.FLIP=1: expected True or False"):
        check_test_inputs(cfg)
    # A tool that evaluates its own way (tools/analyze_robustness.py) runs no TTA: refused there.
    cfg.TEST.AUG.FLIP = True
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True: this evaluation runs no test-time augmentation "
                                         r"\(MODEL\.META_ARCHITECTURE='GeneralizedRCNN'\).*set TEST\.AUG\.ENABLED False"):
        check_test_inputs(cfg, test_time_augmentation=False)
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True: this evaluation runs no"):
        check_config_before_run(cfg, train=False, check_files=False, test_time_augmentation=False)


def test_the_training_samplers_are_read_from_the_installed_detectron2():
    # v0.6 knows 3; main adds the weighted ones (built by _build_weighted_sampler).
    from detectron2.data import build

    from dropblock_det.engine.config_checks import train_samplers

    weighted = ("WeightedTrainingSampler", "WeightedCategoryTrainingSampler")
    expected = ("TrainingSampler", "RepeatFactorTrainingSampler", "RandomSubsetTrainingSampler")
    assert train_samplers() == expected + (weighted if hasattr(build, "_build_weighted_sampler") else ())


def test_a_segmentation_class_count_or_ignore_value_the_datasets_do_not_have_is_refused():
    # VOC: 21 stuff_classes (background first), ignore_label 255. Fewer classes: cross-entropy
    # fails on the labels past them; more: the SemSegEvaluator fails after training; another
    # ignore value: the boundary band (255) is a label the loss cannot take.
    from dropblock_det.engine.config_checks import check_dataset_classes, load_config

    def voc(*opts):
        return load_config(str(REPO / "configs" / "PascalVOC-SemanticSegmentation" / "Base-DeepLabV3-Plus.yaml"), list(opts))

    check_dataset_classes(voc())
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=20, but DATASETS\.TRAIN names "
                                         r"'voc_2012_sem_seg_train_aug', which has 21 classes \(its metadata "
                                         r"stuff_classes: \['background', .*'chair', \.\.\.\]\).*the loss fails at the first step"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "20"))
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.IGNORE_VALUE=0, but DATASETS\.TRAIN names "
                                         r"'voc_2012_sem_seg_train_aug', whose labels mark the pixels to ignore with 255"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"))
    # An evaluation reads no training labels.
    check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"), keys=("TEST",))
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=4, but DATASETS\.TEST names "
                                         r"'voc_2012_sem_seg_val', which has 21"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4", "DATASETS.TRAIN", "('synthetic_sem_seg_train',)"))


def test_a_segmentation_training_set_without_an_ignore_label_is_not_judged_for_the_ignore_value():
    # Only a set whose metadata says which label marks the pixels to leave out is checked
    # against MODEL.SEM_SEG_HEAD.IGNORE_VALUE; one of the user's own without it is not refused.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.config_checks import check_dataset_classes, load_config

    name = "dropblock_test_sem_seg_without_ignore_label"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(stuff_classes=[f"c{i}" for i in range(21)])
        cfg = load_config(str(REPO / "configs" / "PascalVOC-SemanticSegmentation" / "Base-DeepLabV3-Plus.yaml"),
                          ["DATASETS.TRAIN", f"('{name}',)", "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"])
        check_dataset_classes(cfg)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_dataset_without_class_metadata_is_not_loaded_to_count_its_classes():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.config_checks import check_dataset_classes

    def never_loaded():
        raise AssertionError("the class check loaded the dataset")

    name = "dropblock_test_no_class_metadata"
    DatasetCatalog.register(name, never_loaded)
    try:
        check_dataset_classes(synthetic_cfg("DATASETS.TRAIN", f"('{name}',)", "MODEL.RETINANET.NUM_CLASSES", "7",
                                            "DATASETS.TEST", "()"))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_run_check_refuses_a_test_dataset_without_an_evaluator():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.config_checks import check_config_before_run

    name = "dropblock_test_registered_unevaluable"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(evaluator_type="lvis_like")
        cfg = synthetic_cfg("DATASETS.TRAIN", "()", "MODEL.DEVICE", "cpu")
        cfg.DATASETS.TEST = (name,)
        for train in (True, False):
            with pytest.raises(ValueError, match=f"{name}.*'lvis_like'"):
                check_config_before_run(cfg, train=train, check_files=False)
    finally:  # the catalogs are global: later tests must not see it
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_run_check_names_an_unregistered_training_dataset_only_for_training():
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = synthetic_cfg("DATASETS.TRAIN", "('dropblock_no_such_train',)", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu")
    with pytest.raises(KeyError, match=r"DATASETS\.TRAIN names 'dropblock_no_such_train'"):
        check_config_before_run(cfg, check_files=False)
    check_config_before_run(cfg, train=False, check_files=False)  # an evaluation needs no training data


def test_a_misspelt_dataset_name_is_told_the_closest_registered_ones_and_no_close_one_all_of_them():
    # Every registered name (about 60) followed the key, and the one meant was not said.
    from detectron2.data import DatasetCatalog

    from dropblock_det.engine.config_checks import check_dataset_names
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    cfg = synthetic_cfg("DATASETS.TRAIN", "('synthetic_det_trian',)")
    with pytest.raises(KeyError, match=r"DATASETS\.TRAIN names 'synthetic_det_trian', which is not a registered "
                                       r"dataset; did you mean synthetic_det_train(, [\w]+)*\?\"$"):
        check_dataset_names(cfg, check_files=False)
    cfg = synthetic_cfg("DATASETS.TEST", "('zzqx',)")
    with pytest.raises(KeyError) as refused:
        check_dataset_names(cfg, check_files=False)
    registered = sorted(DatasetCatalog.list())
    assert str(refused.value).startswith(
        "\"DATASETS.TEST names 'zzqx', which is not a registered dataset; a set of your own is registered before the "
        "tool runs (README: 'Your own dataset'); none of ")
    assert f"; none of the {len(registered)} registered names is close: {', '.join(registered)}" in str(refused.value)
    lazy = lazy_cfg(str(CONFIGS / LAZY_TWINS[0][0]))
    lazy.dataloader.test.dataset.names = "synthetic_det_vla"
    with pytest.raises(KeyError, match=r"dataloader\.test\.dataset\.names names 'synthetic_det_vla', which is not a "
                                       r"registered dataset; did you mean synthetic_det_val"):
        check_lazy_config_before_run(lazy, check_files=False)
    lazy.dataloader.test.dataset.names = "zzqx"
    with pytest.raises(KeyError, match=r"names 'zzqx', which is not a registered dataset; a set of your own is "
                                       r"registered before the tool runs \(README: 'Your own dataset'\); none of"):
        check_lazy_config_before_run(lazy, check_files=False)


def test_a_config_file_that_is_a_folder_is_named_as_one(tmp_path):
    from dropblock_det.engine.lazy_config_checks import load_lazy_config
    from dropblock_det.engine.config_checks import load_config

    with pytest.raises(FileNotFoundError, match=rf"config file '{re.escape(str(tmp_path))}' is a folder, not a config file"):
        load_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"--config-file '.*' is a folder, not a config file"):
        load_lazy_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"config file '.*nothing\.yaml' does not exist"):
        load_config(str(tmp_path / "nothing.yaml"))


def test_a_config_file_that_does_not_exist_is_told_the_closest_files_in_its_folder():
    # `..._54k.yml` for `..._54k.yaml` was "does not exist" alone (journey helper).
    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    folder = CONFIGS / "PascalVOC-Detection"
    with pytest.raises(FileNotFoundError, match=(
            rf"^config file '.*_54k\.yml' does not exist \(did you mean "
            rf"{re.escape(str(folder / 'retinanet_R_50_FPN_GN_scratch_54k.yaml'))}\?\)$")):
        load_config(str(folder / "retinanet_R_50_FPN_GN_scratch_54k.yml"))
    with pytest.raises(FileNotFoundError, match=r"^--config-file '.*_54k\.pyy' does not exist \(did you mean "
                                                r"[^,]*_b7_54k\.py, "):  # the closest first
        load_lazy_config(str(folder / "retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k.pyy"))
    with pytest.raises(FileNotFoundError, match=r"'no/such/folder/a\.yaml' does not exist$"):
        load_config("no/such/folder/a.yaml")


def test_a_missing_config_file_is_told_the_close_files_only_not_folders(tmp_path):
    # A folder is no config file to suggest: `a_54k.yaml/` beside the missing `a_54k.yml`.
    from dropblock_det.engine.config_checks import missing_config_file

    (tmp_path / "a_54k.yaml").mkdir()
    assert missing_config_file(str(tmp_path / "a_54k.yml")) == "does not exist"
    (tmp_path / "b_54k.yaml").write_text("")
    assert missing_config_file(str(tmp_path / "b_54k.yml")) == f"does not exist (did you mean {tmp_path / 'b_54k.yaml'}?)"


def test_a_missing_config_file_in_a_folder_that_cannot_be_listed_is_said_not_to_exist(tmp_path, monkeypatch):
    # The listing for the close names raised PermissionError, in place of "does not exist"
    # (chmod cannot refuse root, so the listing refuses here).
    from pathlib import Path

    from dropblock_det.engine.config_checks import missing_config_file

    def refused(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refused)
    assert missing_config_file(str(tmp_path / "a.yaml")) == "does not exist"


def test_a_lazy_runs_config_yaml_is_told_from_a_yacs_config_with_an_unknown_key(tmp_path):
    # yacs fails on a LazyConfig run's config.yaml with "Non-existent config key: model"; the
    # user is sent to the LazyConfig tool instead. A yacs config with an unknown key is named
    # as such, with its file.
    from dropblock_det.engine.config_checks import load_config

    lazy = tmp_path / "config.yaml"
    lazy.write_text("dataloader:\n  train:\n    total_batch_size: 2\nmodel:\n  _target_: x.Y\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(lazy))}' is a LazyConfig \(its top level "
                                         r"has `model:`\), not a yacs config: train it with tools/lazyconfig_train_net\.py$"):
        load_config(str(lazy))
    yacs = tmp_path / "typo.yaml"
    yacs.write_text("MODEL:\n  DROPBLOK:\n    KEEP_PROB: 0.9\n")
    with pytest.raises(KeyError, match=rf"config file '{re.escape(str(yacs))}': .*DROPBLOK"):
        load_config(str(yacs))


def test_a_config_file_that_is_not_a_yaml_mapping_is_named_in_one_line(tmp_path):
    # A YAML syntax error, or a file that holds no KEY: value mapping (empty, a list, a
    # string), failed with a traceback from PyYAML or yacs (TypeError "argument of type
    # 'NoneType' is not iterable", AttributeError "'list' object has no attribute 'items'"):
    # no refusal type, so train_net.py printed the whole traceback.
    from dropblock_det.engine.config_checks import load_config

    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL:\n  DROPBLOCK:\n    STAGES: [res4\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(broken))}' is not valid YAML: .*line \d+, "
                                         r"column \d+$"):
        load_config(str(broken))
    for name, text, holds in (("empty.yaml", "", "nothing"), ("list.yaml", "- a\n", "a list"),
                              ("text.yaml", "just a sentence\n", "a str")):
        config = tmp_path / name
        config.write_text(text)
        with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(config))}' holds {holds}, not a "
                                             r"mapping of config keys"):
            load_config(str(config))
    leaf = tmp_path / "leaf.yaml"  # the empty file is a _BASE_: named beside the file given
    leaf.write_text("_BASE_: empty.yaml\nSOLVER:\n  MAX_ITER: 3\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(leaf))}': its _BASE_ "
                                         rf"'{re.escape(str(tmp_path / 'empty.yaml'))}' holds nothing"):
        load_config(str(leaf))
    # A _BASE_ that is no path: detectron2's AttributeError "'int' object has no attribute 'startswith'".
    numbered = tmp_path / "numbered.yaml"
    numbered.write_text("_BASE_: 5\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(numbered))}' has _BASE_=5: expected the "
                                         r"path of the config file it extends"):
        load_config(str(numbered))
    leaf.write_text("_BASE_: numbered.yaml\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(leaf))}': its _BASE_ '.*numbered\.yaml' "
                                         r"has _BASE_=5"):
        load_config(str(leaf))


def test_keys_extra_setup_adds_can_be_set_by_the_config_file_and_the_opts(tmp_path):
    # extra_setup runs before the file is merged (as detectron2 projects add their keys):
    # after it, a file setting the key failed with "Non-existent config key".
    from detectron2.config import CfgNode

    from dropblock_det.engine.config_checks import load_config

    def add_my_keys(cfg):
        cfg.MY_PROJECT = CfgNode({"SIZE": 1, "NAME": "a"})

    config = tmp_path / "mine.yaml"
    config.write_text(f"_BASE_: {SYNTH_CONFIG}\nMY_PROJECT:\n  SIZE: 2\n")
    cfg = load_config(str(config), ["MY_PROJECT.NAME", "b"], extra_setup=add_my_keys)
    assert (cfg.MY_PROJECT.SIZE, cfg.MY_PROJECT.NAME, cfg.MODEL.DROPBLOCK.KEEP_PROB) == (2, "b", 0.9)


def test_a_config_copied_away_from_its_base_names_itself_and_the_missing_base(tmp_path):
    # yacs reads _BASE_ relative to the file naming it: a leaf config copied into a project
    # failed with open()'s bare "No such file or directory: '.../Base-...yaml'".
    import shutil

    from dropblock_det.engine.config_checks import load_config

    leaf = tmp_path / "project" / "my_retinanet.yaml"
    leaf.parent.mkdir()
    shutil.copy(REPO / "configs" / "COCO-Detection" / "retinanet_R_50_FPN_GN_scratch_3x.yaml", leaf)
    with pytest.raises(FileNotFoundError, match=rf"^config file '{re.escape(str(leaf))}': the _BASE_ "
                                                rf"'{re.escape(str(tmp_path / 'Base-RetinaNet-Scratch.yaml'))}' "
                                                r"does not exist \(a _BASE_ path is relative to the config file"):
        load_config(str(leaf))
    for base in ("Base-RetinaNet-Scratch.yaml", "Base-RetinaNet.yaml"):
        shutil.copy(REPO / "configs" / base, tmp_path / base)
    assert load_config(str(leaf)).SOLVER.MAX_ITER == 270000


def test_the_run_check_reads_the_starting_weights_of_a_training_and_only_finds_an_evaluations(tmp_path):
    # An evaluation's weights are read once, strictly, by check_eval_checkpoint (or not at all:
    # --eval-only --resume evaluates the run's checkpoint); a training's are read here.
    from dropblock_det.engine.config_checks import check_config_before_run

    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("not a checkpoint")
    cfg = synthetic_cfg("MODEL.WEIGHTS", str(not_weights), "MODEL.DEVICE", "cpu")
    check_config_before_run(cfg, train=False, check_files=False)
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*notes\.txt': '.*notes\.txt' is not a checkpoint"):
        check_config_before_run(cfg, check_files=False)
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist"):
        check_config_before_run(synthetic_cfg("MODEL.WEIGHTS", str(tmp_path / "gone.pth")), train=False, check_files=False)


def _trainer_checkpoint(tmp_path, cfg, **inner_state):
    """(path, optimizer): a checkpoint of iteration 4 as DropBlockTrainer saves it (the inner
    trainer's optimizer state, and `inner_state`, under trainer/_trainer) for cfg's model; the
    optimizer has the trainer's LR scheduler on it (its groups' initial_lr, the base LRs)."""
    from dropblock_det.engine.trainer import DropBlockTrainer

    model = DropBlockTrainer.build_model(cfg)
    optimizer = DropBlockTrainer.build_optimizer(cfg, model)
    DropBlockTrainer.build_lr_scheduler(cfg, optimizer)
    path = tmp_path / "model_0000004.pth"
    trainer = {"iteration": 4, "_trainer": {"iteration": 4, "optimizer": optimizer.state_dict(), **inner_state}}
    torch.save({"model": model.state_dict(), "trainer": trainer, "iteration": 4}, path)
    return path, optimizer


def test_a_resume_whose_optimizer_groups_the_parameters_otherwise_is_refused_naming_the_keys(tmp_path):
    # The checkpoint fits the model, but its optimizer state does not fit the optimizer the
    # changed SOLVER values (or frozen stages) build: detectron2 loads it after building the
    # data loader and rewriting config.yaml, and torch refused it there, naming no key.
    from dropblock_det.engine.config_checks import check_resume_checkpoint, meta_model
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10")
    path, optimizer = _trainer_checkpoint(tmp_path, cfg)
    check_resume_checkpoint(cfg, str(path))  # the run's own values resume
    for opts in (("SOLVER.BIAS_LR_FACTOR", "2.0"), ("MODEL.BACKBONE.FREEZE_AT", "2")):
        changed = synthetic_cfg("SOLVER.MAX_ITER", "10", *opts)
        with pytest.raises(ValueError, match="parameter group"):  # what the resumed run hit
            DropBlockTrainer.build_optimizer(changed, meta_model(changed)).load_state_dict(optimizer.state_dict())
        with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' holds the optimizer "
                                             r"state of \d+ parameter groups .*SOLVER\.WEIGHT_DECAY.*BIAS_LR_FACTOR"
                                             r".*MODEL\.BACKBONE\.FREEZE_AT"):
            check_resume_checkpoint(changed, str(path))


def test_a_resume_with_changed_optimizer_settings_is_refused_as_they_would_not_take_effect(tmp_path):
    # detectron2 restores the checkpoint's optimizer hyperparameters and its LR scheduler's base
    # LRs: a --resume with another SOLVER.BASE_LR or MOMENTUM trained on with the saved ones,
    # silently (checked on both detectron2 versions: base_lrs 0.02 and momentum 0.9 after a
    # resume configured with 0.001 and 0.5).
    from dropblock_det.engine.config_checks import check_resume_checkpoint

    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10")
    path, _ = _trainer_checkpoint(tmp_path, cfg)
    check_resume_checkpoint(cfg, str(path))  # the run's own values resume
    check_resume_checkpoint(synthetic_cfg("SOLVER.MAX_ITER", "20"), str(path))  # a longer run too
    for opts, named in ((("SOLVER.BASE_LR", "0.001"), r"lr 0\.02 \(this config: 0\.001\)"),
                        (("SOLVER.MOMENTUM", "0.5"), r"momentum 0\.9 \(this config: 0\.5\)"),
                        (("SOLVER.WEIGHT_DECAY", "0.001"), r"weight_decay 0\.0001 \(this config: 0\.001\)")):
        with pytest.raises(ValueError, match=rf"^--resume: checkpoint '.*model_0000004\.pth' holds an optimizer with "
                                             rf"{named}: a resume restores the saved values .*SOLVER\.BASE_LR, "
                                             r".*MODEL\.WEIGHTS"):
            check_resume_checkpoint(synthetic_cfg("SOLVER.MAX_ITER", "10", *opts), str(path))


def test_a_resume_is_judged_against_the_optimizer_scaled_to_this_runs_processes(tmp_path, monkeypatch):
    # REFERENCE_WORLD_SIZE 1 on 2 processes: the trainer doubles BASE_LR, and so did the run
    # that saved the checkpoint; the config's own BASE_LR is not what resumes.
    from dropblock_det.engine import config_checks
    from dropblock_det.engine.trainer import DropBlockTrainer

    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 2)
    cfg = synthetic_cfg("SOLVER.MAX_ITER", "20", "SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2")
    scaled = DropBlockTrainer.auto_scale_workers(cfg, 2)
    assert scaled.SOLVER.BASE_LR == 2 * cfg.SOLVER.BASE_LR
    path, _ = _trainer_checkpoint(tmp_path, scaled)
    config_checks.check_resume_checkpoint(cfg, str(path))
    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 1)  # resumed on 1: another LR
    with pytest.raises(ValueError, match=r"holds an optimizer with lr 0\.04 \(this config: 0\.02\)"):
        config_checks.check_resume_checkpoint(cfg, str(path))


def test_a_resume_with_amp_of_a_checkpoint_saved_without_it_is_refused_naming_the_key(tmp_path):
    # AMPTrainer.load_state_dict reads the grad scaler's state unconditionally: turning
    # SOLVER.AMP.ENABLED on for a resume failed with "KeyError: 'grad_scaler'" after the data
    # loader was built (the run needs CUDA; the checkpoint check does not).
    import warnings

    from detectron2.engine import AMPTrainer

    from dropblock_det.engine.config_checks import check_resume_checkpoint

    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10", "SOLVER.AMP.ENABLED", "True")
    path, optimizer = _trainer_checkpoint(tmp_path, cfg)
    saved = torch.load(path, weights_only=False)["trainer"]["_trainer"]
    with warnings.catch_warnings():  # on the CPU: "GradScaler is enabled, but CUDA is not available"
        warnings.simplefilter("ignore")
        amp_trainer = AMPTrainer(torch.nn.Linear(1, 1), iter([]), optimizer)
    with pytest.raises(KeyError, match="grad_scaler"):  # what the resumed run hit
        amp_trainer.load_state_dict(saved)
    with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' was saved by a run without "
                                         r"mixed precision .*SOLVER\.AMP\.ENABLED=True"):
        check_resume_checkpoint(cfg, str(path))
    check_resume_checkpoint(synthetic_cfg("SOLVER.MAX_ITER", "10"), str(path))  # resumed without AMP, as it ran
    path, _ = _trainer_checkpoint(tmp_path, cfg, grad_scaler={"scale": 1024.0})
    check_resume_checkpoint(cfg, str(path))  # an AMP run's checkpoint resumes with AMP


def test_a_resume_is_judged_against_the_max_iter_scaled_to_this_runs_processes(tmp_path, monkeypatch):
    # REFERENCE_WORLD_SIZE 1 on 2 processes: MAX_ITER 10 trains 5 iterations, which the
    # checkpoint of iteration 4 has done: the resumed run would train nothing.
    from dropblock_det.engine import config_checks

    opts = ("SOLVER.MAX_ITER", "10", "SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2")
    path, _ = _trainer_checkpoint(tmp_path, synthetic_cfg(*opts))
    config_checks.check_resume_checkpoint(synthetic_cfg(*opts), str(path))
    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"has trained 5 iterations, all SOLVER\.MAX_ITER=5 asks for"):
        config_checks.check_resume_checkpoint(synthetic_cfg(*opts), str(path))


def test_a_resume_with_amp_of_a_checkpoint_without_optimizer_state_is_not_refused(tmp_path):
    # detectron2 v0.6's own DefaultTrainer saves no trainer state: the resume loads the
    # iteration only (DropBlockTrainer.load_state_dict), no grad scaler is read.
    from dropblock_det.engine.config_checks import check_resume_checkpoint
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10", "SOLVER.AMP.ENABLED", "True")
    path = tmp_path / "model_0000004.pth"
    torch.save({"model": DropBlockTrainer.build_model(cfg).state_dict(), "trainer": {"iteration": 4},
                "iteration": 4}, path)
    check_resume_checkpoint(cfg, str(path))


def test_missing_dataset_files_are_named_with_the_key_that_names_the_set(tmp_path):
    # "missing dataset files under ...: <set>: <path>" said which set, not which key of the
    # config named it (DATASETS.TRAIN or DATASETS.TEST).
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from dropblock_det.engine.config_checks import check_dataset_names

    name = "test_config_checks_set_without_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(tmp_path / "none.json"), str(tmp_path / "images"))
    with pytest.raises(FileNotFoundError, match=rf"\n  {name} \(DATASETS\.TEST\): .*none\.json"):
        check_dataset_names(synthetic_cfg("DATASETS.TEST", f"('{name}',)"))


def test_a_set_named_by_both_keys_is_listed_once_with_the_training_key(tmp_path):
    # A set trained on and evaluated on is named once, with DATASETS.TRAIN (the key that
    # names it first), not once per key nor as a test set only.
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from dropblock_det.engine.config_checks import check_dataset_names

    name = "test_config_checks_train_and_test_set_without_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(tmp_path / "none.json"), str(tmp_path / "images"))
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_names(synthetic_cfg("DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)"))
    listed = [line for line in str(error.value).splitlines() if name in line]
    assert listed and all(line.startswith(f"  {name} (DATASETS.TRAIN): ") for line in listed), listed
    assert len(listed) == len(set(listed))


def test_the_class_count_of_a_coco_set_of_ones_own_is_read_from_its_json_before_the_run(tmp_path):
    # register_coco_instances sets thing_classes only when the loader reads the json: a
    # RetinaNet of 3 classes trained fully on the 2 of the set and its evaluation failed
    # ("A prediction has class=2, but the dataset only has 2 classes"); of 1, dog trained as
    # background, silently.
    from dropblock_det.engine.config_checks import check_config_before_run

    with own_coco_set(tmp_path, "test_config_checks_own_coco_set") as name:
        opts = ["DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)", "MODEL.DEVICE", "cpu"]
        for count, consequence in (("3", "its evaluation fails"), ("1", "as background")):
            with pytest.raises(ValueError, match=(
                    rf"^MODEL\.RETINANET\.NUM_CLASSES={count}, but DATASETS\.TRAIN names '{name}', which has 2 "
                    rf"classes \(the categories of its json_file '{re.escape(str(tmp_path / 'train.json'))}': "
                    rf"\['cat', 'dog'\]\): set MODEL\.RETINANET\.NUM_CLASSES to 2 .*{consequence}")):
                check_config_before_run(synthetic_cfg(*opts, "MODEL.RETINANET.NUM_CLASSES", count))
        check_config_before_run(synthetic_cfg(*opts, "MODEL.RETINANET.NUM_CLASSES", "2"))


def test_a_test_json_whose_categories_are_named_otherwise_is_warned_of(tmp_path):
    # As many categories, another name for the second: the evaluation scored the model's
    # "dog" against "rouge", by position, without a word (own-dataset journey helper).
    import warnings

    from dropblock_det.engine.config_checks import check_config_before_run

    with own_coco_set(tmp_path / "train", "test_config_checks_own_train") as train, \
            own_coco_set(tmp_path / "same", "test_config_checks_own_same") as same, \
            own_coco_set(tmp_path / "renamed", "test_config_checks_own_renamed", dog="rouge") as renamed:
        opts = ["DATASETS.TRAIN", f"('{train}',)", "MODEL.RETINANET.NUM_CLASSES", "2", "MODEL.DEVICE", "cpu"]
        with pytest.warns(UserWarning, match=(
                rf"^DATASETS\.TEST names '{renamed}', whose classes \['cat', 'rouge'\] are not those of '{train}' "
                r"\(DATASETS\.TRAIN: \['cat', 'dog'\]\): the model's class i is each set's class i, by position")):
            check_config_before_run(synthetic_cfg(*opts, "DATASETS.TEST", f"('{renamed}',)"))
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*by position")
            check_config_before_run(synthetic_cfg(*opts, "DATASETS.TEST", f"('{same}',)"))


def test_thing_classes_given_to_register_coco_instances_are_named_as_the_metadata(tmp_path):
    # (detectron2 refuses to load a json whose categories differ from them.)
    from dropblock_det.engine.config_checks import check_config_before_run

    with own_coco_set(tmp_path, "test_config_checks_own_coco_set_with_classes", ["cat", "dog"]) as name:
        opts = ["DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)", "MODEL.DEVICE", "cpu"]
        with pytest.raises(ValueError, match=r"which has 2 classes \(its metadata thing_classes: \['cat', 'dog'\]\)"):
            check_config_before_run(synthetic_cfg(*opts))


def test_a_json_files_categories_are_read_for_thing_classes_only(tmp_path):
    # The categories of a COCO json are things: a stuff count is checked against stuff_classes
    # (and left alone without them), never against the json's categories or thing_classes.
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.config_checks import _dataset_classes, check_class_counts

    with own_coco_set(tmp_path, "test_config_checks_own_coco_set_kinds") as name:
        metadata = MetadataCatalog.get(name)
        assert _dataset_classes(metadata, "stuff") == (None, "")
        assert _dataset_classes(metadata, "thing") == (
            ["cat", "dog"], f"the categories of its json_file {str(tmp_path / 'train.json')!r}")
        check_class_counts([("MODEL.SEM_SEG_HEAD.NUM_CLASSES", 5, "stuff")], [("DATASETS.TRAIN", name)])
        metadata.set(stuff_classes=["sky", "road"])
        with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=5, but DATASETS\.TRAIN names .*which "
                                             r"has 2 classes \(its metadata stuff_classes: \['sky', 'road'\]\)"):
            check_class_counts([("MODEL.SEM_SEG_HEAD.NUM_CLASSES", 5, "stuff")], [("DATASETS.TRAIN", name)])


def test_the_json_annotation_scan_leaves_sets_it_cannot_read_to_their_loading(tmp_path):
    # A set without json_file (a loader function of one's own), and a json_file that is not
    # there (the dataset check names it), are no "file without masks".
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.config_checks import check_json_training_annotations

    needed = {"use_instance_mask": ("MODEL.MASK_ON=True", "set MODEL.MASK_ON False")}
    names = ["test_config_checks_scan_no_json", "test_config_checks_scan_missing_json"]
    for name in names:
        DatasetCatalog.register(name, list)
    MetadataCatalog.get(names[1]).set(json_file=str(tmp_path / "missing.json"))
    try:
        check_json_training_annotations(needed, [("DATASETS.TRAIN", name) for name in names])
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    with own_coco_set(tmp_path / "boxes", "test_config_checks_scan_boxes") as boxes:
        with pytest.raises(ValueError, match=r"^MODEL\.MASK_ON=True, but DATASETS\.TRAIN names "
                                             r"'test_config_checks_scan_boxes', whose json_file"):
            check_json_training_annotations(needed, [("DATASETS.TRAIN", boxes)])
    # Every flag the model sets is checked: the masks of a set do not stand for its keypoints.
    needed["use_keypoint"] = ("MODEL.KEYPOINT_ON=True", "set MODEL.KEYPOINT_ON False")
    with own_coco_set(tmp_path / "masks", "test_config_checks_scan_masks", segmentation=True) as masks:
        with pytest.raises(ValueError, match=r"^MODEL\.KEYPOINT_ON=True, but DATASETS\.TRAIN names "
                                             r"'test_config_checks_scan_masks', whose json_file .* has no 'keypoints'"):
            check_json_training_annotations(needed, [("DATASETS.TRAIN", masks)])


def test_precomputed_proposals_without_one_file_per_dataset_are_refused_naming_the_keys():
    # detectron2 reads DATASETS.PROPOSAL_FILES_TRAIN / _TEST when it builds a loader, after
    # config.yaml is written: the training loader failed with a bare AssertionError, blamed on
    # the training set's files ("cannot load dataset 'synthetic_det_train' (...): AssertionError"),
    # the test loader with an IndexError.
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = synthetic_cfg("MODEL.LOAD_PROPOSALS", "True", "MODEL.DEVICE", "cpu")
    with pytest.raises(ValueError, match=r"^MODEL\.LOAD_PROPOSALS=True: DATASETS\.PROPOSAL_FILES_TRAIN=\(\) gives 0 "
                                         r"proposal files for the 1 dataset of DATASETS\.TRAIN=\('synthetic_det_train',\)"):
        check_config_before_run(cfg, check_files=False)
    with pytest.raises(ValueError, match=r"^MODEL\.LOAD_PROPOSALS=True: DATASETS\.PROPOSAL_FILES_TEST=\(\) gives 0 "
                                         r"proposal files for the 1 dataset of DATASETS\.TEST=\('synthetic_det_val',\)"):
        check_config_before_run(cfg, train=False, check_files=False)
    # More files than datasets: detectron2's training loader asserts the counts are equal.
    cfg.DATASETS.PROPOSAL_FILES_TRAIN = ("train_proposals.pkl", "more_proposals.pkl")
    with pytest.raises(ValueError, match=r"^MODEL\.LOAD_PROPOSALS=True: DATASETS\.PROPOSAL_FILES_TRAIN=\(.*\) gives 2 "
                                         r"proposal files for the 1 dataset of DATASETS\.TRAIN="):
        check_config_before_run(cfg, check_files=False)
    cfg.DATASETS.PROPOSAL_FILES_TRAIN = ("train_proposals.pkl",)
    cfg.DATASETS.PROPOSAL_FILES_TEST = ("val_proposals.pkl",)
    check_config_before_run(cfg, check_files=False)
    cfg.MODEL.LOAD_PROPOSALS = False  # the files are then unread
    cfg.DATASETS.PROPOSAL_FILES_TRAIN = ()
    check_config_before_run(cfg, check_files=False)


def test_a_detectron2_assertion_on_the_model_config_is_named_by_its_source_line_before_the_run():
    # detectron2's box head asserts it has a layer with no message: the tools failed before the
    # run with a bare AssertionError, naming neither key nor line.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = rcnn_cfg("MODEL.ROI_BOX_HEAD.NUM_FC", "0", "MODEL.ROI_BOX_HEAD.NUM_CONV", "0")
    with pytest.raises(ValueError, match=r"^the model of this config \(MODEL\.META_ARCHITECTURE='GeneralizedRCNN'\) "
                                         r"does not build: AssertionError \(at detectron2/modeling/roi_heads/"
                                         r"box_head\.py:\d+: assert .*fc_dims.*\)$"):
        check_config_before_run(cfg, check_files=False)


def test_an_assertion_in_a_file_of_no_installed_package_is_named_by_its_path(tmp_path):
    # A component of the user's own (or this project run from its clone): the path was written
    # with a doubled root, "(at //home/.../my_head.py:2: ...)".
    from dropblock_det.engine.config_checks import error_description

    source = tmp_path / "my_head.py"
    source.write_text("def build():\n    assert 1 > 2\n")
    namespace = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    with pytest.raises(AssertionError) as error:
        namespace["build"]()
    assert error_description(error.value) == f"AssertionError (at {source.as_posix()}:2: assert 1 > 2)"


def test_an_assertion_in_an_installed_package_is_named_from_its_package_folder(tmp_path):
    # Debian's Python installs packages into dist-packages, as others into site-packages.
    from dropblock_det.engine.config_checks import error_description

    for folder in ("site-packages", "dist-packages"):
        source = tmp_path / "lib" / folder / "vendor" / "heads.py"
        source.parent.mkdir(parents=True)
        source.write_text("def build():\n    assert 1 > 2\n")
        namespace = {}
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        with pytest.raises(AssertionError) as error:
            namespace["build"]()
        assert error_description(error.value) == "AssertionError (at vendor/heads.py:2: assert 1 > 2)"


def test_rotated_rpn_features_the_backbone_lacks_are_refused_naming_the_key():
    # detectron2's RRPN reads MODEL.RPN.IN_FEATURES as its RPN does: a bare KeyError at the build.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_rcnn_features

    with pytest.raises(ValueError, match=r"^MODEL\.RPN\.IN_FEATURES=\['res4'\]: 'res4' not among the backbone's outputs "
                                         r"\['p2', 'p3', 'p4', 'p5', 'p6'\]"):
        check_rcnn_features(rcnn_cfg("MODEL.PROPOSAL_GENERATOR.NAME", "RRPN", "MODEL.RPN.IN_FEATURES", "['res4']"))


# ----------------------------------------------------------------------------- head values
@pytest.mark.parametrize("opts, match", [
    # Each built, then failed at the first step with an error naming no key ...
    (["MODEL.RETINANET.BBOX_REG_LOSS_TYPE", "smoothl1"],
     r"^MODEL\.RETINANET\.BBOX_REG_LOSS_TYPE='smoothl1': not a box loss this detectron2 knows; expected one of "
     r"\['smooth_l1', 'giou'"),
    (["MODEL.RETINANET.BBOX_REG_WEIGHTS", "[1.0, 1.0]"],
     r"^MODEL\.RETINANET\.BBOX_REG_WEIGHTS=\[1\.0, 1\.0\]: expected 4 weights, none 0"),
    (["MODEL.ANCHOR_GENERATOR.SIZES", "[[0]]"], r"^MODEL\.ANCHOR_GENERATOR\.SIZES=\[\[0\]\]: expected anchor sizes"),
    (["MODEL.FPN.OUT_CHANNELS", "0"], r"^MODEL\.FPN\.OUT_CHANNELS=0: expected an integer >= 1$"),
    (["MODEL.RESNETS.STEM_OUT_CHANNELS", "0"], r"^MODEL\.RESNETS\.STEM_OUT_CHANNELS=0: expected an integer >= 1$"),
    # ... or refused at the build naming none (a bare IndexError, ZeroDivisionError, assertion) ...
    (["MODEL.RETINANET.IOU_THRESHOLDS", "[]"], r"^MODEL\.RETINANET\.IOU_THRESHOLDS=\[\]: expected IoU values in \[0, 1\]"),
    (["MODEL.RETINANET.IOU_LABELS", "[0, 1]"],
     r"^MODEL\.RETINANET\.IOU_LABELS=\[0, 1\]: expected 3 labels, one per IoU interval of "
     r"MODEL\.RETINANET\.IOU_THRESHOLDS=\[0\.4, 0\.5\]"),
    (["MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.0]]"],
     r"^MODEL\.ANCHOR_GENERATOR\.ASPECT_RATIOS=\[\[0\.0\]\]: expected height / width ratios > 0"),
    (["MODEL.ANCHOR_GENERATOR.OFFSET", "1.0"], r"^MODEL\.ANCHOR_GENERATOR\.OFFSET=1\.0: expected the anchors' offset"),
    # ... or trained or evaluated silently wrong: nothing matched, an infinite loss, no detection.
    (["MODEL.RETINANET.IOU_THRESHOLDS", "[1.5, 2.0]"], r"^MODEL\.RETINANET\.IOU_THRESHOLDS=\[1\.5, 2\.0\]: "),
    (["MODEL.RETINANET.FOCAL_LOSS_GAMMA", "-1.0"], r"^MODEL\.RETINANET\.FOCAL_LOSS_GAMMA=-1\.0: expected a focusing"),
    (["MODEL.RETINANET.FOCAL_LOSS_ALPHA", "1.5"], r"^MODEL\.RETINANET\.FOCAL_LOSS_ALPHA=1\.5: expected the foreground"),
    (["MODEL.RETINANET.SCORE_THRESH_TEST", "1.0"], r"^MODEL\.RETINANET\.SCORE_THRESH_TEST=1\.0: scores are probabilities"),
    (["MODEL.RETINANET.NMS_THRESH_TEST", "-1.0"], r"^MODEL\.RETINANET\.NMS_THRESH_TEST=-1\.0: expected an IoU threshold"),
    (["MODEL.RETINANET.TOPK_CANDIDATES_TEST", "0"], r"^MODEL\.RETINANET\.TOPK_CANDIDATES_TEST=0: no detection is kept"),
    (["TEST.DETECTIONS_PER_IMAGE", "0"], r"^TEST\.DETECTIONS_PER_IMAGE=0: no detection is kept"),
])
def test_retinanet_values_detectron2_fails_on_late_are_refused_naming_the_key(opts, match):
    from dropblock_det.engine.config_checks import check_config_before_run

    with pytest.raises(ValueError, match=match):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)


@pytest.mark.parametrize("opts", [
    ["MODEL.RETINANET.BBOX_REG_LOSS_TYPE", "giou"],
    ["MODEL.RETINANET.FOCAL_LOSS_ALPHA", "-1.0"],  # detectron2's "no weighting"
    ["MODEL.RETINANET.FOCAL_LOSS_GAMMA", "0.0"],
    ["MODEL.RETINANET.SCORE_THRESH_TEST", "0.0"],
    ["MODEL.RETINANET.NMS_THRESH_TEST", "1.5"],  # no suppression, as 1.0
    ["MODEL.RETINANET.IOU_THRESHOLDS", "[0.5, 0.5]", "MODEL.RETINANET.IOU_LABELS", "[0, -1, 1]"],
    ["TEST.DETECTIONS_PER_IMAGE", "-1"],
    ["MODEL.ANCHOR_GENERATOR.OFFSET", "0.5"],
    ["MODEL.RESNETS.WIDTH_PER_GROUP", "0"],  # unread by ResNet-18's basic blocks
])
def test_retinanet_values_detectron2_takes_are_not_refused(opts):
    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(synthetic_cfg(*opts))


@pytest.mark.parametrize("config_file, opts, match", [
    # A bare KeyError: 'gn' at the build; the loss falling as the model unlearns.
    ("fcn_R_50_FPN_GN_scratch_poly_330k_bs16.yaml", ["MODEL.SEM_SEG_HEAD.NORM", "gn"],
     r"^MODEL\.SEM_SEG_HEAD\.NORM='gn': not a norm detectron2's get_norm knows"),
    ("deeplab_v3_plus_R_52_GN_scratch_os16_poly_330k_bs16.yaml", ["MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", "-1.0"],
     r"^MODEL\.SEM_SEG_HEAD\.LOSS_WEIGHT=-1\.0: a negative weight"),
    # "groups must be a positive integer" at the build; a conv of 0 outputs at the first step.
    ("deeplab_v3_plus_R_52_GN_scratch_os16_poly_330k_bs16.yaml", ["MODEL.RESNETS.NUM_GROUPS", "0"],
     r"^MODEL\.RESNETS\.NUM_GROUPS=0: expected an integer >= 1$"),
    ("deeplab_v3_plus_R_52_GN_scratch_os16_poly_330k_bs16.yaml", ["MODEL.RESNETS.RES2_OUT_CHANNELS", "0"],
     r"^MODEL\.RESNETS\.RES2_OUT_CHANNELS=0: expected an integer >= 1$"),
    ("deeplab_v3_plus_R_52_GN_scratch_os16_poly_330k_bs16.yaml", ["MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", "0.0"], None),
])
def test_segmentation_values_detectron2_fails_on_are_refused_naming_the_key(tmp_path, config_file, opts, match):
    from conftest import small_voc_sem_seg_cfg

    from dropblock_det.engine.config_checks import check_model_config

    cfg = small_voc_sem_seg_cfg(config_file, tmp_path, opts)
    if match is None:
        check_model_config(cfg)
        return
    with pytest.raises(ValueError, match=match):
        check_model_config(cfg)


@pytest.mark.parametrize("opts, match", [
    # detectron2's registry said only "No object named 'DropBlockRetinaNett' found in 'META_ARCH'
    # registry!": no key, no near name.
    (["MODEL.META_ARCHITECTURE", "DropBlockRetinaNett"],
     r"^\"MODEL\.META_ARCHITECTURE='DropBlockRetinaNett': not in detectron2's META_ARCH registry \(did you mean "
     r"'DropBlockRetinaNet', 'RetinaNet'\?\); registered: .*GeneralizedRCNN"),
    (["MODEL.BACKBONE.NAME", "build_dropblock_retinanet_resnet_fpn_backbon"],
     r"^\"MODEL\.BACKBONE\.NAME='build_dropblock_retinanet_resnet_fpn_backbon': not in detectron2's BACKBONE "
     r"registry \(did you mean 'build_dropblock_retinanet_resnet_fpn_backbone'"),
    (["MODEL.ANCHOR_GENERATOR.NAME", "Default"], r"^\"MODEL\.ANCHOR_GENERATOR\.NAME='Default': not in detectron2's "),
    (["MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "MODEL.ROI_HEADS.NAME", "StandardROIHead"],
     r"^\"MODEL\.ROI_HEADS\.NAME='StandardROIHead': .*\(did you mean 'StandardROIHeads'"),
])
def test_a_component_name_not_registered_is_named_by_key_with_the_closest_names(opts, match):
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(KeyError, match=match):
        check_model_config(synthetic_cfg(*opts))


def test_names_a_meta_architecture_does_not_read_are_not_judged():
    # RetinaNet builds no ROI heads: a stale name there is detectron2's business, not an error.
    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(synthetic_cfg("MODEL.ROI_HEADS.NAME", "MyOwnROIHeads", "MODEL.SEM_SEG_HEAD.NAME", "Mine"))


def test_a_base_under_a_tilde_that_holds_no_mapping_is_named_where_it_resolves(tmp_path, monkeypatch):
    # detectron2 reads a _BASE_ of ~/... in the user's home: the one-line refusal follows it there.
    from dropblock_det.engine.config_checks import load_config

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "base.yaml").write_text("- a\n")
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text("_BASE_: ~/base.yaml\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(leaf))}': its _BASE_ "
                                         rf"'{re.escape(str(tmp_path / 'home' / 'base.yaml'))}' holds a list"):
        load_config(str(leaf))


def test_a_type_error_of_a_config_file_that_is_a_mapping_passes_unchanged(tmp_path, monkeypatch):
    # Only a document that is no mapping is refused as one: yacs' other TypeErrors are not hidden.
    from detectron2.config import CfgNode

    from dropblock_det.engine.config_checks import load_config

    config = tmp_path / "config.yaml"
    config.write_text("SOLVER:\n  MAX_ITER: 3\n")

    def fails(self, *args, **kwargs):
        raise TypeError("not from the document")

    monkeypatch.setattr(CfgNode, "merge_from_file", fails)
    with pytest.raises(TypeError, match="^not from the document$"):
        load_config(str(config))


def test_a_test_set_of_other_classes_than_the_training_sets_is_refused_naming_both(tmp_path):
    # NUM_CLASSES 2 for a training json of 2 categories and a test set of 1 was told "set
    # MODEL.RETINANET.NUM_CLASSES to 1", which the training set then refused.
    from dropblock_det.engine.config_checks import check_config_before_run

    with own_coco_set(tmp_path / "train", "test_config_checks_own_train_set") as train, \
            own_coco_set(tmp_path / "val", "test_config_checks_own_val_set_of_one_class", ["cat"]) as val:
        opts = ["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{val}',)", "MODEL.DEVICE", "cpu"]
        for count in ("2", "1"):
            with pytest.raises(ValueError) as refused:
                check_config_before_run(synthetic_cfg(*opts, "MODEL.RETINANET.NUM_CLASSES", count))
            assert str(refused.value).startswith(f"MODEL.RETINANET.NUM_CLASSES={count}, but ")
            assert re.search(rf"DATASETS\.TEST names '{val}', which has 1 (classes )?\(its metadata thing_classes: "
                             r"\['cat'\]\)", str(refused.value))
            assert re.search(rf"DATASETS\.TRAIN names '{train}', which has 2 (classes )?\(the categories of its "
                             r"json_file ", str(refused.value))
            assert str(refused.value).endswith(
                "no MODEL.RETINANET.NUM_CLASSES fits both; every set the model trains and is evaluated on needs "
                "the same classes, in the same order (in a COCO json: the same categories)")


# --- R-CNN journey (stop 52) ---
@pytest.mark.parametrize("c4, roi_heads", [(False, "StandardROIHeads"), (True, "Res5ROIHeads")])
def test_a_stock_rcnn_is_refused_naming_its_roi_heads_not_an_unbuilt_segmentation_head(c4, roi_heads):
    # The error named MODEL.SEM_SEG_HEAD.NAME='SemSegFPNHead', detectron2's default, which an
    # R-CNN does not build, and not the ROI heads it builds.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    backbone = "build_resnet_backbone" if c4 else "build_resnet_fpn_backbone"
    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", backbone, "MODEL.DROPBLOCK.FPN.ENABLED", "False", c4=c4)
    with pytest.raises(ValueError, match=rf"^MODEL\.DROPBLOCK\.RESNET\.ENABLED=True, but the model built from "
                                         rf"MODEL\.META_ARCHITECTURE='GeneralizedRCNN', MODEL\.BACKBONE\.NAME="
                                         rf"'{backbone}', MODEL\.ROI_HEADS\.NAME='{roi_heads}' has no DropBlock there"
                                         ) as error:
        check_model_config(cfg)
    assert "SEM_SEG_HEAD" not in str(error.value)
    # A segmentor's head is named: it builds one.
    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor", "MODEL.BACKBONE.NAME",
                        "build_resnet_fpn_backbone", "MODEL.DROPBLOCK.HEAD.ENABLED", "False",
                        "MODEL.DROPBLOCK.FPN.ENABLED", "False")
    with pytest.raises(ValueError, match=r"MODEL\.BACKBONE\.NAME='build_resnet_fpn_backbone', "
                                         r"MODEL\.SEM_SEG_HEAD\.NAME='SemSegFPNHead' has no DropBlock there"):
        check_model_config(cfg)


# Segmentation journey (stop 53)
@pytest.mark.parametrize("key, named", [
    # A per-location keep_prob / block size, which the config keeps once for every location:
    # yacs named the key alone, with no close key.
    ("MODEL.DROPBLOCK.SEM_SEG_HEAD.KEEP_PROB", "MODEL.DROPBLOCK.KEEP_PROB"),
    ("MODEL.DROPBLOCK.RESNET.BLOCK_SIZE", "MODEL.DROPBLOCK.BLOCK_SIZE"),
    # In the head's own node rather than MODEL.DROPBLOCK's.
    ("MODEL.SEM_SEG_HEAD.KEEP_PROB", "MODEL.DROPBLOCK.KEEP_PROB"),
])
def test_a_per_location_dropblock_value_is_told_the_config_s_one_key(key, named):
    with pytest.raises(KeyError, match=rf"Non-existent key: {re.escape(key)} \(did you mean {re.escape(named)}\?\)\"$"):
        synthetic_cfg(key, "0.8")
    # A name the config has nowhere is still named alone.
    with pytest.raises(KeyError, match=r"Non-existent key: MODEL\.DROPBLOCK\.SEM_SEG_HEAD\.ZZZQX\"$"):
        synthetic_cfg("MODEL.DROPBLOCK.SEM_SEG_HEAD.ZZZQX", "0.8")


# Mutation run 53
def test_a_key_one_node_too_deep_is_told_the_nearest_node_above_that_has_the_rest_first():
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import close_config_keys

    cfg = rcnn_cfg()
    # The node above (MODEL.DROPBLOCK), not the keys ending with TYPE elsewhere (INPUT.CROP.TYPE).
    assert close_config_keys(cfg, "MODEL.DROPBLOCK.RESNET.TYPE") == ["MODEL.DROPBLOCK.TYPE"]
    # The top level is a node above too: its TEST, not DATASETS.TEST found elsewhere.
    assert close_config_keys(cfg, "MODEL.DROPBLOCK.RESNET.TEST") == ["TEST"]
    # Elsewhere, every key ending with it (up to n).
    assert close_config_keys(cfg, "INPUT.CUTOUT.GAMMA") == ["MODEL.DROPBLOCK.GAMMA", "SOLVER.GAMMA"]
    assert close_config_keys(cfg, "INPUT.CUTOUT.GAMMA", n=1) == ["MODEL.DROPBLOCK.GAMMA"]


def test_a_one_part_unknown_key_is_told_at_most_three_keys():
    # A key of the top level that is nowhere (ENABLED) is left to the LazyConfig-spelling
    # search, which names three: close_config_keys' search elsewhere is for deeper keys.
    with pytest.raises(KeyError) as error:
        synthetic_cfg("ENABLED", "True")
    named = re.search(r"\(did you mean (.*)\?\)", str(error.value)).group(1).split(", ")
    assert len(named) == 3 and all(key.endswith(".ENABLED") for key in named), named


# --- coverage audit 55 ---
def test_rcnn_feature_check_leaves_a_users_own_or_unregistered_roi_heads_to_their_build():
    # A head of the user's own may read other keys than ROI_HEADS.IN_FEATURES: not refused
    # for them; an unregistered name is detectron2's registry's to name. The RPN's features
    # are still checked beside such a head.
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, ROIHeads

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_rcnn_features

    name = "CoverageAudit55OwnROIHeads"
    if name not in ROI_HEADS_REGISTRY:
        ROI_HEADS_REGISTRY.register(type(name, (ROIHeads,), {}))
    for head in (name, "NoSuchROIHeads"):
        check_rcnn_features(rcnn_cfg("MODEL.ROI_HEADS.NAME", head, "MODEL.ROI_HEADS.IN_FEATURES", "['q9']"))
        check_rcnn_features(rcnn_cfg("MODEL.ROI_HEADS.NAME", head, "MODEL.ROI_HEADS.IN_FEATURES", "['q9']",
                                     "MODEL.PROPOSAL_GENERATOR.NAME", "PrecomputedProposals",
                                     "MODEL.RPN.IN_FEATURES", "['q9']"))
        with pytest.raises(ValueError, match=r"MODEL\.RPN\.IN_FEATURES.*q9"):
            check_rcnn_features(rcnn_cfg("MODEL.ROI_HEADS.NAME", head, "MODEL.RPN.IN_FEATURES", "['q9']"))


def test_a_base_cycle_is_named_not_a_recursion_error(tmp_path):
    # yacs followed a.yaml -> b.yaml -> a.yaml until Python's recursion limit, naming no file.
    from dropblock_det.engine.config_checks import load_config

    (tmp_path / "a.yaml").write_text("_BASE_: sub/../b.yaml\nSOLVER:\n  MAX_ITER: 3\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ValueError, match=rf"^config file '{tmp_path}/a\.yaml': its _BASE_ chain comes back to "
                                         rf"'{tmp_path}/a\.yaml', a cycle"):
        load_config(str(tmp_path / "a.yaml"), [])
    (tmp_path / "self.yaml").write_text("_BASE_: self.yaml\n")
    with pytest.raises(ValueError, match=r"self\.yaml': its _BASE_ chain comes back to .*self\.yaml', a cycle"):
        load_config(str(tmp_path / "self.yaml"), [])


# --- coverage audit 55b ---
def test_rcnn_feature_check_of_a_proposal_network_checks_its_rpn_not_the_roi_heads_it_lacks():
    # A ProposalNetwork builds no ROI heads: ROI_HEADS.IN_FEATURES (left at another model's
    # value) is not read and must not be refused; its RPN's features are checked.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_rcnn_features

    check_rcnn_features(rcnn_cfg("MODEL.META_ARCHITECTURE", "ProposalNetwork", "MODEL.ROI_HEADS.IN_FEATURES", "['q9']"))
    with pytest.raises(ValueError, match=r"MODEL\.RPN\.IN_FEATURES.*q9"):
        check_rcnn_features(rcnn_cfg("MODEL.META_ARCHITECTURE", "ProposalNetwork", "MODEL.RPN.IN_FEATURES", "['q9']"))


def test_stock_retinanet_norm_this_detectron2_builds_is_not_refused():
    # BN builds in the stock RetinaNetHead on every detectron2: only a norm it cannot build
    # is sent to DropBlockRetinaNet.
    from dropblock_det.engine.config_checks import check_stock_retinanet_norm

    check_stock_retinanet_norm(synthetic_cfg("MODEL.META_ARCHITECTURE", "RetinaNet", "MODEL.RETINANET.NORM", "BN"))
    with pytest.raises(ValueError, match=r"^MODEL\.RETINANET\.NORM='GNN': this detectron2's own RetinaNetHead"):
        check_stock_retinanet_norm(synthetic_cfg("MODEL.META_ARCHITECTURE", "RetinaNet", "MODEL.RETINANET.NORM", "GNN"))


def test_channel_counts_are_checked_for_resnet_and_fpn_backbones_only():
    # A backbone of the user's own (no 'resnet' or 'fpn' in its name) does not read
    # MODEL.RESNETS / MODEL.FPN: their values are not refused for it.
    from dropblock_det.engine.config_checks import _check_channel_values

    for key in ("MODEL.RESNETS.STEM_OUT_CHANNELS", "MODEL.FPN.OUT_CHANNELS"):
        cfg = synthetic_cfg(key, "0")
        with pytest.raises(ValueError, match=rf"^{re.escape(key)}=0: expected an integer >= 1$"):
            _check_channel_values(cfg)
        cfg.MODEL.BACKBONE.NAME = "build_my_own_backbone"
        _check_channel_values(cfg)


@pytest.mark.parametrize("key, value, match", [
    ("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.0]]", r"expected height / width ratios > 0"),
    ("MODEL.ANCHOR_GENERATOR.SIZES", "[[0]]", r"expected anchor sizes in pixels, none 0"),
    ("MODEL.ANCHOR_GENERATOR.OFFSET", "1.0", r"expected the anchors' offset in \[0, 1\)"),
])
def test_rotated_anchor_values_are_checked_as_the_default_generators_are(key, value, match):
    # RotatedAnchorGenerator's were not looked at: a ratio of 0 failed its build with a bare
    # ZeroDivisionError, a size of 0 passed every check, an offset of 1 named no key.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.ANCHOR_GENERATOR.NAME", "RotatedAnchorGenerator", "MODEL.PROPOSAL_GENERATOR.NAME", "RRPN",
                   "MODEL.ROI_HEADS.NAME", "RROIHeads", "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated",
                   "MODEL.RPN.BBOX_REG_WEIGHTS", "(1, 1, 1, 1, 1)",
                   "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", "(10, 10, 5, 5, 1)")
    check_model_config(cfg)  # the rotated R-CNN builds
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}={re.escape(value)}: {match}"):
        check_model_config(cfg)


# --- mutation 56 ---
def test_a_base_chain_is_followed_by_path_so_only_a_real_cycle_is_named_one(tmp_path):
    # Two files of one name in a chain (a project's base.yaml extending another base.yaml) are
    # no cycle: the empty one is named. A cycle entered from outside it is named where the
    # chain comes back. Two configs extending one base (a diamond of two chains) both load.
    from dropblock_det.engine.config_checks import load_config

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "base.yaml").write_text("_BASE_: ../b/base.yaml\n")
    (tmp_path / "b" / "base.yaml").write_text("")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(tmp_path / 'a' / 'base.yaml'))}': its _BASE_ "
                                         rf"'{re.escape(str(tmp_path / 'b' / 'base.yaml'))}' holds nothing"):
        load_config(str(tmp_path / "a" / "base.yaml"))
    (tmp_path / "x.yaml").write_text("_BASE_: y.yaml\n")
    (tmp_path / "y.yaml").write_text("_BASE_: z.yaml\n")
    (tmp_path / "z.yaml").write_text("_BASE_: y.yaml\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(tmp_path / 'x.yaml'))}': its _BASE_ chain comes "
                                         rf"back to '{re.escape(str(tmp_path / 'y.yaml'))}', a cycle"):
        load_config(str(tmp_path / "x.yaml"))
    (tmp_path / "c.yaml").write_text(f"_BASE_: {SYNTH_CONFIG}\nSOLVER:\n  MAX_ITER: 7\n")
    for leaf, base in (("d1.yaml", "c.yaml"), ("d2.yaml", "a/../c.yaml")):
        (tmp_path / leaf).write_text(f"_BASE_: {base}\n")
        assert load_config(str(tmp_path / leaf)).SOLVER.MAX_ITER == 7


def test_anchor_values_given_as_opts_tuples_pass_and_a_size_that_is_no_number_is_named():
    # Opts give a level's values as a tuple: its numbers are checked, it is no value itself.
    # A negative size is left (detectron2 makes its absolute value's anchors); a size that is
    # no number ("16") failed detectron2's build with a bare TypeError.
    from dropblock_det.engine.config_checks import check_model_values

    cfg = synthetic_cfg("MODEL.ANCHOR_GENERATOR.SIZES", "((16, 20), (32, 40), (64, 80), (128, 161), (256, 322))",
                        "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "((0.5, 1.0, 2.0),)")
    check_model_values(cfg)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[-16]]
    check_model_values(cfg)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [["16"]]
    with pytest.raises(ValueError, match=r"^MODEL\.ANCHOR_GENERATOR\.SIZES=\[\['16'\]\]: expected anchor sizes in pixels"):
        check_model_values(cfg)


# --- stop 56 ---
@pytest.mark.parametrize("rpn_levels", [None, "['p2','p3','p4','p5']"])
def test_a_stock_fpn_whose_top_block_reads_a_level_it_does_not_give_is_refused_naming_its_in_features(rpn_levels):
    # detectron2's build_resnet_fpn_backbone on res2-res4: its max-pooled top block reads p5,
    # which those give no more. It built, and failed at the first forward with a bare
    # IndexError; with the RPN's default levels the refusal named MODEL.RPN.IN_FEATURES's p6.
    from detectron2.modeling import build_backbone

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    opts = ["MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
            "MODEL.DROPBLOCK.FPN.ENABLED", "False", "MODEL.FPN.IN_FEATURES", "['res2','res3','res4']"]
    if rpn_levels:
        opts += ["MODEL.RPN.IN_FEATURES", rpn_levels, "MODEL.ANCHOR_GENERATOR.SIZES", "[[32],[64],[128],[256]]"]
    cfg = rcnn_cfg(*opts)
    with pytest.raises(IndexError):  # what detectron2 does with it
        build_backbone(cfg)(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=re.escape(
            "MODEL.FPN.IN_FEATURES=['res2', 'res3', 'res4'] (MODEL.BACKBONE.NAME='build_resnet_fpn_backbone'): the FPN's "
            "top_block LastLevelMaxPool reads 'p5', which is neither a bottom_up output nor a level of in_features="
            "['res2', 'res3', 'res4'] (['res2', 'res3', 'res4', 'res5', 'p2', 'p3', 'p4']); detectron2's FPN would "
            "fail at the first forward")):
        check_model_config(cfg)
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]  # P3-P5, and P6 from P5
    cfg.MODEL.RPN.IN_FEATURES = ["p3", "p4", "p5", "p6"]
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p3", "p4", "p5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256]]
    assert type(check_model_config(cfg).backbone).__name__ == "FPN"


# --- zoo journey yacs 56 ---
@pytest.mark.parametrize("c4, opts, key, close", [
    (False, ["MODEL.RPN.HEAD_NAME", "StandardRPNHeadd"], "MODEL.RPN.HEAD_NAME", "StandardRPNHead"),
    (False, ["MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHeadd"], "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead"),
    (False, ["MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHeadd"],
     "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"),
    (True, ["MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHeadd"],
     "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"),
    (False, ["MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NAME", "KRCNNConvDeconvUpsampleHeadd"],
     "MODEL.ROI_KEYPOINT_HEAD.NAME", "KRCNNConvDeconvUpsampleHead"),
])
def test_an_rcnn_head_name_not_registered_is_named_by_key_with_the_closest_name(c4, opts, key, close):
    # detectron2's build said only "No object named '...Headd' found in 'RPN_HEAD' registry!".
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    value = opts[-1]
    with pytest.raises(KeyError, match=re.escape(f"{key}={value!r}: not in detectron2's ") + r".*"
                       + re.escape(f"(did you mean {close!r}?)")):
        check_model_config(rcnn_cfg(*opts, c4=c4))


def test_rcnn_head_names_the_model_does_not_build_are_not_judged():
    # C4's Res5ROIHeads builds no box head, and no mask / keypoint head is built while off.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(rcnn_cfg("MODEL.ROI_BOX_HEAD.NAME", "Mine", c4=True))
    check_model_config(rcnn_cfg("MODEL.ROI_MASK_HEAD.NAME", "Mine", "MODEL.ROI_KEYPOINT_HEAD.NAME", "Mine"))


@pytest.mark.parametrize("opts, message", [
    (["MODEL.FPN.NORM", "GN", "MODEL.FPN.OUT_CHANNELS", "48"],
     "MODEL.FPN.OUT_CHANNELS=48: NORM 'GN' uses 32 groups, so channel counts must be multiples of 32 (48 is not; "
     "e.g. 64 instead of 48) (MODEL.FPN.NORM='GN')"),
    (["MODEL.ROI_BOX_HEAD.NORM", "GN", "MODEL.ROI_BOX_HEAD.NUM_CONV", "2", "MODEL.ROI_BOX_HEAD.CONV_DIM", "100"],
     "MODEL.ROI_BOX_HEAD.CONV_DIM=100: NORM 'GN' uses 32 groups, so channel counts must be multiples of 32 (100 is "
     "not; e.g. 128 instead of 100) (MODEL.ROI_BOX_HEAD.NORM='GN')"),
    (["MODEL.ROI_BOX_HEAD.NORM", "GNN", "MODEL.ROI_BOX_HEAD.NUM_CONV", "2"],
     "MODEL.ROI_BOX_HEAD.NORM='GNN': not a norm detectron2's get_norm knows"),
    (["MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.NORM", "GN", "MODEL.ROI_MASK_HEAD.CONV_DIM", "100"],
     "MODEL.ROI_MASK_HEAD.CONV_DIM=100: NORM 'GN' uses 32 groups"),
    (["MODEL.RESNETS.NORM", "GN", "MODEL.RESNETS.STEM_OUT_CHANNELS", "48"],
     "MODEL.RESNETS.STEM_OUT_CHANNELS=48: NORM 'GN' uses 32 groups"),
])
def test_an_rcnn_norm_its_channels_cannot_take_is_refused_naming_the_channel_and_norm_keys(opts, message):
    # GroupNorm refused them at the build with a bare "num_channels (48) must be divisible by
    # num_groups (32)", and an unknown norm was a bare KeyError: 'GNN'; none named a key.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match=re.escape(message)):
        check_model_config(rcnn_cfg(*opts))


def test_a_retinanet_head_norm_the_fpn_width_cannot_take_is_refused_naming_both_keys():
    from conftest import small_retinanet_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = small_retinanet_cfg()
    cfg.MODEL.META_ARCHITECTURE = "DropBlockRetinaNet"
    cfg.MODEL.RETINANET.NORM = "GN"
    cfg.MODEL.FPN.OUT_CHANNELS = 48
    with pytest.raises(ValueError, match=re.escape(
            "MODEL.FPN.OUT_CHANNELS=48: NORM 'GN' uses 32 groups, so channel counts must be multiples of 32 (48 is "
            "not; e.g. 64 instead of 48) (MODEL.RETINANET.NORM='GN')")):
        check_model_config(cfg)


def test_gn_everywhere_in_an_rcnn_with_widths_of_32_groups_is_not_refused():
    # Misc/mask_rcnn_R_50_FPN_3x_gn.yaml's norms, at this test's widths (X-101 32x8d: 256 wide).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    for depth, opts in ((18, []), (50, ["MODEL.RESNETS.NUM_GROUPS", "32", "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
                                        "MODEL.RESNETS.RES2_OUT_CHANNELS", "256"])):
        check_model_config(rcnn_cfg(
            "MODEL.RESNETS.DEPTH", str(depth), "MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN", "MODEL.MASK_ON",
            "True", "MODEL.ROI_BOX_HEAD.NORM", "GN", "MODEL.ROI_BOX_HEAD.NUM_CONV", "4", "MODEL.ROI_BOX_HEAD.NUM_FC",
            "1", "MODEL.ROI_MASK_HEAD.NORM", "GN", *opts))


def _cascade_cfg(*opts):
    from conftest import rcnn_cfg

    # Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml's ROI heads.
    return rcnn_cfg("MODEL.ROI_HEADS.NAME", "CascadeROIHeads", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True",
                    *opts)


def test_a_cascade_stage_iou_above_one_is_refused_naming_the_key():
    # detectron2 builds that stage's Matcher, which labels every proposal background (no box
    # regression trained there, the last stage's boxes are the detections), and trains on.
    from detectron2.modeling.matcher import Matcher

    from dropblock_det.engine.config_checks import check_model_config

    _, labels = Matcher([1.5], [0, 1], allow_low_quality_matches=False)(torch.ones(2, 3))
    assert labels.eq(0).all()
    with pytest.raises(ValueError, match=re.escape(
            "MODEL.ROI_BOX_CASCADE_HEAD.IOUS=[0.5, 0.6, 1.5]: expected each stage's foreground IoU in (0, 1]")):
        check_model_config(_cascade_cfg("MODEL.ROI_BOX_CASCADE_HEAD.IOUS", "[0.5, 0.6, 1.5]"))


def test_a_cascade_stage_box_weight_of_zero_is_refused_naming_the_stage():
    # That stage's Box2BoxTransform divides its deltas by 0: no finite box at inference.
    from detectron2.modeling.box_regression import Box2BoxTransform

    from dropblock_det.engine.config_checks import check_model_config

    boxes = Box2BoxTransform((30.0, 30.0, 15.0, 0.0)).apply_deltas(torch.zeros(1, 4), torch.tensor([[0., 0., 8., 8.]]))
    assert not torch.isfinite(boxes).all()
    weights = "((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 0.0))"
    with pytest.raises(ValueError, match=re.escape(
            "MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS[2]=[30.0, 30.0, 15.0, 0.0]: expected 4 weights, none 0")):
        check_model_config(_cascade_cfg("MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS", weights))


def test_the_stock_cascade_stages_are_not_refused():
    from dropblock_det.engine.config_checks import check_model_config

    cfg = _cascade_cfg()
    assert list(cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS) == [0.5, 0.6, 0.7]
    assert type(check_model_config(cfg).roi_heads).__name__ == "CascadeROIHeads"


def _stock_retinanet_cfg(*opts):
    from conftest import small_retinanet_cfg

    # configs/Base-RetinaNet.yaml is detectron2's: its own RetinaNet and backbone builder.
    cfg = small_retinanet_cfg()
    cfg.merge_from_list(list(opts))
    assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME) == ("RetinaNet", "build_retinanet_resnet_fpn_backbone")
    return cfg


@pytest.mark.parametrize("opts, bare, message", [
    (["MODEL.RETINANET.PRIOR_PROB", "0.0"], ZeroDivisionError,
     "MODEL.RETINANET.PRIOR_PROB=0.0: expected a probability in (0, 1), e.g. 0.01"),
    (["MODEL.RETINANET.PRIOR_PROB", "1.0"], ValueError, "MODEL.RETINANET.PRIOR_PROB=1.0: expected a probability in (0, 1)"),
    (["MODEL.RETINANET.NUM_CONVS", "0"], IndexError,
     "MODEL.RETINANET.NUM_CONVS=0: detectron2's RetinaNetHead needs at least one conv per tower (e.g. 4)"),
    (["MODEL.RETINANET.IN_FEATURES", "['p2', 'p3', 'p4', 'p5', 'p6']"], KeyError,
     "MODEL.RETINANET.IN_FEATURES=['p2', 'p3', 'p4', 'p5', 'p6']: 'p2' not among the backbone's outputs "
     "['p3', 'p4', 'p5', 'p6', 'p7'] (MODEL.BACKBONE.NAME='build_retinanet_resnet_fpn_backbone')"),
    (["MODEL.RETINANET.IN_FEATURES", "['p3', 'p4', 'p5', 'p6']"], AssertionError,
     "entries for the 4 levels of MODEL.RETINANET.IN_FEATURES=['p3', 'p4', 'p5', 'p6']"),
    (["MODEL.FPN.IN_FEATURES", "['res2', 'res3', 'res4', 'res5']"], KeyError,
     "MODEL.FPN.IN_FEATURES=['res2', 'res3', 'res4', 'res5']: 'res2' not among the ResNet's outputs"),
    (["MODEL.RESNETS.OUT_FEATURES", "['res3', 'res4']", "MODEL.FPN.IN_FEATURES", "['res3', 'res4']"], KeyError,
     "MODEL.RESNETS.OUT_FEATURES=['res3', 'res4']: no 'res5', from which build_retinanet_resnet_fpn_backbone "
     "computes P6/P7; add it"),
])
def test_detectron2s_own_retinanet_values_its_build_fails_on_are_named_by_key(opts, bare, message):
    # detectron2's RetinaNet and build_retinanet_resnet_fpn_backbone failed their build with a
    # bare error naming no key (DropBlockRetinaNet and its backbone builder named them).
    from detectron2.modeling import build_model

    from dropblock_det.engine.config_checks import check_model_config

    cfg = _stock_retinanet_cfg(*opts)
    with pytest.raises(bare):
        build_model(cfg)
    with pytest.raises(ValueError, match=re.escape(message)):
        check_model_config(cfg)


def test_detectron2s_own_retinanet_on_fewer_levels_with_as_many_anchor_sizes_is_not_refused():
    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(_stock_retinanet_cfg())
    model = check_model_config(_stock_retinanet_cfg(
        "MODEL.RETINANET.IN_FEATURES", "['p3', 'p4', 'p5', 'p6']", "MODEL.ANCHOR_GENERATOR.SIZES", "[[32], [64], [128], [256]]"))
    assert type(model).__name__ == "RetinaNet"


def test_detectron2s_own_rcnn_fpn_builder_on_features_the_resnet_lacks_is_named_by_key():
    # build_resnet_fpn_backbone failed with a bare KeyError: 'res2'.
    from detectron2.modeling import build_backbone

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
                   "MODEL.DROPBLOCK.FPN.ENABLED", "False", "MODEL.RESNETS.OUT_FEATURES", "['res3', 'res4', 'res5']")
    with pytest.raises(KeyError):
        build_backbone(cfg)
    with pytest.raises(ValueError, match=re.escape(
            "MODEL.FPN.IN_FEATURES=['res2', 'res3', 'res4', 'res5']: 'res2' not among the ResNet's outputs "
            "['res3', 'res4', 'res5'] (MODEL.RESNETS.OUT_FEATURES=['res3', 'res4', 'res5'])")):
        check_model_config(cfg)


@pytest.fixture
def keypoint_set():
    """A set registered as detectron2's keypoint sets are: its metadata names its 17 keypoints."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES

    name = "zoo56_keypoints"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(keypoint_names=list(COCO_PERSON_KEYPOINT_NAMES), evaluator_type="coco",
                                  thing_classes=["person", "b", "c"])
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_a_keypoint_head_of_another_count_than_the_training_sets_keypoints_is_refused_before_the_run(keypoint_set):
    # detectron2's keypoint loss on 17 ground-truth keypoints per instance against a 5-map head
    # failed at the first step with "IndexError: index 34 is out of bounds for dimension 0".
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_config_before_run

    opts = ["MODEL.KEYPOINT_ON", "True", "DATASETS.TRAIN", f"('{keypoint_set}',)", "DATASETS.TEST", "()",
            "SOLVER.MAX_ITER", "2"]
    with pytest.raises(ValueError, match=re.escape(
            f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=5: DATASETS.TRAIN set '{keypoint_set}' has 17 keypoints (its "
            "metadata keypoint_names); set it to 17")):
        check_config_before_run(rcnn_cfg(*opts, "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5"), check_weights=False,
                                check_files=False)
    check_config_before_run(rcnn_cfg(*opts), check_weights=False, check_files=False)  # 17: the default


def test_a_keypoint_head_of_no_keypoints_is_refused_naming_the_key():
    # It built a deconv of 0 outputs, which failed at the first forward with a bare
    # "IndexError: select(): index 0 out of range for tensor of size [0]".
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match=re.escape(
            "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=0: expected the number of keypoints per instance, >= 1")):
        check_model_config(rcnn_cfg("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "0"))
    check_model_config(rcnn_cfg("MODEL.KEYPOINT_ON", "True"))


# --- stop 56 ---
def test_oks_sigmas_that_do_not_fit_the_keypoint_head_are_refused_before_the_run(keypoint_set, tmp_path):
    # The COCO evaluation scores each keypoint with its sigma (build_evaluator passes
    # TEST.KEYPOINT_OKS_SIGMAS; none: COCO's 17): another count failed detectron2's assertion
    # after the whole inference, and a sigma <= 0 was taken without a word.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_config_before_run

    def check(*opts):
        cfg = rcnn_cfg("MODEL.KEYPOINT_ON", "True", "DATASETS.TRAIN", f"('{keypoint_set}',)",
                       "DATASETS.TEST", f"('{keypoint_set}',)", "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path), *opts)
        check_config_before_run(cfg, check_weights=False, check_files=False)

    check()  # 17 keypoints, COCO's 17 sigmas
    check("TEST.KEYPOINT_OKS_SIGMAS", str([0.05] * 17))
    with pytest.raises(ValueError, match=re.escape(
            f"TEST.KEYPOINT_OKS_SIGMAS=[0.05, 0.05]: 2 sigmas for MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=17, which "
            f"the COCO evaluation of DATASETS.TEST '{keypoint_set}' scores one sigma each: give 17")):
        check("TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.05]")
    with pytest.raises(ValueError, match=re.escape("TEST.KEYPOINT_OKS_SIGMAS=[0.05, 0.0, 0.05]: expected one positive")):
        check("TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.0, 0.05]")
    for sigmas in ("[0.05, None]", "[0.05, '0.05']", "[0.05, True]"):  # each its own message, not a TypeError
        with pytest.raises(ValueError, match=re.escape(f"TEST.KEYPOINT_OKS_SIGMAS={sigmas}: expected one positive")):
            check("TEST.KEYPOINT_OKS_SIGMAS", sigmas)
    check("TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.05]", "DATASETS.TEST", "()")  # nothing evaluated by them
    # A set of 5 keypoints of one's own, whose metadata names none (and no json_file to scan
    # for keypoints: a set without any is not scored on them): COCO's 17 sigmas do not fit.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    own = "test_config_checks_oks_own_keypoints"
    DatasetCatalog.register(own, list)
    MetadataCatalog.get(own).set(evaluator_type="coco", thing_classes=["circle", "square", "triangle"])
    try:
        with pytest.raises(ValueError, match=re.escape(
                "TEST.KEYPOINT_OKS_SIGMAS=[]: none, so COCO's 17 person sigmas for MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=5")):
            check("MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5", "DATASETS.TRAIN", "('synthetic_det_train',)",
                  "DATASETS.TEST", f"('{own}',)")
        check("MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5", "DATASETS.TRAIN", "('synthetic_det_train',)",
              "DATASETS.TEST", f"('{own}',)", "TEST.KEYPOINT_OKS_SIGMAS", str([0.05] * 5))
    finally:
        DatasetCatalog.remove(own)
        MetadataCatalog.remove(own)


# --- mutation 57 ---
@pytest.mark.parametrize("backbone", ["build_dropblock_resnet_fpn_backbone", "build_resnet_fpn_backbone"])
def test_a_fast_rcnn_on_precomputed_proposals_is_not_refused_as_an_unregistered_proposal_generator(backbone):
    # detectron2's Fast R-CNN (COCO-Detection/fast_rcnn_R_50_FPN_1x.yaml) names no registered
    # generator: build_proposal_generator returns None for "PrecomputedProposals". It was refused
    # as a name missing from the PROPOSAL_GENERATOR registry. A ProposalNetwork needs a generator.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", backbone, "MODEL.PROPOSAL_GENERATOR.NAME", "PrecomputedProposals",
                   "MODEL.LOAD_PROPOSALS", "True", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
                   "MODEL.DROPBLOCK.FPN.ENABLED", "False")
    model = check_model_config(cfg)
    assert type(model).__name__ == "GeneralizedRCNN" and model.proposal_generator is None
    cfg.MODEL.META_ARCHITECTURE = "ProposalNetwork"
    with pytest.raises(KeyError, match=r"MODEL\.PROPOSAL_GENERATOR\.NAME='PrecomputedProposals': not in"):
        check_model_config(cfg)


def test_a_stock_segmentor_fpn_whose_max_pooled_top_block_has_no_p5_is_refused_when_the_model_is_checked():
    # A SemanticSegmentor has no RPN / RetinaNet head whose feature check looks at the FPN first:
    # only the check of the built model sees that build_resnet_fpn_backbone on res2-res4 max-pools
    # a p5 it does not give (detectron2's FPN: a bare IndexError at the first forward).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor", "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone",
                   "MODEL.DROPBLOCK.RESNET.ENABLED", "False", "MODEL.DROPBLOCK.FPN.ENABLED", "False",
                   "MODEL.SEM_SEG_HEAD.IN_FEATURES", "['p2','p3','p4']")
    assert type(check_model_config(cfg)).__name__ == "SemanticSegmentor"
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4"]
    with pytest.raises(ValueError, match=r"^MODEL\.FPN\.IN_FEATURES=\['res2', 'res3', 'res4'\] \(MODEL\.BACKBONE\.NAME="
                                         r"'build_resnet_fpn_backbone'\): the FPN's top_block LastLevelMaxPool reads 'p5'"):
        check_model_config(cfg)


def test_an_fpn_whose_top_block_reads_a_resnet_output_the_resnet_does_not_give_names_its_out_features():
    # A backbone of the user's own, FPN P6/P7 from res5 (as RetinaNet's) over a ResNet whose
    # MODEL.RESNETS.OUT_FEATURES end at res4: the key named is RESNETS.OUT_FEATURES, with its value.
    from detectron2.modeling import BACKBONE_REGISTRY, FPN
    from detectron2.modeling.backbone.fpn import LastLevelP6P7
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_rcnn_features

    def Mutation57P6P7FromRes5(cfg, input_shape):  # noqa: N802 - the registered name
        return FPN(bottom_up=build_resnet_backbone(cfg, input_shape), in_features=cfg.MODEL.FPN.IN_FEATURES,
                   out_channels=cfg.MODEL.FPN.OUT_CHANNELS, top_block=LastLevelP6P7(512, cfg.MODEL.FPN.OUT_CHANNELS))

    name = Mutation57P6P7FromRes5.__name__
    if name not in BACKBONE_REGISTRY:
        BACKBONE_REGISTRY.register(Mutation57P6P7FromRes5)
    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", name, "MODEL.RESNETS.OUT_FEATURES", "['res2','res3','res4']",
                   "MODEL.FPN.IN_FEATURES", "['res3','res4']", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
                   "MODEL.DROPBLOCK.FPN.ENABLED", "False")
    with pytest.raises(ValueError, match=r"^MODEL\.RESNETS\.OUT_FEATURES=\['res2', 'res3', 'res4'\] \(MODEL\.BACKBONE\.NAME="
                                         r"'Mutation57P6P7FromRes5'\): the FPN's top_block LastLevelP6P7 reads 'res5'"):
        check_rcnn_features(cfg)


@pytest.mark.parametrize("opts", [["MODEL.RETINANET.PRIOR_PROB", "1e-6"], ["MODEL.RETINANET.PRIOR_PROB", "0.5"],
                                  ["MODEL.RETINANET.PRIOR_PROB", "0.999"], ["MODEL.RETINANET.NUM_CONVS", "1"]])
def test_detectron2s_own_retinanet_takes_any_prior_probability_inside_0_1_and_one_conv_per_tower(opts):
    # Only 0 and 1 (and below / above) fail RetinaNetHead's bias init: the values just inside build.
    from dropblock_det.engine.config_checks import check_model_config

    assert type(check_model_config(_stock_retinanet_cfg(*opts))).__name__ == "RetinaNet"


def test_a_retinanet_prior_probability_of_none_is_named_by_key_not_a_bare_type_error():
    # yacs merges None into any key: the comparison with 0 was a bare TypeError.
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match=re.escape("MODEL.RETINANET.PRIOR_PROB=None: expected a probability in (0, 1)")):
        check_model_config(_stock_retinanet_cfg("MODEL.RETINANET.PRIOR_PROB", "None"))


def test_a_box_head_norm_with_no_conv_to_follow_is_not_judged_against_conv_dim():
    # FastRCNNConvFCHead puts its norm after its convs only: with NUM_CONV 0 a GN that 48
    # channels could not take is never built.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    opts = ["MODEL.ROI_BOX_HEAD.NORM", "GN", "MODEL.ROI_BOX_HEAD.CONV_DIM", "48"]
    check_model_config(rcnn_cfg("MODEL.ROI_BOX_HEAD.NUM_CONV", "0", *opts))
    with pytest.raises(ValueError, match=r"MODEL\.ROI_BOX_HEAD\.CONV_DIM.*\(MODEL\.ROI_BOX_HEAD\.NORM='GN'\)"):
        check_model_config(rcnn_cfg("MODEL.ROI_BOX_HEAD.NUM_CONV", "1", *opts))


@pytest.fixture
def metadata_only_sets():
    """Three sets known by their metadata alone (what check_keypoint_counts reads): one of 5
    keypoints evaluated by COCO's evaluator, one by Pascal VOC's, one with no evaluator."""
    from detectron2.data import MetadataCatalog

    names = {"mutation57_coco5": dict(evaluator_type="coco", keypoint_names=list("abcde")),
             "mutation57_voc": dict(evaluator_type="pascal_voc"), "mutation57_none": {}}
    for name, metadata in names.items():
        MetadataCatalog.get(name).set(**metadata)
    yield list(names)
    for name in names:
        MetadataCatalog.remove(name)


def test_oks_sigmas_are_judged_for_the_coco_evaluated_test_set_among_several_and_named_by_it(metadata_only_sets):
    # Only a DATASETS.TEST set COCO's evaluator scores reads TEST.KEYPOINT_OKS_SIGMAS: the sets of
    # other evaluators (or none) leave them unjudged, and the refusal names the COCO one.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_keypoint_counts

    coco, voc, none = metadata_only_sets
    kp = ["MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5", "DATASETS.TRAIN", "()"]
    for sigmas in ("[0.05, 0.05]", "[]", "[0.05, 0.0, 0.05, 0.05, 0.05]"):
        check_keypoint_counts(rcnn_cfg(*kp, "DATASETS.TEST", f"('{voc}', '{none}')", "TEST.KEYPOINT_OKS_SIGMAS", sigmas))
    check_keypoint_counts(rcnn_cfg(*kp, "DATASETS.TEST", f"('{voc}', '{coco}')", "TEST.KEYPOINT_OKS_SIGMAS",
                                   str([0.05] * 5)))
    with pytest.raises(ValueError, match=re.escape(f"which the COCO evaluation of DATASETS.TEST '{coco}' scores")):
        check_keypoint_counts(rcnn_cfg(*kp, "DATASETS.TEST", f"('{voc}', '{none}', '{coco}')"))
    # Its keypoint_names are judged as a TEST set; a TRAIN set only where one trains.
    with pytest.raises(ValueError, match=re.escape(f"DATASETS.TEST set '{coco}' has 5 keypoints")):
        check_keypoint_counts(rcnn_cfg(*kp[:2], "DATASETS.TEST", f"('{coco}',)"))
    check_keypoint_counts(rcnn_cfg(*kp[:2], "DATASETS.TRAIN", f"('{coco}',)", "DATASETS.TEST", "()"), keys=("TEST",))
    with pytest.raises(ValueError, match=re.escape(f"DATASETS.TRAIN set '{coco}' has 5 keypoints")):
        check_keypoint_counts(rcnn_cfg(*kp[:2], "DATASETS.TRAIN", f"('{coco}',)", "DATASETS.TEST", "()"))


def test_a_model_without_keypoints_is_not_judged_by_a_keypoint_sets_count_or_the_oks_sigmas(metadata_only_sets):
    # MODEL.KEYPOINT_ON False (a Faster / Mask R-CNN on a person set with keypoints): the head
    # of 17 it does not build, and the sigmas no evaluation of it reads, are left alone.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_keypoint_counts

    coco = metadata_only_sets[0]
    check_keypoint_counts(rcnn_cfg("DATASETS.TRAIN", f"('{coco}',)", "DATASETS.TEST", f"('{coco}',)",
                                   "TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.0]"))


def test_a_cascade_stage_iou_of_exactly_one_is_taken_and_of_zero_or_no_number_is_named_by_key():
    # IoU 1.0 matches identical boxes (a strict but valid stage); detectron2's Matcher asserts a
    # threshold of 0 naming no key, and None failed the range test with a bare TypeError.
    from detectron2.modeling.matcher import Matcher

    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(_cascade_cfg("MODEL.ROI_BOX_CASCADE_HEAD.IOUS", "[0.5, 0.6, 1.0]"))
    with pytest.raises(AssertionError):
        Matcher([0.0], [0, 1])
    for ious in ("[0.0, 0.6, 0.7]", "[0.5, None, 0.7]"):
        with pytest.raises(ValueError, match=re.escape(f"MODEL.ROI_BOX_CASCADE_HEAD.IOUS={ious}: expected each stage's")):
            check_model_config(_cascade_cfg("MODEL.ROI_BOX_CASCADE_HEAD.IOUS", ious))


def test_a_keypoint_head_of_more_keypoints_than_a_sets_names_is_refused_too(metadata_only_sets):
    # More heatmaps than the set's keypoints trained the extra ones on nothing.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_keypoint_counts

    coco = metadata_only_sets[0]
    with pytest.raises(ValueError, match=re.escape(f"NUM_KEYPOINTS=6: DATASETS.TRAIN set '{coco}' has 5 keypoints")):
        check_keypoint_counts(rcnn_cfg("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "6",
                                       "DATASETS.TRAIN", f"('{coco}',)", "DATASETS.TEST", "()"))


def test_a_dc5_rcnn_dilates_res5_in_its_backbone_and_is_not_refused_as_a_c4_head():
    # Base-RCNN-DilatedC5.yaml: the backbone builds res5 with RES5_DILATION 2 and StandardROIHeads
    # read it; only the C4 Res5ROIHeads, which builds res5 itself, ignores the dilation.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.RESNETS.DEPTH", "50",
                   "MODEL.RESNETS.RES2_OUT_CHANNELS", "256", "MODEL.RESNETS.OUT_FEATURES", "['res5']",
                   "MODEL.RESNETS.RES5_DILATION", "2", "MODEL.RPN.IN_FEATURES", "['res5']",
                   "MODEL.ROI_HEADS.IN_FEATURES", "['res5']", "MODEL.ANCHOR_GENERATOR.SIZES", "[[32, 64, 128, 256, 512]]",
                   "MODEL.DROPBLOCK.RESNET.ENABLED", "False", "MODEL.DROPBLOCK.FPN.ENABLED", "False")
    assert type(check_model_config(cfg).roi_heads).__name__ == "StandardROIHeads"


# --- ROI pooler levels and anchor sizes against the levels' strides (session 57) ---

@pytest.mark.parametrize("levels, detectron2_builds, hint", [
    (["p5", "p4", "p3", "p2"], False, "list them finest first, ['p2', 'p3', 'p4', 'p5']"),
    (["p2", "p4"], False, "no level between the first and the last may be left out"),
    # detectron2 asserts on the first and last stride only: this one pooled mid-sized boxes
    # from the wrong map, silently.
    (["p2", "p4", "p3", "p5"], True, "list them finest first, ['p2', 'p3', 'p4', 'p5']"),
])
def test_roi_heads_levels_that_are_no_pyramid_finest_first_are_refused_naming_the_key(levels, detectron2_builds, hint):
    from conftest import rcnn_cfg
    from detectron2.modeling.poolers import ROIPooler

    from dropblock_det.engine.config_checks import check_model_config

    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
    scales = [1.0 / strides[level] for level in levels]
    if detectron2_builds:
        ROIPooler((7, 7), scales, 0, "ROIAlignV2")
    else:
        with pytest.raises(AssertionError, match="do not form a pyramid"):
            ROIPooler((7, 7), scales, 0, "ROIAlignV2")
    with pytest.raises(ValueError, match=re.escape(f"MODEL.ROI_HEADS.IN_FEATURES={levels}: strides "
                                                   f"{[strides[level] for level in levels]}, where detectron2's "
                                                   "ROIPooler takes a pyramid") + ".*" + re.escape(hint)):
        check_model_config(rcnn_cfg("MODEL.ROI_HEADS.IN_FEATURES", str(levels)))
    check_model_config(rcnn_cfg("MODEL.ROI_HEADS.IN_FEATURES", "['p3', 'p4', 'p5']"))  # a pyramid from p3


def _anchor_order_warnings(cfg):
    from dropblock_det.engine.config_checks import check_model_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_model_config(cfg)
    return [str(w.message) for w in caught if "pairs the sizes with the levels in order" in str(w.message)]


def test_anchor_sizes_paired_with_levels_listed_coarsest_first_warn_naming_both_keys():
    # detectron2 pairs MODEL.ANCHOR_GENERATOR.SIZES with the levels in order: p6 ... p2 under
    # its sizes put 32 px anchors on the stride-64 map and 512 px ones on the stride-4 map.
    from conftest import rcnn_cfg

    reversed_levels = "['p6', 'p5', 'p4', 'p3', 'p2']"
    (message,) = _anchor_order_warnings(rcnn_cfg("MODEL.RPN.IN_FEATURES", reversed_levels))
    assert message.startswith(f"MODEL.RPN.IN_FEATURES={reversed_levels} with MODEL.ANCHOR_GENERATOR.SIZES="
                              "[[32], [64], [128], [256], [512]]")
    assert "'p6' (stride 64): [32]" in message and "'p2' (stride 4): [512] px" in message
    (message,) = _anchor_order_warnings(_stock_retinanet_cfg("MODEL.RETINANET.IN_FEATURES", "['p7', 'p6', 'p5', 'p4', 'p3']"))
    assert message.startswith("MODEL.RETINANET.IN_FEATURES=['p7', 'p6', 'p5', 'p4', 'p3']")
    # Sizes in the levels' order, one entry for every level, and the stock order: no warning.
    assert not _anchor_order_warnings(rcnn_cfg("MODEL.RPN.IN_FEATURES", reversed_levels,
                                               "MODEL.ANCHOR_GENERATOR.SIZES", "[[512], [256], [128], [64], [32]]"))
    assert not _anchor_order_warnings(rcnn_cfg("MODEL.RPN.IN_FEATURES", reversed_levels,
                                               "MODEL.ANCHOR_GENERATOR.SIZES", "[[32, 64]]"))
    assert not _anchor_order_warnings(rcnn_cfg())
    assert not _anchor_order_warnings(_stock_retinanet_cfg())


# --- zoo journey yacs 57 ---
# The synthetic configs' schedule is WarmupCosineLR; detectron2's stock ones step.
_MULTISTEP = ("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR")


def _lr_after_steps(cfg, steps):
    # The LR of the trainer's own optimizer and schedule after `steps` iterations.
    from dropblock_det.engine.trainer import DropBlockTrainer

    optimizer = DropBlockTrainer.build_optimizer(cfg, torch.nn.Linear(1, 1))
    schedule = DropBlockTrainer.build_lr_scheduler(cfg, optimizer)
    for _ in range(steps):
        optimizer.step()
        schedule.step()
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("opts, lr_at, match", [
    # detectron2 trains the warm-up (iteration 0) or every iteration after the step at a negative LR.
    (["SOLVER.WARMUP_FACTOR", "-0.1"], 0, r"^SOLVER\.WARMUP_FACTOR=-0\.1: expected a number >= 0, the LR's multiplier"),
    (["SOLVER.GAMMA", "-0.1"], 4, r"^SOLVER\.GAMMA=-0\.1: expected a number >= 0, the LR's multiplier at each step"),
])
def test_a_negative_warmup_factor_or_gamma_which_detectron2_trains_at_a_negative_lr_is_refused(opts, lr_at, match):
    from dropblock_det.engine.config_checks import check_config_before_run, check_lr_scheduler

    cfg = synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(3,)", "SOLVER.WARMUP_ITERS", "2", *opts)
    assert _lr_after_steps(cfg, lr_at) < 0
    with pytest.raises(ValueError, match=match):
        check_lr_scheduler(cfg)
    with pytest.raises(ValueError, match=match):
        check_config_before_run(cfg, check_files=False)
    # Without a warm-up the factor is read by nothing; a GAMMA of 0 or above 1 may be meant.
    check_lr_scheduler(synthetic_cfg("SOLVER.WARMUP_ITERS", "0", "SOLVER.WARMUP_FACTOR", "-0.1"))
    for gamma in ("0.0", "2.0"):
        check_lr_scheduler(synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(3,)", "SOLVER.GAMMA", gamma))


@pytest.mark.parametrize("steps", ["(6, 3)", "(3, 3)", "(0, 3)", "(3, 10)"])
def test_steps_out_of_order_or_at_max_iter_are_named_by_key_not_as_the_schedule_name(steps):
    # fvcore refused them with "Milestone must be smaller than ...", blamed on LR_SCHEDULER_NAME.
    from dropblock_det.engine.config_checks import check_lr_scheduler

    with pytest.raises(ValueError, match=re.escape(f"SOLVER.STEPS={steps} with SOLVER.MAX_ITER=10: expected the "
                                                   "iterations at which the LR drops in increasing order")):
        check_lr_scheduler(synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.STEPS", steps))
    # Steps past MAX_ITER are dropped by detectron2 with a warning (a short run of a stock config).
    check_lr_scheduler(synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(60000, 80000)"))
    check_lr_scheduler(synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(80000, 5)"))


def test_a_cosine_schedules_end_lr_is_named_by_key_on_detectron2_main():
    # detectron2 main asserted BASE_LR_END / BASE_LR in [0, 1] with the ratio alone as message,
    # and divided by a BASE_LR of 0; v0.6 has no BASE_LR_END (its cosine ends at 0).
    from dropblock_det.engine.config_checks import check_lr_scheduler

    cosine = ("SOLVER.LR_SCHEDULER_NAME", "WarmupCosineLR")
    check_lr_scheduler(synthetic_cfg(*cosine))
    if "BASE_LR_END" not in synthetic_cfg().SOLVER:
        return
    check_lr_scheduler(synthetic_cfg(*cosine, "SOLVER.BASE_LR", "0.01", "SOLVER.BASE_LR_END", "0.01"))
    for end in ("0.1", "-0.001"):
        with pytest.raises(ValueError, match=re.escape(f"SOLVER.BASE_LR_END={end}: expected the LR the cosine schedule "
                                                       "ends at, from 0 to SOLVER.BASE_LR=0.01")):
            check_lr_scheduler(synthetic_cfg(*cosine, "SOLVER.BASE_LR", "0.01", "SOLVER.BASE_LR_END", end))
    with pytest.raises(ValueError, match=r"^SOLVER\.BASE_LR=0\.0 with SOLVER\.LR_SCHEDULER_NAME='WarmupCosineLR'"):
        check_lr_scheduler(synthetic_cfg(*cosine, "SOLVER.BASE_LR", "0.0"))
    with pytest.raises(ValueError, match=r"^SOLVER\.NUM_DECAYS=0: expected a number of LR drops >= 1"):
        check_lr_scheduler(synthetic_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupStepWithFixedGammaLR", "SOLVER.NUM_DECAYS", "0"))


def test_detectron2s_stock_solver_and_input_values_pass_the_new_checks():
    # Base-RetinaNet.yaml (detectron2's, in configs/) and Base-RCNN-FPN's keys at detectron2's
    # defaults, as written and shortened to a few iterations as the README's runs do.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_lr_scheduler, check_optimizer, check_train_inputs

    train = ("DATASETS.TRAIN", "('synthetic_det_train',)")
    for cfg in (_stock_retinanet_cfg(*train), rcnn_cfg(*train), _stock_retinanet_cfg(*train, "SOLVER.MAX_ITER", "2"),
                rcnn_cfg(*train, "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1")):
        assert cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupMultiStepLR"
        check_lr_scheduler(cfg, check_optimizer(cfg))
        check_train_inputs(cfg)


def _first_step_update(cfg):
    # What one step of the trainer's optimizer does to a weight and a bias of 1.0 whose
    # gradients are 1.0 (LR 1.0).
    from dropblock_det.engine.trainer import DropBlockTrainer

    layer = torch.nn.Linear(1, 1)
    torch.nn.init.ones_(layer.weight)
    torch.nn.init.ones_(layer.bias)
    optimizer = DropBlockTrainer.build_optimizer(cfg, layer)
    layer(torch.ones(1, 1)).sum().backward()
    optimizer.step()
    return layer.weight.item() - 1.0, layer.bias.item() - 1.0


@pytest.mark.parametrize("opts, bad_update, match", [
    # The bias steps up its gradient (gradient ascent), or away from 0 by its decay.
    (["SOLVER.BIAS_LR_FACTOR", "-1.0"], lambda w, b: b > 0, r"^SOLVER\.BIAS_LR_FACTOR=-1\.0: expected a number >= 0"),
    (["SOLVER.WEIGHT_DECAY_BIAS", "-5.0"], lambda w, b: b > 0, r"^SOLVER\.WEIGHT_DECAY_BIAS=-5\.0: expected a weight decay >= 0"),
    # Every gradient clipped to nothing, or to its opposite.
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "0.0"], lambda w, b: w == 0 == b,
     r"^SOLVER\.CLIP_GRADIENTS\.CLIP_VALUE=0\.0: expected a bound > 0"),
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
      "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "-1.0"], lambda w, b: w > 0, r"^SOLVER\.CLIP_GRADIENTS\.CLIP_VALUE=-1\.0"),
])
def test_optimizer_values_torch_takes_per_parameter_group_and_trains_wrong_on_are_refused(opts, bad_update, match):
    from dropblock_det.engine.config_checks import check_config_before_run, check_optimizer

    cfg = synthetic_cfg("SOLVER.BASE_LR", "1.0", "SOLVER.WEIGHT_DECAY", "0.0", "SOLVER.MOMENTUM", "0.0", *opts)
    assert bad_update(*_first_step_update(cfg))
    with pytest.raises(ValueError, match=match):
        check_optimizer(cfg)
    with pytest.raises(ValueError, match=match):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)


def test_optimizer_values_that_may_be_meant_pass():
    from dropblock_det.engine.config_checks import check_optimizer

    for opts in (["SOLVER.BIAS_LR_FACTOR", "0.0"], ["SOLVER.BIAS_LR_FACTOR", "2.0"], ["SOLVER.WEIGHT_DECAY_NORM", "0.0"],
                 ["SOLVER.WEIGHT_DECAY_BIAS", "0.0"],
                 ["SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "-1.0", "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "0.0"],  # not ENABLED
                 ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "value",
                  "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "0.0"],  # a value clip reads no norm
                 ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
                  "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "1e999"]):  # inf
        check_optimizer(synthetic_cfg(*opts))
    with pytest.raises(ValueError, match=r"^SOLVER\.CLIP_GRADIENTS\.NORM_TYPE=0\.0: expected the p of the p-norm"):
        check_optimizer(synthetic_cfg("SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
                                      "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "0.0"))
    with pytest.raises(ValueError, match=r"^SOLVER\.WEIGHT_DECAY_NORM=-0\.1: expected a weight decay >= 0"):
        check_optimizer(synthetic_cfg("SOLVER.WEIGHT_DECAY_NORM", "-0.1"))


def test_a_training_size_range_given_largest_first_is_refused_naming_the_key():
    # detectron2's ResizeShortestEdge draws with numpy's randint: "low >= high" at the first image.
    from detectron2.data import transforms as T

    from dropblock_det.engine.config_checks import check_train_inputs

    opts = ("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", "(80, 64)")
    with pytest.raises(ValueError, match="low >= high"):
        T.ResizeShortestEdge((80, 64), 1333, "range").get_transform(np.zeros((30, 50, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=re.escape("INPUT.MIN_SIZE_TRAIN=(80, 64) with INPUT.MIN_SIZE_TRAIN_SAMPLING="
                                                   "'range': expected the range's ends smallest first: (64, 80)")):
        check_train_inputs(synthetic_cfg(*opts))
    check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", "(64, 64)"))
    check_train_inputs(synthetic_cfg("INPUT.MIN_SIZE_TRAIN", "(80, 64)"))  # "choice": any order


def test_an_unknown_mask_format_is_refused_with_a_mask_head_only(tmp_path):
    # detectron2 asserted it at the first image with a mask, the value alone as the message.
    from conftest import rcnn_cfg
    from detectron2.data import DatasetCatalog, DatasetMapper

    from dropblock_det.engine.config_checks import check_train_inputs

    with own_coco_set(tmp_path, "zoo57_masks", segmentation=True) as name:
        mapper = DatasetMapper(rcnn_cfg("MODEL.MASK_ON", "True", "INPUT.MASK_FORMAT", "polygons"), is_train=True)
        with pytest.raises(AssertionError, match="polygons"):
            mapper(DatasetCatalog.get(name)[0])
    train = ("DATASETS.TRAIN", "('synthetic_det_train',)")
    with pytest.raises(ValueError, match=re.escape("INPUT.MASK_FORMAT='polygons': expected one of ['polygon', 'bitmask']")):
        check_train_inputs(rcnn_cfg(*train, "MODEL.MASK_ON", "True", "INPUT.MASK_FORMAT", "polygons"))
    check_train_inputs(rcnn_cfg(*train, "MODEL.MASK_ON", "True", "INPUT.MASK_FORMAT", "bitmask"))
    check_train_inputs(rcnn_cfg(*train, "INPUT.MASK_FORMAT", "polygons"))  # no mask head: unread


def test_a_negative_repeat_threshold_is_refused_for_a_repeating_sampler_only():
    # RepeatFactorTrainingSampler's sqrt(threshold / frequency): "math domain error" building
    # the training loader, blamed on the dataset.
    from detectron2.data.samplers import RepeatFactorTrainingSampler

    from dropblock_det.engine.config_checks import check_train_inputs

    dicts = [{"annotations": [{"category_id": 0}]}]
    with pytest.raises(ValueError, match="math domain error"):
        RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, -0.1)
    repeat = ("DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler")
    with pytest.raises(ValueError, match=r"^DATALOADER\.REPEAT_THRESHOLD=-0\.1: expected a category frequency >= 0"):
        check_train_inputs(synthetic_cfg(*repeat, "DATALOADER.REPEAT_THRESHOLD", "-0.1"))
    for threshold in ("0.0", "0.001"):
        check_train_inputs(synthetic_cfg(*repeat, "DATALOADER.REPEAT_THRESHOLD", threshold))
    check_train_inputs(synthetic_cfg("DATALOADER.REPEAT_THRESHOLD", "-0.1"))  # TrainingSampler: unread


def test_a_seed_numpy_cannot_take_is_refused_before_the_run_writes_its_config(monkeypatch):
    # detectron2's default_setup seeds numpy with SEED + rank after writing config.yaml.
    from detectron2.utils import comm

    from dropblock_det.engine.config_checks import check_config_before_run

    with pytest.raises(ValueError, match="2\\*\\*32 - 1"):
        np.random.seed(2**32)
    for seed in ("-1", "0", str(2**32 - 1)):
        check_config_before_run(synthetic_cfg("SEED", seed), check_files=False)
    with pytest.raises(ValueError, match=re.escape(f"SEED={2**32}: expected a seed from 0 to {2**32 - 1} (numpy's largest")):
        check_config_before_run(synthetic_cfg("SEED", str(2**32)), check_files=False)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)  # rank 1 would seed 2**32
    with pytest.raises(ValueError, match=re.escape(f"SEED={2**32 - 1}: expected a seed from 0 to {2**32 - 2}")):
        check_config_before_run(synthetic_cfg("SEED", str(2**32 - 1)), check_files=False, train=False)


def test_vis_period_on_an_rcnn_without_the_visualizers_modules_is_refused_naming_the_key():
    # GeneralizedRCNN draws its proposals every VIS_PERIOD iterations, importing
    # detectron2.utils.visualizer (cv2) at the first step; RetinaNet reads the key and draws nothing.
    import importlib.util

    from conftest import rcnn_cfg
    from detectron2.modeling.meta_arch import GeneralizedRCNN

    from dropblock_det.engine.config_checks import check_config_before_run

    train = ("DATASETS.TRAIN", "('synthetic_det_train',)", "DATASETS.TEST", "('synthetic_det_val',)")
    check_config_before_run(rcnn_cfg(*train), check_files=False)
    check_config_before_run(_stock_retinanet_cfg(*train, "VIS_PERIOD", "1"), check_files=False)
    if importlib.util.find_spec("cv2") is not None:
        check_config_before_run(rcnn_cfg(*train, "VIS_PERIOD", "1"), check_files=False)
        pytest.skip("OpenCV is installed here: the R-CNN can draw")
    with pytest.raises(ModuleNotFoundError, match="cv2"):
        GeneralizedRCNN.visualize_training(None, [], [])
    with pytest.raises(ValueError, match=r"^VIS_PERIOD=1: the R-CNN draws .*'cv2'.*pip install opencv-python, or set VIS_PERIOD 0"):
        check_config_before_run(rcnn_cfg(*train, "VIS_PERIOD", "1"), check_files=False)
    check_config_before_run(rcnn_cfg(*train, "VIS_PERIOD", "1"), check_files=False, train=False)  # no training step


def test_a_sampler_reading_a_key_detectron2s_config_lacks_is_refused_naming_both():
    # build_detection_train_loader read DATALOADER.RANDOM_SUBSET_RATIO / DATASETS.TRAIN_REPEAT_FACTOR
    # (main's weighted samplers), which neither version's get_cfg() defines: an AttributeError
    # building the loader, blamed on the dataset.
    from dropblock_det.engine.config_checks import check_train_inputs, train_samplers

    subset = ("DATALOADER.SAMPLER_TRAIN", "RandomSubsetTrainingSampler")
    cfg = synthetic_cfg(*subset)
    assert "RandomSubsetTrainingSampler" in train_samplers() and "RANDOM_SUBSET_RATIO" not in cfg.DATALOADER
    with pytest.raises(ValueError, match=r"^DATALOADER\.SAMPLER_TRAIN='RandomSubsetTrainingSampler' reads "
                                         r"DATALOADER\.RANDOM_SUBSET_RATIO, which detectron2's config does not define"):
        check_train_inputs(cfg)
    for ratio, ok in ((0.5, True), (1.0, True), (0.0, False), (1.5, False)):
        cfg = synthetic_cfg(*subset)
        cfg.defrost()
        cfg.DATALOADER.RANDOM_SUBSET_RATIO = ratio
        if ok:
            check_train_inputs(cfg)
        else:
            with pytest.raises(ValueError, match=rf"^DATALOADER\.RANDOM_SUBSET_RATIO={ratio}: expected the share"):
                check_train_inputs(cfg)
    if "WeightedTrainingSampler" not in train_samplers():
        return  # v0.6
    cfg = synthetic_cfg("DATALOADER.SAMPLER_TRAIN", "WeightedTrainingSampler")
    with pytest.raises(ValueError, match=r"reads DATASETS\.TRAIN_REPEAT_FACTOR, which detectron2's config"):
        check_train_inputs(cfg)
    cfg.defrost()
    cfg.DATASETS.TRAIN_REPEAT_FACTOR = [["synthetic_det_train", 2.0]]
    check_train_inputs(cfg)
    cfg.DATASETS.TRAIN_REPEAT_FACTOR = [["synthetic_det_val", 2.0]]
    with pytest.raises(ValueError, match=r"^DATASETS\.TRAIN_REPEAT_FACTOR=.*entry \['synthetic_det_val', 2\.0\] is not"):
        check_train_inputs(cfg)


def test_steps_that_the_world_size_scaling_rounds_onto_each_other_are_refused_before_the_run(monkeypatch):
    # REFERENCE_WORLD_SIZE 1 on 4 processes: MAX_ITER 10 -> 2, STEPS (3, 4) -> (1, 1), which
    # fvcore refused when the trainer built its schedule, after the run's files had moved.
    from dropblock_det import solver
    from dropblock_det.engine import config_checks
    from dropblock_det.engine.trainer import DropBlockTrainer

    monkeypatch.setattr(config_checks.comm, "get_world_size", lambda: 4)
    opts = ("SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2", *_MULTISTEP, "SOLVER.MAX_ITER", "10",
            "SOLVER.WARMUP_ITERS", "0")
    cfg = synthetic_cfg(*opts, "SOLVER.STEPS", "(3, 4)")
    config_checks.check_lr_scheduler(cfg)  # as written, a schedule
    with pytest.raises(ValueError, match="Total num_updates must be greater|Milestone must be smaller"):
        solver.build_lr_scheduler(DropBlockTrainer.auto_scale_workers(cfg, 4), torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    with pytest.raises(ValueError, match=re.escape("SOLVER.STEPS=(1, 1) with SOLVER.MAX_ITER=2: expected the iterations")
                       + r".*once scaled to SOLVER\.MAX_ITER=2 \(SOLVER\.REFERENCE_WORLD_SIZE=1 scales"):
        config_checks.check_config_before_run(cfg, check_files=False)
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 4 training processes"):  # scaled fine: (2,) of 5
        config_checks.check_config_before_run(synthetic_cfg(*opts, "SOLVER.MAX_ITER", "20", "SOLVER.STEPS", "(8,)"),
                                              check_files=False)


def test_a_momentum_above_one_is_refused_and_one_is_not():
    # torch refuses only a negative momentum; above 1 the velocity grows each step and the run
    # diverges. The LazyConfig checks refuse optimizer.momentum above 1 alike.
    from dropblock_det.engine.config_checks import check_optimizer

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=1.5)  # taken
    with pytest.raises(ValueError, match=r"^SOLVER\.MOMENTUM=1\.5: expected a momentum from 0 to 1"):
        check_optimizer(synthetic_cfg("SOLVER.MOMENTUM", "1.5"))
    for momentum in ("0.0", "0.9", "1.0"):
        check_optimizer(synthetic_cfg("SOLVER.MOMENTUM", momentum))


# --- mutation 57b ---
def test_solver_values_at_their_bounds_pass_and_an_infinite_factor_or_a_negative_fixed_gamma_is_named_by_key():
    # A bound moved by one (a step at MAX_ITER - 1 refused, NUM_DECAYS 1 refused) would refuse a
    # config detectron2 trains; an infinite BIAS_LR_FACTOR is taken by torch (it refuses only
    # lr < 0) and trains the biases at LR inf, NaN at the first step.
    import math

    from dropblock_det.engine.config_checks import check_lr_scheduler, check_optimizer, check_seed

    for opts in (("SOLVER.STEPS", "(1, 9)"), ("SOLVER.WARMUP_FACTOR", "0.0"), ("SOLVER.WARMUP_FACTOR", "1.0"),
                 ("SOLVER.GAMMA", "1.0")):
        check_lr_scheduler(synthetic_cfg(*_MULTISTEP, "SOLVER.MAX_ITER", "10", "SOLVER.WARMUP_ITERS", "2", *opts))
    cfg = synthetic_cfg()
    cfg.defrost()
    cfg.SOLVER.BIAS_LR_FACTOR = math.inf
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=math.inf)  # taken
    with pytest.raises(ValueError, match=r"^SOLVER\.BIAS_LR_FACTOR=inf: expected a number >= 0"):
        check_optimizer(cfg)
    check_seed("SEED", -2**40)  # any negative seed is detectron2's "random"
    if "NUM_DECAYS" not in cfg.SOLVER:
        return  # v0.6 has no WarmupStepWithFixedGammaLR
    fixed = ("SOLVER.LR_SCHEDULER_NAME", "WarmupStepWithFixedGammaLR")
    check_lr_scheduler(synthetic_cfg(*fixed, "SOLVER.NUM_DECAYS", "1"))
    with pytest.raises(ValueError, match=r"^SOLVER\.GAMMA=-0\.1: expected a number >= 0"):
        check_lr_scheduler(synthetic_cfg(*fixed, "SOLVER.GAMMA", "-0.1"))


def test_roi_heads_levels_whose_strides_are_no_power_of_two_are_refused_as_detectron2s_pooler_asserts():
    # ROIPooler asserts "Featuremap stride is not power of 2!" (no key) for a backbone of such
    # strides; one level (C4, DC5: stride 16) or a pyramid's tail (p3 p4 p5) is a pooler it builds.
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.poolers import ROIPooler

    from dropblock_det.engine.config_checks import check_pooler_levels

    shapes = {"s6": ShapeSpec(channels=8, stride=6), "s12": ShapeSpec(channels=8, stride=12),
              "p3": ShapeSpec(channels=8, stride=8), "p4": ShapeSpec(channels=8, stride=16),
              "p5": ShapeSpec(channels=8, stride=32)}
    with pytest.raises(AssertionError, match="power of 2"):
        ROIPooler(7, (1 / 6, 1 / 12), 0, "ROIAlignV2")
    with pytest.raises(ValueError, match=re.escape("MODEL.ROI_HEADS.IN_FEATURES=['s6', 's12']: strides [6, 12]")):
        check_pooler_levels("MODEL.ROI_HEADS.IN_FEATURES", ["s6", "s12"], shapes, "a note")
    for levels in (["p4"], ["p3"], ["p3", "p4", "p5"]):
        check_pooler_levels("MODEL.ROI_HEADS.IN_FEATURES", levels, shapes, "a note")
        ROIPooler(7, tuple(1 / shapes[level].stride for level in levels), 0, "ROIAlignV2")


def test_the_same_anchor_sizes_on_every_level_do_not_warn():
    # Equal sizes are no coarser level with smaller anchors than a finer one.
    from conftest import rcnn_cfg

    assert not _anchor_order_warnings(rcnn_cfg("MODEL.ANCHOR_GENERATOR.SIZES", "[[64], [64], [64], [64], [64]]"))


def test_a_fixed_gamma_schedule_with_gamma_zero_is_named_by_key():
    # fvcore's StepWithFixedGammaParamScheduler refuses a gamma of 0 ("base_value and gamma must
    # be positive numbers"), which the checks passed on under SOLVER.LR_SCHEDULER_NAME.
    from dropblock_det.engine.config_checks import check_lr_scheduler

    fixed = ("SOLVER.LR_SCHEDULER_NAME", "WarmupStepWithFixedGammaLR")
    if "NUM_DECAYS" not in synthetic_cfg().SOLVER:  # v0.6 has no such schedule: its name is refused
        with pytest.raises(ValueError, match=r"SOLVER\.LR_SCHEDULER_NAME='WarmupStepWithFixedGammaLR'.*Unknown LR scheduler"):
            check_lr_scheduler(synthetic_cfg(*fixed, "SOLVER.GAMMA", "0.0"))
        return
    with pytest.raises(ValueError, match=r"^SOLVER\.GAMMA=0\.0: SOLVER\.LR_SCHEDULER_NAME='WarmupStepWithFixedGammaLR' "
                                         r"takes a multiplier > 0"):
        check_lr_scheduler(synthetic_cfg(*fixed, "SOLVER.GAMMA", "0.0"))
    check_lr_scheduler(synthetic_cfg(*fixed, "SOLVER.GAMMA", "0.5"))
    check_lr_scheduler(synthetic_cfg("SOLVER.GAMMA", "0.0"))  # a multi-step schedule may drop to 0


# --- stop 58 ---
def test_an_evaluation_does_not_judge_the_keypoints_of_the_training_sets_it_does_not_read(
        metadata_only_sets, keypoint_set, tmp_path):
    # --eval-only reads DATASETS.TEST alone: a DATASETS.TRAIN set of 5 keypoints under a head
    # of 17 is refused for a training, not for an evaluation of a 17-keypoint test set
    # (mutation 57's N3).
    from detectron2.data import DatasetCatalog

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_config_before_run

    coco5 = metadata_only_sets[0]
    DatasetCatalog.register(coco5, lambda: [])
    try:
        cfg = rcnn_cfg("MODEL.KEYPOINT_ON", "True", "DATASETS.TRAIN", f"('{coco5}',)", "DATASETS.TEST",
                       f"('{keypoint_set}',)", "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path))
        check_config_before_run(cfg, train=False, check_weights=False, check_files=False)
        with pytest.raises(ValueError, match=re.escape(f"DATASETS.TRAIN set '{coco5}' has 5 keypoints")):
            check_config_before_run(cfg, check_weights=False, check_files=False)
    finally:
        DatasetCatalog.remove(coco5)


# --- stop 59: mutation 57's left survivors (H1, H10, H12, H17, H20, C6, N5) ---
def test_a_fast_rcnn_is_not_refused_for_the_rpn_head_name_of_an_rpn_it_never_builds():
    # MODEL.PROPOSAL_GENERATOR.NAME PrecomputedProposals: build_proposal_generator returns None,
    # so MODEL.RPN.HEAD_NAME is never read (mutation 57's H1 judged it all the same).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    opts = ["MODEL.PROPOSAL_GENERATOR.NAME", "PrecomputedProposals", "MODEL.LOAD_PROPOSALS", "True"]
    assert check_model_config(rcnn_cfg(*opts, "MODEL.RPN.HEAD_NAME", "NoSuchRPNHead")).proposal_generator is None
    with pytest.raises(KeyError, match=r"MODEL\.RPN\.HEAD_NAME='NoSuchRPNHead': not in"):  # an RPN reads it
        check_model_config(rcnn_cfg("MODEL.RPN.HEAD_NAME", "NoSuchRPNHead"))


def test_a_retinanet_on_a_plain_resnet_is_not_refused_for_the_fpn_width_it_never_builds():
    # Without an FPN the head's convs have the backbone's width (512 here): MODEL.FPN.OUT_CHANNELS
    # is never read, so GN is not judged against it (mutation 57's H10 did).
    from conftest import small_retinanet_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = small_retinanet_cfg()
    cfg.merge_from_list(["MODEL.META_ARCHITECTURE", "DropBlockRetinaNet", "MODEL.BACKBONE.NAME", "build_resnet_backbone",
                         "MODEL.RESNETS.OUT_FEATURES", "['res5']", "MODEL.RETINANET.IN_FEATURES", "['res5']",
                         "MODEL.ANCHOR_GENERATOR.SIZES", "[[32, 64]]", "MODEL.RETINANET.NORM", "GN",
                         "MODEL.FPN.OUT_CHANNELS", "48", "MODEL.DROPBLOCK.FPN.ENABLED", "False"])
    model = check_model_config(cfg)
    assert {m.num_channels for m in model.head.modules() if isinstance(m, torch.nn.GroupNorm)} == {512}
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_retinanet_resnet_fpn_backbone", "MODEL.RESNETS.OUT_FEATURES",
                         "['res3', 'res4', 'res5']", "MODEL.RETINANET.IN_FEATURES", "['p3', 'p4', 'p5', 'p6', 'p7']",
                         "MODEL.ANCHOR_GENERATOR.SIZES", "[[32], [64], [128], [256], [512]]"])
    with pytest.raises(ValueError, match=r"^MODEL\.FPN\.OUT_CHANNELS=48: NORM 'GN' .*\(MODEL\.RETINANET\.NORM='GN'\)$"):
        check_model_config(cfg)  # with the FPN it is the head's width


def test_a_gn_resnet_under_an_fpn_without_norm_is_not_refused_for_the_fpn_width():
    # RESNETS.NORM is the ResNet's; an FPN of 48 channels with FPN.NORM '' builds no GroupNorm
    # (mutation 57's H12 judged the FPN's width under RESNETS.NORM too, naming that key).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    model = check_model_config(rcnn_cfg("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.OUT_CHANNELS", "48", "MODEL.FPN.NORM", ""))
    assert {m.num_channels % 32 for m in model.backbone.modules() if isinstance(m, torch.nn.GroupNorm)} == {0}
    with pytest.raises(ValueError, match=r"^MODEL\.FPN\.OUT_CHANNELS=48: .*\(MODEL\.FPN\.NORM='GN'\)$"):
        check_model_config(rcnn_cfg("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.OUT_CHANNELS", "48", "MODEL.FPN.NORM", "GN"))


def test_a_bottleneck_width_that_gn_cannot_split_is_named_as_groups_times_width():
    # The bottleneck's conv is NUM_GROUPS x WIDTH_PER_GROUP wide, 2 x 24 = 48 here: the product is
    # what GN must split (mutation 57's H20 named it WIDTH_PER_GROUP, whose value is 24).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.RESNETS.DEPTH", "50", "MODEL.RESNETS.RES2_OUT_CHANNELS", "256", "MODEL.RESNETS.NORM", "GN",
                   "MODEL.RESNETS.NUM_GROUPS", "2", "MODEL.RESNETS.WIDTH_PER_GROUP", "24")
    with pytest.raises(ValueError, match=r"^MODEL\.RESNETS\.NUM_GROUPS x WIDTH_PER_GROUP=48: NORM 'GN' uses 32 groups"):
        check_model_config(cfg)


def test_a_channel_count_below_one_is_refused_without_blaming_the_norm():
    # A count of 0 is wrong under any norm: the message is the count's alone (mutation 57's H17
    # let the norm's check raise it, with the norm's key appended).
    from dropblock_det.engine.config_checks import check_norm_channels

    for norm in ("", "GN", "BN"):
        with pytest.raises(ValueError, match=r"^MODEL\.FPN\.OUT_CHANNELS=0: channel counts must be integers >= 1 "
                                             r"\(0 is not\)$"):
            check_norm_channels("MODEL.FPN.NORM", norm, {"MODEL.FPN.OUT_CHANNELS": 0})
    check_norm_channels("MODEL.FPN.NORM", "GN", {"MODEL.FPN.OUT_CHANNELS": 64})


def test_cascade_stage_keys_are_not_judged_for_standard_roi_heads_which_never_read_them():
    # MODEL.ROI_BOX_CASCADE_HEAD is read by CascadeROIHeads alone (mutation 57's C6 judged it for
    # every ROI head).
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    bad = ["MODEL.ROI_BOX_CASCADE_HEAD.IOUS", "[0.5, 0.6, 1.5]"]
    assert type(check_model_config(rcnn_cfg(*bad)).roi_heads).__name__ == "StandardROIHeads"
    with pytest.raises(ValueError, match=re.escape("MODEL.ROI_BOX_CASCADE_HEAD.IOUS=[0.5, 0.6, 1.5]")):
        check_model_config(_cascade_cfg(*bad))


def test_keypoint_counts_are_not_judged_for_a_retinanet_which_has_no_keypoint_head(keypoint_set):
    # MODEL.KEYPOINT_ON is read by the R-CNN's ROI heads alone; a RetinaNet trained on a person
    # set with 17 keypoints ignores it (mutation 57's N5 judged NUM_KEYPOINTS against the set).
    from conftest import rcnn_cfg, small_retinanet_cfg
    from dropblock_det.engine.config_checks import check_keypoint_counts

    opts = ["MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5", "DATASETS.TRAIN",
            f"('{keypoint_set}',)", "DATASETS.TEST", f"('{keypoint_set}',)"]
    cfg = small_retinanet_cfg()
    cfg.merge_from_list(opts)
    check_keypoint_counts(cfg)
    with pytest.raises(ValueError, match=r"^MODEL\.ROI_KEYPOINT_HEAD\.NUM_KEYPOINTS=5: DATASETS\.TRAIN set"):
        check_keypoint_counts(rcnn_cfg(*opts))


def test_oks_sigmas_are_not_judged_for_a_coco_test_set_whose_json_has_no_keypoints(tmp_path):
    # build_evaluator leaves the keypoint task out where the annotations have no keypoints (a
    # Keypoint R-CNN --eval-only on a box-only set gets its box AP and a warning): the sigmas
    # are never read there, and a head of 5 keypoints without sigmas was refused all the same.
    import json

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_keypoint_counts

    with own_coco_set(tmp_path / "boxes", "test_config_checks_oks_boxes_only") as boxes:
        cfg = rcnn_cfg("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "5", "DATASETS.TRAIN", "()",
                       "DATASETS.TEST", f"('{boxes}',)")
        check_keypoint_counts(cfg)
        # With keypoints in its annotations the set is scored on them, with COCO's 17 sigmas.
        path = tmp_path / "boxes" / "train.json"
        coco = json.loads(path.read_text())
        coco["annotations"][0].update(keypoints=[8, 8, 2] * 5, num_keypoints=5)
        path.write_text(json.dumps(coco))
        with pytest.raises(ValueError, match=re.escape(
                "TEST.KEYPOINT_OKS_SIGMAS=[]: none, so COCO's 17 person sigmas for MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=5, "
                f"which the COCO evaluation of DATASETS.TEST '{boxes}' scores one sigma each")):
            check_keypoint_counts(cfg)
