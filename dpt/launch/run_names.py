"""The one rule naming a run-group folder from a method's variant and the user's overrides (scripts/*.sh call it).

A run-group folder is ``<variant><suffix>``:

- the variant is read from what the run really uses: each ``LABEL=KEY`` part shows KEY's value as the run resolves
  it (the last override of KEY, else the method yaml's value, else the part's default), so
  ``-- TRAINER.COOP.N_CTX 4`` names ``nctx4``, not ``nctx16_..._TRAINER.COOP.N_CTX-4``;
- the suffix lists the other overrides after ``--`` as ``_KEY-value`` (or ``_TAG`` when TAG is set); a value
  that is path-like or long becomes its short readable tail plus a stable digest (``weights.pt_1f0a33c2``), and
  when the folder name would still pass ``MAX_NAME`` bytes the overrides that do not fit become ``_+N_<digest of
  all overrides>``. The full overrides stay in config.yaml and log.txt.

Folders named by the earlier rule (the script's own variant, every override spelled out in full) are still
found: when such a folder exists and the new one does not, it is the run's folder (``run_folder``).

``python -m dpt.launch.run_names PARENT PART... [--config YAML] [--set KEY VALUE]... [--tag TAG] -- KEY VALUE...``
prints the run-group folder: PARTs are ``LABEL=KEY[:DEFAULT]``, ``LABEL?KEY`` (the whole variant is LABEL when KEY
is set to a non-empty value) or literal text; ``--set`` are the script's own overrides (they never name the
suffix), the pairs after ``--`` the user's. Imports neither torch nor the package's config (scripts call it for
every job the launcher asks about).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import yaml

MAX_NAME = 160  # bytes of a run-group folder name: well under the 255 of common file systems
MAX_VALUE = 32  # bytes of an override value shown in full
DIGEST_CHARS = 8
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+-")


def sanitize(value: str) -> str:
    """Every byte outside ``A-Za-z0-9.+-`` as ``_`` (the earlier rule's ``tr -c 'A-Za-z0-9.+-' '_'``)."""
    return "".join(chr(b) if b in _SAFE else "_" for b in value.encode())


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def short_value(value: str) -> str:
    """``value`` sanitized; a path-like or long one as its last readable part and a digest of the whole."""
    plain = sanitize(value)
    if "/" not in value and "\\" not in value and len(plain) <= MAX_VALUE:
        return plain
    tail = sanitize(os.path.basename(value.rstrip("/\\")) or value)[-(MAX_VALUE - DIGEST_CHARS - 1):].strip("_")
    return f"{tail}_{digest(value)}" if tail else digest(value)


def _pairs(opts: Sequence[str]) -> List[tuple]:
    if len(opts) % 2:
        raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {' '.join(opts)}")
    return list(zip(opts[0::2], opts[1::2]))


def _flatten(mapping: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_set(value: str) -> bool:
    return value.strip() not in ("", '""', "''")


def variant_name(parts: Sequence[str], values: Dict[str, str]) -> str:
    """The variant from PART specs (see the module docstring) and the resolved ``values`` (key -> text)."""
    for part in parts:
        if "?" in part and "=" not in part:
            label, key = part.split("?", 1)
            if _is_set(values.get(key, "")):
                return label
    shown = []
    for part in parts:
        if "=" in part:
            label, spec = part.split("=", 1)
            key, _, default = spec.partition(":")
            shown.append(label + short_value(values.get(key, default)))
        elif "?" not in part:
            shown.append(part)
    return "_".join(shown)


def variant_keys(parts: Sequence[str]) -> List[str]:
    """The config keys the variant shows (their overrides name the variant, not the suffix)."""
    keys = [p.split("=", 1)[1].partition(":")[0] for p in parts if "=" in p]
    return keys + [p.split("?", 1)[1] for p in parts if "?" in p and "=" not in p]


def resolve(config: Optional[str], script_opts: Sequence[str], user_opts: Sequence[str]) -> Dict[str, str]:
    """Key -> value text as the run resolves them: the yaml, then the script's overrides, then the user's."""
    values: Dict[str, str] = {}
    if config and os.path.isfile(config):
        with open(config) as f:
            values.update({k: str(v) for k, v in _flatten(yaml.safe_load(f) or {}).items()})
    for key, value in _pairs(script_opts) + _pairs(user_opts):
        values[key] = value
    return values


def override_suffix(user_opts: Sequence[str], skip: Sequence[str], room: int) -> str:
    """``_KEY-value`` per override not in ``skip``, within ``room`` bytes (the rest as ``_+N_<digest>``)."""
    pairs = [(k, v) for k, v in _pairs(user_opts) if k not in skip]
    shown = [f"_{sanitize(k)}-{short_value(v)}" for k, v in pairs]
    if len("".join(shown)) <= room:
        return "".join(shown)
    kept: List[str] = []
    for part in shown:
        left = len(shown) - len(kept) - 1
        if len("".join(kept) + part) + len(f"_+{left}_") + DIGEST_CHARS > room:
            break
        kept.append(part)
    return "".join(kept) + f"_+{len(shown) - len(kept)}_{digest(' '.join(user_opts))}"


def group_name(parts: Sequence[str], config: Optional[str] = None, script_opts: Sequence[str] = (),
               user_opts: Sequence[str] = (), tag: str = "") -> str:
    """``<variant><suffix>`` by the rule above (``tag``: the suffix is ``_<tag>`` instead of the overrides)."""
    variant = variant_name(parts, resolve(config, script_opts, user_opts))
    room = MAX_NAME - len(variant)
    if tag:
        return variant + ("_" + short_value(tag))[:room]
    return variant + override_suffix(user_opts, variant_keys(parts), room)


def legacy_group_name(parts: Sequence[str], config: Optional[str] = None, script_opts: Sequence[str] = (),
                      user_opts: Sequence[str] = (), tag: str = "") -> str:
    """The earlier rule: the variant without the user's overrides, then every override in full."""
    variant = variant_name(parts, resolve(config, script_opts, ()))
    if tag:
        return f"{variant}_{tag}"
    return variant + "".join(f"_{k}-{sanitize(v)}" for k, v in _pairs(user_opts))


def run_folder(parent: str, parts: Sequence[str], config: Optional[str] = None, script_opts: Sequence[str] = (),
               user_opts: Sequence[str] = (), tag: str = "") -> str:
    """``parent/<group name>``, or the folder the earlier rule named when only that one exists."""
    new = os.path.join(parent, group_name(parts, config, script_opts, user_opts, tag))
    old = os.path.join(parent, legacy_group_name(parts, config, script_opts, user_opts, tag))
    if old != new and not os.path.isdir(new) and len(os.path.basename(old).encode()) < 256 and os.path.isdir(old):
        return old
    return new


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dpt.launch.run_names",
                                     description="Print the run-group folder of a method script's run.")
    parser.add_argument("parent", help="the folder holding the run groups")
    parser.add_argument("parts", nargs="*", help="LABEL=KEY[:DEFAULT], LABEL?KEY or literal text")
    parser.add_argument("--config", default="", help="the method yaml (values of the variant's keys)")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="an override the script itself passes")
    parser.add_argument("--tag", default="", help="the suffix instead of the overrides (TAG)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    try:
        print(run_folder(args.parent, args.parts, args.config, [x for pair in args.set for x in pair],
                         argv[split + 1:], args.tag))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
