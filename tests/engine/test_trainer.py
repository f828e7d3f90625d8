"""DropBlockTrainer and the tools' launch (dropblock_det/engine/trainer.py): train augmentations
(Cutout), the LR schedule, the model it builds checked for DropBlock where the config turns it
on, the schedule's scaling to the world size, the training order, a resume of a checkpoint
without optimizer state, and --num-gpus checked before launch."""
import warnings

import pytest
import torch

from conftest import dropblock_everywhere_cfg, synthetic_cfg


def test_cutout_is_appended_after_resize_only_when_enabled():
    from detectron2.data import transforms as T

    from dropblock_det.data.cutout import Cutout
    from dropblock_det.engine.trainer import build_train_augmentation

    off = build_train_augmentation(synthetic_cfg())
    assert isinstance(off[0], T.ResizeShortestEdge) and not any(isinstance(a, Cutout) for a in off)
    on = build_train_augmentation(synthetic_cfg("INPUT.CUTOUT.ENABLED", "True", "INPUT.CUTOUT.SIZE", "16"))
    assert isinstance(on[-1], Cutout) and isinstance(on[0], T.ResizeShortestEdge)


def test_train_augmentations_follow_detectron2s_order_and_the_flip_key():
    # detectron2's own order: a detector's crop before the resize (train_net's
    # build_augmentation), a SemanticSegmentor's category-area crop after it.
    from detectron2.data import transforms as T

    from dropblock_det.engine.trainer import build_train_augmentation

    crop = ("INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "absolute", "INPUT.CROP.SIZE", "[32, 32]")
    detector = build_train_augmentation(synthetic_cfg(*crop))
    assert [type(a) for a in detector] == [T.RandomCrop, T.ResizeShortestEdge, T.RandomFlip]
    segmentor = build_train_augmentation(synthetic_cfg(*crop, "MODEL.META_ARCHITECTURE", "SemanticSegmentor"))
    assert [type(a) for a in segmentor] == [T.ResizeShortestEdge, T.RandomCrop_CategoryAreaConstraint, T.RandomFlip]
    for flip, horizontal, vertical in (("horizontal", True, False), ("vertical", False, True)):
        (random_flip,) = [a for a in build_train_augmentation(synthetic_cfg("INPUT.RANDOM_FLIP", flip))
                          if isinstance(a, T.RandomFlip)]
        assert (random_flip.horizontal, random_flip.vertical) == (horizontal, vertical)
    # "none": no flip at all (detectron2's RandomFlip refuses one with neither direction).
    assert [type(a) for a in build_train_augmentation(synthetic_cfg("INPUT.RANDOM_FLIP", "none"))] == [T.ResizeShortestEdge]


def test_lr_scheduler_comes_from_the_project_solver_for_poly():
    from dropblock_det.engine.trainer import DropBlockTrainer
    from dropblock_det.solver import WarmupPolyLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    poly = DropBlockTrainer.build_lr_scheduler(
        synthetic_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR"), opt)
    assert isinstance(poly, WarmupPolyLR)
    cosine = DropBlockTrainer.build_lr_scheduler(synthetic_cfg(), opt)  # WarmupCosineLR: detectron2's
    assert not isinstance(cosine, WarmupPolyLR)


@pytest.mark.parametrize("change, key", [
    ({}, None),
    # Stock detectron2 components ignore MODEL.DROPBLOCK: the run would train without it.
    ({"MODEL.META_ARCHITECTURE": "RetinaNet"}, "HEAD.ENABLED"),
    ({"MODEL.BACKBONE.NAME": "build_retinanet_resnet_fpn_backbone"}, "RESNET.ENABLED"),
    ({"MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED": True}, "SEM_SEG_HEAD.ENABLED"),
])
def test_the_trainer_refuses_a_model_without_dropblock_where_the_config_turns_it_on(change, key):
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = dropblock_everywhere_cfg(head_norm="")  # a head that v0.6's stock RetinaNet builds too
    cfg.merge_from_list([item for pair in change.items() for item in pair])
    if key is None:
        DropBlockTrainer.build_model(cfg)
        return
    with pytest.raises(ValueError, match=rf"MODEL\.DROPBLOCK\.{key}=True.*has no DropBlock there"):
        DropBlockTrainer.build_model(cfg)


def test_auto_scale_workers_scales_the_dropblock_ramp_as_max_iter():
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_ITER", "1000",
                        "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "100", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "801")
    cfg.freeze()
    scaled = DropBlockTrainer.auto_scale_workers(cfg, 16)
    assert (scaled.SOLVER.MAX_ITER, scaled.SOLVER.IMS_PER_BATCH, scaled.SOLVER.REFERENCE_WORLD_SIZE) == (500, 32, 16)
    assert (scaled.MODEL.DROPBLOCK.SCHEDULE.START_ITER, scaled.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (50, 400)
    assert scaled.is_frozen() and cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER == 801  # a new config
    quarter = DropBlockTrainer.auto_scale_workers(cfg, 2)
    assert (quarter.MODEL.DROPBLOCK.SCHEDULE.START_ITER, quarter.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (400, 3204)
    assert DropBlockTrainer.auto_scale_workers(cfg, 8) is cfg  # already the reference size
    to_max_iter = synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16")
    assert DropBlockTrainer.auto_scale_workers(to_max_iter, 4).MODEL.DROPBLOCK.SCHEDULE.END_ITER == -1


@pytest.mark.parametrize("seed", [-1, 5])
def test_the_training_order_is_drawn_from_the_seeded_rng_on_every_detectron2(tmp_path, monkeypatch, seed):
    # As detectron2 v0.6 and the LazyConfig loaders do; detectron2 main's yacs loader would
    # seed the sampler with SEED itself (one fixed order for SEED -1, another order than the
    # LazyConfig twin's for any SEED).
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine import trainer

    built = {}
    real = trainer.build_detection_train_loader

    class Recording:
        from_config = staticmethod(real.from_config)

        def __call__(self, **arguments):
            built.update(arguments)

    monkeypatch.setattr(trainer, "build_detection_train_loader", Recording())
    with tiny_synthetic_datasets(tmp_path):
        cfg = synthetic_cfg("SEED", str(seed), "DATALOADER.NUM_WORKERS", "0")
        for rng_seed in (7, 8):
            seed_all_rng(rng_seed)
            expected = comm.shared_random_seed()
            seed_all_rng(rng_seed)
            trainer.DropBlockTrainer.build_train_loader(cfg)
            assert built["sampler"]._seed == expected != seed


def test_the_trainer_ramps_over_the_scaled_iterations(monkeypatch, tmp_path):
    from dropblock_det.engine.hooks import DropBlockScheduleHook
    from dropblock_det.engine.trainer import DropBlockTrainer

    # One process against a reference of 2: half the batch, twice the iterations.
    cfg = synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "2", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "100",
                        "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "10", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "60",
                        "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path))  # its writers
    monkeypatch.setattr(DropBlockTrainer, "build_train_loader", classmethod(lambda cls, cfg: []))
    trainer = DropBlockTrainer(cfg)
    (hook,) = [h for h in trainer._hooks if isinstance(h, DropBlockScheduleHook)]
    assert trainer.max_iter == 200
    assert (hook.schedule.start_iter, hook.schedule.end_iter) == (20, 120)


def test_a_checkpoint_without_optimizer_state_resumes_on_every_detectron2(monkeypatch, tmp_path):
    # detectron2 v0.6's own DefaultTrainer saves no "_trainer" (optimizer) state: resumed with
    # DropBlockTrainer, v0.6 continued from it, current detectron2 failed after the data
    # loader was built with "KeyError: '_trainer'".
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(DropBlockTrainer, "build_train_loader", classmethod(lambda cls, cfg: []))
    saved = DropBlockTrainer(cfg)
    saved.iter = 4
    saved.checkpointer.save("model_0000004", iteration=4)
    checkpoint = torch.load(tmp_path / "model_0000004.pth", weights_only=False)
    del checkpoint["trainer"]["_trainer"]
    torch.save(checkpoint, tmp_path / "model_0000004.pth")
    resumed = DropBlockTrainer(cfg)
    with pytest.warns(UserWarning, match="holds no optimizer state"):
        resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 5


def test_auto_scale_workers_rounds_the_dropblock_ramp_as_detectron2_rounds_max_iter():
    from dropblock_det.engine.trainer import DropBlockTrainer

    # 8 -> 16 workers halves the iterations: 1001 -> 500.5 -> 500 (round half to even, as
    # detectron2's int(round(...)) for MAX_ITER), 103 -> 51.5 -> 52, 807 -> 403.5 -> 404.
    cfg = synthetic_cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_ITER", "1001",
                        "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "103", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "807")
    scaled = DropBlockTrainer.auto_scale_workers(cfg, 16)
    assert scaled.SOLVER.MAX_ITER == 500
    assert (scaled.MODEL.DROPBLOCK.SCHEDULE.START_ITER, scaled.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (52, 404)


def test_fpn_dropblock_on_a_model_without_an_fpn_is_refused_despite_dropblock_elsewhere(tmp_path):
    # DeepLab has no FPN: its ResNet's DropBlocks must not count for MODEL.DROPBLOCK.FPN.ENABLED.
    from conftest import small_voc_sem_seg_cfg

    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path,
        ["MODEL.DROPBLOCK.FPN.ENABLED", True])
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.FPN\.ENABLED=True.*has no DropBlock there \(\d+ elsewhere\)"):
        DropBlockTrainer.build_model(cfg)


def _trainer_without_data(monkeypatch, cfg):
    from dropblock_det.engine.trainer import DropBlockTrainer

    monkeypatch.setattr(DropBlockTrainer, "build_train_loader", classmethod(lambda cls, cfg: []))
    return DropBlockTrainer(cfg)


@pytest.mark.parametrize("tta", [False, True])
def test_the_trainers_hooks_schedule_first_checkpoint_atomically_and_evaluate_with_tta_before_the_writers(
        monkeypatch, tmp_path, tta):
    # The slip each guards against showed only in a whole training: keep_prob set after the
    # other hooks, a checkpoint write killed midway leaving a truncated model_final.pth, the TTA
    # results missing from metrics.json (evaluated after the writers' last write), and
    # GeneralizedRCNNWithTTA run on a model that is no R-CNN at the end of every training.
    from detectron2.engine import hooks

    from conftest import rcnn_cfg
    from dropblock_det.engine.checkpoint import AtomicCheckpointer
    from dropblock_det.engine.hooks import DropBlockScheduleHook

    opts = ["SOLVER.MAX_ITER", "10", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path)]
    cfg = (rcnn_cfg(*opts, "DATASETS.TEST", "('synthetic_det_val',)", "TEST.AUG.ENABLED", "True") if tta
           else synthetic_cfg(*opts))
    trainer = _trainer_without_data(monkeypatch, cfg)
    assert isinstance(trainer._hooks[0], DropBlockScheduleHook)
    (checkpointing,) = [h for h in trainer._hooks if isinstance(h, hooks.PeriodicCheckpointer)]
    assert isinstance(trainer.checkpointer, AtomicCheckpointer) and checkpointing.checkpointer is trainer.checkpointer
    evaluations = [i for i, h in enumerate(trainer._hooks) if isinstance(h, hooks.EvalHook)]
    (writer,) = [i for i, h in enumerate(trainer._hooks) if isinstance(h, hooks.PeriodicWriter)]
    if not tta:
        assert len(evaluations) == 1
        return
    plain, with_tta = evaluations
    assert trainer._hooks[with_tta]._func == trainer._test_with_TTA_and_save_results
    assert trainer._hooks[with_tta]._period == 0 and plain < with_tta < writer


def test_train_returns_the_plain_and_the_tta_results_together(monkeypatch, tmp_path):
    # The TTA hook runs after the plain evaluation; train() used to be checked on this only by
    # a whole R-CNN training with TEST.AUG (the train_net tool test), ~10 s.
    from detectron2.engine.train_loop import TrainerBase

    from conftest import rcnn_cfg
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = rcnn_cfg("SOLVER.MAX_ITER", "10", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path),
                   "DATASETS.TEST", "('synthetic_det_val',)", "TEST.AUG.ENABLED", "True")
    trainer = _trainer_without_data(monkeypatch, cfg)
    plain, tta = {"bbox": {"AP": 1.0}}, {"bbox_TTA": {"AP": 2.0}}
    monkeypatch.setattr(DropBlockTrainer, "test_with_TTA", classmethod(lambda cls, cfg, model: dict(tta)))

    def evaluations_only(self, start_iter, max_iter):  # what the two EvalHooks leave at the end
        self._last_eval_results = dict(plain)
        assert self._test_with_TTA_and_save_results() == tta  # the hook's own: the TTA ones

    monkeypatch.setattr(TrainerBase, "train", evaluations_only)
    assert trainer.train() == {**plain, **tta}


def test_a_resumed_trainer_gets_the_optimizer_state_of_its_checkpoint_back(monkeypatch, tmp_path):
    # detectron2 v0.6's DefaultTrainer saves no optimizer: SGD's momentum restarted at zero.
    cfg = synthetic_cfg("SOLVER.MAX_ITER", "10", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu",
                        "OUTPUT_DIR", str(tmp_path))
    saved = _trainer_without_data(monkeypatch, cfg)
    for p in saved.model.parameters():
        p.grad = torch.ones_like(p)
    saved.optimizer.step()
    momentum = {k: s["momentum_buffer"].clone() for k, s in saved.optimizer.state_dict()["state"].items()}
    assert momentum
    saved.iter = 4
    saved.checkpointer.save("model_0000004", iteration=4)
    resumed = _trainer_without_data(monkeypatch, cfg)
    resumed.resume_or_load(resume=True)
    state = resumed.optimizer.state_dict()["state"]
    assert resumed.start_iter == 5 and sorted(state) == sorted(momentum)
    assert all(torch.equal(state[k]["momentum_buffer"], v) for k, v in momentum.items())


@pytest.mark.parametrize("architecture, reads_labels", [
    ("SemanticSegmentor", True), ("PanopticFPN", True), ("GeneralizedRCNN", False), ("DropBlockRetinaNet", False),
    ("NoSuchArchitecture", False)])
def test_the_training_labels_are_checked_against_the_sem_seg_head_of_the_models_that_train_on_them(
        architecture, reads_labels):
    # A PanopticFPN trains its semantic branch on MODEL.SEM_SEG_HEAD's classes as well: a
    # colour label PNG failed in the loss naming no file.
    from dropblock_det.engine.trainer import _trains_on_sem_seg_labels

    assert _trains_on_sem_seg_labels(synthetic_cfg("MODEL.META_ARCHITECTURE", architecture)) is reads_labels


def test_the_training_loader_names_a_training_image_that_is_missing_before_the_first_step(tmp_path):
    # The mapper failed on it only when the sampler reached it, anywhere in the first epoch.
    from conftest import tiny_synthetic_datasets
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.trainer import DropBlockTrainer

    with tiny_synthetic_datasets(tmp_path, num_train=3, num_val=1) as root:
        missing = root / "synthetic_det" / "train" / "000001.jpg"
        missing.unlink()
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TRAIN=\('synthetic_det_train',\) lists an item whose "
                                                   rf"file_name {missing} does not exist"):
            DropBlockTrainer.build_train_loader(synthetic_cfg("DATALOADER.NUM_WORKERS", "0"))


# --- mutation 56 ---
@pytest.mark.parametrize("optimizer_state", [True, False])
@pytest.mark.parametrize("schedule", ["WarmupPolyLR", "WarmupMultiStepLR"])
def test_a_resume_with_a_longer_schedule_gives_every_group_the_new_schedules_lr_at_the_resumed_iteration(
        monkeypatch, tmp_path, schedule, optimizer_state):
    # The checkpoint's optimizer holds the LR its schedule (MAX_ITER 6) gave iteration 5 (one
    # without optimizer state: a fresh optimizer, iteration 0's); the resumed trainer's
    # (MAX_ITER 20) gives each group its own base LR times the new factor there.
    # BIAS_LR_FACTOR 2: groups of two base LRs, so one group's LR given to another shows.
    from dropblock_det.engine.trainer import DropBlockTrainer

    opts = ["SOLVER.LR_SCHEDULER_NAME", schedule, "SOLVER.WARMUP_ITERS", "2", "SOLVER.BIAS_LR_FACTOR", "2.0",
            "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path)]
    saved = _trainer_without_data(monkeypatch, synthetic_cfg("SOLVER.MAX_ITER", "6", "SOLVER.STEPS", "(3,)", *opts))
    for _ in range(5):  # iterations 0 .. 4 done, as the LRScheduler hook steps after each
        saved.optimizer.step()
        saved.scheduler.step()
    saved.iter = 4
    saved.checkpointer.save("model_0000004", iteration=4)
    if not optimizer_state:  # as detectron2 v0.6's own DefaultTrainer saves it
        checkpoint = torch.load(tmp_path / "model_0000004.pth", weights_only=False)
        del checkpoint["trainer"]["_trainer"]
        torch.save(checkpoint, tmp_path / "model_0000004.pth")
    cfg = synthetic_cfg("SOLVER.MAX_ITER", "20", "SOLVER.STEPS", "(15,)", *opts)
    resumed = _trainer_without_data(monkeypatch, cfg)
    held = [group["lr"] for group in (saved if optimizer_state else resumed).optimizer.param_groups]
    if optimizer_state:
        resumed.resume_or_load(resume=True)
    else:
        with pytest.warns(UserWarning, match="holds no optimizer state"):
            resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 5
    # The new schedule's factor at iteration 5, from a scheduler stepped there from scratch.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = DropBlockTrainer.build_lr_scheduler(cfg, optimizer)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    groups = resumed.optimizer.param_groups
    assert sorted({group["initial_lr"] for group in groups}) == pytest.approx([0.02, 0.04])
    expected = [group["initial_lr"] * optimizer.param_groups[0]["lr"] for group in groups]
    assert held != pytest.approx(expected, rel=1e-3)  # what the optimizer held differs: the test can fail
    assert [group["lr"] for group in groups] == pytest.approx(expected, rel=1e-6)


def _precise_bn_warnings(monkeypatch, cfg):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer_without_data(monkeypatch, cfg)
    return trainer, [str(w.message) for w in caught if "TEST.PRECISE_BN.ENABLED" in str(w.message)]


def test_precise_bn_on_a_model_without_batchnorm_that_trains_warns_naming_the_key(monkeypatch, tmp_path):
    # detectron2 adds its PreciseBN hook only where BatchNorm layers train, and dropped it
    # without a word for the GN and FrozenBN models, which recomputed no statistics.
    from detectron2.engine import hooks

    opts = ["SOLVER.MAX_ITER", "10", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path), "TEST.PRECISE_BN.ENABLED", "True"]
    trainer, (message,) = _precise_bn_warnings(monkeypatch, synthetic_cfg(*opts))  # GN throughout
    assert message.startswith("TEST.PRECISE_BN.ENABLED=True, but the model has no BatchNorm layer that trains")
    assert not any(isinstance(h, hooks.PreciseBN) for h in trainer._hooks)
    trainer, caught = _precise_bn_warnings(monkeypatch, synthetic_cfg(*opts, "MODEL.RESNETS.NORM", "BN"))
    assert not caught and any(isinstance(h, hooks.PreciseBN) for h in trainer._hooks)
    assert not _precise_bn_warnings(monkeypatch, synthetic_cfg(*opts[:-1], "False"))[1]
