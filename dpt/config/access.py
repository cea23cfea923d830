"""Dotted config keys (``"TRAINER.COOP.N_CTX"``): the one walk from a key to its value.

Why: configs, run files and remedies name keys as dotted strings (as yacs opts and CoOp's logs do); reading,
writing and testing for one goes through these three functions, on a yacs ``CfgNode`` or a plain dict (a
loaded ``config.yaml``) alike.
"""
from __future__ import annotations

from typing import Any, Mapping, MutableMapping, Tuple

_MISSING = object()


def _walk(cfg: Mapping, key: str) -> Tuple[Any, str]:
    """(parent node of the leaf, leaf name); KeyError naming ``key`` if a parent is missing or not a node."""
    *parents, leaf = key.split(".")
    node: Any = cfg
    for part in parents:
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"config key {key!r} not found (no {part!r} node)")
        node = node[part]
    if not isinstance(node, Mapping):
        raise KeyError(f"config key {key!r} not found ({'.'.join(parents)} is a value, not a node)")
    return node, leaf


def get_key(cfg: Mapping, key: str, default: Any = _MISSING) -> Any:
    """The value at ``key``; ``default`` if given and the key is missing, else KeyError naming the key."""
    try:
        node, leaf = _walk(cfg, key)
        if leaf not in node:
            raise KeyError(f"config key {key!r} not found")
    except KeyError:
        if default is _MISSING:
            raise
        return default
    return node[leaf]


def has_key(cfg: Mapping, key: str) -> bool:
    """Whether ``key`` names a node or value of ``cfg``."""
    absent = object()
    return get_key(cfg, key, absent) is not absent


def set_key(cfg: MutableMapping, key: str, value: Any) -> None:
    """Set the existing ``key`` to ``value``; KeyError naming a missing key, AttributeError on a frozen config
    (yacs checks frozenness only on attribute writes, so item writes are refused here)."""
    node, leaf = _walk(cfg, key)
    if leaf not in node:
        raise KeyError(f"config key {key!r} not found")
    if callable(getattr(node, "is_frozen", None)) and node.is_frozen():
        raise AttributeError(f"config key {key!r}: the config is frozen (build a new one with build_config)")
    node[leaf] = value
