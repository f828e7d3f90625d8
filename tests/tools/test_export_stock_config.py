"""tools/export_stock_config.py: the stock detectron2 config of a trained model, checked."""
import subprocess
import sys
import textwrap

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from conftest import dropblock_everywhere_cfg, load_tool
from dropblock_det.engine.trainer import CheckpointMismatchError


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
    script = textwrap.dedent(f"""
        import sys, torch
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        cfg = get_cfg()
        cfg.merge_from_file({str(output)!r})
        model = build_model(cfg).eval()
        model.load_state_dict(torch.load(cfg.MODEL.WEIGHTS)["model"], strict=True)
        image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8)
        with torch.no_grad():
            instances = model([{{"image": image}}])[0]["instances"]
        torch.save(instances.scores, {str(run / "stock_scores.pt")!r})
        assert not [m for m in sys.modules if m.startswith("dropblock_det")]
        print(type(model).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=str(run), capture_output=True, text=True,
                            env={"PATH": "", "PYTHONPATH": ""}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "RetinaNet"
    image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8)
    with torch.no_grad():
        scores = ours([{"image": image}])[0]["instances"].scores
    assert len(scores) > 0
    assert torch.equal(torch.load(run / "stock_scores.pt"), scores)


def test_an_existing_output_is_not_overwritten(trained_run):
    run, _ = trained_run
    output = run / "stock_config.yaml"
    output.write_text("the user's own file")
    with pytest.raises(FileExistsError, match="--output .*stock_config.yaml.* exists"):
        load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output", str(output)])
    assert output.read_text() == "the user's own file"


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


def test_relative_weights_are_written_absolute_and_load_from_another_folder(trained_run, tmp_path, monkeypatch):
    # detectron2 reads MODEL.WEIGHTS relative to the working directory, not to the file:
    # the README runs export_model.py from a detectron2 checkout.
    run, _ = trained_run
    monkeypatch.chdir(run.parent)
    load_tool("export_stock_config").main(["--config-file", "run/config.yaml", "--output", "run/stock.yaml",
                                           "MODEL.WEIGHTS", "run/model_final.pth"])
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(run / "stock.yaml"))
    assert cfg.MODEL.WEIGHTS == str(run / "model_final.pth")


@pytest.mark.parametrize("weights", ["", "detectron2://DeepLab/R-52.pkl"])
def test_weights_that_are_not_checked_are_not_said_to_be(trained_run, capsys, weights):
    # A run's config.yaml names the weights it started from (none, or an ImageNet URL).
    run, _ = trained_run
    load_tool("export_stock_config").main(["--config-file", str(run / "config.yaml"), "--output",
                                           str(run / "stock.yaml"), "MODEL.WEIGHTS", weights])
    out = capsys.readouterr().out
    assert "(checked)" not in out and "MODEL.WEIGHTS" in out


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


def test_a_deeplab_model_is_written_with_the_deeplab_projects_keys(tmp_path, capsys):
    from conftest import small_voc_sem_seg_cfg

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_50_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path)
    (tmp_path / "config.yaml").write_text(cfg.dump())
    output = tmp_path / "stock.yaml"
    load_tool("export_stock_config").main(["--config-file", str(tmp_path / "config.yaml"), "--output", str(output)])
    out = capsys.readouterr().out
    assert "export_model.py" in out and "INPUT.CROP.ENABLED False" in out
    stock = load_tool("export_stock_config").read_stock_config(str(output), deeplab=True)
    assert stock.MODEL.SEM_SEG_HEAD.NAME == "DeepLabV3PlusHead"
