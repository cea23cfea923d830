"""dpt-attention on tiny trained runs: grid size, content, per-model differences and one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpt.demo.synthetic import make_dataset
from dpt.tools import attention
from dpt.train import main as train_main
from helpers import argv

TRAINERS = ("CoOp", "VPT", "DPT")


def one_epoch(trainer, root, out, clip_path):
    """train.py arguments for one epoch on 2 shots at a high lr, without warm-up, so the prompts move."""
    return argv(trainer, root, out, clip_path, "DATASET.NUM_SHOTS", "2", "OPTIM.WARMUP_EPOCH", "-1",
                "OPTIM.LR", "0.5", epochs=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip_path):
    """Data root, two test images and CoOp / VPT / DPT runs trained for one epoch."""
    base = tmp_path_factory.mktemp("attention")
    root = base / "data"
    written = make_dataset(root, "EuroSAT", n_classes=3, n_train=2, n_val=2, n_test=1, learnable=True, seed=5)
    image_dir = Path(written["image_dir"])
    images = [str(image_dir / rel) for rel, _, _ in written["test"][:2]]
    dirs = {}
    for trainer in TRAINERS:
        dirs[trainer] = base / trainer
        assert train_main(one_epoch(trainer, root, dirs[trainer], tiny_clip_path)) == 0
    return root, images, dirs


def panel(pixels: np.ndarray, row: int, col: int) -> np.ndarray:
    top = attention.TITLE_PX + row * attention.PANEL_PX
    left = col * attention.PANEL_PX
    return pixels[top: top + attention.PANEL_PX, left: left + attention.PANEL_PX].astype(np.float64)


def test_grid_has_one_panel_per_image_and_model(runs, tmp_path, capsys):
    _, images, dirs = runs
    out = tmp_path / "grid.png"
    assert attention.main(["--images", *images, "--runs", str(dirs["VPT"]), str(dirs["DPT"]),
                           "--zero-shot", "--out", str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.size == (4 * attention.PANEL_PX, attention.TITLE_PX + 2 * attention.PANEL_PX)
        pixels = np.asarray(img.convert("RGB"))
    for row in range(2):
        for col in range(4):
            assert panel(pixels, row, col).std() > 5.0, (row, col)  # an image, not a blank panel
        originals = panel(pixels, row, 0)
        zero_shot, vpt, dpt = (panel(pixels, row, c) for c in (1, 2, 3))
        assert np.abs(zero_shot - originals).mean() > 5.0  # the overlay changes the picture
        assert np.abs(vpt - zero_shot).mean() > 1.0  # visual prompts move the attention
        assert np.abs(dpt - zero_shot).mean() > 1.0
    assert not list(tmp_path.glob(".grid.png.tmp*"))


def test_coop_keeps_clip_attention_and_vpt_changes_it(runs):
    """CoOp learns only text, so its image-side attention equals zero-shot CLIP's; VPT's does not."""
    root, images, dirs = runs
    pictures = [Image.open(p).convert("RGB") for p in images]
    columns = {}
    for name, trainer_name in (("zs", "ZeroshotCLIP"), ("CoOp", ""), ("VPT", "")):
        run = dirs["CoOp" if name == "zs" else name]
        cfg = attention.load_run_cfg(str(run), trainer=trainer_name)
        trainer = attention.build_eval_trainer(cfg, None if name == "zs" else str(run), None)
        columns[name] = attention.attention_column(trainer, pictures, cfg.TRAINER.NAME)
    assert columns["zs"].title == "ZeroshotCLIP" and columns["VPT"].title == "VPT"
    for zs, coop, vpt in zip(columns["zs"].maps, columns["CoOp"].maps, columns["VPT"].maps):
        assert zs.shape == (32, 32) and zs.min() == pytest.approx(0.0) and zs.max() == pytest.approx(1.0)
        np.testing.assert_allclose(coop, zs, atol=1e-6)
        assert np.abs(vpt - zs).max() > 0.05


def test_default_epoch_is_the_latest_checkpoint(runs):
    _, _, dirs = runs
    cfg = attention.load_run_cfg(str(dirs["DPT"]))
    trainer = attention.build_eval_trainer(cfg, None, None)
    assert attention.default_epoch(trainer, str(dirs["DPT"])) == 1


@pytest.mark.parametrize("case", ["image", "config", "dataset", "epoch"])
def test_bad_input_gives_one_line_error(case, runs, tmp_path, capsys):
    root, images, dirs = runs
    args = ["--images", images[0], "--runs", str(dirs["VPT"]), "--out", str(tmp_path / "g.png")]
    expected = {
        "image": str(tmp_path / "missing.jpg"),
        "config": "has no config.yaml",
        "dataset": "cannot build VPT for dataset EuroSAT",
        "epoch": "model.pth.tar-7",
    }[case]
    if case == "image":
        args[1] = str(tmp_path / "missing.jpg")
    elif case == "config":
        args[3] = str(tmp_path)
    elif case == "dataset":
        args += ["--root", str(tmp_path / "nowhere")]
    else:
        args += ["--epoch", "7"]
    assert attention.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert not (tmp_path / "g.png").exists()


def test_a_trainer_without_a_prompted_clip_is_one_line_error(runs):
    """The linear probe fits a classifier on CLIP's own features: nothing of its own to draw."""
    _, _, dirs = runs
    cfg = attention.load_run_cfg(str(dirs["VPT"]), trainer="LinearProbeCLIP")
    cfg.defrost()
    cfg.OPTIM.MAX_EPOCH = 1
    cfg.freeze()
    with pytest.raises(ValueError, match="trainer LinearProbeCLIP has no prompted CLIP to draw attention from"):
        attention.build_eval_trainer(cfg, None, None)

