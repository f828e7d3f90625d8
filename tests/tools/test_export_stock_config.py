"""tools/export_stock_config.py: the stock detectron2 config of a trained model, checked."""
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from conftest import CONFIGS, dropblock_everywhere_cfg, load_tool
from dropblock_det.engine.checkpoint import CheckpointMismatchError
from dropblock_det.engine.config_checks import load_config


@pytest.fixture
def trained_run(tmp_path):
    """A run folder: config.yaml of a model with DropBlock everywhere (a head stock v0.6
    builds too) and its model_final.pth, weights away from their initial values."""
    cfg = dropblock_everywhere_cfg(head_norm="")
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    (tmp_path / "run").mkdir()
    DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).save("model_final")
    (tmp_path / "run" / "config.yaml").write_text(cfg.dump())
    return tmp_path / "run", model.eval()


def test_the_written_config_serves_the_model_in_a_process_without_the_plugin(trained_run):
    run, ours = trained_run
    output = run / "stock_config.yaml"
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                           "MODEL.WEIGHTS", str(run / "model_final.pth")])
    # Stock detectron2 alone reads the file, builds the model, loads the weights strictly
    # and predicts; dropblock_det is never imported there.
    out = _predicts_like_ours(run, ours, f"""
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        cfg = get_cfg()
        cfg.merge_from_file({str(output)!r})
        model = build_model(cfg).eval()
        model.load_state_dict(torch.load(cfg.MODEL.WEIGHTS)["model"], strict=True)
        print(type(model).__name__)
    """)
    assert out.strip() == "RetinaNet"


def _predicts_like_ours(run, ours, build: str) -> str:
    """Runs `build` (code that makes `model`, the stock model, and may print) in a process
    with detectron2 alone, which then predicts on an image; asserts that dropblock_det was
    never imported there and that the scores are those of `ours`. Returns what it printed."""
    script = textwrap.dedent(build) + textwrap.dedent(f"""
        import sys, torch
        image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8)
        with torch.no_grad():
            instances = model([{{"image": image}}])[0]["instances"]
        torch.save(instances.scores, {str(run / "stock_scores.pt")!r})
        assert not [m for m in sys.modules if m.startswith("dropblock_det")]
    """)
    result = subprocess.run([sys.executable, "-c", "import torch\n" + script], cwd=str(run), capture_output=True,
                            text=True, env={"PATH": "", "PYTHONPATH": ""}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8)
    with torch.no_grad():
        scores = ours([{"image": image}])[0]["instances"].scores
    assert len(scores) > 0
    assert torch.equal(torch.load(run / "stock_scores.pt"), scores)
    return result.stdout


def test_an_existing_output_is_not_overwritten(trained_run):
    run, _ = trained_run
    output = run / "stock_config.yaml"
    output.write_text("the user's own file")
    with pytest.raises(FileExistsError, match="--output .*stock_config.yaml.* exists"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output)])
    assert output.read_text() == "the user's own file"


def test_an_output_made_while_the_config_was_checked_is_not_overwritten(trained_run, monkeypatch):
    # e.g. by a second export to the same name: the file is opened to be made, not replaced.
    run, _ = trained_run
    output = run / "stock.yaml"
    tool = load_tool("export_stock_config")
    checked = tool.yacs_stock_config_text

    def made_meanwhile(args):
        result = checked(args)
        output.write_text("the user's own file")
        return result

    monkeypatch.setattr(tool, "yacs_stock_config_text", made_meanwhile)
    with pytest.raises(FileExistsError):
        tool.main(["--config-file", str(run / "config.yaml"), "--output", str(output)])
    assert output.read_text() == "the user's own file"


def test_an_empty_output_is_refused_first(trained_run, monkeypatch):
    # It failed only when the file was written, after every check: "[Errno 2] No such file
    # or directory: ''".
    from dropblock_det.engine import config_checks

    run, _ = trained_run
    monkeypatch.setattr(config_checks, "load_config", lambda *a, **k: pytest.fail("checked after the config was read"))
    with pytest.raises(ValueError, match=r"^--output is empty: give the YAML file to write$"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", ""])


@pytest.mark.parametrize("folder", ["the run's folder", "a new folder/"])
def test_an_output_that_names_a_folder_is_refused_first_with_a_file_name_to_give(trained_run, monkeypatch, folder):
    # The run's folder was refused as an existing file: "exists; it is not overwritten: give a
    # new file name or remove it" (remove the run?); a new folder ("stock/") failed only when
    # the file was written, after every check: "[Errno 21] Is a directory: 'stock/'".
    from dropblock_det.engine import config_checks

    run, _ = trained_run
    output = str(run) if folder == "the run's folder" else str(run / "stock") + os.sep
    before = sorted(os.listdir(run))
    monkeypatch.setattr(config_checks, "load_config", lambda *a, **k: pytest.fail("checked after the config was read"))
    example = os.path.join(output, "stock_config.yaml")
    with pytest.raises(IsADirectoryError, match=rf"^--output {re.escape(repr(output))} names a folder: give the "
                                                rf"YAML file to write, e.g. --output {re.escape(example)}$"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", output])
    assert sorted(os.listdir(run)) == before  # no folder made


def test_an_output_folder_that_cannot_be_made_or_written_is_named_first(trained_run, monkeypatch):
    # It failed when the file was written, after every check, naming neither --output nor
    # why: "[Errno 17] File exists: '<the file on the path>'".
    from dropblock_det.engine import config_checks

    run, _ = trained_run
    (run / "notes").write_text("the user's own file")
    monkeypatch.setattr(config_checks, "load_config", lambda *a, **k: pytest.fail("checked after the config was read"))
    tool = load_tool("export_stock_config")
    with pytest.raises(NotADirectoryError, match=r"--output .*notes/stock/x\.yaml.*notes' is a file, not a folder, "
                                                 r"so .*notes/stock' cannot be made"):
        tool.main(["--config-file", str(run / "config.yaml"), "--output", str(run / "notes" / "stock" / "x.yaml")])
    assert (run / "notes").read_text() == "the user's own file"
    locked = run / "locked"
    locked.mkdir(mode=0o555)
    _refuse_access(monkeypatch, locked, os.W_OK)
    with pytest.raises(PermissionError, match=r"--output .*locked/x\.yaml.*locked' is not writable"):
        tool.main(["--config-file", str(run / "config.yaml"), "--output", str(locked / "x.yaml")])
    assert not (locked / "x.yaml").exists()


def test_a_checkpoint_that_does_not_fit_is_refused_before_writing(trained_run):
    run, _ = trained_run
    output = run / "stock_config.yaml"
    # The same run's weights, read with another head depth: the keys of the second conv are
    # missing from the checkpoint.
    with pytest.raises(CheckpointMismatchError, match=r"MODEL\.WEIGHTS=.*model_final\.pth.*cls_subnet\.2\.weight"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                               "MODEL.WEIGHTS", str(run / "model_final.pth"),
                                               "MODEL.RETINANET.NUM_CONVS", "2"])
    assert not output.exists()
    with pytest.raises(FileNotFoundError, match=r"MODEL\.WEIGHTS=.*no\.pth"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                               "MODEL.WEIGHTS", str(run / "no.pth")])
    assert not output.exists()


