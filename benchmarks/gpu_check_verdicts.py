"""What the device check's measurements mean: tolerances, targets and one table row per measurement.

Why apart from benchmarks/gpu_check.py: that file runs things (commands, budgets, files); this one only
turns numbers into a row's text and status, so the judgement is readable (and testable) in one place.
A row's status is ``pass``, ``FAIL`` (broken: exit 1), ``skipped`` (cannot run on this device, with the
reason) or ``target missed`` (works, slower than the issue's target).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

import torch

PRECISIONS = ("fp16", "amp", "bf16")
# max |dlogit| / logit scale vs fp32; measured on CPU (ViT-B/32 shape): fp16 1.8e-4, bf16 1.3e-3 (tiny CLIP 7e-3)
DCOS_TOLERANCE = {"fp16": 2e-3, "amp": 2e-3, "bf16": 2e-2}
MAXDIFF_TOLERANCE = 1e-4  # bench.py's naive vs fast paths, fp32 (benchmarks/README.md)
SKIP_LIMIT = 0.1  # share of loss-scaler steps a healthy run may skip for inf/NaN gradients
DATA_SHARE_TARGET = 0.2
RUN_TARGET_S = 120.0
BENCH_TARGETS = {("DPT", 1000): {"train": 0.45, "eval": 0.1}, ("DPT", 37): {"train": 0.85}}  # fast / naive


@dataclass
class Row:
    """One table row; ``values`` (the measured numbers) go to results.json."""

    check: str
    what: str
    result: str = ""
    target: str = "-"
    status: str = "pass"
    values: Dict[str, Any] = field(default_factory=dict)

    def fail(self, why: str) -> "Row":
        self.status, self.result = "FAIL", why
        return self

    def skip(self, why: str) -> "Row":
        self.status, self.result = "skipped", why
        return self


def precision_plan(device: str) -> Dict[str, Optional[str]]:
    """Precision -> None when it runs on ``device``, else why its rows are skipped."""
    if device == "cpu":
        return {"fp16": "fp16 needs CUDA (dpt/engine/precision.py)",
                "amp": "on CPU amp is bf16 autocast without a loss scaler: the bf16 row", "bf16": None}
    bf16 = None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    return {"fp16": None, "amp": None, "bf16": bf16}


def training_summary(log: str) -> Dict[str, Any]:
    """Numbers of one training log.txt: epoch-mean losses, steps, ms per step and the share of it spent
    waiting for data (epochs 2..N, the engine's running "time" / "data" means), test accuracy, loss scaler."""
    from dpt.reporting.logparse import parse_final_result, parse_loss_scaler, parse_training_curves

    curves = parse_training_curves(log)
    if not curves:
        raise ValueError(f"{log}: no training lines")
    timed = curves[1:] or curves  # the first epoch also starts the loader workers and the GPU kernels
    step_s = sum(c.timing["time"] for c in timed) / len(timed)
    data_s = sum(c.timing["data"] for c in timed) / len(timed)
    scaler = parse_loss_scaler(log)
    return {
        "losses": [c.meters["loss"] for c in curves], "epochs": len(curves),
        "steps": sum(c.num_batches for c in curves), "ms_per_step": 1000 * step_s,
        "data_share": data_s / step_s if step_s > 0 else 0.0,
        "accuracy": parse_final_result(log).metrics.get("accuracy"),
        "scaler": asdict(scaler) if scaler else None,
    }


def training_row(row: Row, summary: Dict[str, Any], expect_scaler: bool) -> Row:
    """Loss finite and falling (epoch means), a test accuracy, and with a scaler: one count per loop step,
    at most SKIP_LIMIT of them skipped."""
    losses, problems = summary["losses"], []
    if not all(math.isfinite(x) for x in losses):
        problems.append("non-finite loss")
    elif losses[-1] >= losses[0]:
        problems.append(f"loss did not fall ({losses[0]:.4f} -> {losses[-1]:.4f})")
    if summary["accuracy"] is None:
        problems.append("no test accuracy after 'Finish training'")
    row.values = summary
    row.result = (f"{summary['steps']} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
                  f"{summary['ms_per_step']:.0f} ms/step, data wait {100 * summary['data_share']:.0f}%, "
                  f"test acc {summary['accuracy']}%")
    scaler = summary["scaler"]
    if expect_scaler and scaler is None:
        problems.append("no 'Loss scaler:' line (fp16/amp on GPU must use the GradScaler)")
    elif scaler is not None:
        row.result += f"; scaler {scaler['steps']} steps, {scaler['skipped']} skipped, scale {scaler['final_scale']:g}"
        if scaler["steps"] != summary["steps"]:
            problems.append(f"the scaler counted {scaler['steps']} steps, the loop ran {summary['steps']}")
        if scaler["skipped"] > SKIP_LIMIT * scaler["steps"]:
            problems.append(f"{scaler['skipped']} of {scaler['steps']} steps skipped for inf/NaN gradients")
    if problems:
        row.fail("; ".join(problems) + " / " + row.result)
    return row


def logits_row(row: Row, prec: str, found: Dict[str, Any]) -> Row:
    """precision_logits.py's numbers for ``prec``: finite and within DCOS_TOLERANCE of fp32."""
    v = row.values = found
    row.result = (f"max abs dlogit {v['max_dlogit']:.2e} (dcos {v['max_dcos']:.1e}), logits {v['dtype']}, "
                  f"top-1 agrees {100 * v['top1_agree']:.0f}%")
    if not v["finite"] or v["max_dcos"] > DCOS_TOLERANCE[prec]:
        row.status = "FAIL"
    return row


def bench_row(row: Row, r: Dict[str, Any], targets: Dict[str, float]) -> Row:
    """bench.compare's numbers: the paths agree (FAIL otherwise) and fast / naive within ``targets``."""
    ratios = {"train": r["train_fast"] / r["train_naive"], "eval": r["eval_fast"] / r["eval_naive"]}
    row.values = dict(r, **{f"{k}_ratio": v for k, v in ratios.items()})
    row.result = (f"train {r['train_naive']:.3f} -> {r['train_fast']:.3f} s/step ({ratios['train']:.2f}x), "
                  f"eval {r['eval_naive']:.1f} -> {r['eval_fast']:.1f} s/1k img ({ratios['eval']:.3f}x), "
                  f"peak {r['peak_naive']:.0f} / {r['peak_fast']:.0f} MB, max abs dlogit {r['maxdiff']:.1e}")
    if not math.isfinite(r["maxdiff"]) or r["maxdiff"] >= MAXDIFF_TOLERANCE:
        row.status = "FAIL"
    elif any(ratios[k] > v for k, v in targets.items()):
        row.status = "target missed"
    return row


def data_wait_row(row: Row, summary: Optional[Dict[str, Any]], target: bool) -> Row:
    """The full run's data-wait share, against DATA_SHARE_TARGET when ``target``."""
    if summary is None:
        return row.fail("no training log from (f)")
    share = summary["data_share"]
    row.values = {"data_share": share, "ms_per_step": summary["ms_per_step"]}
    row.result = f"{100 * share:.1f}% of {summary['ms_per_step']:.0f} ms per step (epochs 2-N)"
    if target and share >= DATA_SHARE_TARGET:
        row.status = "target missed"
    return row
