"""scripts/reproduce.sh: the job list of the paper's matrix (DRY_RUN) and a tiny real run up to report.md."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from dpt.demo.synthetic import make_dataset
from dpt.tools import results
from helpers import REPO, reproduce


def test_dry_run_lists_the_matrix_and_dg_protocol(tmp_path):
    done = reproduce(tmp_path, DRY_RUN="1", DATASETS="eurosat imagenet", SHOTS="1 16", SEEDS="1 2",
                     METHODS="zeroshot coop dpt", EXTRA_OPTS="INPUT.SIZE (32,32) OPTIM.LR 0.1")
    assert done.returncode == 0, done.stderr
    jobs = [shlex.split(line) for line in done.stdout.splitlines()]
    assert all(j[0] == "bash" and j[-5:] == ["--", "INPUT.SIZE", "(32,32)", "OPTIM.LR", "0.1"] for j in jobs)
    calls = [(Path(j[1]).name, *j[2:-5]) for j in jobs]
    expected = [("zeroshot.sh", d) for d in ("eurosat", "imagenet")]
    expected += [(f"{m}.sh", d, s, seed) for m in ("coop", "dpt") for d in ("eurosat", "imagenet")
                 for s in ("1", "16") for seed in ("1", "2")]
    targets = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
    expected += [("zeroshot.sh", t) for t in targets]
    expected += [("eval_dg.sh", trainer, t, seed) for trainer in ("CoOp", "DPT") for t in targets for seed in ("1", "2")]
    assert calls == expected
    assert not (tmp_path / "output").exists()  # a dry run writes nothing


def test_dry_run_skips_dg_without_imagenet_16_shots_and_rejects_bad_names(tmp_path):
    done = reproduce(tmp_path, DRY_RUN="1", DATASETS="imagenet", SHOTS="8", SEEDS="3", METHODS="vpt")
    assert done.returncode == 0, done.stderr
    assert [Path(shlex.split(line)[1]).name for line in done.stdout.splitlines()] == ["vpt.sh"]
    bad = reproduce(tmp_path, DRY_RUN="1", METHODS="coop kgcop")
    assert bad.returncode == 2 and "unknown method 'kgcop'" in bad.stderr
    bad = reproduce(tmp_path, DRY_RUN="1", DATASETS="imagenet1k")
    assert bad.returncode == 2 and "unknown dataset 'imagenet1k'" in bad.stderr


def test_dry_run_runs_cocoop_and_linear_probe_through_their_scripts_and_dg(tmp_path):
    done = reproduce(tmp_path, DRY_RUN="1", DATASETS="imagenet", SHOTS="16", SEEDS="1", METHODS="cocoop linear_probe",
                     DG_TARGETS="imagenet_r")
    assert done.returncode == 0, done.stderr
    calls = [(Path(j[1]).name, *j[2:]) for j in map(shlex.split, done.stdout.splitlines())]
    assert calls == [("cocoop.sh", "imagenet", "16", "1"), ("linear_probe.sh", "imagenet", "16", "1"),
                     ("eval_dg.sh", "CoCoOp", "imagenet_r", "1"), ("eval_dg.sh", "LinearProbeCLIP", "imagenet_r", "1")]


def test_dry_run_runs_the_four_new_methods_through_their_scripts_and_protocols(tmp_path):
    methods = {"ivlp": "IVLP", "maple": "MaPLe", "promptsrc": "PromptSRC", "kgcoop": "KgCoOp"}
    done = reproduce(tmp_path, DRY_RUN="1", DATASETS="imagenet eurosat", SHOTS="16", SEEDS="1",
                     METHODS=" ".join(methods), DG_TARGETS="imagenet_r", PROTOCOLS="fewshot dg b2n xd")
    assert done.returncode == 0, done.stderr
    jobs = [j[j.index("bash"):] for j in map(shlex.split, done.stdout.splitlines())]  # xd: SEEDS=1 bash ...
    calls = [(Path(j[1]).name, *j[2:]) for j in jobs]
    assert all(j[:1] == ["SEEDS=1"] for j in map(shlex.split, done.stdout.splitlines()) if "xd.sh" in j[2])
    fewshot = [(f"{m}.sh", d, "16", "1") for m in methods for d in ("imagenet", "eurosat")]
    assert calls == fewshot + [("eval_dg.sh", t, "imagenet_r", "1") for t in methods.values()] + [
        ("b2n.sh", m, d, "1") for m in methods for d in ("imagenet", "eurosat")] + [
        ("xd.sh", m, "imagenet", "eurosat") for m in methods]


def test_tiny_reproduction_renders_report(tmp_path, tiny_clip_path):
    """EuroSAT + ImageNet, 16 shots, seed 1, zero-shot and CoOp, DG on ImageNet-A, two job slots."""
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=3, n_train=2, n_val=1, n_test=2, learnable=True)
    make_dataset(tmp_path / "data", "ImageNet", n_classes=4, n_train=2, n_test=2, learnable=True)
    make_dataset(tmp_path / "data", "ImageNetA", n_classes=2, n_test=2, learnable=True)
    shutil.copy(tiny_clip_path, tmp_path / "tiny.pt")
    extra = ("MODEL.BACKBONE.NAME tiny.pt INPUT.SIZE (32,32) TRAINER.COOP.PREC fp32 "
             "DATALOADER.NUM_WORKERS 0 OPTIM.MAX_EPOCH 1")
    env = dict(DATASETS="eurosat imagenet", SHOTS="16", SEEDS="1", METHODS="zeroshot coop", DG_TARGETS="imagenet_a",
               GPUS="0 1", DATA="data", OUTPUT="out", EXTRA_OPTS=extra)
    done = reproduce(tmp_path, **env)
    logs = "".join(p.read_text()[-1500:] for p in sorted((tmp_path / "out/reproduce_logs").glob("job*.log")))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert "reproduce: 6 jobs" in done.stdout
    assert {"(GPU 0)", "(GPU 1)"} <= set(re.findall(r"\(GPU \d\)", done.stdout))

    suffix = "_MODEL.BACKBONE.NAME-tiny.pt_INPUT.SIZE-_32_32__TRAINER.COOP.PREC-fp32_DATALOADER.NUM_WORKERS-0_OPTIM.MAX_EPOCH-1"
    group = f"CoOp/vit_b32_16shots/nctx16_cscFalse_ctpend{suffix}"
    assert (tmp_path / "out/eurosat" / group / "seed1/log.txt").is_file()
    dg_log = (tmp_path / "out/evaluation" / group.replace("vit_b32_16", "vit_b32_ep50_16") / "imagenet_a/seed1/log.txt")
    text = dg_log.read_text()  # the ImageNet model's last checkpoint, evaluated on the target's classes
    assert re.search(r"^Dataset +ImageNetA$", text, re.M)
    assert re.search(r'^Loading weights to prompt_learner from ".*/imagenet/CoOp/.*/seed1/prompt_learner/'
                     r'model\.pth\.tar-1"', text, re.M)
    assert re.search(r"^\* accuracy: [\d.]+%$", text, re.M)

    report = (tmp_path / "out/report/report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| CoOp")]
    assert len(rows) == 2  # the few-shot row and the DG row
    assert any(re.search(r"\| ZeroshotCLIP .*\| [\d.]+ ", line) for line in report.splitlines())
    assert "![accuracy vs shots](accuracy_vs_shots.png)" in report and "failed: 0" in report
    with Image.open(tmp_path / "out/report/accuracy_vs_shots.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100
    assert (tmp_path / "out/report/results.csv").read_text().count("CoOp") >= 2

    again = reproduce(tmp_path, **env)  # everything finished: every job is skipped
    assert again.returncode == 0
    skipped = [p.read_text() for p in (tmp_path / "out/reproduce_logs").glob("job*.log")]
    assert len(skipped) == 6 and all(t.startswith("Skip: the results exist") for t in skipped)


def test_cocoop_and_linear_probe_scripts_then_dg_and_tables(tmp_path, tiny_clip_path, capsys):
    """The jobs reproduce.sh runs for METHODS="cocoop linear_probe": ImageNet 16 shots through scripts/cocoop.sh and
    scripts/linear_probe.sh, then ImageNet-A (a class subset) through eval_dg.sh; dpt-results lists both."""
    make_dataset(tmp_path / "data", "ImageNet", n_classes=4, n_train=2, n_test=2, learnable=True)
    make_dataset(tmp_path / "data", "ImageNetA", n_classes=2, n_test=2, learnable=True)
    shutil.copy(tiny_clip_path, tmp_path / "tiny.pt")
    opts = ["--", "MODEL.BACKBONE.NAME", "tiny.pt", "INPUT.SIZE", "(32,32)", "TRAINER.COOP.PREC", "fp32",
            "TRAINER.COCOOP.PREC", "fp32", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]
    env = {**os.environ, "PYTHON": sys.executable, "DATA": "data", "OUTPUT": "out", "TAG": "tiny"}
    jobs = [["cocoop.sh", "imagenet", "16", "1"], ["linear_probe.sh", "imagenet", "16", "1"],
            ["eval_dg.sh", "CoCoOp", "imagenet_a", "1"], ["eval_dg.sh", "LinearProbeCLIP", "imagenet_a", "1"]]
    for job in jobs:
        done = subprocess.run(["bash", str(REPO / "scripts" / job[0]), *job[1:], *opts], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{job}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    for group, part in (("CoCoOp/vit_b32_c4_ep10_batch1_16shots/nctx4_tiny", "prompt_learner"),
                        ("LinearProbeCLIP/vit_b32_16shots/lbfgs_l2_tiny", "classifier")):
        assert (tmp_path / "out/imagenet" / group / "seed1" / part / "model.pth.tar-1").is_file()
        text = (tmp_path / "out/evaluation" / group / "imagenet_a/seed1/log.txt").read_text()
        assert re.search(r"^Dataset +ImageNetA$", text, re.M) and re.search(r"^\* total: 4$", text, re.M)
        assert f"Loading weights to {part} from" in text
    assert results.main([str(tmp_path / "out"), "--seeds", "1", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    for method in ("CoCoOp", "LinearProbeCLIP"):
        assert len([line for line in table if line.startswith(f"| {method} ")]) == 2  # few-shot and DG rows


def test_eval_dg_needs_the_finished_imagenet_run(tmp_path):
    """The run is the folder scripts/dpt.sh imagenet 16 writes for the same overrides (not a look-alike)."""
    env = {**os.environ, "OUTPUT": str(tmp_path / "out")}
    cmd = ["bash", str(REPO / "scripts/eval_dg.sh"), "DPT", "imagenet_r", "1"]
    seed = tmp_path / "out/imagenet/DPT/vit_b32_16shots/nctx16_vctx10_cpn10/seed1"
    (tmp_path / "out/imagenet/DPT/vit_b32_16shots/nctx16_vctx10_cpn10_OPTIM.LR-0.1/seed1").mkdir(parents=True)
    none = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and none.stderr.strip().startswith(f"error: no trained run at {seed}; train it first")
    seed.mkdir(parents=True)
    (seed / "log.txt").write_text("epoch [1/20] batch [1/1]\n")  # interrupted: no "Finish training"
    unfinished = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert unfinished.returncode == 2 and f"{seed} has not finished training" in unfinished.stderr
    assert not (tmp_path / "out/evaluation").exists()


def test_dry_run_lists_base_to_novel_and_cross_dataset_jobs(tmp_path):
    done = reproduce(tmp_path, DRY_RUN="1", PROTOCOLS="b2n xd", DATASETS="imagenet eurosat dtd", SEEDS="1 2",
                     METHODS="zeroshot dpt", EXTRA_OPTS="OPTIM.LR 0.1")
    assert done.returncode == 0, done.stderr
    jobs = [shlex.split(line) for line in done.stdout.splitlines()]
    assert all(j[-3:] == ["--", "OPTIM.LR", "0.1"] for j in jobs)
    calls = [tuple(Path(w).name if w.endswith(".sh") else w for w in j[:-3]) for j in jobs]
    datasets = ("imagenet", "eurosat", "dtd")
    expected = [("bash", "b2n.sh", "zeroshot", d) for d in datasets]
    expected += [("bash", "b2n.sh", "dpt", d, seed) for d in datasets for seed in ("1", "2")]
    expected += [("bash", "zeroshot.sh", d) for d in datasets]  # XD_SOURCE imagenet, then the other datasets
    expected += [("env", f"SEEDS={seed}", "bash", "xd.sh", "dpt", "imagenet", "eurosat", "dtd") for seed in ("1", "2")]
    assert calls == expected
    custom = reproduce(tmp_path, DRY_RUN="1", PROTOCOLS="xd", METHODS="coop", SEEDS="3", XD_SOURCE="eurosat",
                       XD_TARGETS="dtd image_folder")
    assert [shlex.split(line)[3:] for line in custom.stdout.splitlines()] == [
        [str(REPO / "scripts/xd.sh"), "coop", "eurosat", "dtd", "image_folder"]]
    bad = reproduce(tmp_path, DRY_RUN="1", PROTOCOLS="fewshot b2m")
    assert bad.returncode == 2 and "unknown protocol 'b2m'; valid: fewshot dg b2n xd" in bad.stderr