def test_a_damaged_checkpoint_is_refused_naming_the_key(trained_run):
    # The weights were read with the file's name alone: "'.../damaged.pth' cannot be read",
    # where train_net.py's refusal of the same file names MODEL.WEIGHTS.
    run, _ = trained_run
    output = run / "stock_config.yaml"
    (run / "damaged.pth").write_bytes((run / "model_final.pth").read_bytes()[:200])
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*damaged\.pth': checkpoint '.*damaged\.pth' cannot "
                                           r"be read, it is truncated or corrupt"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                               "MODEL.WEIGHTS", str(run / "damaged.pth")])
    assert not output.exists()


def test_relative_weights_are_written_absolute_and_load_from_another_folder(trained_run, tmp_path, monkeypatch):
    # detectron2 reads MODEL.WEIGHTS relative to the working directory, not to the file:
    # the README runs export_model.py from a detectron2 checkout.
    run, _ = trained_run
    monkeypatch.chdir(run.parent)
    load_tool("export_stock_config").main(["--config-file", "run/config.yaml", "--output", "run/deploy/stock.yaml",
                                           "MODEL.WEIGHTS", "run/model_final.pth"])  # a folder to make
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(run / "deploy" / "stock.yaml"))
    assert cfg.MODEL.WEIGHTS == str(run / "model_final.pth")


@pytest.mark.parametrize("weights", ["", "detectron2://DeepLab/R-52.pkl"])
def test_weights_that_are_not_checked_are_not_said_to_be(trained_run, capsys, weights):
    # A run's config.yaml names the weights it started from (none, or an ImageNet URL).
    run, _ = trained_run
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output",
                                           str(run / "stock.yaml"), "MODEL.WEIGHTS", weights])
    out = capsys.readouterr().out
    assert "(checked)" not in out and "MODEL.WEIGHTS" in out
    assert ("MODEL.WEIGHTS is empty: the stock model would start from random weights; give the trained ones: "
            "MODEL.WEIGHTS <run>/model_final.pth" in out) is (weights == "")  # the yacs opts' form


def test_weights_taken_from_the_runs_config_are_said_to_be_where_training_started(trained_run, capsys):
    # A fine-tuning run's config.yaml names the checkpoint it started from, which loads
    # strictly: "(checked)" alone read as if the run's trained model were deployed.
    run, _ = trained_run
    finetune = run.parent / "finetune"
    finetune.mkdir()
    cfg = load_config(str(run / "config.yaml"))
    cfg.defrost()
    cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR = str(run / "model_final.pth"), str(finetune)
    (finetune / "config.yaml").write_text(cfg.dump())
    tool = load_tool("export_stock_config")
    tool.main(["--config-file", str(finetune / "config.yaml"), "--output", str(finetune / "a.yaml")])
    out = capsys.readouterr().out
    assert "(checked)" in out and "MODEL.WEIGHTS=" in out and "the checkpoint training started from" in out
    assert "MODEL.WEIGHTS <run>/model_final.pth" in out
    tool.main(["--config-file", str(finetune / "config.yaml"), "--output", str(finetune / "b.yaml"),
               "MODEL.WEIGHTS", str(run / "model_final.pth")])
    assert "training started from" not in capsys.readouterr().out


def test_a_stock_component_with_other_parameters_is_refused_before_writing(trained_run, monkeypatch):
    # The check of the stock model against the dropblock-det model: here a (wrong) map to a
    # backbone without the P6/P7 convs.
    from dropblock_det import deploy

    run, _ = trained_run
    monkeypatch.setitem(deploy.STOCK_COMPONENTS["MODEL.BACKBONE.NAME"],
                        "build_dropblock_retinanet_resnet_fpn_backbone", "build_resnet_fpn_backbone")
    output = run / "stock.yaml"
    with pytest.raises(RuntimeError, match=r"does not have the dropblock-det model's parameters.*top_block\.p6"):
        load_tool("export_stock_config").main([
            "--config-file", str(run / "config.yaml"), "--output", str(output),
            "MODEL.RETINANET.IN_FEATURES", "['p3', 'p4', 'p5', 'p6']",
            "MODEL.ANCHOR_GENERATOR.SIZES", "[[32], [64], [128], [256]]"])
    assert not output.exists()


@pytest.mark.parametrize("crop", [True, False])
def test_a_deeplab_model_is_written_with_the_deeplab_projects_keys(tmp_path, capsys, crop):
    from conftest import small_voc_sem_seg_cfg

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path)
    cfg.INPUT.CROP.ENABLED = crop
    (tmp_path / "config.yaml").write_text(cfg.dump())
    output = tmp_path / "stock.yaml"
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "config.yaml"), "--output", str(output)])
    out = capsys.readouterr().out
    assert "SemanticSegmentor with build_resnet_deeplab_backbone and DeepLabV3PlusHead" in out
    assert "export_model.py" in out
    # The pooling advice only where the stock ASPP pools with the crop's kernel.
    assert ("pools with the fixed kernel of INPUT.CROP.SIZE" in out) is crop
    assert ("INPUT.CROP.ENABLED False" in out) is crop
    stock = load_tool("export_stock_config").read_stock_config(str(output), deeplab=True)
    assert stock.MODEL.SEM_SEG_HEAD.NAME == "DeepLabV3PlusHead"


# ----------------------------------------------------------------------------- LazyConfig
SYNTHETIC_LAZY = str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")
SYNTHETIC = SYNTHETIC_LAZY[:-len(".py")] + ".yaml"


