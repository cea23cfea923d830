"""Walk an output tree into ``Run`` records: one per run folder (or expected, absent seed) with its final numbers.

Layouts read (docs/reference.md 6; written by ``scripts/*.sh``):

- trained: ``<root>/<dataset>/<Trainer>/<cfg>_<N>shots/<variant>/seed<S>/log.txt``
- zero-shot: ``<root>/ZeroshotCLIP/<cfg>/<dataset>/log.txt`` (shots 0, no seeds)
- evaluations of ImageNet runs (domain generalisation, cross-dataset):
  ``<root>/evaluation/<Trainer>/<cfg>_<N>shots/<variant>/<dataset>/seed<S>/log.txt``
- official CoCoOp (scripts/cocoop/xd_*.sh): the same two trained layouts without the ``<variant>`` level
- cross-dataset from another source: ``<root>/xd/<source>/<Trainer>/<cfg>_<N>shots/<variant>/<dataset>/seed<S>/``
- base-to-novel (CoCoOp's layout): ``<root>/base2new/{train_base,test_new}/<dataset>/shots_<N>/<Trainer>/<cfg>/
  seed<S>/log.txt``; zero-shot CLIP has its log.txt in ``<cfg>/`` itself (no seeds)
- a run folder with any name, as the official DPT script writes (``--output-dir ./output``): ``<root>/log.txt``
  or ``<root>/<name>/log.txt``, identified by the arguments and config its log prints (``logged_run.py``)

``<variant>`` is whatever name the scripts gave the run group (``dpt/launch/run_names.py``: this rule's names and
the earlier rule's are read alike, as folders).

The official DPT code registers CoOp as ``MyCoOp`` (docs/reference.md 7.3): its rows show as ``CoOp (MyCoOp)``,
next to ours and never averaged with them.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from dpt.reporting.logged_run import logged_run
from dpt.reporting.logparse import parse_final_result

ZEROSHOT = "ZeroshotCLIP"
OFFICIAL_TRAINERS = {"MyCoOp": "CoOp"}  # trainer names of the official code -> the method they run
EVALUATION_DIR = "evaluation"
XD_DIR = "xd"
B2N_DIR = "base2new"
# base2new sub-folder -> Run.kind
B2N_PHASES = {"train_base": "b2n_base", "test_new": "b2n_new"}
_B2N_SHOTS_DIR = re.compile(r"^shots_(\d+)$")
_SHOTS_DIR = re.compile(r"^(.+)_(\d+)shots$")
_SEED_DIR = re.compile(r"^seed(\d+)$")
_EPOCH_TAG = re.compile(r"_ep\d+")


@dataclass(frozen=True)
class Run:
    """One run folder (or an expected, absent one) and the numbers its log.txt holds.

    ``kind``: "trained", "zeroshot", "dg" (evaluations of ImageNet runs), "xd" (evaluations of runs trained on
    ``source``), "b2n_base" or "b2n_new"; ``seed`` is None for zero-shot runs; ``status``: "finished",
    "unfinished", "missing" (expected seed folder absent) or "ignored" (seed not expected).
    """

    kind: str
    dataset: str
    trainer: str
    cfg: str
    shots: int
    variant: str
    seed: Optional[int]
    path: str
    status: str
    metrics: Dict[str, float]
    note: str = ""
    source: str = ""

    @property
    def group_id(self) -> str:
        """``Trainer/<cfg>_<N>shots/<variant>`` (zero-shot: ``ZeroshotCLIP/<cfg>``), what ``--select`` matches."""
        if self.kind == "zeroshot":
            return f"{self.trainer}/{self.cfg}"
        return f"{self.trainer}/{self.cfg}_{self.shots}shots" + (f"/{self.variant}" if self.variant else "")

    @property
    def setting(self) -> str:
        cfg = _EPOCH_TAG.sub("", self.cfg)
        return cfg if self.kind == "zeroshot" or not self.variant else f"{cfg}/{self.variant}"


def method_of(trainer: str) -> str:
    """The method a trainer name runs (``MyCoOp`` -> ``CoOp``)."""
    return OFFICIAL_TRAINERS.get(trainer, trainer)


def trainer_label(trainer: str) -> str:
    """How a trainer shows in tables: ``CoOp (MyCoOp)`` for the official code's names, else the name."""
    return f"{OFFICIAL_TRAINERS[trainer]} ({trainer})" if trainer in OFFICIAL_TRAINERS else trainer


def _subdirs(path: str) -> List[str]:
    names = (n for n in os.listdir(path) if not n.startswith("."))
    return sorted(n for n in names if os.path.isdir(os.path.join(path, n)))


