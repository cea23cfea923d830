"""Precision modes: fp16 runs as fp32 without a GPU, amp and bf16 train on CPU, a fp16 CLIP keeps fp32 master
weights for the prompts."""
import argparse
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from dpt.config.merge import setup_cfg
from dpt.demo.synthetic import make_dataset
from dpt.engine.precision import check_precision
from dpt.modeling.backbones.loader import load_clip
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from dpt.demo.synthetic import make_dataset
from helpers import REPO, argv, compose_clip

NOTE = "Note: TRAINER.COOP.PREC fp16 needs a CUDA GPU; none found, running in fp32"


def _cfg(*opts, notes=None):
    return setup_cfg(argparse.Namespace(config_file="", dataset_config_file="", opts=list(opts)), notes)


def test_fp16_without_gpu_resolves_the_trainers_precision_key_to_fp32_before_freezing(monkeypatch, capsys):
    """Only the key the trainer class declares (CoCoOp: TRAINER.COCOOP.PREC) is resolved; no trainer: none."""
    notes = []
    cfg = _cfg("TRAINER.NAME", "CoOp", notes=notes)
    assert (cfg.TRAINER.COOP.PREC, cfg.TRAINER.COCOOP.PREC) == ("fp32", "fp16") and cfg.is_frozen()
    assert notes == [NOTE]
    cfg = _cfg("TRAINER.NAME", "CoCoOp", "TRAINER.COOP.PREC", "bf16")  # without a notes list the note is printed
    assert (cfg.TRAINER.COOP.PREC, cfg.TRAINER.COCOOP.PREC) == ("bf16", "fp32")
    assert capsys.readouterr().out == NOTE.replace("COOP", "COCOOP") + "\n"
    assert _cfg(notes=notes).TRAINER.COOP.PREC == "fp16" and len(notes) == 1  # no TRAINER.NAME: nothing to resolve
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _cfg("TRAINER.NAME", "DPT", notes=notes).TRAINER.COOP.PREC == "fp16" and len(notes) == 1
    notes.clear()
    assert _cfg("TRAINER.NAME", "DPT", "USE_CUDA", "False", notes=notes).TRAINER.COOP.PREC == "fp32"
    assert notes == [NOTE.replace("none found", "USE_CUDA is False")]


def test_fp16_on_cpu_trains_in_fp32_and_says_so(eurosat_root, tiny_clip_path, tmp_path):
    args = argv("CoOp", eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COOP.PREC", "fp16", epochs=1)
    assert main(args) == 0
    log = (tmp_path / "log.txt").read_text()
    assert NOTE in log and "PREC: fp32" in log and parse_metric(str(tmp_path / "log.txt")) is not None
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["TRAINER"]["COOP"]["PREC"] == "fp32" and saved["TRAINER"]["COCOOP"]["PREC"] == "fp32"


def test_fp16_on_cpu_through_the_api_is_still_an_error():
    """Building a trainer from a hand-made config skips setup_cfg, so the engine still refuses fp16 on CPU."""
    with pytest.raises(ValueError, match="'TRAINER.COOP.PREC' is fp16, which needs a CUDA GPU"):
        check_precision("fp16", torch.device("cpu"), "TRAINER.COOP.PREC")
    check_precision("fp32", torch.device("cpu"), "TRAINER.COOP.PREC")


def test_headline_script_runs_on_cpu_unchanged(tmp_path, tiny_clip_path):
    """`bash scripts/dpt.sh DATASET SHOTS` with the configs' fp16 on a machine without CUDA."""
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=2, n_train=2, n_val=1, n_test=2, learnable=True)
    env = {**os.environ, "DATA": str(tmp_path / "data"), "OUTPUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "CUDA_VISIBLE_DEVICES": "", "TAG": "cpu"}
    tiny = ["MODEL.BACKBONE.NAME", str(tiny_clip_path), "INPUT.SIZE", "(32,32)", "DATALOADER.NUM_WORKERS", "0",
            "OPTIM.MAX_EPOCH", "1"]
    done = subprocess.run(["bash", str(REPO / "scripts/dpt.sh"), "eurosat", "1", "1", "--", *tiny], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "out" / "eurosat" / "DPT" / "vit_b32_1shots" / "nctx16_vctx10_cpn10_cpu" / "seed1"
    assert NOTE in (run / "log.txt").read_text() and "* accuracy:" in (run / "log.txt").read_text()
    assert yaml.safe_load((run / "config.yaml").read_text())["TRAINER"]["COOP"]["PREC"] == "fp32"


@pytest.mark.parametrize("prec", ["amp", "bf16"])
@pytest.mark.parametrize("trainer", ["CoOp", "DPT"])
def test_autocast_precisions_train_on_cpu(prec, trainer, eurosat_root, tiny_clip_path, tmp_path):
    args = argv(trainer, eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COOP.PREC", prec, epochs=2)
    assert main(args) == 0
    assert parse_metric(str(tmp_path / "log.txt")) is not None


def test_fp16_clip_keeps_fp32_master_prompts(tiny_clip_path):
    """Gradients reach fp32 prompt parameters through a fp16 CLIP, so one GradScaler can unscale them all."""
    clip_model = load_clip(str(tiny_clip_path), precision="fp16")
    model = compose_clip(clip_model, ["cat", "dog", "car"], "a photo of a {}.", learn_text=True,
                         vpt_layers=range(11), n_vpt_ctx=4, cavpt_layers=[11], n_cavpt=2)
    model.freeze_clip()
    out = model(torch.randn(2, 3, 32, 32), need_guidance=True)
    assert out.logits.dtype == torch.float16
    loss = F.cross_entropy(out.logits.float(), torch.tensor([0, 1])) + out.layer_logits[0].float().mean()
    loss.backward()
    learnable = [model.prompt_learner.ctx, model.visual_prompts.ctx, *model.cavpt.parameters()]
    assert all(p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all() for p in learnable)
    assert all(p.grad is None for p in clip_model.parameters())