@pytest.fixture
def lazy_trained_run(tmp_path):
    """A LazyConfig run folder as tools/lazyconfig_train_net.py leaves one: the config.yaml
    LazyConfig.save wrote (targets as strings, interpolations kept) and model_final.pth,
    weights away from their initial values. Head norm '' so that v0.6's own head builds."""
    from detectron2.config import LazyConfig, instantiate

    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    run = tmp_path / "lazy_run"
    run.mkdir()
    cfg = load_lazy_config(SYNTHETIC_LAZY, ["model.head.norm=''", "model.test_score_thresh=0.0",
                                            f"train.output_dir={run}"])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    DetectionCheckpointer(model, save_dir=str(run)).save("model_final")
    LazyConfig.save(cfg, str(run / "config.yaml"))
    return run, model.eval()


def test_a_lazy_runs_stock_config_serves_the_model_in_a_process_without_the_plugin(lazy_trained_run, capsys):
    run, ours = lazy_trained_run
    output = run / "stock_config.yaml"
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                           f"train.init_checkpoint={run / 'model_final.pth'}"])
    assert "RetinaNet (LazyConfig), weights " in capsys.readouterr().out
    # detectron2 alone reads the file (LazyConfig.load), builds the model and the test
    # mapper, loads the weights strictly and predicts; dropblock_det is never imported.
    out = _predicts_like_ours(run, ours, f"""
        from detectron2.config import LazyConfig, instantiate
        cfg = LazyConfig.load({str(output)!r})
        model = instantiate(cfg.model).eval()
        model.load_state_dict(torch.load(cfg.train.init_checkpoint)["model"], strict=True)
        mapper = instantiate(cfg.dataloader.test.mapper)
        print(type(model).__name__, type(mapper).__name__, cfg.dataloader.evaluator._target_)
    """)
    assert out.split()[:2] == ["RetinaNet", "DatasetMapper"] and out.split()[2].endswith("COCOEvaluator")


@pytest.mark.parametrize("read_back", [True, False], ids=["read-back", "in-memory"])
@pytest.mark.parametrize("train_size", ["(384, 384)", "null"])
def test_a_lazy_deeplab_stock_config_is_said_to_pool_with_the_crops_kernel_and_to_train_with_dropblock_det(
        tmp_path, train_size, read_back):
    from detectron2.config import LazyConfig

    from dropblock_det.deploy import lazy_stock_config
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    config = CONFIGS / "PascalVOC-SemanticSegmentation" / \
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.py"
    opts = [] if train_size != "null" else ["model.sem_seg_head.train_size=null"]
    # The tool advises on the config as written and read back (targets named by strings); a
    # direct call may pass the config in memory (targets are the classes).
    stock = lazy_stock_config(load_lazy_config(str(config), opts))
    if read_back:
        LazyConfig.save(stock, str(tmp_path / "stock.yaml"))
        stock = LazyConfig.load(str(tmp_path / "stock.yaml"))
    lines = load_tool("export_stock_config").lazy_advice(stock, False)
    pooling = [line for line in lines if "pools with the fixed kernel" in line]
    if train_size == "null":
        assert pooling == []
    else:
        assert len(pooling) == 1 and f"model.sem_seg_head.train_size={train_size}" in pooling[0]
        assert "write the config again with model.sem_seg_head.train_size=null" in pooling[0]
    # Its poly LR schedule is dropblock-det's: a training-only node, listed.
    assert [line for line in lines if line.startswith("Training-only nodes still build dropblock-det components")
            and line.endswith(": lr_multiplier (WarmupPolyParamScheduler)")]


def test_a_lazy_checkpoint_that_does_not_fit_is_refused_naming_the_key(lazy_trained_run):
    run, _ = lazy_trained_run
    output = run / "stock.yaml"
    with pytest.raises(CheckpointMismatchError, match=r"^train\.init_checkpoint=.*model_final\.pth.*missing in checkpoint: head\.cls_subnet\.4\.weight"):
        load_tool("export_stock_config").main([
            "--config-file", str(run / "config.yaml"), "--output", str(output),
            f"train.init_checkpoint={run / 'model_final.pth'}", "model.head.conv_dims=[64,64,64]"])
    with pytest.raises(FileNotFoundError, match=r"train\.init_checkpoint='.*no\.pth' does not exist"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                               f"train.init_checkpoint={run / 'no.pth'}"])
    assert not output.exists()
    # The run's folder for its checkpoint: it was said not to exist.
    with pytest.raises(FileNotFoundError, match=r"train\.init_checkpoint='.*' is a folder, not a checkpoint file"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output),
                                               f"train.init_checkpoint={run}"])
    assert not output.exists()


@pytest.mark.parametrize("setting, key, value", [
    ("model.backbone.bottom_up.stem.norm = group_norm_16", r"model\.backbone\.bottom_up\.stem\.norm",
     r"<function group_norm_16 "),
    ("model.backbone.bottom_up.stem.norm = GroupNorm16", r"model\.backbone\.bottom_up\.stem\.norm",
     r"<class '.*GroupNorm16'>"),
    # Among a list's items: named by its key and index, as one outside a list is.
    ("dataloader.test.mapper.augmentations = [dataloader.test.mapper.augmentations[0], group_norm_16]",
     r"dataloader\.test\.mapper\.augmentations\.1", r"<function group_norm_16 "),
])
def test_a_lazy_config_value_yaml_cannot_hold_is_named_by_key_before_writing(tmp_path, setting, key, value):
    # detectron2's LazyConfig.save pickles such a config and logs neither the key nor the
    # value (and the tool said "LazyConfig.save logged which").
    config = tmp_path / "norm_factory.py"
    config.write_text(textwrap.dedent(f"""
        import torch
        from detectron2.config import LazyConfig

        dropblock, model, dataloader, train = LazyConfig.load(
            {str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")!r},
            keys=("dropblock", "model", "dataloader", "train"))
        model.head.norm = ""  # a head stock detectron2 v0.6 builds too

        def group_norm_16(channels):
            return torch.nn.GroupNorm(16, channels)

        class GroupNorm16(torch.nn.GroupNorm):
            def __init__(self, channels):
                super().__init__(16, channels)

        {setting}
    """))
    output = tmp_path / "stock.yaml"
    with pytest.raises(ValueError, match=rf"values YAML cannot hold.*: {key} "
                                         rf"\({value}.*define it in a module the config imports"):
        load_tool("export_stock_config").main(["--config-file", str(config), "--output", str(output)])
    assert not output.exists()