def _read_run(folder: str, skip: Sequence[str] = (), **key) -> Run:
    """The newest finished log wins: a resumed run writes its new log to ``log.txt-<timestamp>`` (Dassl)."""
    logs = sorted((n for n in os.listdir(folder) if n.startswith("log.txt-") and n not in skip), reverse=True)
    logs += ["log.txt"] if os.path.isfile(os.path.join(folder, "log.txt")) and "log.txt" not in skip else []
    if not logs:
        return Run(path=folder, status="unfinished", metrics={}, note="no log.txt", **key)
    reason = ""
    for name in logs:
        result = parse_final_result(os.path.join(folder, name))
        if result.finished:
            return Run(path=folder, status="finished", metrics=result.metrics, **key)
        reason = reason or result.reason
    return Run(path=folder, status="unfinished", metrics={}, note=reason, **key)


def _seed_runs(folder: str, seeds: Sequence[int], **key) -> List[Run]:
    present = {int(m.group(1)): n for n in _subdirs(folder) if (m := _SEED_DIR.match(n))}
    if not present:
        return []
    runs = []
    for seed in seeds:
        path = os.path.join(folder, f"seed{seed}")
        if seed in present:
            runs.append(_read_run(path, seed=seed, **key))
        else:
            runs.append(Run(seed=seed, path=path, status="missing", metrics={}, note="seed folder absent", **key))
    for seed in sorted(set(present) - set(seeds)):
        path = os.path.join(folder, present[seed])
        runs.append(Run(seed=seed, path=path, status="ignored", metrics={}, note="seed not in --seeds", **key))
    return runs


def _has_seeds(folder: str) -> bool:
    return any(_SEED_DIR.match(n) for n in _subdirs(folder))


def _trained_groups(folder: str, seeds: Sequence[int], kind: str, dataset: Optional[str]) -> List[Run]:
    """Runs under ``<Trainer>/<cfg>_<N>shots/[<variant>/][<dataset>/]seed<S>`` below ``folder``.

    ``dataset`` None: the evaluation layout, whose datasets are folders; a folder holding seed folders directly
    is the last level before them (CoCoOp's layouts have no variant level).
    """
    runs = []
    for trainer in _subdirs(folder):
        for shots_dir in _subdirs(os.path.join(folder, trainer)):
            match = _SHOTS_DIR.match(shots_dir)
            if not match:
                continue
            cfg, shots = match.group(1), int(match.group(2))
            top = os.path.join(folder, trainer, shots_dir)
            key = dict(kind=kind, trainer=trainer, cfg=cfg, shots=shots)
            if dataset is not None:
                groups = [("", top)] if _has_seeds(top) else [(v, os.path.join(top, v)) for v in _subdirs(top)]
                for variant, group in groups:
                    runs += _seed_runs(group, seeds, dataset=dataset, variant=variant, **key)
                continue
            for name in _subdirs(top):
                if _has_seeds(os.path.join(top, name)):
                    runs += _seed_runs(os.path.join(top, name), seeds, dataset=name, variant="", **key)
                    continue
                for target in _subdirs(os.path.join(top, name)):
                    runs += _seed_runs(os.path.join(top, name, target), seeds, dataset=target, variant=name, **key)
    return runs


def _holds_log(folder: str) -> bool:
    return any(n == "log.txt" or n.startswith("log.txt-") for n in os.listdir(folder))


def _named_run(folder: str) -> Optional[Run]:
    """A run folder outside the layouts, identified by its log; None when no log says what it was.

    Its first log (``log.txt``) trained it; a later log naming another run is an official DPT rerun into the same
    ``--output-dir`` that only re-tested the first run's checkpoint (docs/reference.md 7.8 #4), so it does not count.
    """
    logs = sorted(n for n in os.listdir(folder) if n.startswith("log.txt"))
    identities = {n: logged_run(os.path.join(folder, n)) for n in logs}
    first = identities.get("log.txt") or next((i for i in identities.values() if i is not None), None)
    if first is None:
        return None
    if first.trainer.startswith(ZEROSHOT):
        key = dict(kind="zeroshot", dataset=first.dataset, trainer=first.trainer, cfg=first.cfg, shots=0,
                   variant="", seed=None)
    else:
        key = dict(kind="dg" if first.eval_only else "trained", dataset=first.dataset, trainer=first.trainer,
                   cfg=first.cfg, shots=first.shots, variant=first.variant, seed=first.seed)
    others = [n for n, identity in identities.items() if identity != first]
    note = f"{', '.join(others)} record(s) another run in this folder, not counted" if others else ""
    run = _read_run(folder, skip=others, **key)
    return replace(run, note="; ".join(filter(None, [run.note, note])))


