"""Build a run's configuration from the defaults (dpt/config/defaults.py) with yacs semantics (docs/reference.md 1.1).

``setup_cfg`` merges in Dassl's order (defaults -> dataset yaml -> method yaml -> CLI flags -> ``opts``), checks
choices and the template, fits the precision to the machine and freezes; nothing writes to the config after that.
"""
from __future__ import annotations

import argparse
import difflib
import os
from ast import literal_eval
from typing import Iterable, List, Optional, Sequence

import torch
import yaml
from yacs.config import CfgNode as CN

from dpt.config.defaults import CHOICES, get_cfg_default


def _all_keys(node: CN, prefix: str = "") -> List[str]:
    keys = []
    for k, v in node.items():
        full = prefix + k
        keys.extend(_all_keys(v, full + ".") if isinstance(v, CN) else [full])
    return keys


def _closest_key_error(key: str, source: str) -> KeyError:
    close = difflib.get_close_matches(key, _all_keys(get_cfg_default()), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return KeyError(f"unknown config key {key!r} in {source}{hint}")


def _coerce(value):
    """yacs semantics: strings go through literal_eval, falling back to the string."""
    if isinstance(value, str):
        try:
            return literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _set(cfg: CN, key: str, value, source: str) -> None:
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, CN) or part not in node:
            raise _closest_key_error(key, source)
        node = node[part]
    leaf = parts[-1]
    if not isinstance(node, CN) or leaf not in node or isinstance(node[leaf], CN):
        raise _closest_key_error(key, source)
    default = node[leaf]
    value = _coerce(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        value = type(default)(value)
    elif type(value) is not type(default):
        raise ValueError(
            f"config key {key!r} in {source}: expected {type(default).__name__} "
            f"(like {default!r}), got {type(value).__name__} {value!r}"
        )
    node[leaf] = value


def _flatten(mapping: dict, prefix: str = "") -> Iterable:
    for k, v in mapping.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def merge_from_file(cfg: CN, path: str) -> None:
    """Merge a yaml file; unknown keys and wrong types raise naming the file and key."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as f:
        loaded = yaml.safe_load(f) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path}: expected a mapping of keys, got {type(loaded).__name__}")
    for key, value in _flatten(loaded):
        _set(cfg, key, value, path)


def merge_from_list(cfg: CN, opts: Sequence[str]) -> None:
    """Merge ``KEY VALUE ...`` pairs as given on the command line."""
    if len(opts) % 2:
        raise ValueError(f"config overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
    for key, value in zip(opts[0::2], opts[1::2]):
        _set(cfg, key, value, "command-line opts")


def _check_choices(cfg: CN) -> None:
    for key, valid in CHOICES.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        if node not in valid:
            raise ValueError(f"config key {key!r}: expected one of {', '.join(valid)}, got {node!r}")


def _check_template(cfg: CN) -> None:
    template = cfg.DATASET.TEMPLATE
    if template and template.count("{}") != 1:
        raise ValueError(
            f"config key 'DATASET.TEMPLATE': expected one '{{}}' where the class name goes, got {template!r}"
        )


def reset_cfg(cfg: CN, args: argparse.Namespace) -> None:
    """Copy truthy CLI flags into the config, as CoOp's train.py does (so ``--seed 0`` is ignored)."""
    mapping = {
        "root": "DATASET.ROOT",
        "output_dir": "OUTPUT_DIR",
        "resume": "RESUME",
        "seed": "SEED",
        "source_domains": "DATASET.SOURCE_DOMAINS",
        "target_domains": "DATASET.TARGET_DOMAINS",
        "transforms": "INPUT.TRANSFORMS",
        "trainer": "TRAINER.NAME",
        "backbone": "MODEL.BACKBONE.NAME",
        "head": "MODEL.HEAD.NAME",
    }
    for attr, key in mapping.items():
        value = getattr(args, attr, None)
        if value:
            _set(cfg, key, value, f"--{attr.replace('_', '-')}")


# Precision keys; fp16 (the CoOp configs' default) is GPU-only, so setup_cfg runs it as fp32 on a machine without CUDA.
PRECISION_KEYS = ("TRAINER.COOP.PREC", "TRAINER.COCOOP.PREC")


def fp16_to_fp32_without_gpu(cfg: CN) -> List[str]:
    """Set every fp16 precision key to fp32 when no CUDA GPU will be used; returns the one-line note (or none).

    Why: ``bash scripts/dpt.sh DATASET SHOTS`` must run wherever the project installs, and resolving before the
    config is frozen makes log.txt and config.yaml show the precision actually used.
    """
    if cfg.USE_CUDA and torch.cuda.is_available():
        return []
    changed = []
    for key in PRECISION_KEYS:
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node[part]
        if node[leaf] == "fp16":
            node[leaf] = "fp32"
            changed.append(key)
    if not changed:
        return []
    why = "USE_CUDA is False" if not cfg.USE_CUDA else "none found"
    return [f"Note: {' and '.join(changed)} fp16 needs a CUDA GPU; {why}, running in fp32"]


def setup_cfg(args: argparse.Namespace, notes: Optional[List[str]] = None) -> CN:
    """Defaults -> dataset yaml -> method yaml -> CLI flags -> opts, checked, fitted to the machine and frozen.

    Args:
        notes: receives one line per adjustment made for this machine (fp16 without a GPU runs as fp32);
            None prints them instead.
    """
    cfg = get_cfg_default()
    if getattr(args, "dataset_config_file", None):
        merge_from_file(cfg, args.dataset_config_file)
    if getattr(args, "config_file", None):
        merge_from_file(cfg, args.config_file)
    reset_cfg(cfg, args)
    merge_from_list(cfg, list(getattr(args, "opts", None) or []))
    _check_choices(cfg)
    _check_template(cfg)
    for line in fp16_to_fp32_without_gpu(cfg):
        if notes is None:
            print(line)
        else:
            notes.append(line)
    cfg.freeze()
    return cfg


def save_cfg(cfg: CN, path: str) -> None:
    """Write the resolved config as yaml, atomically; ``--config-file`` on it recreates the run."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(cfg.dump())
    os.replace(tmp, path)