def test_a_lazy_runs_own_init_checkpoint_is_said_to_be_where_training_started(lazy_trained_run, capsys):
    from detectron2.config import LazyConfig

    run, _ = lazy_trained_run
    cfg = LazyConfig.load(str(run / "config.yaml"))
    cfg.train.init_checkpoint = str(run / "model_final.pth")  # as a fine-tuning from it saves it
    LazyConfig.save(cfg, str(run / "finetune.yaml"))
    load_tool("export_stock_config").main(["--config-file", str(run / "finetune.yaml"), "--output", str(run / "s.yaml")])
    out = capsys.readouterr().out
    assert "(checked)" in out and "the checkpoint training started from" in out
    assert "train.init_checkpoint=<run>/model_final.pth" in out


def test_a_lazy_runs_empty_init_checkpoint_is_said_to_be_empty_with_the_lazy_opts_form(lazy_trained_run, capsys):
    run, _ = lazy_trained_run
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(run / "s.yaml")])
    assert ("train.init_checkpoint is empty: the stock model would start from random weights; give the trained "
            "ones: train.init_checkpoint=<run>/model_final.pth") in capsys.readouterr().out


def test_a_python_config_is_exported_with_relative_weights_made_absolute(lazy_trained_run, monkeypatch, capsys):
    from detectron2.config import LazyConfig

    run, _ = lazy_trained_run
    monkeypatch.chdir(run.parent)
    tool = load_tool("export_stock_config")
    with pytest.raises(ValueError, match=r"--output 'lazy_run/stock\.txt'.*give a \.yaml or \.yml name"):
        tool.main(["--config-file", SYNTHETIC_LAZY, "--output", "lazy_run/stock.txt"])
    # .yml: LazyConfig.load reads both YAML suffixes.
    tool.main(["--config-file", SYNTHETIC_LAZY, "--output", "lazy_run/stock.yml", "model.head.norm=''",
               "train.init_checkpoint=lazy_run/model_final.pth"])
    out = capsys.readouterr().out
    assert "(checked)" in out and "Training-only" not in out
    assert LazyConfig.load(str(run / "stock.yml")).train.init_checkpoint == str(run / "model_final.pth")


def test_only_a_python_config_or_a_lazy_runs_yaml_is_read_as_a_lazy_config(lazy_trained_run):
    run, _ = lazy_trained_run
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file as is_lazy

    assert is_lazy(SYNTHETIC_LAZY) and is_lazy(str(run / "config.yaml"))
    assert not is_lazy(str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"))


def test_a_lazy_stock_config_whose_test_loader_still_builds_a_dropblock_det_component_is_refused_before_writing(
        lazy_trained_run, monkeypatch):
    # The check of the written config against lazy_stock_config: here a (wrong) rewrite that
    # leaves dropblock-det's test mapper in place, which stock detectron2 could not build.
    from dropblock_det import deploy
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    run, _ = lazy_trained_run
    rewrite = deploy.lazy_stock_config

    def leaving_the_test_mapper(cfg):
        stock = rewrite(cfg)
        stock.dataloader.test.mapper._target_ = DatasetMapperNamingFiles
        return stock

    monkeypatch.setattr(deploy, "lazy_stock_config", leaving_the_test_mapper)
    output = run / "stock.yaml"
    with pytest.raises(RuntimeError, match=r"still builds dropblock-det components at dataloader\.test\.mapper$"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output)])
    assert not output.exists()


def test_a_lazy_config_to_be_written_under_a_name_lazyconfig_load_does_not_read_is_refused_first(tmp_path):
    # LazyConfig.load reads .py, .yaml and .yml: any other name would be a file nothing reads back.
    out = tmp_path / "stock_config.txt"
    with pytest.raises(ValueError, match=r"^--output '.*stock_config\.txt': a LazyConfig is written as YAML"):
        load_tool("export_stock_config").main(["--config-file", SYNTHETIC_LAZY, "--output", str(out)])
    assert not out.exists()


def test_a_yacs_config_to_be_written_under_a_python_name_is_refused_first(tmp_path):
    # A .py --config-file is a LazyConfig to detectron2's tools and this project's: the YAML
    # written under that name was then run as Python.
    out = tmp_path / "stock_config.py"
    with pytest.raises(ValueError, match=r"^--output '.*stock_config\.py': a yacs config is written as YAML, "
                                         r"and a \.py file is read as a LazyConfig"):
        load_tool("export_stock_config").main(["--config-file", SYNTHETIC, "--output", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("opt, named", [
    ("train.init_checkpoint=${nope}", r"train\.init_checkpoint=\$\{nope\}"),
    # Read through the evaluator's output_dir: named where the reading starts, its text leading on.
    ("train.output_dir=${nope}", r"dataloader\.evaluator\.output_dir=\$\{train\.output_dir\}/inference"),
    ("optimizer.lr=${nope}", r"optimizer\.lr=\$\{nope\}"),
    ("+notes={a: [1, '${nope}']}", r"notes\.a\.1=\$\{nope\}"),  # a key of the user's own: exported too
])
def test_a_lazy_interpolation_that_does_not_resolve_is_refused_in_one_line_before_writing(tmp_path, opt, named):
    # The export reads every key (the tool itself read train.init_checkpoint first): OmegaConf's
    # 3-line error, "full_key: ..." on a line of its own.
    out = tmp_path / "stock_config.yaml"
    with pytest.raises(ValueError, match=rf"^{named}: InterpolationKeyError: Interpolation key 'nope' not found "
                                         r"\(.* reads it: point it to a key that has a value\)$"):
        load_tool("export_stock_config").main(["--config-file", SYNTHETIC_LAZY, "--output", str(out), opt])
    assert not out.exists()


def test_weights_given_on_the_command_line_are_found_in_either_opts_form():
    # The advice "is the config file's own (where training started)" is for weights not given;
    # hydra's `+key=value` gives them too.
    given = load_tool("export_stock_config")._opt_given
    assert given(["+train.init_checkpoint=w.pth"], "train.init_checkpoint")
    assert given(["train.max_iter=3", "train.init_checkpoint=w.pth"], "train.init_checkpoint")
    assert not given(["train.init_checkpoint_2=w.pth"], "train.init_checkpoint")
    assert given(["SOLVER.MAX_ITER", "3", "MODEL.WEIGHTS", "w.pth"], "MODEL.WEIGHTS")
    assert not given(["SOLVER.MAX_ITER", "3"], "MODEL.WEIGHTS")


def test_the_stock_config_points_detectron2s_tools_away_from_the_runs_own_files(trained_run, lazy_trained_run, capsys,
                                                                                monkeypatch):
    # detectron2's train_net.py / lazyconfig_train_net.py --eval-only write config.yaml into
    # the output folder: in the run's own, the stock config would replace the run's config.
    from detectron2.config import LazyConfig, get_cfg

    for run, key, opts in ((trained_run[0], "OUTPUT_DIR", ["MODEL.WEIGHTS", str(trained_run[0] / "model_final.pth")]),
                           (lazy_trained_run[0], "train.output_dir", [])):
        output = run / "stock.yaml"
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output)] + opts)
        if key == "OUTPUT_DIR":
            cfg = get_cfg()
            cfg.merge_from_file(str(output))
            written = cfg.OUTPUT_DIR
        else:
            cfg = LazyConfig.load(str(output))
            written = cfg.train.output_dir
            assert cfg.dataloader.evaluator.output_dir == f"{written}/inference"  # follows it
        assert written == str(run / "stock")
        assert f"{key} is {run / 'stock'}" in capsys.readouterr().out
        # where detectron2's --eval-only would write its own config.yaml over it
        with pytest.raises(ValueError, match=rf"--output .*stock/config\.yaml.* {key}="):
            load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output",
                                                   str(run / "stock" / "config.yaml")] + opts)
        assert not (run / "stock").exists()
    # The same file given relative to the working folder (the output folder is absolute).
    run = trained_run[0]
    monkeypatch.chdir(run.parent)
    with pytest.raises(ValueError, match=r"--output 'run/stock/config\.yaml' is the config\.yaml .* OUTPUT_DIR="):
        load_tool("export_stock_config").main(["--config-file", "run/config.yaml", "--output", "run/stock/config.yaml",
                                               "MODEL.WEIGHTS", str(run / "model_final.pth")])
    assert not (run / "stock").exists()


