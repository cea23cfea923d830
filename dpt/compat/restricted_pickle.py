"""A ``pickle_module`` for ``torch.load`` that rebuilds tensors and plain containers and never runs pickled code.

Why: checkpoints written by Dassl (runs of the official CoOp, CoCoOp and DPT code, CoOp's released models)
pickle whole scheduler and optimiser objects (the warm-up scheduler pickles its successor, which holds the
optimiser), so ``weights_only=True`` refuses them, while ordinary unpickling would import and call whatever
the file names. Here a short allow-list rebuilds tensors, dtypes and ordered dicts; every other global becomes
an inert ``Placeholder`` subclass that is never imported: calling it (REDUCE), creating it (NEWOBJ), building
it (BUILD) or filling it (SETITEMS, APPENDS) only records the arguments. Only ``state_dict`` and ``epoch`` of
such a file are used afterwards (``dpt/compat/weights.py``). Storages are rebuilt by torch's own
``persistent_load``; TorchScript archives are refused by the caller before ``torch.load`` sees them.
"""
from __future__ import annotations

import codecs
import pickle
from collections import OrderedDict
from typing import Any, Callable, Dict, Tuple

import torch


class Placeholder:
    """Stands for a pickled global that is never imported; an instance only records what the pickle passed."""

    pickled_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ recorded the arguments; nothing else may happen

    def __setstate__(self, state: Any) -> None:  # BUILD
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S)
        self.items.append((key, value))

    def append(self, value: Any) -> None:  # APPEND
        self.items.append(value)

    def extend(self, values: Any) -> None:  # APPENDS
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_global}, not loaded>"


def _tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch's ``_rebuild_tensor_v2`` without the pickled hooks and metadata (a tensor, nothing attached)."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError(f"tensor without a storage: {type(storage).__name__}")
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(storage, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError(f"tensor without a storage: {type(storage).__name__}, {type(dtype).__name__}")
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride, False, OrderedDict(), dtype)


def _parameter(data, *_: Any):
    """An ``nn.Parameter`` comes back as its plain tensor (requires_grad, hooks and attributes dropped)."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter without a tensor: {type(data).__name__}")
    return data


def _from_type(func: Callable, new_type: Any, args: Tuple, state: Any):
    """A tensor subclass or a tensor with attributes: the tensor only (``func`` is itself an allowed global)."""
    return func(*args)


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 ``bytes`` arrive as ``_codecs.encode(text, "latin1")``; no other codec is looked up (imported)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: only latin1 rebuilds bytes")
    return codecs.encode(text, "latin1")


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1,
}
_PLACEHOLDERS: Dict[Tuple[str, str], type] = {}


def resolve_global(module: str, name: str) -> Any:
    """The allowed object for ``module.name``, a torch dtype, or the inert placeholder class standing for it."""
    if (module, name) in _ALLOWED:
        return _ALLOWED[(module, name)]
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    key = (module, name)
    if key not in _PLACEHOLDERS:
        label = f"{module}.{name}"
        _PLACEHOLDERS[key] = type("Placeholder", (Placeholder,), {"pickled_global": label})
    return _PLACEHOLDERS[key]


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose every global lookup (GLOBAL, STACK_GLOBAL, INST, extension codes) is resolved by
    ``resolve_global``; torch's ``UnpicklerWrapper`` subclasses it and adds its storage types and persistent_load."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


def load(file, **kwargs: Any) -> Any:
    """Unpickle one object from ``file`` through the restricted ``Unpickler`` (torch reads legacy headers so)."""
    return Unpickler(file, **kwargs).load()
