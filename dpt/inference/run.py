"""A finished run folder as an eval-ready trainer: its resolved config, its learned weights, nothing trained.

Why: prediction and export start from what ``train.py --eval-only --model-dir RUN`` would build, so they see the
same model, preprocessing and precision. Our runs keep ``config.yaml``; runs of the official code (and our
eval-only runs of official checkpoints) only print their config into ``log.txt``, which is read instead.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import List, Optional, Sequence

import torch
from yacs.config import CfgNode as CN

from dpt.inference.run_files import CONFIG_FILE, LOG_FILE
from dpt.config import get_cfg_default
from dpt.config.merge import fp16_to_fp32_without_gpu, merge_from_file, merge_from_list
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import latest_checkpoint, same_epoch_checkpoints
from dpt.engine.trainer import TrainerX
from dpt.reporting.logged_run import logged_arguments, logged_config, read_log

_EPOCH_FILE = re.compile(r"model\.pth\.tar-(\d+)$")


def resolve_device(device: Optional[str]) -> str:
    """"cpu" or "cuda" (None: "cuda" when a GPU is visible)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA GPU is visible")
    return device


def _leaf_keys(node: CN, prefix: str = "") -> List[str]:
    keys = []
    for key, value in node.items():
        keys.extend(_leaf_keys(value, f"{prefix}{key}.") if isinstance(value, CN) else [f"{prefix}{key}"])
    return keys


def config_from_text(text: str, source: str) -> CN:
    """Defaults merged with a resolved config's yaml ``text``, as ``--config-file`` merges it (not frozen)."""
    cfg = get_cfg_default()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, os.path.basename(source) + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        merge_from_file(cfg, path)
    return cfg


def run_config(run_dir: str) -> CN:
    """The run's resolved config (not frozen): ``config.yaml``, else the ``** Config **`` block of ``log.txt``.

    A printed key this code base does not know (another code base's extension) is left out; every known one
    is merged with the same type checks as a command-line override.
    """
    path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.isfile(path):
        cfg = get_cfg_default()
        merge_from_file(cfg, path)
        return cfg
    log = os.path.join(run_dir, LOG_FILE)
    printed = logged_config(read_log(log)) if os.path.isfile(log) else {}
    if "TRAINER.NAME" not in printed:
        raise FileNotFoundError(f"run folder {run_dir}: neither {CONFIG_FILE} nor a log.txt with a '** Config **' "
                                f"block (expected a folder written by train.py or by Dassl)")
    cfg = get_cfg_default()
    opts = [item for key in _leaf_keys(cfg) if key in printed for item in (key, printed[key])]
    merge_from_list(cfg, opts)
    return cfg


def weights_dir(run_dir: str) -> str:
    """The folder holding the run's checkpoints: the run itself, or the ``--model-dir`` its log names (an
    eval-only run of another run's or the official code's checkpoints)."""
    log = os.path.join(run_dir, LOG_FILE)
    if not os.path.isfile(log):
        return run_dir
    model_dir = logged_arguments(read_log(log)).get("model_dir", "")
    own_parts = any(os.path.isfile(os.path.join(run_dir, entry, "checkpoint")) for entry in os.listdir(run_dir))
    return model_dir if model_dir and not own_parts else run_dir


def deployed_epoch(cfg: CN, directory: str, parts: Sequence[str], epoch: Optional[int]) -> Optional[int]:
    """The checkpoint the run's own final test used: ``epoch`` if given; ``model-best`` (None) for TEST.FINAL_MODEL
    best_val; else the last epoch every part in ``parts`` saved (their ``checkpoint`` pointers)."""
    if epoch is not None or cfg.TEST.FINAL_MODEL == "best_val":
        return epoch
    paths = [latest_checkpoint(os.path.join(directory, part)) for part in parts]
    absent = [part for part, path in zip(parts, paths) if path is None]
    if absent:
        raise FileNotFoundError(f"run folder {directory}: {absent[0]}/checkpoint is missing or names a missing file; "
                                f"pass the epoch to load (--load-epoch N)")
    name = os.path.basename(same_epoch_checkpoints(directory, list(parts), paths)[0])
    return int(_EPOCH_FILE.match(name).group(1))


def prepare_config(cfg: CN, device: str, backbone: Optional[str] = None) -> CN:
    """``cfg`` set for ``device`` (fp16 becomes fp32 without a GPU, as train.py does) and frozen."""
    cfg.USE_CUDA = device == "cuda"
    if backbone:
        cfg.MODEL.BACKBONE.NAME = backbone
    fp16_to_fp32_without_gpu(cfg)
    cfg.freeze()
    return cfg


def load_run(run_dir: str, *, device: Optional[str] = None, epoch: Optional[int] = None,
             classnames: Optional[Sequence[str]] = None) -> TrainerX:
    """Build the run's trainer from its config and load its checkpoints, ready for ``before_test`` / ``test``.

    Args:
        run_dir: a run folder of train.py or of the official code, or an eval-only run of one (its log's
            ``model_dir``).
        device: "cpu" or "cuda" (default: cuda when available).
        epoch: the checkpoint to load (``model.pth.tar-<epoch>``); default: the one the run's final test used.
        classnames: class names in label order; default: read from the run's dataset (DATASET.ROOT).
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    cfg = prepare_config(run_config(run_dir), resolve_device(device))
    trainer = build_trainer(cfg, classnames=classnames)
    if trainer.get_model_names():
        directory = weights_dir(run_dir)
        trainer.load_model(directory, epoch=deployed_epoch(cfg, directory, trainer.get_model_names(), epoch))
    trainer.set_model_mode("eval")
    return trainer