def test_a_lazy_runs_config_yaml_given_to_a_yacs_reader_names_the_lazy_tool(lazy_trained_run):
    from dropblock_det.engine.config_checks import load_config

    run, _ = lazy_trained_run
    with pytest.raises(ValueError, match=r"config\.yaml' is a LazyConfig .*tools/lazyconfig_train_net\.py"):
        load_config(str(run / "config.yaml"))
    # The Python config itself: yacs read it as YAML (a ParserError).
    with pytest.raises(ValueError, match=r"b3\.py' is a LazyConfig \(a Python config\).*tools/lazyconfig_train_net\.py"):
        load_config(str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"))


@pytest.mark.parametrize("test_set, named", [("synthetic_det_val", True), ("coco_2017_val", False)])
def test_a_test_set_detectron2_alone_does_not_register_is_named_with_what_to_do(trained_run, capsys, test_set,
                                                                                 named):
    # detectron2's train_net.py --eval-only with the written config stopped there with a bare
    # "Dataset 'synthetic_det_val' is not registered!" KeyError, where the tool said it
    # evaluates with detectron2's tools.
    run = trained_run[0]
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output",
                                           str(run / "stock.yaml"), "MODEL.WEIGHTS", str(run / "model_final.pth"),
                                           "DATASETS.TEST", f"('{test_set}',)"])
    out = capsys.readouterr().out
    line = ("DATASETS.TEST names sets detectron2 alone does not register: 'synthetic_det_val' (registered by "
            "dropblock_det.data.synthetic). detectron2's train_net.py --eval-only stops at them")
    assert (line in out) is named
    assert ("not register" in out) is named


def test_a_lazy_test_set_detectron2_alone_does_not_register_is_named_once(lazy_trained_run, capsys):
    run = lazy_trained_run[0]
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output",
                                           str(run / "stock.yaml")])
    out = capsys.readouterr().out
    assert ("dataloader.test.dataset.names names sets detectron2 alone does not register: 'synthetic_det_val' "
            "(registered by dropblock_det.data.synthetic). detectron2's lazyconfig_train_net.py --eval-only") in out
    assert out.count("does not register") == 1  # the evaluator's set is the same one



def test_a_config_that_differs_from_the_runs_beside_the_weights_at_inference_is_named(trained_run, tmp_path,
                                                                                      capsys):
    # The project's config given with a run's weights: the run trained (and evaluated) at
    # INPUT.MIN_SIZE_TEST 64 and score threshold 0.3; the written config had the file's 800
    # and 0.05, reported "(checked)" without a word (the weights load all the same).
    from detectron2.config import get_cfg

    run = trained_run[0]
    cfg = load_config(str(run / "config.yaml"))
    cfg.INPUT.MIN_SIZE_TEST, cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 64, 0.3
    (run / "config.yaml").write_text(cfg.dump())
    cfg.INPUT.MIN_SIZE_TEST, cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 800, 0.05
    cfg.SOLVER.MAX_ITER, cfg.OUTPUT_DIR = 99, str(tmp_path / "elsewhere")  # training keys: not named
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"  # the stock counterpart: the same at inference
    (tmp_path / "project.yaml").write_text(cfg.dump())
    tool = load_tool("export_stock_config")
    weights = ["MODEL.WEIGHTS", str(run / "model_final.pth")]

    def export(config_file, output, *opts):
        tool.main(["--config-file", str(config_file), "--output", str(tmp_path / output)] + weights + list(opts))
        return capsys.readouterr().out

    out = export(tmp_path / "project.yaml", "a.yaml")
    assert (f"{run / 'config.yaml'}, the config beside MODEL.WEIGHTS (the run's?), differs from --config-file "
            f"{tmp_path / 'project.yaml'} in what the model does at inference: INPUT.MIN_SIZE_TEST 64 there, 800 "
            f"here, MODEL.RETINANET.SCORE_THRESH_TEST 0.3 there, 0.05 here.") in out
    assert f"give --config-file {run / 'config.yaml'}" in out
    written = get_cfg()
    written.merge_from_file(str(tmp_path / "a.yaml"))
    assert written.INPUT.MIN_SIZE_TEST == 800  # a warning: the file's values are written
    # Keys set on the command line are meant; the run's own config has nothing to compare.
    assert "beside MODEL.WEIGHTS" not in export(tmp_path / "project.yaml", "b.yaml", "INPUT.MIN_SIZE_TEST", "64",
                                                "MODEL.RETINANET.SCORE_THRESH_TEST", "0.3")
    assert "beside MODEL.WEIGHTS" not in export(run / "config.yaml", "c.yaml")


