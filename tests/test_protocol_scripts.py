"""scripts/b2n.sh and scripts/xd.sh end to end on a tiny CLIP and synthetic data (one seed, one epoch)."""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys

import pytest

from dpt.demo.synthetic import make_dataset
from dpt.reporting.base2new import harmonic_mean
from dpt.reporting.logparse import parse_metric
from dpt.tools import results
from helpers import REPO

TINY = ["MODEL.BACKBONE.NAME", "tiny.pt", "INPUT.SIZE", "(32,32)", "TRAINER.COOP.PREC", "fp32",
        "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_clip_path):
    """EuroSAT (5 classes) and DTD (3) under data/, an ImageFolder of 3 classes in photos/, the tiny CLIP."""
    work = tmp_path_factory.mktemp("protocols")
    make_dataset(work / "data", "EuroSAT", n_classes=5, n_train=4, n_val=1, n_test=2, learnable=True, seed=1)
    make_dataset(work / "data", "DescribableTextures", n_classes=3, n_train=2, n_val=1, n_test=2, learnable=True)
    make_dataset(work / "photos", "ImageFolder", n_classes=3, n_train=3, n_val=1, n_test=2, learnable=True,
                 with_split=False)
    shutil.copy(tiny_clip_path, work / "tiny.pt")
    return work


def script(work, name, *args, **env):
    full = {**os.environ, "PYTHON": sys.executable, "DATA": "data", "OUTPUT": "out", "TAG": "tiny", **env}
    return subprocess.run(["bash", str(REPO / "scripts" / name), *args], cwd=work, env=full, capture_output=True,
                          text=True, timeout=600)


def test_b2n_trains_on_base_then_evaluates_new(workspace, capsys):
    done = script(workspace, "b2n.sh", "dpt", "eurosat", "1", "--", *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    group = "eurosat/shots_16/DPT/vit_b32_ep100_tiny/seed1"
    base_dir, new_dir = workspace / "out/base2new/train_base" / group, workspace / "out/base2new/test_new" / group
    base, new = (base_dir / "log.txt").read_text(), (new_dir / "log.txt").read_text()
    assert re.search(r"^# classes +3$", base, re.M) and "Subsample  base classes of 5" in base
    assert re.search(r"^# classes +2$", new, re.M) and "Subsample  new classes of 5" in new
    assert "capped at the number of classes 2" in new  # the selector and CAVPT run on the two new classes
    assert re.search(r'^Loading weights to image_encoder\.transformer\.extractor from ".*/train_base/eurosat/.*/seed1/'
                     r'image_encoder\.transformer\.extractor/model\.pth\.tar-1"', new, re.M)
    config = (base_dir / "config.yaml").read_text()
    assert "SUBSAMPLE_CLASSES: base" in config and "NUM_SHOTS: 16" in config and "MAX_EPOCH: 1" in config

    again = script(workspace, "b2n.sh", "dpt", "eurosat", "1", "--", *TINY)
    assert again.returncode == 0 and again.stdout.count("Skip: the results exist") == 2
    assert not list(new_dir.glob("log.txt-*"))
    assert results.main([str(workspace / "out"), "--seeds", "1", "--table", "b2n", "--format", "csv"]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    b, n = parse_metric(str(base_dir / "log.txt")), parse_metric(str(new_dir / "log.txt"), end_signal="=> result")
    assert (row["dataset"], row["base"], row["new"]) == ("eurosat", f"{b:.2f}", f"{n:.2f}")
    assert row["hm"] == f"{harmonic_mean(b, n):.2f}"


def test_b2n_zero_shot_clip_on_base_and_new(workspace):
    done = script(workspace, "b2n.sh", "zeroshot", "eurosat", "--", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    for phase, classes in (("train_base", 3), ("test_new", 2)):
        log = (workspace / f"out/base2new/{phase}/eurosat/shots_0/ZeroshotCLIP/vit_b32_tiny/log.txt").read_text()
        assert re.search(rf"^# classes +{classes}$", log, re.M) and re.search(r"^\* accuracy: ", log, re.M)


def test_xd_trains_on_own_images_and_evaluates_each_target(workspace):
    """The source is one's own image folder (the method script trains it), the targets are datasets under data/."""
    env = dict(SEEDS="1", DATA="photos", TARGET_DATA="data")
    done = script(workspace, "xd.sh", "coop", "image_folder", "dtd", "eurosat", "--", *TINY, **env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    group = "CoOp/vit_b32_16shots/nctx16_cscFalse_ctpend_tiny"
    source = (workspace / "out/image_folder" / group / "seed1/log.txt").read_text()
    assert re.search(r"^Dataset +ImageFolder$", source, re.M) and re.search(r"^# classes +3$", source, re.M)
    assert (workspace / "photos/split_ImageFolder.json").is_file()
    assert (workspace / "photos/split_fewshot/shot_16-seed_1.json").is_file()
    for target, name, classes in (("dtd", "DescribableTextures", 3), ("eurosat", "EuroSAT", 5)):
        log = (workspace / "out/xd/image_folder" / group / target / "seed1/log.txt").read_text()
        assert re.search(rf"^Dataset +{name}$", log, re.M) and re.search(rf"^# classes +{classes}$", log, re.M)
        assert re.search(r'^Loading weights to prompt_learner from "(.*/)?out/image_folder/CoOp/.*/seed1/'
                         r'prompt_learner/model\.pth\.tar-1"', log, re.M)
        assert re.search(r"^  TEMPLATE: $", log, re.M)  # the target's own template
        assert re.search(r"^\* accuracy: ", log, re.M)
    again = script(workspace, "xd.sh", "coop", "image_folder", "dtd", "--", *TINY, **env)
    assert again.returncode == 0 and again.stdout.count("Skip: the results exist") == 2
    # a second --: overrides of the target evaluations only, naming their folders
    own = script(workspace, "xd.sh", "coop", "image_folder", "dtd", "--", *TINY, "--", "TEST.PER_CLASS_RESULT", "True",
                 **env)
    assert own.returncode == 0, own.stdout[-3000:] + own.stderr[-3000:]
    assert own.stdout.count("Skip: the results exist") == 1  # the source run: trained, not retrained
    log = (workspace / "out/xd/image_folder" / f"{group}_TEST.PER_CLASS_RESULT-True/dtd/seed1/log.txt").read_text()
    assert re.search(r"^  PER_CLASS_RESULT: True$", log, re.M) and re.search(r"^\* accuracy: ", log, re.M)
    assert "PER_CLASS_RESULT: false" in (workspace / "out/image_folder" / group / "seed1/config.yaml").read_text()


def test_b2n_trains_kgcoop_with_its_script_weight(workspace):
    """KgCoOp's row: the official config and epochs, TRAINER.COOP.W 8.0 as its scripts pass (an override wins)."""
    done = script(workspace, "b2n.sh", "kgcoop", "eurosat", "1", "--", *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    group = "eurosat/shots_16/KgCoOp/vit_b16_ep100_ctxv1_tiny/seed1"
    config = (workspace / "out/base2new/train_base" / group / "config.yaml").read_text()
    assert re.search(r"^    W: 8\.0$", config, re.M) and 'CTX_INIT: a photo of a' in config
    new = (workspace / "out/base2new/test_new" / group / "log.txt").read_text()
    assert re.search(r"^# classes +2$", new, re.M) and re.search(r"^\* accuracy: ", new, re.M)


@pytest.mark.parametrize("method, trainer, b2n_config, xd_config", [
    ("ivlp", "IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx"),
    ("maple", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    ("promptsrc", "PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx", "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"),
    ("kgcoop", "KgCoOp", "vit_b16_ep100_ctxv1", "vit_b16_ep100_ctxv1"),
])
def test_new_methods_list_their_runs_under_the_official_configs(tmp_path, method, trainer, b2n_config, xd_config):
    """RUN_STATUS=1 lists the jobs without a trainer: b2n takes the official base-to-novel config with the yaml's
    epochs; xd and eval_dg train / read the source with the official cross-dataset config where there is one."""
    b2n = script(tmp_path, "b2n.sh", method, "eurosat", "1", RUN_STATUS="1", TAG="")
    group = f"eurosat/shots_16/{trainer}/{b2n_config}/seed1"
    assert b2n.returncode == 0 and b2n.stdout.split() == [
        "new", f"out/base2new/train_base/{group}", "new", f"out/base2new/test_new/{group}"], b2n.stderr
    xd = script(tmp_path, "xd.sh", method, "imagenet", "dtd", RUN_STATUS="1", SEEDS="1", TAG="")
    run = f"{trainer}/{xd_config}_16shots/ctxinit"
    assert xd.returncode == 0 and xd.stdout.split() == [
        "new", f"out/imagenet/{run}/seed1", "new", f"out/evaluation/{run}/dtd/seed1"], xd.stderr
    dg = script(tmp_path, "eval_dg.sh", trainer, "imagenet_a", "1", TAG="")
    assert dg.returncode == 2 and f"no trained run at out/imagenet/{run}/seed1" in dg.stderr
    own = script(tmp_path, f"{method}.sh", "eurosat", "4", "--", "OPTIM.LR", "0.1", PRINT_RUN_ROOT="1", TAG="")
    assert own.stdout.strip() == f"out/eurosat/{trainer}/{b2n_config}_4shots/ctxinit_OPTIM.LR-0.1"
    bad = script(tmp_path, f"{method}.sh", "eurosat", "16", CFG="vit_b32")
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: no {trainer} config ") and b2n_config in bad.stderr


@pytest.mark.parametrize("args, message", [
    (("b2n.sh", "linear_probe", "eurosat"), "error: linear_probe has no classifier for classes it was not trained on"),
    (("b2n.sh", "cocop", "eurosat"), "error: unknown method 'cocop'; valid: coop vpt vlp dpt"),
    (("b2n.sh", "dpt", "eurosat1"), "error: unknown dataset 'eurosat1'"),
    (("xd.sh", "dpt", "eurosat"), "usage: bash"),
    (("xd.sh", "dpt", "eurosat", "--", "OPTIM.LR", "0.1"), "error: give at least one TARGET dataset"),
    (("xd.sh", "vpt", "eurosat", "dtd", "caltech"), "error: unknown dataset 'caltech'"),
    (("xd.sh", "coop", "eurosat", "dtd", "--", "--", "TEST.PER_CLASS_RESULT"),
     "error: overrides after the second -- must be KEY VALUE pairs: TEST.PER_CLASS_RESULT"),
    (("eval_dg.sh", "MyCoOp", "imagenet_a"), "error: unknown trainer 'MyCoOp'; valid: CoOp VPT VLP DPT"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    done = script(tmp_path, *args)
    assert done.returncode == 2 and done.stderr.strip().startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
