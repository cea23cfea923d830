"""Read numbers out of one ``log.txt``: the final test result and the per-epoch training curves.

Also the pieces of the drop-in for CoOp's ``parse_test_res.py`` (docs/reference.md 6), ``python -m dpt.tools.logparse``.
"""
from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

END_SIGNAL_TRAIN = "Finish training"
END_SIGNAL_TEST = "=> result"
# [old Dassl] printed "Finished training" (docs/reference.md 4.2); accepted when detecting the end of training.
_TRAIN_END_LINES = (END_SIGNAL_TRAIN, "Finished training")

# Dassl HEAD "epoch [e/E] batch [b/B]" and [old Dassl] "epoch [e/E][b/B]" (docs/reference.md 4.2).
_BATCH_LINE = re.compile(r"^epoch \[(\d+)/(\d+)\]\s*(?:batch )?\[(\d+)/(\d+)\]")
# "name <current> (<running mean>)"; time and data are timing meters, not training curves.
_METER = re.compile(r"([A-Za-z_]\w*)\s+(\S+)\s+\(([^)\s]+)\)")
_TIMING_METERS = ("time", "data")
_LR = re.compile(r"(?:^|\s)lr\s+(\S+)")
# The engine's end-of-training line under fp16 / amp on GPU (dpt/engine/precision.py CountingGradScaler).
_SCALER = re.compile(r"^Loss scaler: (\d+) steps, (\d+) skipped .*final scale (\S+)$")


def metric_regex(keyword: str) -> "re.Pattern[str]":
    """The parse_test_res pattern ``\\* <keyword>: ([\\.\\deE+-]+)%`` for one metric."""
    return re.compile(r"\* " + re.escape(keyword) + r": ([\.\deE+-]+)%")


def _read_lines(path: str) -> List[str]:
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f]


def _last_match_after(lines: Sequence[str], start: int, keyword: str) -> Optional[float]:
    pattern = metric_regex(keyword)
    value = None
    for line in lines[start:]:
        match = pattern.search(line)
        if match:
            value = float(match.group(1))
    return value


def parse_metric(path: str, keyword: str = "accuracy", end_signal: str = END_SIGNAL_TRAIN) -> Optional[float]:
    """parse_test_res semantics: the last ``* <keyword>: x%`` at or after the first line equal to ``end_signal``.

    Returns None when the signal line or a match after it is absent.
    """
    lines = _read_lines(path)
    if end_signal not in lines:
        return None
    return _last_match_after(lines, lines.index(end_signal), keyword)


@dataclass(frozen=True)
class FinalResult:
    """Outcome of one log: ``finished`` iff an ``* accuracy:`` line follows the end signal.

    ``metrics`` maps keyword (accuracy, error, macro_f1) to the last value after the signal;
    ``reason`` says why a log is not finished.
    """

    finished: bool
    metrics: Dict[str, float] = field(default_factory=dict)
    reason: str = ""


def parse_final_result(path: str, keywords: Sequence[str] = ("accuracy", "error", "macro_f1")) -> FinalResult:
    """Final test result of a training or eval-only log.

    A log with a "Finish training" line counts the result block after it. A log with training batch
    lines but no such line stopped during training (crash, kill), even if it holds validation
    results. A log without batch lines is eval-only: the block after "=> result" counts (like
    parse_test_res ``--test-log``).
    """
    lines = _read_lines(path)
    start = next((i for i, line in enumerate(lines) if line in _TRAIN_END_LINES), None)
    if start is None:
        if any(_BATCH_LINE.match(line) for line in lines):
            return FinalResult(False, reason="training did not finish")
        if END_SIGNAL_TEST not in lines:
            return FinalResult(False, reason="no '=> result' block")
        start = lines.index(END_SIGNAL_TEST)
    metrics = {}
    for keyword in keywords:
        value = _last_match_after(lines, start, keyword)
        if value is not None:
            metrics[keyword] = value
    if "accuracy" not in metrics:
        return FinalResult(False, metrics, reason="no '* accuracy:' line after the end signal")
    return FinalResult(True, metrics)


@dataclass(frozen=True)
class LossScaler:
    """The loss scaler's summary: optimiser steps, steps skipped for inf/NaN gradients, final scale."""

    steps: int
    skipped: int
    final_scale: float


def parse_loss_scaler(path: str) -> Optional[LossScaler]:
    """The last ``Loss scaler: ...`` line of a log, or None (no scaler: fp32 / bf16, or CPU)."""
    found = None
    for line in _read_lines(path):
        match = _SCALER.match(line)
        if match:
            found = LossScaler(int(match.group(1)), int(match.group(2)), float(match.group(3)))
    return found


