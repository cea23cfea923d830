"""The public Python API (dpt.build_config, dpt.build_trainer): a run built in code equals train.py's run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dpt
from dpt.engine.checkpoint import load_checkpoint
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from helpers import argv

REPO = Path(__file__).resolve().parents[1]
TINY_OPTS = ["INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32", "DATASET.NUM_SHOTS", "4",
             "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.MAX_EPOCH", "2",
             "OPTIM.WARMUP_EPOCH", "1"]


def test_public_names_are_listed():
    assert {"build_config", "build_trainer"} <= set(dpt.__all__)
    assert all(hasattr(dpt, name) for name in dpt.__all__)


def test_build_config_merges_files_flags_then_opts_and_freezes(tmp_path):
    cfg = dpt.build_config([REPO / "configs/datasets/eurosat.yaml", REPO / "configs/trainers/DPT/vit_b32.yaml"],
                           ["OPTIM.LR", "0.01", "TRAINER.NAME", "VPT"], root=str(tmp_path), seed=3, trainer="DPT",
                           output_dir=str(tmp_path / "out"))
    assert cfg.is_frozen() and cfg.DATASET.NAME == "EuroSAT" and cfg.SEED == 3
    assert cfg.TRAINER.NAME == "VPT"  # opts come last, as on train.py's command line
    assert cfg.OPTIM.LR == 0.01 and cfg.DATASET.ROOT == str(tmp_path) and cfg.OUTPUT_DIR == str(tmp_path / "out")
    assert dpt.build_config(seed=0).SEED == dpt.build_config().SEED  # falsy flags are not given, as in CoOp
    with pytest.raises(TypeError, match="unknown flag 'epochs'"):
        dpt.build_config(epochs=3)


def test_a_run_built_in_python_equals_the_train_py_run(eurosat_root, tiny_clip_path, tmp_path):
    cli_out = tmp_path / "cli"
    assert main(argv("CoOp", eurosat_root, cli_out, tiny_clip_path, epochs=2)) == 0
    cfg = dpt.build_config(
        [REPO / "configs/datasets/eurosat.yaml", REPO / "configs/trainers/CoOp/vit_b32.yaml"],
        ["MODEL.BACKBONE.NAME", str(tiny_clip_path), "TRAINER.COCOOP.PREC", "fp32", "TRAIN.PRINT_FREQ", "1",
         "PRETRAIN.C", "1", *TINY_OPTS],
        root=str(eurosat_root), output_dir=str(tmp_path / "api"), seed=1, trainer="CoOp",
    )
    trainer = dpt.build_trainer(cfg)
    trainer.train()
    assert trainer.epoch + 1 == 2 and (tmp_path / "api" / "prompt_learner" / "model.pth.tar-2").is_file()
    assert trainer.test() == pytest.approx(parse_metric(str(cli_out / "log.txt")), abs=1e-6)
    cli, api = (load_checkpoint(str(out / "prompt_learner" / "model.pth.tar-2"))["state_dict"]
                for out in (cli_out, tmp_path / "api"))
    assert cli.keys() == api.keys() and all(torch.equal(cli[k], api[k]) for k in cli)  # the same training
