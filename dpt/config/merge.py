"""Build a run's configuration from the defaults (dpt/config/defaults.py) with yacs semantics (docs/reference.md 1.1).

``build_config`` merges in Dassl's order (defaults -> config files -> run flags -> ``opts``), checks choices and
the template, fits the precision to the machine and freezes; nothing writes to the config after that.
``setup_cfg`` is train.py's adapter: it reads the files and flags off CoOp's argparse Namespace.
"""
from __future__ import annotations

import argparse
import difflib
import os
from ast import literal_eval
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
import yaml
from yacs.config import CfgNode as CN

from dpt.cache.atomic import write_text_atomic
from dpt.config.access import get_key, has_key, set_key
from dpt.config.defaults import CHOICES, get_cfg_default
from dpt.registry import TRAINER_REGISTRY, precision_key


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
    if not has_key(cfg, key) or isinstance(get_key(cfg, key), CN):
        raise _closest_key_error(key, source)
    default = get_key(cfg, key)
    raw, value = value, _coerce(value)
    if isinstance(default, str) and isinstance(raw, str) and not isinstance(value, str):
        value = raw  # a string key keeps its text: DATASET.TEMPLATE "{}" is a template, not an empty dict
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        value = type(default)(value)
    elif type(value) is not type(default):
        raise ValueError(
            f"config key {key!r} in {source}: expected {type(default).__name__} "
            f"(like {default!r}), got {type(value).__name__} {value!r}"
        )
    set_key(cfg, key, value)


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
        value = get_key(cfg, key)
        if value not in valid:
            raise ValueError(f"config key {key!r}: expected one of {', '.join(valid)}, got {value!r}")


def _check_template(cfg: CN) -> None:
    template = cfg.DATASET.TEMPLATE
    if template and template.count("{}") != 1:
        raise ValueError(
            f"config key 'DATASET.TEMPLATE': expected one '{{}}' where the class name goes, got {template!r}"
        )


# train.py's flags (as ``build_config`` keywords) and the keys they set, as CoOp's ``reset_cfg`` maps them.
FLAG_KEYS = {
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


def _apply_flags(cfg: CN, flags: Dict[str, Any]) -> None:
    """Copy the truthy flags into the config, as CoOp's train.py does (so ``--seed 0`` is ignored)."""
    unknown = sorted(set(flags) - set(FLAG_KEYS))
    if unknown:
        raise TypeError(f"build_config: unknown flag {unknown[0]!r}; expected one of {', '.join(FLAG_KEYS)}")
    for name, key in FLAG_KEYS.items():
        value = flags.get(name)
        if value:
            _set(cfg, key, value, f"--{name.replace('_', '-')}")


def fp16_to_fp32_without_gpu(cfg: CN) -> List[str]:
    """Set the trainer's precision key (``dpt.registry.precision_key``) to fp32 when it is fp16 and no CUDA GPU
    will be used; returns the one-line note (or none). An unknown TRAINER.NAME is left to the trainer build.

    Why: ``bash scripts/dpt.sh DATASET SHOTS`` must run wherever the project installs, and resolving before the
    config is frozen makes log.txt and config.yaml show the precision actually used.
    """
    if cfg.USE_CUDA and torch.cuda.is_available():
        return []
    if cfg.TRAINER.NAME not in TRAINER_REGISTRY:
        return []
    key = precision_key(cfg.TRAINER.NAME)
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    if node[leaf] != "fp16":
        return []
    node[leaf] = "fp32"
    why = "USE_CUDA is False" if not cfg.USE_CUDA else "none found"
    return [f"Note: {key} fp16 needs a CUDA GPU; {why}, running in fp32"]


def build_config(config_files: Sequence[str] = (), opts: Sequence[str] = (), notes: Optional[List[str]] = None,
                 **flags: Any) -> CN:
    """Defaults -> each of ``config_files`` in order -> ``flags`` -> ``opts``, checked, fitted to the machine, frozen.

    Args:
        config_files: yaml files, merged in order (train.py: the dataset's, then the method's).
        opts: ``KEY VALUE ...`` overrides, as given after train.py's flags.
        notes: receives one line per adjustment made for this machine (fp16 without a GPU runs as fp32);
            None prints them instead.
        flags: train.py's flags by keyword (``FLAG_KEYS``: root, output_dir, seed, trainer, backbone, ...);
            falsy values are ignored, as in CoOp (``seed=0`` keeps the config's SEED).
    Example: ``build_config(["configs/datasets/eurosat.yaml", "configs/trainers/DPT/vit_b32.yaml"],
    ["DATASET.NUM_SHOTS", "16"], root="data", trainer="DPT", seed=1, output_dir="output/run")``.
    """
    cfg = get_cfg_default()
    for path in config_files:
        merge_from_file(cfg, path)
    _apply_flags(cfg, flags)
    merge_from_list(cfg, list(opts))
    _check_choices(cfg)
    _check_template(cfg)
    for line in fp16_to_fp32_without_gpu(cfg):
        if notes is None:
            print(line)
        else:
            notes.append(line)
    cfg.freeze()
    return cfg


def setup_cfg(args: argparse.Namespace, notes: Optional[List[str]] = None) -> CN:
    """``build_config`` from train.py's Namespace: ``--dataset-config-file`` then ``--config-file``, the flags of
    ``FLAG_KEYS`` and the trailing opts (attributes it lacks count as not given)."""
    files = [getattr(args, name, "") for name in ("dataset_config_file", "config_file")]
    flags = {name: getattr(args, name, None) for name in FLAG_KEYS}
    return build_config([f for f in files if f], list(getattr(args, "opts", None) or []), notes, **flags)


def save_cfg(cfg: CN, path: str) -> None:
    """Write the resolved config as yaml, atomically; ``--config-file`` on it recreates the run."""
    write_text_atomic(cfg.dump(), path)
