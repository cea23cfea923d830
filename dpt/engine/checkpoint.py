"""Checkpoints in Dassl's layout (docs/reference.md 4.4), written atomically and loaded without unpickling code."""
from __future__ import annotations

import os
import pickle
import random
import re
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from dpt.cache.atomic import save_torch_atomic, temporary_target, write_text_atomic

CHECKPOINT_POINTER = "checkpoint"
BEST_NAME = "model-best.pth.tar"
# The files a run writes through a temporary file (dpt.cache.atomic): checkpoints, their pointer, config.yaml and
# cmat.pt. Only temporaries of these names are ever removed as leftovers.
_RUN_FILES = re.compile(r"model\.pth\.tar-\d+|model-best\.pth\.tar|checkpoint|config\.yaml|cmat\.pt")


def checkpoint_name(epoch: Optional[int]) -> str:
    """``model.pth.tar-N`` for an epoch count N, ``model-best.pth.tar`` for None."""
    return BEST_NAME if epoch is None else f"model.pth.tar-{epoch}"


def save_checkpoint(state: Dict[str, Any], model_dir: str, is_best: bool = False) -> str:
    """Save ``state`` under ``model_dir`` and point the ``checkpoint`` file at it.

    Written to a temporary file and renamed, so a kill or a full disk never leaves a file that fails to load
    nor damages the previous checkpoint. Returns the path written.
    """
    os.makedirs(model_dir, exist_ok=True)
    fname = BEST_NAME if is_best else checkpoint_name(state["epoch"])
    path = os.path.join(model_dir, fname)
    save_torch_atomic(state, path)
    write_text_atomic(fname + "\n", os.path.join(model_dir, CHECKPOINT_POINTER))
    print(f"Checkpoint saved to {path}")
    return path


def remove_stale_temporaries(run_dir: str) -> List[str]:
    """Delete the ``.<name>.<random>.tmp`` files a killed save left in ``run_dir`` and its model folders; returns them.

    Why: a kill between writing a temporary file and renaming it leaves the (possibly huge) temporary file
    behind; the next start of the same run removes it. Call before this run saves anything.
    """
    if not os.path.isdir(run_dir):
        return []
    folders = [run_dir] + [e.path for e in os.scandir(run_dir) if e.is_dir()]
    removed = []
    for folder in folders:
        for entry in os.scandir(folder):
            target = temporary_target(entry.name)
            if entry.is_file() and target is not None and _RUN_FILES.fullmatch(target):
                os.remove(entry.path)
                removed.append(entry.path)
    return sorted(removed)


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # pickled objects: Dassl's schedulers, or anything else
        raise RuntimeError(
            f"cannot load checkpoint {path}: it holds pickled objects (Dassl / the official code writes them); "
            f"such a run is evaluated with --eval-only --model-dir or converted with dpt-convert, not resumed"
        ) from err
    except Exception as err:  # truncated zip, ...
        raise RuntimeError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err


def latest_checkpoint(model_dir: str) -> Optional[str]:
    """The file named by ``model_dir/checkpoint``, or None when there is none."""
    pointer = os.path.join(model_dir, CHECKPOINT_POINTER)
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        name = f.readline().strip()
    path = os.path.join(model_dir, name)
    return path if name and os.path.isfile(path) else None


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain values (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), np_state[2], np_state[3], np_state[4]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def same_epoch_checkpoints(directory: str, names: List[str], paths: List[str]) -> List[str]:
    """One checkpoint per model, all of one epoch (the latest every model has).

    Why: models are saved one after another, so a kill between two saves leaves pointers naming different
    epochs; resuming from a mix would not continue the interrupted run.
    """
    files = [os.path.basename(p) for p in paths]
    if len(set(files)) == 1:
        return paths
    matches = [re.fullmatch(r"model\.pth\.tar-(\d+)", f) for f in files]
    common: List[str] = []
    if all(matches):
        epoch = min(int(m.group(1)) for m in matches)
        common = [os.path.join(directory, n, f"model.pth.tar-{epoch}") for n in names]
    if not common or not all(os.path.isfile(p) for p in common):
        listed = ", ".join(f"{n}/{f}" for n, f in zip(names, files))
        raise ValueError(
            f"checkpoints in {directory} are of different epochs ({listed}) and no earlier epoch is saved for all "
            f"models; delete the newer files or the folder to restart"
        )
    print(f"Checkpoints of different epochs found ({', '.join(files)}), an interrupted save: "
          f"resuming every model from {os.path.basename(common[0])}")
    return common