def test_a_relative_output_folder_is_written_absolute_as_the_weights_are(trained_run, lazy_trained_run, tmp_path,
                                                                        monkeypatch, capsys):
    # A run's relative OUTPUT_DIR was written relative: detectron2's tools run from another
    # folder (a detectron2 checkout) wrote their evaluation there, not beside the run.
    from detectron2.config import LazyConfig, get_cfg

    monkeypatch.chdir(tmp_path)
    run = trained_run[0]
    cfg = load_config(str(run / "config.yaml"))
    cfg.OUTPUT_DIR = "run"
    (run / "config.yaml").write_text(cfg.dump())
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", "stock.yaml",
                                           "MODEL.WEIGHTS", str(run / "model_final.pth")])
    written = get_cfg()
    written.merge_from_file("stock.yaml")
    assert written.OUTPUT_DIR == str(tmp_path / "run" / "stock")
    assert f"OUTPUT_DIR is {tmp_path / 'run' / 'stock'}:" in capsys.readouterr().out
    lazy = lazy_trained_run[0]
    load_tool("export_stock_config").main(["--config-file", str(lazy / "config.yaml"), "--output", "lazy.yaml",
                                           "train.output_dir=lazy_run"])
    assert LazyConfig.load("lazy.yaml").train.output_dir == str(tmp_path / "lazy_run" / "stock")


# --- mutation run 51b: behaviour the tests above left unpinned -------------------------------


def test_weights_are_said_not_checked_where_the_stock_model_cannot_be_built_on_the_meta_device(tmp_path):
    # theirs=None: the stock model could not be built on the meta device, so there is nothing
    # to load the weights into; they are not read, and reported as not checked.
    weights = tmp_path / "model_final.pth"
    weights.write_bytes(b"")  # never read
    assert load_tool("export_stock_config").check_stock_model(None, None, str(weights), "MODEL.WEIGHTS") is False


# --- LazyConfig run config beside train.init_checkpoint (stop 52) ---


def _lazy_export(run, tmp_path, capsys, config_file, output, *opts):
    """export_stock_config's output for `config_file` with the weights of the LazyConfig `run`."""
    load_tool("export_stock_config").main(["--config-file", str(config_file), "--output", str(tmp_path / output),
                                           f"train.init_checkpoint={run / 'model_final.pth'}"] + list(opts))
    return capsys.readouterr().out


def test_a_lazy_config_that_differs_from_the_runs_beside_the_weights_at_inference_is_named(lazy_trained_run, tmp_path,
                                                                                           capsys):
    # The run evaluated at short edge 64 and score threshold 0.0, trained with other training
    # keys and DropBlock: with the project's .py given, the written config had its 96 and 0.05
    # without a word (the weights load all the same).
    from detectron2.config import LazyConfig

    run = lazy_trained_run[0]
    saved = LazyConfig.load(str(run / "config.yaml"))
    saved.dataloader.test.mapper.augmentations[0].short_edge_length = 64
    saved.train.max_iter, saved.optimizer.lr, saved.dropblock.keep_prob = 7, 0.5, 0.5  # training keys: not named
    LazyConfig.save(saved, str(run / "config.yaml"))
    out = _lazy_export(run, tmp_path, capsys, SYNTHETIC_LAZY, "a.yaml", "model.head.norm=''")
    assert (f"{run / 'config.yaml'}, the config beside train.init_checkpoint (the run's?), differs from --config-file "
            f"{SYNTHETIC_LAZY} in what the model does at inference: "
            "dataloader.test.mapper.augmentations.0.short_edge_length 64 there, 96 here, "
            "model.test_score_thresh 0.0 there, 0.05 here. The written config has this file's values: to serve the "
            f"model as the run evaluated it, give --config-file {run / 'config.yaml'} (or set these keys on the "
            "command line).") in out
    assert LazyConfig.load(str(tmp_path / "a.yaml")).model.test_score_thresh == 0.05  # a warning: the file's values
    # Keys set on the command line are meant, a whole node's too.
    assert "beside train.init_checkpoint" not in _lazy_export(
        run, tmp_path, capsys, SYNTHETIC_LAZY, "b.yaml", "model.head.norm=''", "model.test_score_thresh=0.3",
        "dataloader.test.mapper.augmentations=[]")


def test_a_lazy_config_with_the_runs_values_at_inference_names_nothing(lazy_trained_run, tmp_path, capsys):
    # The .py has the classes as targets and `${...}` interpolations (num_classes, the input
    # format, the FPN's channels, DropBlock's node) where the run's config.yaml has strings
    # and the same interpolations: the same values, nothing to name.
    from detectron2.config import LazyConfig

    run = lazy_trained_run[0]
    assert "beside train.init_checkpoint" not in _lazy_export(
        run, tmp_path, capsys, SYNTHETIC_LAZY, "a.yaml", "model.head.norm=''", "model.test_score_thresh=0.0")
    # The run's own config has nothing to compare with; the stock config written from it
    # (detectron2's components for dropblock-det's) is the same model.
    assert "beside train.init_checkpoint" not in _lazy_export(run, tmp_path, capsys, run / "config.yaml", "b.yaml")
    assert "beside train.init_checkpoint" not in _lazy_export(run, tmp_path, capsys, tmp_path / "b.yaml", "c.yaml")
    # Compared all the same: a value of the run's that differs is named, and it alone.
    saved = LazyConfig.load(str(run / "config.yaml"))
    saved.dataloader.test.mapper.augmentations[0].max_size = 64
    LazyConfig.save(saved, str(run / "config.yaml"))
    for config_file, output in ((tmp_path / "b.yaml", "d.yaml"), (SYNTHETIC_LAZY, "e.yaml")):
        out = _lazy_export(run, tmp_path, capsys, config_file, output, "model.head.norm=''",
                           "model.test_score_thresh=0.0")
        assert (f"differs from --config-file {config_file} in what the model does at inference: "
                "dataloader.test.mapper.augmentations.0.max_size 64 there, 96 here. The written config") in out


# --- mutation run 52: behaviour the tests above left unpinned ---


def _refuse_access(monkeypatch, folder, bit: int) -> None:
    """os.access answers for `folder` as the OS answers a user without the permission `bit`
    (root, as on CI, may write anyway)."""
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        not mode & bit and access(path, mode, **kw)) if os.path.realpath(path) == str(folder.resolve())
        else access(path, mode, **kw))


