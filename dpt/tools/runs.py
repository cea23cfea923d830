"""Walk an output tree into ``Run`` records: one per run folder (or expected, absent seed) with its final numbers.

Layouts read (REFERENCE.md 6; written by ``scripts/*.sh``):

- trained: ``<root>/<dataset>/<Trainer>/<cfg>_<N>shots/<variant>/seed<S>/log.txt``
- zero-shot: ``<root>/ZeroshotCLIP/<cfg>/<dataset>/log.txt`` (shots 0, no seeds)
- domain generalisation: ``<root>/evaluation/<Trainer>/<cfg>_<N>shots/<variant>/<dataset>/seed<S>/log.txt``
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from dpt.tools.logparse import parse_final_result

ZEROSHOT = "ZeroshotCLIP"
EVALUATION_DIR = "evaluation"
_SHOTS_DIR = re.compile(r"^(.+)_(\d+)shots$")
_SEED_DIR = re.compile(r"^seed(\d+)$")
_EPOCH_TAG = re.compile(r"_ep\d+")


@dataclass(frozen=True)
class Run:
    """One run folder (or an expected, absent one) and the numbers its log.txt holds.

    ``kind``: "trained", "zeroshot" or "dg"; ``seed`` is None for zero-shot runs; ``status``:
    "finished", "unfinished", "missing" (expected seed folder absent) or "ignored" (seed not expected).
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

    @property
    def group_id(self) -> str:
        """``Trainer/<cfg>_<N>shots/<variant>`` (zero-shot: ``ZeroshotCLIP/<cfg>``), what ``--select`` matches."""
        if self.kind == "zeroshot":
            return f"{self.trainer}/{self.cfg}"
        return f"{self.trainer}/{self.cfg}_{self.shots}shots/{self.variant}"

    @property
    def setting(self) -> str:
        cfg = _EPOCH_TAG.sub("", self.cfg)
        return cfg if self.kind == "zeroshot" else f"{cfg}/{self.variant}"


def _subdirs(path: str) -> List[str]:
    names = (n for n in os.listdir(path) if not n.startswith("."))
    return sorted(n for n in names if os.path.isdir(os.path.join(path, n)))


def _read_run(folder: str, **key) -> Run:
    """The newest finished log wins: a resumed run writes its new log to ``log.txt-<timestamp>`` (Dassl)."""
    logs = sorted((n for n in os.listdir(folder) if n.startswith("log.txt-")), reverse=True)
    logs += ["log.txt"] if os.path.isfile(os.path.join(folder, "log.txt")) else []
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


def _trained_groups(folder: str, seeds: Sequence[int], kind: str, dataset: Optional[str]) -> List[Run]:
    """Runs under ``<Trainer>/<cfg>_<N>shots/<variant>/[<dataset>/]seed<S>`` below ``folder``."""
    runs = []
    for trainer in _subdirs(folder):
        for shots_dir in _subdirs(os.path.join(folder, trainer)):
            match = _SHOTS_DIR.match(shots_dir)
            if not match:
                continue
            cfg, shots = match.group(1), int(match.group(2))
            for variant in _subdirs(os.path.join(folder, trainer, shots_dir)):
                group = os.path.join(folder, trainer, shots_dir, variant)
                key = dict(kind=kind, trainer=trainer, cfg=cfg, shots=shots, variant=variant)
                if dataset is not None:
                    runs += _seed_runs(group, seeds, dataset=dataset, **key)
                    continue
                for target in _subdirs(group):
                    runs += _seed_runs(os.path.join(group, target), seeds, dataset=target, **key)
    return runs


def collect_runs(root: str, seeds: Sequence[int] = (1, 2, 3), select: Sequence[str] = ()) -> List[Run]:
    """Every run of the three layouts under ``root``, expected-but-absent seeds included as "missing".

    Args:
        select: fnmatch patterns on ``Run.group_id``; when given, runs matching none are dropped.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"OUTPUT_ROOT {root!r} does not exist or is not a directory")
    runs: List[Run] = []
    for top in _subdirs(root):
        folder = os.path.join(root, top)
        if top == ZEROSHOT:
            for cfg in _subdirs(folder):
                for dataset in _subdirs(os.path.join(folder, cfg)):
                    key = dict(kind="zeroshot", dataset=dataset, trainer=ZEROSHOT, cfg=cfg, shots=0, variant="")
                    runs.append(_read_run(os.path.join(folder, cfg, dataset), seed=None, **key))
        elif top == EVALUATION_DIR:
            runs += _trained_groups(folder, seeds, "dg", None)
        else:
            runs += _trained_groups(folder, seeds, "trained", top)
    if select:
        runs = [r for r in runs if any(fnmatch.fnmatchcase(r.group_id, p) for p in select)]
    return runs
