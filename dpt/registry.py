"""Name -> class registries: the only way trainers and datasets are created.

Why here, below ``engine`` and ``data``: both look names up, neither imports the other for it. Each registry
names the package whose modules register into it and imports that package (by name) the first time it is
read, so ``build_trainer`` / ``build_dataset`` see every entry without importing the plug-in packages
themselves (docs/design.md "Layout": dependencies point one way).
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, List, Optional, TypeVar

T = TypeVar("T")


class Registry:
    """Maps registered names to classes; refuses duplicates, explains unknown names.

    Args:
        kind: what is registered ("trainer", "dataset"), used in error messages.
        package: the package whose import registers every built-in entry ("dpt.trainers").
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: Dict[str, Callable] = {}

    def register(self, obj: Optional[T] = None, name: Optional[str] = None):
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def _add(item: T) -> T:
            key = name or item.__name__
            if key in self._entries:
                raise KeyError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = item
            return item

        return _add if obj is None else _add(obj)

    def _populate(self) -> None:
        importlib.import_module(self.package)

    def names(self) -> List[str]:
        self._populate()
        return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        self._populate()
        return key in self._entries

    def get(self, key: str) -> Callable:
        """Return the entry; an unknown name raises listing the valid ones and the closest."""
        self._populate()
        if key not in self._entries:
            raise KeyError(unknown_name_message(self.kind, key, self.names()))
        return self._entries[key]


def unknown_name_message(kind: str, key: str, valid: List[str]) -> str:
    """One-line message for an unknown name: the valid ones plus the closest match."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {key!r}; valid: {', '.join(valid)}{hint}"


TRAINER_REGISTRY = Registry("trainer", "dpt.trainers")
DATASET_REGISTRY = Registry("dataset", "dpt.datasets")


def precision_key(trainer_name: str) -> str:
    """The config key holding trainer ``trainer_name``'s precision (its class's ``precision_key``).

    Raises KeyError for an unregistered name (listing the valid ones).
    """
    return TRAINER_REGISTRY.get(trainer_name).precision_key
