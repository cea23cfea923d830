"""The learnable parts' checkpoints of one run folder, ours or written by the official code (Dassl layout).

Why: ``dpt-convert`` and ``dpt-interpret`` take a run folder and need the same epoch's file of every part
(docs/reference.md 4.4: ``<part>/model.pth.tar-N`` and a ``checkpoint`` pointer naming the latest) and the
trainer that wrote it (whose ``official_names`` translate a Dassl-written run).
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Tuple

import yaml

from dpt.compat.names import OfficialNames
from dpt.compat.weights import Weights, read_weights
from dpt.config.access import get_key
from dpt.engine.checkpoint import CHECKPOINT_POINTER, checkpoint_name, latest_checkpoint, same_epoch_checkpoints
from dpt.reporting.logged_run import logged_value
from dpt.reporting.runs import method_of

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.txt"
TRAINER_KEY = "TRAINER.NAME"


def _is_part(folder: str) -> bool:
    """A folder holding a ``checkpoint`` pointer or a checkpoint file (a pointer may be missing)."""
    return os.path.isdir(folder) and any(
        name == CHECKPOINT_POINTER or name.startswith(("model.pth.tar-", "model-best.pth.tar"))
        for name in os.listdir(folder))


def part_folders(run: str) -> List[str]:
    """The part folders of ``run``, sorted."""
    return sorted(name for name in os.listdir(run) if _is_part(os.path.join(run, name)))


def part_files(run: str, epoch: Optional[int] = None) -> Dict[str, str]:
    """{part: checkpoint path} of every part folder in ``run``: ``model.pth.tar-<epoch>``, else the latest one
    all parts saved (their ``checkpoint`` pointers)."""
    if not os.path.isdir(run):
        raise FileNotFoundError(f"run folder not found: {run}")
    parts = part_folders(run)
    if not parts:
        raise FileNotFoundError(f"run folder {run} holds no part folder with checkpoints (expected a run written by "
                                f"train.py or by Dassl)")
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


def read_run(run: str, names: Mapping[str, OfficialNames],
             epoch: Optional[int] = None) -> Tuple[str, Dict[str, Weights]]:
    """(checkpoint file name, {part: Weights under our names}) of a run folder; ``names``: its trainer's
    ``official_names``."""
    files = part_files(run, epoch)
    weights = {part: read_weights(path, names.get(part)) for part, path in files.items()}
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


def run_trainer(run: str, given: str = "") -> str:
    """The trainer that wrote ``run``: ``given``, else its config's TRAINER.NAME (the official code's names, e.g.
    MyCoOp, as the method they run)."""
    if not os.path.isdir(run):
        raise FileNotFoundError(f"run folder not found: {run}")
    name = given or run_config_value(run, TRAINER_KEY)
    if not name:
        raise FileNotFoundError(f"cannot tell which trainer wrote {run}: no {CONFIG_FILE}, and no {TRAINER_KEY} in a "
                                f"{LOG_FILE}; pass --trainer NAME")
    return method_of(name)
