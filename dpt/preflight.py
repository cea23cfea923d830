"""One preflight before a run builds anything heavy: every problem found is reported together, one line each.

Why: a run missing several things (the dataset folder, the CLIP weights, a writable output folder) used to
stop on the first one, after loading torch and the data, and leave a run folder behind; fixing them one
round trip at a time costs minutes each. Config errors that depend on the backbone (INPUT.SIZE, normalisation,
the layer a trainer starts CAVPT at) are found from the weights file's tensor shapes, without building a model.
Each check below is independent and returns problem lines;
``preflight`` runs them all before the run folder is created (train.py), and ``dpt-check-data`` reuses
``dataset_check``. Nothing here writes a file, decodes an image or loads a model; the RNG state is kept.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
from yacs.config import CfgNode

from dpt.config.access import get_key
from dpt.data.dataset_base import SplitDataset, dataset_folder
from dpt.data.splits import load_split_file
from dpt.engine.checkpoint import checkpoint_name
from dpt.errors import error_message
from dpt.modeling.backbones.loader import resolve_backbone
from dpt.modeling.backbones.open_clip_adapter import OPENAI_MEAN, OPENAI_STD, ImagePreprocess
from dpt.modeling.backbones.open_clip_loader import OpenClipBackbone
from dpt.modeling.backbones.weights_shape import backbone_shape
from dpt.registry import DATASET_REGISTRY, TRAINER_REGISTRY, precision_key
from dpt.trainers.clip_trainer import check_input


class PreflightError(ValueError):
    """The problems found before a run, one line each (train.py prints each as ``error: <line>``)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass
class DatasetCheck:
    """What ``dataset_check`` found: the dataset folder ("" if none), problem lines and notes."""

    folder: str = ""
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def device_problems(cfg: CfgNode) -> List[str]:
    """Precision and process placement the GPU cannot serve (USE_CUDA, the trainer's precision key, LOCAL_RANK).

    fp16 without a GPU is no problem: ``build_config`` already runs it as fp32.
    """
    if not (cfg.USE_CUDA and torch.cuda.is_available()):
        return []
    problems = []
    local_rank, visible = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local_rank >= visible:
        problems.append(f"LOCAL_RANK {local_rank} has no GPU: {visible} visible (CUDA_VISIBLE_DEVICES="
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); start at most {visible} processes per node")
    key = precision_key(cfg.TRAINER.NAME) if cfg.TRAINER.NAME in TRAINER_REGISTRY else ""
    if key and get_key(cfg, key) == "bf16" and not torch.cuda.is_bf16_supported():
        problems.append(f"config key {key!r} is bf16, which {torch.cuda.get_device_name()} does not support; "
                        f"use amp or fp16")
    return problems


def trainer_problems(name: str, cfg: Optional[CfgNode] = None) -> List[str]:
    """TRAINER.NAME must be registered (the message lists the valid names and the closest); with ``cfg``, the
    trainer's own config checks (``check_cfg``: negative lengths, ...) must pass."""
    try:
        cls = TRAINER_REGISTRY.get(name)
    except KeyError as err:
        return [error_message(err)]
    if cfg is None:
        return []
    try:
        cls.check_cfg(cls.__new__(cls), cfg)  # reads cfg only, as the trainer's constructor calls it
    except (KeyError, ValueError) as err:
        return [error_message(err)]
    return []


def backbone_problems(cfg: CfgNode) -> List[str]:
    """Config keys that must fit the backbone, checked on the OpenAI-format weights file's tensor shapes: INPUT.SIZE
    and, with normalize, INPUT.PIXEL_MEAN / PIXEL_STD (the trainers' ``check_input``), and the blocks the trainer lays
    prompts in (``check_layers``: TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT, TRAINER.DPT.TOPLIMIT) against the ViT's depth.

    An open_clip name is checked when its model is built; an unresolvable name is ``weights_problems``'s to report.
    Config keys read: MODEL.BACKBONE.NAME, INPUT.*, TRAINER.NAME and what the trainer's ``check_layers`` reads.
    """
    name = cfg.MODEL.BACKBONE.NAME
    try:
        backbone = resolve_backbone(name) if name else None
        if backbone is None or isinstance(backbone, OpenClipBackbone):
            return []
        path = backbone.weights_file()
    except (FileNotFoundError, ValueError):
        return []
    try:
        shape = backbone_shape(path)
    except (OSError, ValueError) as err:
        return [error_message(err)]
    problems = []
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its interpolation note is printed when the run builds
            check_input(cfg.INPUT, name, ImagePreprocess(shape.input_size, OPENAI_MEAN, OPENAI_STD))
    except ValueError as err:
        problems.append(error_message(err))
    cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME) if cfg.TRAINER.NAME in TRAINER_REGISTRY else None
    if cls is not None and shape.vision_layers:
        try:
            cls.check_layers(cfg, shape.vision_layers)
        except ValueError as err:
            problems.append(error_message(err))
    return problems


def _layout(cls: type) -> str:
    """What the dataset folder should hold, for messages (ImageNet variants: their image folder, classnames.txt)."""
    return getattr(cls, "layout", "") or f"{cls.image_subdir}/ and classnames.txt"


