"""reproduce.sh's submitit launchers: SLURM (a fake sbatch/squeue records what would be submitted), submitit's local
executor end to end, a preempted job requeued to the same result, and DDP through submitit's task environment."""
from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dpt.demo.synthetic import make_dataset
from dpt.engine.checkpoint import load_checkpoint
from dpt.launch import jobs
from dpt.tools import jobs as jobs_cli
from dpt.reporting.logparse import parse_metric
from dpt.tools import launch
from helpers import REPO, reproduce

pytest.importorskip("submitit")

TINY = ("MODEL.BACKBONE.NAME tiny.pt INPUT.SIZE (32,32) TRAINER.COOP.PREC fp32 DATALOADER.NUM_WORKERS 0 "
        "DATALOADER.TRAIN_X.BATCH_SIZE 8 TRAIN.PRINT_FREQ 1")


@pytest.fixture
def workdir(tmp_path, tiny_clip_path) -> Path:
    """A folder with data/ (a small learnable EuroSAT) and tiny.pt, as reproduce.sh's working directory."""
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=4, n_train=8, n_val=2, n_test=4, learnable=True, seed=3)
    (tmp_path / "tiny.pt").write_bytes(Path(tiny_clip_path).read_bytes())
    return tmp_path


# ----------------------------------------------------------------------------- SLURM, faked
FAKE_SLURM = """#!/usr/bin/env bash
# sbatch SCRIPT: keep the script, answer like SLURM; squeue: print squeue.once (then forget it) or squeue.always
case $(basename "$0") in
  sbatch) if [ -n "${FAKE_SBATCH_ERROR:-}" ]; then echo "$FAKE_SBATCH_ERROR" >&2; exit 1; fi
          n=$(ls "$FAKE_SLURM"/sbatch_*.sh 2>/dev/null | wc -l); cp "$1" "$FAKE_SLURM/sbatch_$n.sh"
          echo "Submitted batch job $((4242 + n))" ;;
  squeue) echo "$*" >> "$FAKE_SLURM/squeue_args"
          if [ -f "$FAKE_SLURM/squeue.once" ]; then cat "$FAKE_SLURM/squeue.once"; rm "$FAKE_SLURM/squeue.once"
          elif [ -f "$FAKE_SLURM/squeue.always" ]; then cat "$FAKE_SLURM/squeue.always"; fi ;;
esac
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch, squeue and srun on PATH that record instead of scheduling (submitit needs srun to exist)."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name in ("sbatch", "squeue", "srun"):
        (bin_dir / name).write_text(FAKE_SLURM)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return state


def test_slurm_one_array_job_with_the_resources_report_only_and_no_resubmission_in_flight(tmp_path, fake_slurm,
                                                                                           monkeypatch, capsys):
    env = dict(DATASETS="eurosat", SHOTS="1", SEEDS="1 2", METHODS="coop vpt", DATA="data", OUTPUT="out",
               LAUNCHER="slurm", SLURM_PARTITION="gpu", SLURM_TIMEOUT_MIN="600", SLURM_ARRAY_PARALLELISM="2",
               NODES="2", GPUS_PER_NODE="4", CPUS_PER_TASK="6", MEM_GB="64", SLURM_EXTRA="--account=lab --exclusive")
    early = reproduce(tmp_path, REPORT_ONLY="1", **env)  # at any time: nothing runs, the report says what is missing
    assert early.returncode == 0, early.stderr
    assert "4 of 4 jobs not finished" in early.stdout and not list(fake_slurm.glob("sbatch_*"))
    assert "4 of 4 jobs not finished" in (tmp_path / "out/report/report.md").read_text()

    done = reproduce(tmp_path, **env)
    assert done.returncode == 1, done.stderr  # the fake SLURM ran nothing: the jobs are listed as not finished
    sbatch = (fake_slurm / "sbatch_0.sh").read_text()
    for line in ("--array=0-3%2", "--partition=gpu", "--time=600", "--nodes=2", "--ntasks-per-node=4",
                 "--gpus-per-node=4", "--cpus-per-task=6", "--mem=64GB", "--signal=USR2@90", "--requeue",
                 "--account=lab", "--exclusive", "--job-name=dpt_jobs_fewshot"):
        assert f"#SBATCH {line}\n" in sbatch, line
    assert "srun --unbuffered --output" in sbatch and "submitit.core._submit" in sbatch
    assert "submitted SLURM array job 4242 (4 jobs, at most 2 at a time)" in done.stdout
    assert "squeue -j 4242" in done.stdout and "sacct -j 4242" in done.stdout
    failed = re.findall(r"^\[FAILED\] job (\d): new (\S+)", done.stdout, re.M)
    assert [n for n, _ in failed] == ["1", "2", "3", "4"]
    assert failed[0][1] == "out/eurosat/CoOp/vit_b32_ep50_1shots/nctx16_cscFalse_ctpend/seed1"
    ledger = json.loads((tmp_path / "out/submitit/submitted.json").read_text())
    assert sorted(entry["job_id"] for entry in ledger.values()) == ["4242_0", "4242_1", "4242_2", "4242_3"]
    assert (tmp_path / "out/reproduce_logs/failed").read_text().split() == ["1", "2", "3", "4"]

    # A second call while jobs 1 and 3 are still queued or running submits only jobs 2 and 4.
    (fake_slurm / "squeue.once").write_text("4242_0\n4242_2\n77_1\n")
    job_file = str(tmp_path / "out/reproduce_logs/jobs_fewshot.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OUTPUT", "out")  # as reproduce.sh exports it
    capsys.readouterr()
    code = launch.main([job_file, "--launcher", "slurm", "--folder", "out/submitit", "--poll-s", "0"])
    out = capsys.readouterr().out
    assert code == 1 and "4 jobs, 0 finished, 2 still queued or running, 0 cannot run yet, 2 to submit" in out
    assert "launch: job 1 is still queued or running as job 4242_0" in out
    assert "--array=0-1%2\n" in (fake_slurm / "sbatch_1.sh").read_text()
    ledger = json.loads((tmp_path / "out/submitit/submitted.json").read_text())
    assert [e["job_id"] for e in ledger.values()] == ["4242_0", "4243_0", "4242_2", "4243_1"]
    assert f"--user={getpass.getuser()}" in (fake_slurm / "squeue_args").read_text()

    (fake_slurm / "squeue.always").write_text("4243_1\n")
    assert jobs_cli.main([job_file, "--ledger", "out/submitit"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "4 of 4 jobs not finished:"
    assert [line for line in listing if "queued or running" in line] == [
        "- job 4 (queued or running as job 4243_1): new "
        "out/eurosat/VPT/vit_b32_1shots/vctx10/seed2  "]


def test_launcher_settings_are_checked(tmp_path, fake_slurm, monkeypatch, capsys):
    bad = reproduce(tmp_path, DRY_RUN="1", LAUNCHER="pbs")
    assert bad.returncode == 2 and "LAUNCHER: unknown launcher 'pbs'; valid: gpus slurm submitit-local" in bad.stderr
    bad = reproduce(tmp_path, DRY_RUN="1", LAUNCHER="slurm", NODES="two")
    assert bad.returncode == 2 and "error: NODES must be a whole number, got 'two'" in bad.stderr
    job_file = tmp_path / "jobs.txt"
    job_file.write_text(f"1 bash {REPO}/scripts/coop.sh eurosat 1 1\n")
    for flags, message in [
        (["--sbatch", "-A lab"], "sbatch option '-A': expected --name=value or --flag (long form)"),
        (["--nodes", "0"], "--nodes 0: expected a whole number >= 1"),
    ]:
        assert launch.main([str(job_file), "--launcher", "slurm", "--folder", str(tmp_path / "s"), *flags]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    monkeypatch.setenv("FAKE_SBATCH_ERROR", "sbatch: error: invalid partition specified: nope")
    monkeypatch.setenv("OUTPUT", str(tmp_path / "out"))
    assert launch.main([str(job_file), "--launcher", "slurm", "--folder", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: sbatch refused the array job: sbatch: error: invalid partition specified: nope"
    assert launch.main([str(job_file), "--launcher", "submitit-local", "--folder", str(tmp_path / "s"),
                        "--nodes", "2"]) == 2
    assert "submitit-local runs on this machine only" in capsys.readouterr().err
    job_file.write_text("1 bash scripts/coop.sh eurosat 1 1\nbash scripts/vpt.sh eurosat 1 1\n")
    assert launch.main([str(job_file), "--launcher", "slurm", "--folder", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {job_file}:2: expected '<job number> <command>', got 'bash scripts/vpt.sh eurosat 1 1'")
    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed
    assert launch.main([str(job_file), "--launcher", "slurm", "--folder", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == "error: LAUNCHER=slurm needs submitit: pip install -e .[cluster]"


def test_eval_dg_job_without_its_imagenet_run_cannot_run_yet(tmp_path, monkeypatch, capsys):
    job_file = tmp_path / "jobs.txt"
    job_file.write_text(f"7 bash {REPO}/scripts/eval_dg.sh DPT imagenet_r 1\n")
    monkeypatch.setenv("OUTPUT", str(tmp_path / "out"))
    code = launch.main([str(job_file), "--launcher", "submitit-local", "--folder", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 1 and "1 jobs, 0 finished, 0 still queued or running, 1 cannot run yet, 0 to submit" in out
    assert (f"[FAILED] job 7: cannot run yet: no trained run at "
            f"{tmp_path}/out/imagenet/DPT/vit_b32_16shots/nctx16_vctx10_cpn10/seed1; train it first") in out
    assert not (tmp_path / "s" / "submitted.json").exists()


@pytest.mark.parametrize("command, runs", [
    ("b2n.sh coop eurosat 1", ["train_base/eurosat/shots_16/CoOp/vit_b32_ep200/seed1",
                               "test_new/eurosat/shots_16/CoOp/vit_b32_ep200/seed1"]),
    ("b2n.sh cocoop eurosat 1", ["train_base/eurosat/shots_16/CoCoOp/vit_b32_c4_ep10_batch1_ctxv1/seed1",
                                 "test_new/eurosat/shots_16/CoCoOp/vit_b32_c4_ep10_batch1_ctxv1/seed1"]),
    ("xd.sh coop eurosat dtd", ["eurosat/CoOp/vit_b32_16shots/nctx16_cscFalse_ctpend/seed1",
                                "xd/eurosat/CoOp/vit_b32_16shots/nctx16_cscFalse_ctpend/dtd/seed1"]),
])
def test_protocol_jobs_that_train_then_evaluate_can_be_submitted(command, runs, tmp_path):
    """b2n.sh / xd.sh train the run they evaluate in the same job: before it exists their jobs are work, not errors."""
    state = jobs.job_state(f"SEEDS=1 OUTPUT={tmp_path}/out bash {REPO}/scripts/{command}")
    assert state.error == "" and [s for s, _ in state.runs] == ["new", "new"]
    assert [folder.split("/out/", 1)[1].removeprefix("base2new/") for _, folder in state.runs] == runs


# ----------------------------------------------------------------------------- submitit's local executor
def test_local_executor_runs_a_small_matrix_end_to_end_and_a_second_call_submits_nothing(workdir):
    env = dict(DATASETS="eurosat", SHOTS="4", SEEDS="1 2", METHODS="coop vpt", DG_TARGETS="", DATA="data",
               OUTPUT="out", LAUNCHER="submitit-local", GPUS_PER_NODE="0", SLURM_ARRAY_PARALLELISM="2",
               EXTRA_OPTS=f"{TINY} OPTIM.MAX_EPOCH 1")
    done = reproduce(workdir, **env)
    logs = "".join(p.read_text()[-2000:] for p in sorted((workdir / "out/submitit").glob("*_log.out")))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert "4 jobs, 0 finished, 0 still queued or running, 0 cannot run yet, 4 to submit" in done.stdout
    started = re.findall(r"^launch: job (\d) started on this machine as job (\d+)", done.stdout, re.M)
    assert [n for n, _ in started] == ["1", "2", "3", "4"]
    for number, job_id in started:  # one submitit log per job: the command, the run, submitit's verdict
        log = (workdir / f"out/submitit/{job_id}_0_log.out").read_text()
        assert f"[job {number}] bash " in log and "* accuracy: " in log and "Job completed successfully" in log
    report = (workdir / "out/report/report.md").read_text()
    assert "All 4 jobs finished." in report and "failed: 0" in report and "launcher submitit-local" in report
    rows = [line for line in report.splitlines() if re.match(r"\| (CoOp|VPT) +\| 4 +\| [\d.]+ \+- [\d.]+ ", line)]
    assert len(rows) == 2, report

    files = sorted(os.listdir(workdir / "out/submitit"))
    again = reproduce(workdir, **env)
    assert again.returncode == 0, again.stderr
    assert "4 jobs, 4 finished, 0 still queued or running, 0 cannot run yet, 0 to submit" in again.stdout
    assert "started on this machine" not in again.stdout
    assert sorted(os.listdir(workdir / "out/submitit")) == files  # nothing was submitted


def _descendants(root: int):
    """Every process below ``root`` (as SLURM signals all processes of a job step)."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_preempted_local_job_is_requeued_and_ends_as_an_uninterrupted_run(workdir):
    """SLURM's warning signal (USR2) reaches every process of the job mid-run: the run saves its last finished
    epoch, submitit requeues the job, and the requeued job ends with the same accuracy and bit-identical prompts."""
    epochs = 10
    opts = shlex.split(f"{TINY} OPTIM.MAX_EPOCH {epochs}")
    command = shlex.join(["bash", str(REPO / "scripts/coop.sh"), "eurosat", "4", "1", "--", *opts])
    (workdir / "jobs.txt").write_text(f"1 {command}\n")
    env = {**os.environ, "PYTHON": sys.executable, "DATA": "data", "PYTHONUNBUFFERED": "1"}
    reference = subprocess.Popen(["bash", "-c", command], cwd=workdir, env={**env, "OUTPUT": "ref"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "dpt.tools.launch", "jobs.txt", "--launcher", "submitit-local", "--folder",
         "out/submitit", "--gpus-per-node", "0", "--poll-s", "0.2"],
        cwd=workdir, env={**env, "OUTPUT": "out"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 600
        log = None
        while time.time() < deadline:
            logs = list((workdir / "out/eurosat").glob("CoOp/*/*/seed1/log.txt"))
            if logs and "epoch [2/" in logs[0].read_text():
                log = logs[0]
                break
            time.sleep(0.02)
        assert log is not None, "the job never reached epoch 2"
        controller = int(json.loads((workdir / "out/submitit/submitted.json").read_text())[command]["job_id"])
        victims = _descendants(controller)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGUSR2)
            except ProcessLookupError:  # e.g. a bash -c that exec'd meanwhile
                pass
        out, _ = launcher.communicate(timeout=600)
        assert reference.wait(timeout=600) == 0
    finally:  # a failed assert leaves nothing running
        for process in (launcher, reference):
            if process.poll() is None:
                process.kill()
    assert launcher.returncode == 0, out
    assert "launch: 1 of 1 jobs finished" in out and len(victims) >= 2

    job_log = (workdir / f"out/submitit/{controller}_0_log.out").read_text()
    assert "[job 1] stopped for a requeue; the requeued job resumes from the last finished epoch" in job_log
    assert re.search(r"Requeued job \d+ \(3 remaining timeouts\)", job_log)  # preempted, not timed out
    assert job_log.count(f"[job 1] {command}") == 2
    run_dir = log.parent
    saved = int(re.search(r"Stopped by SIGUSR2: saved epoch (\d+)/10", log.read_text()).group(1))
    resumed = sorted(run_dir.glob("log.txt-*"))[-1]
    assert 1 <= saved <= epochs and f"Previous epoch: {saved}" in resumed.read_text()
    ref_dir = workdir / "ref" / run_dir.relative_to(workdir / "out")
    assert parse_metric(str(resumed)) == parse_metric(str(ref_dir / "log.txt"))
    a = load_checkpoint(str(ref_dir / "prompt_learner" / f"model.pth.tar-{epochs}"))["state_dict"]
    b = load_checkpoint(str(run_dir / "prompt_learner" / f"model.pth.tar-{epochs}"))["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_job_with_two_tasks_runs_the_engines_ddp_through_submitits_environment(workdir, capsys, monkeypatch):
    """What NODES x GPUS_PER_NODE > 1 does on a cluster, on CPU: one task per process, submitit's
    TorchDistributedEnvironment exports RANK / WORLD_SIZE / MASTER_ADDR..., train.py joins one gloo group."""
    command = shlex.join(["bash", str(REPO / "scripts/coop.sh"), "eurosat", "4", "1", "--",
                          *shlex.split(f"{TINY} OPTIM.MAX_EPOCH 1")])
    (workdir / "jobs.txt").write_text(f"1 {command}\n")
    monkeypatch.chdir(workdir)
    for key, value in dict(PYTHON=sys.executable, DATA="data", OUTPUT="out").items():
        monkeypatch.setenv(key, value)
    assert launch.main(["jobs.txt", "--launcher", "submitit-local", "--folder", "out/submitit", "--gpus-per-node",
                        "0", "--tasks-per-node", "2", "--poll-s", "0.2"]) == 0
    job_id = re.search(r"started on this machine as job (\d+)", capsys.readouterr().out).group(1)
    for rank in (0, 1):
        log = (workdir / f"out/submitit/{job_id}_{rank}_log.out").read_text()
        assert f"Distributed: rank {rank} of 2 (gloo, local rank {rank})" in log, log[-3000:]
        assert "Job completed successfully" in log
    run_log = next((workdir / "out/eurosat/CoOp").glob("*/*/seed1/log.txt")).read_text()
    assert re.search(r"^epoch \[1/1\] batch \[2/2\]", run_log, re.M)  # global batch 8 = 2 ranks x 4 images
    assert "* accuracy: " in run_log and "Distributed" not in run_log  # rank 0 alone writes the run's files