def test_the_regularizers_and_evaluation_schedule_are_not_compared_and_the_test_keys_are(trained_run, tmp_path,
                                                                                         capsys):
    # MODEL.DROPBLOCK.* (no regularizer runs at inference) and TEST.EVAL_PERIOD differ from the
    # run's without a word; TEST.DETECTIONS_PER_IMAGE changes what the model outputs.
    run = trained_run[0]
    cfg = load_config(str(run / "config.yaml"))
    cfg.MODEL.DROPBLOCK.KEEP_PROB, cfg.TEST.EVAL_PERIOD, cfg.TEST.DETECTIONS_PER_IMAGE = 0.5, 7, 3
    (tmp_path / "project.yaml").write_text(cfg.dump())
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "project.yaml"), "--output",
                                           str(tmp_path / "a.yaml"), "MODEL.WEIGHTS", str(run / "model_final.pth")])
    assert ("in what the model does at inference: TEST.DETECTIONS_PER_IMAGE 100 there, 3 here. The written "
            "config") in capsys.readouterr().out


def test_a_lazy_value_given_by_an_interpolation_is_compared_as_it_resolves(lazy_trained_run, tmp_path, capsys):
    # The test mapper's image_format is "${...train.mapper.image_format}" on both sides: the
    # run's train mapper read RGB, so its test mapper did too.
    from detectron2.config import LazyConfig

    run = lazy_trained_run[0]
    saved = LazyConfig.load(str(run / "config.yaml"))
    saved.dataloader.train.mapper.image_format = "RGB"
    LazyConfig.save(saved, str(run / "config.yaml"))
    out = _lazy_export(run, tmp_path, capsys, SYNTHETIC_LAZY, "a.yaml", "model.head.norm=''",
                       "model.test_score_thresh=0.0")
    assert "in what the model does at inference: dataloader.test.mapper.image_format 'RGB' there, 'BGR' here." in out


def test_an_opt_that_sets_a_whole_node_sets_each_key_under_it_and_no_longer_key():
    tool = load_tool("export_stock_config")
    assert tool._set_by_opts(["dataloader.test.mapper.augmentations=[]"],
                             "dataloader.test.mapper.augmentations.0.short_edge_length")
    assert tool._set_by_opts(["INPUT.MIN_SIZE_TEST", "64"], "INPUT.MIN_SIZE_TEST")
    assert not tool._set_by_opts(["model.test_score_thresh=0.3"], "model.test_score_threshold")


def test_an_output_folder_this_user_cannot_enter_is_named_first(tmp_path, monkeypatch):
    # Writing a file needs the folder's search (x) permission as well as its write permission.
    folder = tmp_path / "no_search"
    folder.mkdir()
    _refuse_access(monkeypatch, folder, os.X_OK)
    tool = load_tool("export_stock_config")
    with pytest.raises(PermissionError, match=rf"the folder '{re.escape(str(folder))}' is not writable by this user: "):
        tool.check_output_folder(str(folder / "x.yaml"))
    with pytest.raises(PermissionError, match=rf"not writable by this user, so '{re.escape(str(folder))}/new' "
                                              r"cannot be made in it: give a path"):
        tool.check_output_folder(str(folder / "new" / "x.yaml"))


def test_the_runs_own_config_given_with_an_opt_that_changes_an_interpolated_value_is_not_compared_with_itself(
        lazy_trained_run, tmp_path, capsys):
    # The test mapper's image_format follows the train mapper's: the opt changes it, and the
    # config beside the weights is the --config-file itself, meant with its opts.
    run = lazy_trained_run[0]
    out = _lazy_export(run, tmp_path, capsys, run / "config.yaml", "a.yaml", "dataloader.train.mapper.image_format=RGB")
    assert "beside train.init_checkpoint" not in out


# --- R-CNN journey (stop 52) ---
def test_the_heads_training_only_keys_are_not_named_as_changing_inference(trained_run, tmp_path, capsys):
    # An R-CNN run trained with MODEL.RPN.POST_NMS_TOPK_TRAIN 64 and ROI_HEADS.BATCH_SIZE_PER_IMAGE 32,
    # exported from detectron2's own config file, was told they change what the model does at inference.
    run = trained_run[0]
    cfg = load_config(str(run / "config.yaml"))
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64, 32
    cfg.MODEL.RETINANET.FOCAL_LOSS_GAMMA, cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 1.5, 0.5
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST, cfg.TEST.DETECTIONS_PER_IMAGE = 32, 3  # these do
    (tmp_path / "project.yaml").write_text(cfg.dump())
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "project.yaml"), "--output",
                                           str(tmp_path / "a.yaml"), "MODEL.WEIGHTS", str(run / "model_final.pth")])
    assert ("in what the model does at inference: MODEL.RPN.POST_NMS_TOPK_TEST 1000 there, 32 here, "
            "TEST.DETECTIONS_PER_IMAGE 100 there, 3 here. The written config") in capsys.readouterr().out


def test_the_lazy_heads_training_only_arguments_are_not_named_as_changing_inference(lazy_trained_run, tmp_path,
                                                                                 capsys):
    # The LazyConfig counterpart of the yacs heads' training-only keys: a run trained with
    # another anchor matching and focal loss was told they change what the model does at
    # inference (the R-CNN journey found it for batch_size_per_image).
    from detectron2.config import LazyConfig

    run = lazy_trained_run[0]
    saved = LazyConfig.load(str(run / "config.yaml"))
    saved.model.anchor_matcher.thresholds, saved.model.focal_loss_gamma = [0.3, 0.6], 1.5
    saved.model.smooth_l1_beta, saved.model.test_nms_thresh = 0.2, 0.4  # the NMS threshold does
    LazyConfig.save(saved, str(run / "config.yaml"))
    out = _lazy_export(run, tmp_path, capsys, SYNTHETIC_LAZY, "a.yaml", "model.head.norm=''",
                       "model.test_score_thresh=0.0")
    assert "in what the model does at inference: model.test_nms_thresh 0.4 there, 0.5 here. The written" in out
    module = load_tool("export_stock_config")
    assert [key for key in ("model.roi_heads.batch_size_per_image", "model.proposal_generator.post_nms_topk.0",
                            "model.proposal_generator.post_nms_topk.1", "model.roi_heads.box_predictor.test_topk")
            if module._lazy_training_only(key)] == ["model.roi_heads.batch_size_per_image",
                                                    "model.proposal_generator.post_nms_topk.0"]


