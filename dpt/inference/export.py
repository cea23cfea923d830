"""The export file: a trained run's learned tensors plus what rebuilds its classifier without the dataset.

Why: learned prompts are kilobytes to a few megabytes, but a run folder also needs its config and its dataset
(the class names come from it). An export is one safetensors file (no pickle: loading it runs no code) whose
tensors are named ``<part>/<key>`` (the registered parts and their state-dict keys, minus what the trainer
rebuilds from the class names) and whose header metadata holds ``format``, ``format_version`` and ``dpt``: a
JSON object with the trainer, the resolved config (yaml), the class names in label order, the template(s), the
backbone (name and identity; the frozen CLIP weights are referenced, never copied), the input size and
normalisation, and a model card (dataset, shots, seed, test accuracy from log.txt).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, NamedTuple, Optional, Sequence

import torch

from dpt.cache.atomic import atomic_path
from dpt.inference.run_files import LOG_FILE
from dpt.engine.trainer import TrainerX
from dpt.inference.run import deployed_epoch, load_run, weights_dir
from dpt.modeling.backbones.loader import CLIP_MODELS
from dpt.modeling.backbones.open_clip_loader import OPEN_CLIP_PREFIX
from dpt.reporting.logparse import parse_final_result

FORMAT = "dpt-export"
FORMAT_VERSION = 1

LearnedState = Dict[str, Dict[str, torch.Tensor]]  # part -> state-dict key -> tensor


class Export(NamedTuple):
    """A read export: ``meta`` (the ``dpt`` JSON object) and the learned ``state`` per part."""

    meta: Dict[str, Any]
    state: LearnedState


def learned_state(trainer: TrainerX) -> LearnedState:
    """Each registered part's state dict without the keys ``keys_to_skip_on_load`` names (rebuilt from the class
    names, e.g. the prompt learner's token prefix and suffix); tensors detached, on the CPU."""
    state = {}
    for name in trainer.get_model_names():
        skip = set(trainer.keys_to_skip_on_load(name))
        state[name] = {key: value.detach().cpu().contiguous().clone()
                       for key, value in trainer._models[name].state_dict().items() if key not in skip}
    return state


def model_card(run_dir: str, cfg) -> Dict[str, Any]:
    """Dataset, shots, seed, class subset and the final test accuracy (percent) the run's log.txt reports."""
    log = os.path.join(run_dir, LOG_FILE)
    result = parse_final_result(log) if os.path.isfile(log) else None
    return {
        "run": os.path.basename(os.path.normpath(run_dir)),
        "dataset": cfg.DATASET.NAME,
        "shots": cfg.DATASET.NUM_SHOTS,
        "seed": cfg.SEED,
        "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
        "test_accuracy": result.metrics.get("accuracy") if result is not None and result.finished else None,
    }


def export_meta(trainer: TrainerX, card: Dict[str, Any]) -> Dict[str, Any]:
    """The ``dpt`` metadata object of ``trainer`` (built and loaded)."""
    cfg = trainer.cfg
    return {
        "trainer": cfg.TRAINER.NAME,
        "config": cfg.dump(),
        "classnames": list(trainer.classnames),
        "templates": trainer.templates() if trainer.open_vocabulary else [],
        "backbone": {"name": cfg.MODEL.BACKBONE.NAME, "id": trainer.backbone_id},
        "input": {
            "size": list(cfg.INPUT.SIZE),
            "mean": list(cfg.INPUT.PIXEL_MEAN),
            "std": list(cfg.INPUT.PIXEL_STD),
            "interpolation": cfg.INPUT.INTERPOLATION,
            "transforms": list(cfg.INPUT.TRANSFORMS),
        },
        "card": card,
    }


def write_export(path: str, meta: Dict[str, Any], state: LearnedState) -> None:
    """Write the export atomically (the file appears whole or not at all)."""
    from safetensors.torch import save_file

    tensors = {f"{part}/{key}": value for part, values in state.items() for key, value in values.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "dpt": json.dumps(meta)}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=header)


def read_export(path: str) -> Export:
    """Read an export; a file that is not one, or one of a newer format version, is a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"export file not found: {path}")
    not_export = f"{path} is not a dpt-export file (expected a .safetensors file written by dpt-export)"
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{not_export}: {' '.join(str(err).split())[:120]}") from err
    if header.get("format") != FORMAT or "dpt" not in header:
        raise ValueError(f"{not_export}: its metadata has no format {FORMAT!r}")
    version = int(header.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} is a dpt-export of format version {version}, newer than this dpt reads "
                         f"({FORMAT_VERSION}); upgrade dpt-clip (pip install -U dpt-clip)")
    meta = json.loads(header["dpt"])
    state: LearnedState = {}
    for name, tensor in tensors.items():
        part, key = name.split("/", 1)
        state.setdefault(part, {})[key] = tensor
    return Export(meta, state)


def backbone_hint(backbone_id: str, name: str) -> str:
    """Where to get the backbone an export names."""
    if backbone_id in CLIP_MODELS:
        return f"the name {backbone_id!r} (weights: {CLIP_MODELS[backbone_id].url})"
    if backbone_id.startswith(OPEN_CLIP_PREFIX):
        return f"the name {backbone_id!r} (open_clip fetches it)"
    return f"the CLIP weights file of {backbone_id} (the run loaded it from {name})"


def export_run(run_dir: str, out: str, *, epoch: Optional[int] = None,
               classnames: Optional[Sequence[str]] = None, device: Optional[str] = None) -> Export:
    """Load ``run_dir`` (``load_run``) and write its export to ``out``; returns what was written."""
    trainer = load_run(run_dir, device=device, epoch=epoch, classnames=classnames)
    checkpoint = None  # zero-shot: nothing learned
    if trainer.get_model_names():
        loaded = deployed_epoch(trainer.cfg, weights_dir(run_dir), trainer.get_model_names(), epoch)
        checkpoint = "model-best" if loaded is None else f"epoch {loaded}"
    card = {**model_card(run_dir, trainer.cfg), "checkpoint": checkpoint}
    exported = Export(export_meta(trainer, card), learned_state(trainer))
    write_export(out, *exported)
    return exported
