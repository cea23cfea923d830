"""benchmarks/gpu_check.sh: its CPU mode end to end, and the pieces it reads and judges.

The GPU mode itself needs a CUDA device (not in CI); ``--device cpu --tiny`` runs the same checks with a tiny CLIP,
so every command, parser and verdict below is the one the GPU run uses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from dpt.demo.synthetic import PETS, make_dataset
from dpt.engine.precision import CountingGradScaler
from dpt.reporting.logparse import LossScaler, parse_loss_scaler
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402
from gpu_check_verdicts import Row, bench_row, training_row  # noqa: E402


def _check(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHON=sys.executable)
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=900)


def test_cpu_tiny_mode_runs_every_check_and_reports_what_ran(tmp_path):
    done = _check("--device", "cpu", "--tiny", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())
    by = {(r["check"], next((p for p in ("fp16", "amp", "bf16") if p in r["what"]), "")): r for r in rows}
    assert [r["check"] for r in rows] == ["prep", "b", "b", "b", "a", "a", "a", "f", "d", "c", "e", "e", "e"]
    assert by["prep", ""]["values"]["images"] == 10 * (2 + 1 + 1)
    for check in ("b", "a", "e"):  # fp16 and amp cannot run on CPU: skipped with the reason, never faked
        assert by[check, "fp16"]["status"] == "skipped" and "needs CUDA" in by[check, "fp16"]["result"]
        assert by[check, "amp"]["status"] == "skipped" and by[check, "amp"]["values"] == {}
    logits = by["b", "bf16"]
    assert logits["status"] == "pass" and logits["values"]["dtype"] == "bfloat16" and logits["values"]["finite"]
    assert 0 < logits["values"]["max_dcos"] <= 2e-2
    train = by["a", "bf16"]["values"]
    assert by["a", "bf16"]["status"] == "pass"
    assert train["steps"] == 2 * 2 and train["losses"][-1] < train["losses"][0] and train["scaler"] is None
    assert 0 <= train["data_share"] < 1 and 0 <= train["accuracy"] <= 100
    run = by["f", ""]
    assert run["status"] == "pass" and "scripts/dpt.sh oxford_pets 2" in run["what"] and "fp32" in run["what"]
    assert run["values"]["epochs"] == 2 and run["values"]["steps"] == 4 and run["values"]["wall_s"] > 0
    assert by["d", ""]["status"] == "pass" and by["d", ""]["values"]["data_share"] == run["values"]["data_share"]
    bench = by["c", ""]
    assert bench["status"] == "pass" and bench["values"]["classes"] == 37 and bench["values"]["maxdiff"] < 1e-4
    assert bench["values"]["train_naive"] > 0 and bench["values"]["train_fast"] > 0
    memory = by["e", "bf16"]
    assert memory["status"] == "pass" and memory["values"]["peak_mb"] > 100 and "64 classes" in memory["what"]
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("Device check on CPU") and table == done.stdout[: len(table)]
    assert "| a | DPT training via train.py, bf16, 2 epochs | 4 steps, loss " in table
    assert "| b | fp16 vs fp32 logits, DPT | fp16 needs CUDA (dpt/engine/precision.py) |" in table
    assert "| DPT | 37 |" in table  # bench.py's own row
    assert "Finish training" in (tmp_path / "logs" / "f_dpt_sh.txt").read_text()


def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path)]) == 2  # the default device is cuda; conftest hides any GPU
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: --device cuda: no CUDA device is visible") and "--device cpu --tiny" in err[0]
    assert not (tmp_path / "table.md").exists()


def test_failed_checks_set_exit_1_and_the_table_still_says_what_ran(tmp_path, capsys, monkeypatch):
    def broken(self):
        raise KeyError("boom")

    monkeypatch.setattr(gpu_check.GpuCheck, "bench_rows", broken)  # a bug in one check
    assert gpu_check.main(["--device", "cpu", "--tiny", "--budget", "0", "--out", str(tmp_path)]) == 1  # no time
    rows = json.loads((tmp_path / "results.json").read_text())
    assert "FAILED: b (bf16 vs fp32 logits, DPT); a (" in capsys.readouterr().out
    assert rows[0]["check"] == "prep" and rows[0]["status"] == "pass"  # prep runs in-process, outside the budget
    ran = [r for r in rows[1:] if r["status"] != "skipped"]
    assert [(r["check"], r["what"]) for r in ran][4] == ("c", "the check itself")
    assert [r["check"] for r in ran] == ["b", "a", "f", "d", "c", "e"]
    assert all(r["status"] == "FAIL" for r in ran)
    spent = "not run: the total budget of 0 s is spent (--budget)"
    assert all(r["result"] == spent for r in ran if r["check"] in ("b", "a", "f", "e"))
    assert ran[4]["result"] == "KeyError: 'boom' (traceback in logs/c_crash.txt)"
    assert "KeyError" in (tmp_path / "logs" / "c_crash.txt").read_text()
    assert "| FAIL |" in (tmp_path / "table.md").read_text()


def test_a_hung_command_is_killed_with_its_children_and_named(tmp_path):
    check = gpu_check.GpuCheck("cpu", gpu_check.TINY, str(tmp_path), str(tmp_path), budget=60)
    start = time.monotonic()
    rc, seconds, error = check.command("hang", ["bash", "-c", "sleep 60 & sleep 60"], timeout=1)
    assert rc is None and 1 <= seconds < 10 and time.monotonic() - start < 10
    assert error == "timed out after 1 s (hung?); output in logs/hang.txt"
    check.deadline = time.monotonic()  # the total budget is spent: later commands do not start
    assert check.command("late", ["true"], check.timeout("a")) == (None, 0.0, check.spent())


def test_loss_scaler_counts_skipped_steps_and_the_log_line_is_read_back(tmp_path):
    param = torch.nn.Parameter(torch.ones(2))
    optim = torch.optim.SGD([param], lr=0.1)
    scaler = CountingGradScaler("cpu")  # initial scale 65536
    for factor in (1e35, 1.0):  # 65536 * 1e35 overflows fp32: skipped, the scale halves; then a normal step
        optim.zero_grad()
        scaler.scale((param * factor).sum()).backward()
        scaler.step(optim)
        scaler.update()
    assert (scaler.steps, scaler.skipped, scaler.get_scale()) == (2, 1, 32768.0)
    assert torch.allclose(param.detach(), torch.full((2,), 0.9))  # only the second step moved it
    log = tmp_path / "log.txt"
    log.write_text(f"epoch [1/1] batch [2/2] loss 1.0 (1.0)\n{scaler.summary()}\nFinish training\n")
    assert parse_loss_scaler(str(log)) == LossScaler(2, 1, 32768.0)


def _summary(losses, steps=8, scaler=None):
    return {"losses": losses, "steps": steps, "ms_per_step": 10.0, "data_share": 0.1, "accuracy": 50.0,
            "scaler": scaler, "epochs": len(losses)}


@pytest.mark.parametrize("summary, expect_scaler, status, why", [
    (_summary([3.0, 2.0]), False, "pass", ""),
    (_summary([3.0, 3.5]), False, "FAIL", "loss did not fall (3.0000 -> 3.5000)"),
    (_summary([3.0, float("nan")]), False, "FAIL", "non-finite loss"),
    (_summary([3.0, 2.0]), True, "FAIL", "no 'Loss scaler:' line"),
    (_summary([3.0, 2.0], scaler={"steps": 8, "skipped": 1, "final_scale": 8192.0}), True, "FAIL", "1 of 8 steps skipped"),
    (_summary([3.0, 2.0], scaler={"steps": 7, "skipped": 0, "final_scale": 8192.0}), True, "FAIL", "counted 7 steps"),
    (_summary([3.0, 2.0], steps=20, scaler={"steps": 20, "skipped": 2, "final_scale": 8.0}), True, "pass", ""),
])
def test_training_verdicts(summary, expect_scaler, status, why):
    row = training_row(Row("a", "x"), summary, expect_scaler)
    assert row.status == status and why in row.result


def test_bench_verdicts_separate_wrong_numbers_from_missed_targets():
    r = {"trainer": "DPT", "classes": 37, "train_naive": 1.0, "train_fast": 0.9, "eval_naive": 10.0,
         "eval_fast": 0.5, "eval_cold": 1.0, "peak_naive": 1.0, "peak_fast": 1.0, "maxdiff": 2e-6}
    assert bench_row(Row("c", "x"), r, {"train": 0.85}).status == "target missed"
    assert bench_row(Row("c", "x"), r, {"train": 0.95}).status == "pass"
    assert bench_row(Row("c", "x"), dict(r, maxdiff=1e-3), {"train": 0.95}).status == "FAIL"


def test_synthetic_pets_has_all_37_breeds_and_parallel_writing_is_deterministic(tmp_path):
    assert len(PETS) == len(set(PETS)) == 37 and PETS[-1] == "yorkshire_terrier"
    infos = [make_dataset(tmp_path / str(w), "OxfordPets", n_classes=37, n_train=1, n_val=0, n_test=1,
                          learnable=True, workers=w) for w in (1, 3)]
    assert infos[0]["test"] == infos[1]["test"] and len(infos[0]["classnames"]) == 37
    first = [(tmp_path / str(w) / "oxford_pets" / "images" / "yorkshire_terrier_2.jpg").read_bytes() for w in (1, 3)]
    assert first[0] == first[1]
