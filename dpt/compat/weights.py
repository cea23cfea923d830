"""Learned weights for evaluation and initialisation: our checkpoints, or Dassl-written ones (official runs).

How a file is recognised as Dassl-written: our checkpoints always carry a ``meta`` dict and load with
``weights_only=True``. A file that ``weights_only=True`` refuses (Dassl pickles scheduler and optimiser objects,
docs/reference.md 4.4) is read again with the restricted unpickler (``restricted_pickle.py``: nothing in it is
imported or run); such a file, or one that loads but has no ``meta`` (a Dassl run without pickled objects, a plain
state dict), is foreign: only ``state_dict`` and ``epoch`` are kept, official parameter names become ours (the
part's ``OfficialNames``, declared by the trainer) and fp16 tensors fp32. Resuming training reads our own files
only (``checkpoint.load_checkpoint``).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import torch
from torch import nn

from dpt.compat import restricted_pickle
from dpt.compat.names import OfficialNames

State = Dict[str, torch.Tensor]
CLASS_COUNT = "classes"  # a layout fact reported, never compared (class-dependent tensors are not loaded)


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> State:
    """Drop DataParallel's ``module.`` key prefix."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


@dataclass(frozen=True)
class Weights:
    """One part's checkpoint: ``state_dict`` under our names, its ``epoch`` (None when the file has none),
    our ``meta`` ({} for foreign files) and whether the file was ``foreign`` (Dassl-written)."""

    state_dict: State
    epoch: Optional[int]
    meta: Dict[str, Any]
    foreign: bool


def _check_torch_file(path: str) -> None:
    """A torch.save zip archive that is not TorchScript (torch.load would hand that to torch.jit.load), or a
    pre-1.6 torch file (a pickle stream); anything else is not a checkpoint."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") for name in archive.namelist()):
                raise ValueError(f"{path} is a TorchScript archive, not a checkpoint")
        return
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":  # pickle protocol >= 2 opcode
            raise ValueError(f"{path} is not a checkpoint: not a file written by torch.save")


def _load_restricted(path: str) -> Any:
    """torch.load through the restricted unpickler; zip archives only (``_check_torch_file`` ran first)."""
    if not zipfile.is_zipfile(path):
        raise RuntimeError(f"cannot load checkpoint {path}: a pre-1.6 torch file holding pickled objects; only "
                           f"zip-format files (torch >= 1.6) are read without running their pickles")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except Exception as err:  # a corrupt archive, a storage-less tensor, ...
        raise RuntimeError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err


def _describe(value: Any) -> str:
    placeholder = value if isinstance(value, type) else type(value)
    if issubclass(placeholder, restricted_pickle.Placeholder):
        return f"a pickled {placeholder.pickled_global} object (never run)"
    return f"a {type(value).__name__}"


def _state_and_epoch(raw: Any, path: str) -> Tuple[State, Optional[int]]:
    """The tensors and epoch of a Dassl checkpoint dict (or of a plain state dict, as MODEL.INIT_WEIGHTS allows)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} is not a checkpoint: expected a dict with 'state_dict' and 'epoch', found "
                         f"{_describe(raw)}")
    state = raw["state_dict"] if "state_dict" in raw else raw
    where = "'state_dict'" if "state_dict" in raw else "the file"
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path} is not a checkpoint: {where} is {_describe(state)}, not a dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path} is not a checkpoint: {where} entry {key!r} is {_describe(value)}, not a tensor")
    epoch = raw.get("epoch") if "state_dict" in raw else None
    if epoch is not None and not isinstance(epoch, int):
        raise ValueError(f"{path} is not a checkpoint: 'epoch' is {_describe(epoch)}, not an integer")
    return dict(state), epoch


def read_weights(path: str, names: Optional[OfficialNames] = None) -> Weights:
    """Read the checkpoint at ``path``, ours or Dassl-written; ``names``: the official names of its part (none:
    the same as ours)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _check_torch_file(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        foreign = not (isinstance(raw, Mapping) and "meta" in raw)
    except pickle.UnpicklingError:  # a pickled object weights_only refuses (or not a pickle at all)
        raw, foreign = _load_restricted(path), True
    except Exception as err:  # truncated archive, not a torch file, ...
        raise RuntimeError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err
    state, epoch = _state_and_epoch(raw, path)
    state = strip_module_prefix(state)
    if not foreign:
        return Weights(state, epoch, dict(raw["meta"] or {}), foreign=False)
    state = names.to_ours(state) if names is not None else state
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Weights(state, epoch, {}, foreign=True)


def check_layout(where: str, found: Mapping[str, Any], expected: Mapping[str, Any],
                 explain: Optional[Mapping[str, str]] = None) -> None:
    """Refuse, in one line naming both values, a checkpoint whose shapes say it was built with another config.

    ``found`` / ``expected``: facts (config key -> value) the trainer read from the shapes of the checkpoint's
    and this run's parts; ``CLASS_COUNT`` is informational (class-dependent tensors are not loaded).
    ``explain``: fact -> the trainer's own message for a mismatch (a format string of ``where``, ``found`` and
    ``expected``).
    """
    for key, value in found.items():
        if key == CLASS_COUNT or key not in expected or expected[key] == value:
            continue
        if explain and key in explain:
            raise ValueError(explain[key].format(where=where, found=value, expected=expected[key]))
        raise ValueError(f"{where} holds a model with {key} = {value}, but this run's config has "
                         f"{key} = {expected[key]}")


def layout_text(facts: Mapping[str, Any]) -> str:
    """``TRAINER.COOP.N_CTX = 16, ..., classes = 37`` for log lines."""
    return ", ".join(f"{key} = {value}" for key, value in facts.items())


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], skip: Iterable[str], path: str,
              what: str) -> None:
    """Load ``state`` minus the ``skip`` keys into ``module``; any other missing, unexpected or misshapen key
    is a one-line error (e.g. a checkpoint of another method)."""
    skip = set(skip)
    state = {k: v for k, v in state.items() if k not in skip}
    own = module.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise ValueError(f"checkpoint {path}: {key} has shape {list(value.shape)}, but {what} of this run has "
                             f"{list(own[key].shape)}")
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or set(missing) - skip:
        raise KeyError(f"checkpoint {path} does not fit {what}: missing {sorted(set(missing) - skip)}, unexpected "
                       f"{sorted(unexpected)} (a checkpoint of another method?)")