def dataset_check(cfg: CfgNode) -> DatasetCheck:
    """Is dataset DATASET.NAME in place under DATASET.ROOT: registered, folder and image folder present, required
    files present, split JSON readable (or, without it, the fallback's original files usable)?

    Images are neither listed one by one nor opened (``dpt-check-data`` does that). Config keys read:
    DATASET.ROOT, DATASET.NAME, and what the reader's ``locate`` reads (DATASET.CSV).
    """
    check = DatasetCheck()
    name = cfg.DATASET.NAME
    if not name:
        check.problems.append("DATASET.NAME is empty; pass --dataset-config-file configs/datasets/<dataset>.yaml")
        return check
    try:
        cls = DATASET_REGISTRY.get(name)
        if issubclass(cls, SplitDataset):  # the reader's own rule: <ROOT>/<folder_name>, your images, a CSV file
            check.folder, image_dir = cls.__new__(cls).locate(cfg)
        elif getattr(cls, "folder_name", ""):
            check.folder = dataset_folder(cfg, cls.folder_name, name, _layout(cls))
            image_dir = os.path.join(check.folder, cls.image_subdir) if cls.image_subdir else check.folder
        else:  # a reader that finds its files its own way checks them itself
            return check
    except (KeyError, FileNotFoundError) as err:
        check.problems.append(error_message(err))
        return check
    missing = [p for p in [image_dir, *(os.path.join(check.folder, f) for f in cls.required_files)]
               if not os.path.exists(p)]
    if missing:
        check.problems.append(f"dataset {name}: missing {', '.join(missing)}; expected {_layout(cls)} (see README)")
        return check
    if not issubclass(cls, SplitDataset) or cls.read_full_split is not SplitDataset.read_full_split:
        return check  # the reader lists folders or text files named in required_files
    reader = cls.__new__(cls)
    split_path = reader.split_path(check.folder)
    try:
        if os.path.exists(split_path):
            load_split_file(split_path)
        else:
            _dry_fallback(reader, check.folder, image_dir, split_path)
            check.notes.append(
                f"{split_path} is missing: the first run will split the original files at random, so numbers are "
                f"not comparable with CoOp's; download {os.path.basename(split_path)}"
            )
    except (FileNotFoundError, ValueError, KeyError, TypeError, OSError) as err:
        check.problems.append(error_message(err))
    return check


def _dry_fallback(reader: SplitDataset, folder: str, image_dir: str, split_path: str) -> None:
    """Run the reader's fallback split without printing, saving or changing the RNG state (a seeded run must
    draw the same split afterwards)."""
    state = random.getstate()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            reader.read_fallback(folder, image_dir, split_path)
    finally:
        random.setstate(state)


def weights_problems(name_or_path: str) -> List[str]:
    """MODEL.BACKBONE.NAME resolves to a weights file (named models: present and SHA-256 verified, once)."""
    if not name_or_path:
        return ["MODEL.BACKBONE.NAME is empty; set it in the config file or pass --backbone (e.g. ViT-B/32)"]
    try:
        resolve_backbone(name_or_path).weights_file()
    except (FileNotFoundError, ValueError) as err:
        return [error_message(err)]
    return []


def output_problems(output_dir: str) -> List[str]:
    """OUTPUT_DIR (or the log file it names, Dassl's .txt/.log rule) can be created and written; creates nothing."""
    folder = os.path.dirname(output_dir) if output_dir.endswith((".txt", ".log")) else output_dir
    existing = os.path.abspath(folder or ".")
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return [f"cannot write the output folder {output_dir}: {existing} is a file, not a folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"cannot write the output folder {output_dir}: no write permission on {existing}"]
    return []


def model_dir_problems(model_dir: str, load_epoch: Optional[int]) -> List[str]:
    """For --eval-only: ``--model-dir`` exists and a model folder in it holds the file --load-epoch asks for."""
    if not model_dir:
        return []
    if not os.path.isdir(model_dir):
        return [f"--model-dir {model_dir}: folder not found"]
    expected = checkpoint_name(load_epoch)
    folders = sorted(e.name for e in os.scandir(model_dir) if e.is_dir())
    if not any(os.path.isfile(os.path.join(model_dir, f, expected)) for f in folders):
        which = "--load-epoch not given, so the best model" if load_epoch is None else f"--load-epoch {load_epoch}"
        found = ", ".join(f"{f}/" for f in folders) or "no model folders"
        return [f"--model-dir {model_dir}: no model folder holds {expected} ({which}); found {found}"]
    return []


def preflight(cfg: CfgNode, eval_only: bool = False, model_dir: str = "", load_epoch: Optional[int] = None) -> str:
    """Run every check; raise ``PreflightError`` listing all problems found, else return the dataset folder
    ("" for a reader that finds its files its own way).

    Config keys read: USE_CUDA, TRAINER.NAME, the trainer's precision key, DATASET.ROOT, DATASET.NAME,
    DATASET.CSV, MODEL.BACKBONE.NAME, INPUT.*, OUTPUT_DIR, and what the trainer's ``check_cfg`` / ``check_layers``
    read.
    """
    dataset = dataset_check(cfg)
    problems = [
        *device_problems(cfg),
        *trainer_problems(cfg.TRAINER.NAME, cfg),
        *dataset.problems,
        *weights_problems(cfg.MODEL.BACKBONE.NAME),
        *backbone_problems(cfg),
        *output_problems(cfg.OUTPUT_DIR),
        *(model_dir_problems(model_dir, load_epoch) if eval_only else []),
    ]
    if problems:
        raise PreflightError(problems)
    return dataset.folder