def _named_runs(folders: Sequence[str], seeds: Sequence[int]) -> List[Run]:
    """Named run folders grouped like seed folders: absent expected seeds are "missing", a repeated seed
    "ignored"."""
    runs = [r for r in (_named_run(f) for f in folders) if r is not None]
    groups: Dict[tuple, Dict[Optional[int], Run]] = {}
    where: Dict[tuple, str] = {}
    out = []
    for run in runs:
        key = (run.kind, run.dataset, run.trainer, run.cfg, run.shots, run.variant)
        group = groups.setdefault(key, {})
        where.setdefault(key, os.path.dirname(run.path))
        if run.seed in group:
            out.append(replace(run, status="ignored", note=f"same run as {group[run.seed].path}"))
        elif run.kind != "zeroshot" and run.seed not in seeds:
            out.append(replace(run, status="ignored", note="seed not in --seeds"))
        else:
            group[run.seed] = run
    for key, members in groups.items():
        out += members.values()
        kind, dataset, trainer, cfg, shots, variant = key
        if kind == "zeroshot":
            continue
        fields = dict(kind=kind, dataset=dataset, trainer=trainer, cfg=cfg, shots=shots, variant=variant)
        out += [Run(seed=s, path=where[key], status="missing", metrics={}, note=f"no run folder with seed {s}",
                    **fields) for s in seeds if s not in members]
    return out


def _nested(folder: str, depth: int) -> Iterator[Tuple[str, ...]]:
    """Every chain of ``depth`` nested sub-folder names below ``folder`` (none if it does not exist)."""
    if depth == 0:
        yield ()
        return
    if os.path.isdir(folder):
        for name in _subdirs(folder):
            for rest in _nested(os.path.join(folder, name), depth - 1):
                yield (name, *rest)


def _b2n_runs(folder: str, seeds: Sequence[int]) -> List[Run]:
    """Runs under ``base2new/<phase>/<dataset>/shots_<N>/<Trainer>/<cfg>/[seed<S>/]`` (CoCoOp's layout)."""
    runs = []
    for phase, kind in B2N_PHASES.items():
        for dataset, shots_dir, trainer, cfg in _nested(os.path.join(folder, phase), 4):
            match = _B2N_SHOTS_DIR.match(shots_dir)
            if not match:
                continue
            group = os.path.join(folder, phase, dataset, shots_dir, trainer, cfg)
            key = dict(kind=kind, dataset=dataset, trainer=trainer, cfg=cfg, shots=int(match.group(1)), variant="")
            found = _seed_runs(group, seeds, **key)
            if not found and _holds_log(group):  # zero-shot: no seeds
                found = [_read_run(group, seed=None, **key)]
            runs += found
    return runs


def _xd_runs(folder: str, seeds: Sequence[int]) -> List[Run]:
    """Runs under ``xd/<source>/<Trainer>/<cfg>_<N>shots/<variant>/<target>/seed<S>``."""
    return [replace(run, source=source) for source in _subdirs(folder)
            for run in _trained_groups(os.path.join(folder, source), seeds, "xd", None)]


def collect_runs(root: str, seeds: Sequence[int] = (1, 2, 3), select: Sequence[str] = ()) -> List[Run]:
    """Every run of the layouts above under ``root``, expected-but-absent seeds included as "missing".

    Args:
        select: fnmatch patterns on ``Run.group_id``; when given, runs matching none are dropped.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"OUTPUT_ROOT {root!r} does not exist or is not a directory")
    if _holds_log(root):
        return _select(_named_runs([root], seeds), select)
    runs: List[Run] = []
    named = [os.path.join(root, top) for top in _subdirs(root) if _holds_log(os.path.join(root, top))]
    runs += _named_runs(named, seeds)
    for top in _subdirs(root):
        folder = os.path.join(root, top)
        if folder in named:
            continue
        if top == ZEROSHOT:
            for cfg in _subdirs(folder):
                for dataset in _subdirs(os.path.join(folder, cfg)):
                    key = dict(kind="zeroshot", dataset=dataset, trainer=ZEROSHOT, cfg=cfg, shots=0, variant="")
                    runs.append(_read_run(os.path.join(folder, cfg, dataset), seed=None, **key))
        elif top == EVALUATION_DIR:
            runs += _trained_groups(folder, seeds, "dg", None)
        elif top == XD_DIR:
            runs += _xd_runs(folder, seeds)
        elif top == B2N_DIR:
            runs += _b2n_runs(folder, seeds)
        else:
            runs += _trained_groups(folder, seeds, "trained", top)
    return _select(runs, select)


def _select(runs: List[Run], select: Sequence[str]) -> List[Run]:
    if select:
        runs = [r for r in runs if any(fnmatch.fnmatchcase(r.group_id, p) for p in select)]
    return runs
