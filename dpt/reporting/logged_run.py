"""What a ``log.txt`` says about its run: the ``** Arguments **`` and ``** Config **`` blocks at its top.

Why: Dassl's train.py (official CoOp, CoCoOp and DPT code, and ours) prints its sorted arguments and the whole
resolved config into log.txt before training, so a run folder with any name (the official DPT script writes
every run to ``./output``, docs/reference.md 7.8 #4) still says its trainer, dataset, config file, shots and seed.
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

ARGUMENTS_BANNER = "** Arguments **"
CONFIG_BANNER = "** Config **"
_ARGUMENT = re.compile(r"^([a-z_]+):(?: (.*))?$")
_CONFIG = re.compile(r"^( *)([A-Z0-9_]+):(?: (.*))?$")
_INDENT = 2  # yacs prints nested nodes two spaces deeper
# opts that vary with the protocol (seed, shots, epochs per shots) or the machine, not with the method's setting
_NOT_SETTING = ("SEED", "DATASET.ROOT", "DATASET.NUM_SHOTS", "OPTIM.MAX_EPOCH", "OUTPUT_DIR", "RESUME",
                "DATALOADER.NUM_WORKERS", "MODEL.BACKBONE.NAME")


def read_log(path: str) -> List[str]:
    """The lines of a log, without trailing whitespace (undecodable bytes replaced)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n").rstrip() for line in f]


def _block_after(lines: List[str], banner: str) -> List[str]:
    """The lines after ``banner`` and the row of stars that closes it."""
    if banner not in lines:
        return []
    start = lines.index(banner) + 1
    if start < len(lines) and set(lines[start]) == {"*"}:
        start += 1
    return lines[start:]


def logged_arguments(lines: List[str]) -> Dict[str, str]:
    """``{argument: printed value}`` of the ``** Arguments **`` block (``trainer``, ``config_file``, ``opts``, ...)."""
    args = {}
    for line in _block_after(lines, ARGUMENTS_BANNER):
        match = _ARGUMENT.match(line)
        if not match:
            break
        args[match.group(1)] = match.group(2) or ""
    return args


def logged_config(lines: List[str]) -> Dict[str, str]:
    """``{dotted key: printed value}`` of the ``** Config **`` block (yacs' indented ``KEY: value`` lines)."""
    config: Dict[str, str] = {}
    path: List[str] = []
    for line in _block_after(lines, CONFIG_BANNER):
        match = _CONFIG.match(line)
        if not match or len(match.group(1)) % _INDENT:
            break
        depth = len(match.group(1)) // _INDENT
        if depth > len(path):
            break
        path[depth:] = [match.group(2)]
        config[".".join(path)] = match.group(3) or ""
    return config


@dataclass(frozen=True)
class LoggedRun:
    """A run's identity as its log states it; ``variant`` lists the setting's opts (``COOP.N_CTX=16,...``)."""

    trainer: str
    dataset: str
    cfg: str
    shots: int
    seed: Optional[int]
    eval_only: bool
    variant: str


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _setting_opts(text: str) -> str:
    """``KEY=VALUE`` pairs of the printed opts list, protocol keys left out, ``TRAINER.`` dropped."""
    try:
        opts = ast.literal_eval(text) if text not in ("", "None") else []
    except (ValueError, SyntaxError):
        return ""
    if not isinstance(opts, list):
        return ""
    pairs = [(str(k), str(v)) for k, v in zip(opts[0::2], opts[1::2]) if str(k) not in _NOT_SETTING]
    return ",".join(f"{k[len('TRAINER.'):] if k.startswith('TRAINER.') else k}={v}" for k, v in pairs)


def logged_run(path: str) -> Optional[LoggedRun]:
    """The run ``path`` (a log.txt) describes, or None when its arguments or config block are missing."""
    lines = read_log(path)
    args, config = logged_arguments(lines), logged_config(lines)
    trainer = args.get("trainer") or config.get("TRAINER.NAME", "")
    dataset = _stem(args["dataset_config_file"]) if args.get("dataset_config_file") else config.get("DATASET.NAME", "")
    if not trainer or not dataset:
        return None
    try:
        shots = int(config.get("DATASET.NUM_SHOTS", "-1"))
        seed = int(config.get("SEED", args.get("seed", "-1")))
    except ValueError:
        return None
    return LoggedRun(
        trainer=trainer,
        dataset=dataset,
        cfg=_stem(args.get("config_file", "")) or "default",
        shots=shots,
        seed=seed if seed >= 0 else None,
        eval_only=args.get("eval_only") == "True",
        variant=_setting_opts(args.get("opts", "")),
    )


def logged_value(path: str, key: str) -> Optional[str]:
    """One config value (``MODEL.BACKBONE.NAME``) printed in the log at ``path``, or None."""
    return logged_config(read_log(path)).get(key) or None