@dataclass(frozen=True)
class EpochCurve:
    """Training statistics of one epoch (1-based ``epoch`` of ``max_epoch``).

    ``meters``: running epoch means (loss, acc, ...) from the epoch's last printed batch line.
    ``timing``: the same line's running means of the engine's ``time`` (whole step, data included) and
    ``data`` (waiting for the batch) meters, in seconds; ``num_batches``: batches per epoch.
    ``lr``: the lr in effect during the epoch, or NaN when the log cannot tell. The engine steps the
    scheduler before printing the last batch, so that line shows the *next* epoch's lr
    (docs/reference.md 4.2): the lr comes from an earlier line of the epoch, else from the previous
    epoch's last line.
    """

    epoch: int
    max_epoch: int
    meters: Dict[str, float]
    lr: float
    timing: Dict[str, float] = field(default_factory=dict)
    num_batches: int = 0


def _batch_fields(line: str) -> Tuple[Dict[str, float], Dict[str, float], Optional[float]]:
    meters, timing = {}, {}
    for name, _, mean in _METER.findall(line):
        try:
            (timing if name in _TIMING_METERS else meters)[name] = float(mean)
        except ValueError:
            continue
    lr_match = _LR.search(line)
    lr = float(lr_match.group(1)) if lr_match else None
    return meters, timing, lr


def parse_training_curves(path: str) -> List[EpochCurve]:
    """Per-epoch curves from the batch lines of one log, sorted by epoch; empty for eval-only logs."""
    last_line: Dict[int, Tuple[int, int, Dict[str, float], Dict[str, float], Optional[float]]] = {}
    lr_during: Dict[int, float] = {}
    max_epoch = 0
    for line in _read_lines(path):
        match = _BATCH_LINE.match(line)
        if not match:
            continue
        epoch, max_epoch, batch, num_batches = (int(g) for g in match.groups())
        meters, timing, lr = _batch_fields(line)
        last_line[epoch] = (max_epoch, num_batches, meters, timing, lr)
        if batch < num_batches and lr is not None:
            lr_during.setdefault(epoch, lr)
    curves = []
    for epoch in sorted(last_line):
        epoch_max, num_batches, meters, timing, _ = last_line[epoch]
        lr = lr_during.get(epoch)
        if lr is None and epoch - 1 in last_line:
            lr = last_line[epoch - 1][-1]
        curves.append(EpochCurve(epoch, epoch_max, meters, math.nan if lr is None else lr, timing, num_batches))
    return curves


def mean_and_spread(values: Sequence[float], ci95: bool = False) -> Tuple[float, float]:
    """Mean and population std (ddof 0, as numpy in parse_test_res), or 1.96 * std / sqrt(n) with ci95."""
    if not values:
        raise ValueError("mean_and_spread: expected at least one value, got none")
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    return mean, (1.96 * std / math.sqrt(len(values)) if ci95 else std)


def parse_directory(directory: str, keyword: str = "accuracy",
                    end_signal: str = END_SIGNAL_TRAIN) -> List[Tuple[str, float]]:
    """(log path, value) per non-hidden subfolder of ``directory``, sorted; logs without a match are skipped.

    Raises FileNotFoundError when a subfolder lacks ``log.txt`` (parse_test_res asserts it).
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: expected a directory of run folders (seed1/, seed2/, ...), found none")
    entries = []
    for name in sorted(os.listdir(directory)):
        sub = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isdir(sub):
            continue
        log = os.path.join(sub, "log.txt")
        if not os.path.isfile(log):
            raise FileNotFoundError(f"{sub}: expected a log.txt in every run folder, found none")
        value = parse_metric(log, keyword, end_signal)
        if value is not None:
            entries.append((log, value))
    return entries


def summary_lines(directory: str, entries: Sequence[Tuple[str, float]], keyword: str = "accuracy",
                  ci95: bool = False) -> List[str]:
    """parse_test_res's printout for one directory: per-file lines, then the mean +- std (or ci95) block."""
    lines = [f"file: {path}. {keyword}: {value:.2f}%. " for path, value in entries]
    mean, spread = mean_and_spread([value for _, value in entries], ci95)
    lines += ["===", f"Summary of directory: {directory}", f"* {keyword}: {mean:.2f}% +- {spread:.2f}%", "==="]
    return lines
