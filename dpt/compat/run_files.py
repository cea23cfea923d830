"""The learnable parts' checkpoints of one run folder, ours or written by the official code (Dassl layout).

Why: ``dpt-convert`` and ``dpt-interpret`` take a run folder and need the same epoch's file of every part
(docs/reference.md 4.4: ``<part>/model.pth.tar-N`` and a ``checkpoint`` pointer naming the latest).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import yaml

from dpt.compat.official import PARTS
from dpt.compat.weights import Weights, read_weights
from dpt.config.access import get_key
from dpt.engine.checkpoint import CHECKPOINT_POINTER, checkpoint_name, latest_checkpoint, same_epoch_checkpoints
from dpt.reporting.logged_run import logged_value

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.txt"


def part_folders(run: str) -> List[str]:
    """The part folders of ``run``: those of PARTS present, in that order, then every other folder holding a
    ``checkpoint`` pointer, sorted (e.g. the Dassl model names under which IVLP, MaPLe and PromptSRC save)."""
    parts = [p for p in PARTS if os.path.isdir(os.path.join(run, p))]
    others = sorted(name for name in os.listdir(run)
                    if name not in PARTS and os.path.isfile(os.path.join(run, name, CHECKPOINT_POINTER)))
    return parts + others


def part_files(run: str, epoch: Optional[int] = None) -> Dict[str, str]:
    """{part: checkpoint path} of every part folder in ``run``: ``model.pth.tar-<epoch>``, else the latest one
    all parts saved (their ``checkpoint`` pointers)."""
    if not os.path.isdir(run):
        raise FileNotFoundError(f"run folder not found: {run}")
    parts = part_folders(run)
    if not parts:
        raise FileNotFoundError(f"run folder {run} holds none of {', '.join(p + '/' for p in PARTS)} nor another "
                                f"folder with a {CHECKPOINT_POINTER} file (expected a run written by train.py or "
                                f"by Dassl)")
    if epoch is not None:
        paths = [os.path.join(run, p, checkpoint_name(epoch)) for p in parts]
    else:
        paths = [latest_checkpoint(os.path.join(run, p)) for p in parts]
        absent = [p for p, path in zip(parts, paths) if path is None]
        if absent:
            raise FileNotFoundError(f"run folder {run}: {absent[0]}/checkpoint is missing or names a missing file; "
                                    f"pass --load-epoch N")
        paths = same_epoch_checkpoints(run, parts, paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"run folder {run}: {os.path.relpath(path, run)} is missing")
    return dict(zip(parts, paths))


def read_run(run: str, epoch: Optional[int] = None) -> Tuple[str, Dict[str, Weights]]:
    """(checkpoint file name, {part: Weights under our names}) of a run folder."""
    files = part_files(run, epoch)
    weights = {part: read_weights(path, part) for part, path in files.items()}
    return os.path.basename(next(iter(files.values()))), weights


def run_config_value(run: str, key: str) -> Optional[str]:
    """A config value of the run: from its ``config.yaml`` (ours), else from the config its log.txt prints."""
    path = os.path.join(run, CONFIG_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            node = yaml.safe_load(f) or {}
        value = get_key(node, key, None)
        return None if value in (None, "") else str(value)
    log = os.path.join(run, LOG_FILE)
    return logged_value(log, key) if os.path.isfile(log) else None