# Segmentation journey (stop 53)
def test_a_segmentation_test_set_detectron2_alone_does_not_register_is_told_how_a_sem_seg_set_registers(
        tmp_path, capsys, mini_voc_datasets):
    # The advice named register_coco_instances, which registers a detection set: detectron2's
    # SemSegEvaluator needs the set's stuff_classes and ignore_label.
    from conftest import small_voc_sem_seg_cfg

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path)
    (tmp_path / "config.yaml").write_text(cfg.dump())
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "config.yaml"), "--output",
                                           str(tmp_path / "stock.yaml")])
    out = capsys.readouterr().out
    assert "DATASETS.TEST names sets detectron2 alone does not register: 'voc_mini_sem_seg_val'" in out
    assert ("register them in the process that evaluates first (e.g. DatasetCatalog.register with a loader of "
            "dicts with file_name and sem_seg_file_name, such as detectron2's load_sem_seg, and MetadataCatalog's "
            "stuff_classes, ignore_label and evaluator_type='sem_seg')") in out
    assert "register_coco_instances" not in out


@pytest.mark.parametrize("config, named", [
    ("fcn_R_50_FPN_GN_scratch_dropblock_head_kp0.9_b7_poly_330k_bs16.yaml", True),
    # The DeepLab project's keys are kept for a DeepLab model: its train_net.py reads them.
    ("deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", False),
])
def test_an_fcns_poly_lr_schedule_is_said_to_be_no_stock_detectron2_one(tmp_path, capsys, config, named):
    # The FCN's stock config kept WarmupPolyLR without SOLVER.POLY_LR_*: detectron2's
    # train_net.py refused it ("Unknown LR scheduler"), the DeepLab project's used its defaults.
    from conftest import small_voc_sem_seg_cfg

    cfg = small_voc_sem_seg_cfg(config, tmp_path, ["SOLVER.POLY_LR_POWER", 1.0])
    (tmp_path / "config.yaml").write_text(cfg.dump())
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "config.yaml"), "--output",
                                           str(tmp_path / "stock.yaml")])
    out = capsys.readouterr().out
    line = ("SOLVER.LR_SCHEDULER_NAME 'WarmupPolyLR' is not detectron2's (evaluating and serving do not read it): "
            "its train_net.py cannot train from this file, and detectron2's projects/DeepLab train_net.py trains it "
            "with its defaults SOLVER.POLY_LR_POWER 0.9 and POLY_LR_CONSTANT_ENDING 0.0 (this file has no DeepLab "
            "keys; the run's: 1.0 and 0.0); to train on, use dropblock-det")
    assert (line in out) is named
    assert ("WarmupPolyLR" in out) is named


# Mutation run 53
def test_a_segmentation_set_among_the_unregistered_ones_is_told_how_a_sem_seg_set_registers():
    # One sem_seg set among detection ones is enough: the advice covers the one it needs.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    det, seg = "mut53_own_det_set", "mut53_own_sem_seg_set"
    DatasetCatalog.register(det, lambda: [])
    DatasetCatalog.register(seg, lambda: [])
    MetadataCatalog.get(seg).set(evaluator_type="sem_seg")
    try:
        (line,) = load_tool("export_stock_config")._dataset_advice("DATASETS.TEST", [det, seg])
        assert f"'{det}' (registered by " in line and f"'{seg}' (registered by " in line
        assert "(e.g. DatasetCatalog.register with a loader of dicts with file_name and sem_seg_file_name" in line
        (line,) = load_tool("export_stock_config")._dataset_advice("DATASETS.TEST", [det])
        assert "(e.g. detectron2's register_coco_instances)" in line
    finally:
        for name in (det, seg):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


def test_a_schedule_other_than_poly_gets_no_poly_lr_advice():
    from conftest import rcnn_cfg
    from dropblock_det.deploy import stock_config

    cfg = rcnn_cfg()  # WarmupMultiStepLR, and no SOLVER.POLY_LR_POWER in its stock config
    stock = stock_config(cfg)
    assert "POLY_LR_POWER" not in stock.SOLVER
    assert not [line for line in load_tool("export_stock_config").advice(cfg, stock, checked=True)
                if "WarmupPolyLR" in line]


# --- coverage audit 55b ---
def test_a_config_beside_the_weights_that_does_not_load_is_not_compared_and_fails_nothing(tmp_path):
    # Another model's (or another version's) config.yaml beside the weights: no advice, and
    # the export goes on (its error is not the user's config's).
    import argparse

    from conftest import SYNTH_CONFIG, synthetic_cfg
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    tool = load_tool("export_stock_config")
    weights = tmp_path / "model_final.pth"
    weights.write_bytes(b"")  # not read
    (tmp_path / "config.yaml").write_text("MODEL:\n  NO_SUCH_KEY: 1\n")
    args = argparse.Namespace(config_file=SYNTH_CONFIG, opts=[])
    assert tool.run_config_advice(synthetic_cfg("MODEL.WEIGHTS", str(weights)), args) == []
    (tmp_path / "config.yaml").write_text("model:\n  _target_: no.such.Model\n")
    lazy = load_lazy_config(SYNTHETIC_LAZY, [f"train.init_checkpoint={weights}"])
    args = argparse.Namespace(config_file=SYNTHETIC_LAZY, opts=[])
    assert tool.lazy_run_config_advice(lazy, None, args) == []


def test_a_lazy_config_without_an_output_folder_is_exported_without_one(tmp_path):
    # No train.output_dir (null): nothing to write absolute or to place beside the run.
    from detectron2.config import LazyConfig

    load_tool("export_stock_config").main(["--config-file", SYNTHETIC_LAZY, "--output", str(tmp_path / "stock.yaml"),
                                           "model.head.norm=''", "train.output_dir=null"])
    assert LazyConfig.load(str(tmp_path / "stock.yaml")).train.output_dir is None


# --- stop 59: weights loaded by detectron2's name heuristics (mutation 59C's left item) ---
def test_weights_marked_matching_heuristics_are_checked_against_the_stock_model_as_detectron2_loads_them(tmp_path):
    # A .pkl marked "matching_heuristics" (convert-torchvision-to-d2.py's output, a converted
    # Caffe2 model) names its weights otherwise than the model; detectron2's checkpointer
    # matches them by suffix. The export judged the names as written and refused it.
    import pickle

    tool = load_tool("export_stock_config")
    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    converted = tmp_path / "converted.pkl"
    converted.write_bytes(pickle.dumps({"model": {k[len("0."):]: v.numpy() for k, v in model.state_dict().items()},
                                        "__author__": "torchvision", "matching_heuristics": True}))
    assert tool.check_stock_model(None, model, str(converted), "MODEL.WEIGHTS") is True
    other = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 2)))  # a weight of another shape
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS=.*converted\.pkl' does not load strictly into "
                                                      r"the stock model of this config: missing in checkpoint: 0\.0\.weight"):
        tool.check_stock_model(None, other, str(converted), "MODEL.WEIGHTS")
