"""Aggregate an output tree into result tables: mean +- std over seeds per dataset, method and shots.

Layouts read (REFERENCE.md 6; written by ``scripts/*.sh``):

- trained: ``<root>/<dataset>/<Trainer>/<cfg>_<N>shots/<variant>/seed<S>/log.txt``
- zero-shot: ``<root>/ZeroshotCLIP/<cfg>/<dataset>/log.txt`` (shots 0, no seeds)
- domain generalisation: ``<root>/evaluation/<Trainer>/<cfg>_<N>shots/<variant>/<dataset>/seed<S>/log.txt``

A table row is (trainer, setting, shots) where the setting is ``<cfg>/<variant>`` with ``_ep<k>``
removed from the cfg name, because the protocol picks the epoch count per shots and dataset
(REFERENCE.md 6, 8). Cells never silently average fewer seeds than ``--seeds`` expects.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import os
import re
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from dpt.tools import paper
from dpt.tools.logparse import mean_and_spread, parse_final_result

FEWSHOT_DATASETS = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
)
DG_SOURCE = "imagenet"
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
METHOD_ORDER = ("ZeroshotCLIP", "CoOp", "VPT", "VLP", "DPT")
ZEROSHOT = "ZeroshotCLIP"
EVALUATION_DIR = "evaluation"
_SHOTS_DIR = re.compile(r"^(.+)_(\d+)shots$")
_SEED_DIR = re.compile(r"^seed(\d+)$")
_EPOCH_TAG = re.compile(r"_ep\d+")
_FORMATS = {"table": "simple", "markdown": "github"}


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


@dataclass(frozen=True)
class RowKey:
    trainer: str
    setting: str
    shots: int


@dataclass(frozen=True)
class Cell:
    """Finished-seed values of one (row, dataset); more than one ``cfgs`` means two configs claim the cell."""

    values: Tuple[float, ...]
    expected: int
    cfgs: Tuple[str, ...]

    @property
    def conflict(self) -> bool:
        return len(self.cfgs) > 1

    @property
    def usable(self) -> bool:
        return bool(self.values) and not self.conflict


@dataclass
class Table:
    """Cells keyed by (row, column); the Average column spans ``average_over``."""

    name: str
    columns: List[str]
    average_over: List[str]
    average_header: str
    rows: List[RowKey]
    labels: Dict[RowKey, str]
    cells: Dict[Tuple[RowKey, str], Cell]

    def average(self, row: RowKey) -> Tuple[Optional[float], int, bool]:
        """(mean of the per-dataset means, None unless every dataset has one; datasets with one; any partial cell)."""
        usable = [c for c in (self.cells.get((row, d)) for d in self.average_over) if c is not None and c.usable]
        partial = any(len(c.values) < c.expected for c in usable)
        if len(usable) < len(self.average_over):
            return None, len(usable), partial
        return sum(mean_and_spread(c.values)[0] for c in usable) / len(usable), len(usable), partial

    def lookup(self, method: str, dataset: str, shots: int) -> Tuple[Optional[float], str]:
        """Our mean for a method with one setting, a dataset or "Average", and shots (zero-shot: any shots)."""
        rows = [r for r in self.rows if r.trainer == method and (r.shots == shots or method == ZEROSHOT)]
        if len(rows) != 1:
            return None, ("no runs" if not rows else f"{len(rows)} settings, pick one with --select")
        if dataset == "Average":
            value, n, partial = self.average(rows[0])
            if value is None:
                return None, f"average incomplete ({n}/{len(self.average_over)} datasets)"
            return value, f"over {n} datasets" + (", partial seeds" if partial else "")
        cell = self.cells.get((rows[0], dataset))
        if cell is None or not cell.usable:
            return None, "no result"
        note = f"{len(cell.values)}/{cell.expected} seeds" if len(cell.values) < cell.expected else ""
        return mean_and_spread(cell.values)[0], note


def _method_rank(trainer: str) -> Tuple[int, str]:
    return (METHOD_ORDER.index(trainer), "") if trainer in METHOD_ORDER else (len(METHOD_ORDER), trainer)


def _build_table(name: str, runs: Sequence[Run], columns: List[str], average: Tuple[str, List[str]],
                 metric: str) -> Table:
    grouped: Dict[Tuple[RowKey, str], List[Run]] = {}
    for run in runs:
        grouped.setdefault((RowKey(run.trainer, run.setting, run.shots), run.dataset), []).append(run)
    cells = {}
    for key, members in grouped.items():
        values = tuple(r.metrics[metric] for r in members if r.status == "finished" and metric in r.metrics)
        cells[key] = Cell(values, len({r.seed for r in members}), tuple(sorted({r.cfg for r in members})))
    rows = sorted({row for row, _ in grouped}, key=lambda r: (_method_rank(r.trainer), r.setting, r.shots))
    settings: Dict[str, set] = {}
    for row in rows:
        settings.setdefault(row.trainer, set()).add(row.setting)
    labels = {r: r.trainer if len(settings[r.trainer]) == 1 else f"{r.trainer} [{r.setting}]" for r in rows}
    return Table(name, columns, average[1], average[0], rows, labels, cells)


def build_tables(runs: Sequence[Run], metric: str = "accuracy") -> Tuple[Table, Optional[Table]]:
    """The few-shot table (zero-shot as shots 0) and the domain-generalisation table (None without DG runs).

    The DG table's source column holds the trained ImageNet runs of each evaluated (trainer, setting, shots).
    """
    counted = [r for r in runs if r.status != "ignored"]
    few = [r for r in counted if r.kind == "trained" or (r.kind == "zeroshot" and r.dataset not in DG_TARGETS)]
    seen = {r.dataset for r in few}
    columns = [d for d in FEWSHOT_DATASETS if d in seen] + sorted(seen - set(FEWSHOT_DATASETS))
    fewshot = _build_table("fewshot", few, columns, ("Average", columns), metric)
    evaluated = [r for r in counted if r.kind == "dg"]
    zeroshots = [r for r in counted if r.kind == "zeroshot" and r.dataset in (DG_SOURCE,) + DG_TARGETS]
    if not evaluated and not any(r.dataset in DG_TARGETS for r in zeroshots):
        return fewshot, None
    keys = {(r.trainer, r.setting, r.shots) for r in evaluated}
    sources = [r for r in counted if r.kind == "trained" and r.dataset == DG_SOURCE
               and (r.trainer, r.setting, r.shots) in keys]
    dg_rows = evaluated + sources + zeroshots
    dg_average = ("Average (targets)", list(DG_TARGETS))
    return fewshot, _build_table("dg", dg_rows, [DG_SOURCE, *DG_TARGETS], dg_average, metric)


def issues(runs: Sequence[Run], tables: Sequence[Table], metric: str) -> List[List[str]]:
    """Rows [status, dataset, run or method, shots, seed, where/why] for everything that did not count."""
    out = []
    for r in runs:
        seed = "-" if r.seed is None else str(r.seed)
        if r.status != "finished":
            out.append([r.status, r.dataset, r.group_id, str(r.shots), seed, f"{r.path} ({r.note})"])
        elif metric not in r.metrics:
            out.append([f"no {metric}", r.dataset, r.group_id, str(r.shots), seed, r.path])
    for table in tables:
        for row, column in ((r, c) for r in table.rows for c in table.columns):
            cell = table.cells.get((row, column))
            if cell is None or cell.conflict:
                status, why = ("missing", f"no run folder ({table.name} table)") if cell is None else (
                    "conflict", f"configs {', '.join(cell.cfgs)} share a cell; use --select")
                out.append([status, column, table.labels[row], str(row.shots), "-", why])
    return out


def format_cell(cell: Optional[Cell], ci95: bool = False) -> str:
    """``81.23 +- 0.30``; `` (k/n)`` when only k of n expected seeds finished; ``-`` without runs."""
    if cell is None or cell.conflict:
        return "-" if cell is None else "conflict"
    count = f" ({len(cell.values)}/{cell.expected})" if len(cell.values) < cell.expected else ""
    if not cell.values:
        return "-" + count
    mean, spread = mean_and_spread(cell.values, ci95)
    return (f"{mean:.2f}" if cell.expected == 1 else f"{mean:.2f} +- {spread:.2f}") + count


def format_average(table: Table, row: RowKey) -> str:
    """``84.30``, ``84.30 (partial seeds)`` or ``incomplete (k/n)`` when some dataset has no value."""
    value, n, partial = table.average(row)
    if value is None:
        return f"incomplete ({n}/{len(table.average_over)})"
    return f"{value:.2f}" + (" (partial seeds)" if partial else "")


def render_table(table: Table, fmt: str = "table", ci95: bool = False) -> str:
    """Rows = method x shots, columns = datasets + Average, as tabulate text/markdown or long-format CSV."""
    if fmt == "csv":
        return tables_csv([table], ci95)
    body = [
        [table.labels[row], row.shots, *(format_cell(table.cells.get((row, c)), ci95) for c in table.columns),
         format_average(table, row)]
        for row in table.rows
    ]
    headers = ["Method", "Shots", *table.columns, table.average_header]
    return tabulate(body, headers=headers, tablefmt=_FORMATS[fmt], disable_numparse=True)


def _cell_csv(cell: Optional[Cell], ci95: bool) -> List[object]:
    """[mean, spread, n, n_expected, status] of one cell."""
    if cell is None:
        return ["", "", 0, "", "missing"]
    if not cell.usable:
        return ["", "", len(cell.values), cell.expected, "conflict" if cell.conflict else "no result"]
    mean, spread = mean_and_spread(cell.values, ci95)
    status = "complete" if len(cell.values) == cell.expected else "partial"
    return [f"{mean:.2f}", f"{spread:.2f}", len(cell.values), cell.expected, status]


def tables_csv(tables: Sequence[Table], ci95: bool = False) -> str:
    """Long format: a line per (table, row, dataset) and per row's Average; n counts seeds (datasets for Average)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "method", "trainer", "setting", "shots", "dataset", "mean", "spread", "spread_kind",
                     "n", "n_expected", "status"])
    kind = "ci95" if ci95 else "std"
    for table in tables:
        for row in table.rows:
            head = [table.name, table.labels[row], row.trainer, row.setting, row.shots]
            for column in table.columns:
                mean, spread, n, expected, status = _cell_csv(table.cells.get((row, column)), ci95)
                writer.writerow(head + [column, mean, spread, kind, n, expected, status])
            value, n, partial = table.average(row)
            status = "incomplete" if value is None else ("partial" if partial else "complete")
            mean = "" if value is None else f"{value:.2f}"
            writer.writerow(head + [table.average_header, mean, "", "", n, len(table.average_over), status])
    return buf.getvalue().rstrip("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpt-results", description="Result tables (mean +- std over seeds).")
    parser.add_argument("output_root", help="folder holding <dataset>/<Trainer>/..., ZeroshotCLIP/..., evaluation/...")
    parser.add_argument("--format", choices=("table", "markdown", "csv"), default="table", help="default table")
    parser.add_argument("--ci95", action="store_true", help="report 1.96*std/sqrt(n) instead of the population std")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="expected seeds (default 1 2 3)")
    parser.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy", help="value to tabulate")
    parser.add_argument("--select", nargs="+", default=[], metavar="GLOB",
                        help="keep only runs whose Trainer/<cfg>_<N>shots/<variant> (ZeroshotCLIP/<cfg>) matches")
    parser.add_argument("--compare-paper", action="store_true", help="add ours-vs-paper accuracy rows")
    parser.add_argument("--paper-csv", default=paper.PAPER_CSV, help="paper results CSV (default: the packaged one)")
    parser.add_argument("--plots", metavar="DIR", help="also write DIR/accuracy_vs_shots.png")
    return parser


def _sections(args: argparse.Namespace, runs: Sequence[Run], tables: Sequence[Optional[Table]],
              claims: Sequence[paper.PaperClaim]) -> List[str]:
    """The printed blocks: the tables (one CSV in csv format), then the paper comparison."""
    fewshot, dg = tables
    if args.format == "csv":
        sections = [tables_csv([t for t in tables if t is not None], args.ci95)]
    else:
        spread = "ci95 (1.96*std/sqrt(n))" if args.ci95 else "population std"
        sections = [f"Few-shot test {args.metric}: mean +- {spread} over seeds {args.seeds}; "
                    "(k/n) = k of n expected seeds finished", render_table(fewshot, args.format, args.ci95)]
        if dg is not None:
            sections += [f"Domain generalisation ({DG_SOURCE} -> {', '.join(DG_TARGETS)}), test {args.metric}",
                         render_table(dg, args.format, args.ci95)]
    if args.compare_paper:
        acc_few, acc_dg = (fewshot, dg) if args.metric == "accuracy" else build_tables(runs, "accuracy")
        compared = paper.compare(claims, {"fewshot": acc_few, "dg": acc_dg})
        comparison = paper.render(compared, _FORMATS.get(args.format, "csv"))
        empty = sum(1 for c in claims if c.value is None)
        if args.format == "csv":
            return sections + [comparison]
        sections += [f"Ours vs paper (accuracy; {args.paper_csv})", comparison]
        if empty:
            sections.append(f"{empty} row(s) of {args.paper_csv} have no paper value; fill them in to compare them.")
    return sections


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs = collect_runs(args.output_root, args.seeds, args.select)
        if not runs:
            raise ValueError(f"no runs under {args.output_root!r} "
                             "(expected <dataset>/<Trainer>/<cfg>_<N>shots/<variant>/seed<S>/log.txt)")
        claims = paper.load_claims(args.paper_csv) if args.compare_paper else []
    except (FileNotFoundError, ValueError) as err:
        print(f"dpt-results: {err}", file=sys.stderr)
        return 1
    tables = build_tables(runs, args.metric)
    print("\n\n".join(_sections(args, runs, tables, claims)))
    side = sys.stderr if args.format == "csv" else sys.stdout
    problems = issues(runs, [t for t in tables if t is not None], args.metric)
    headers = ["status", "dataset", "run / method", "shots", "seed", "where"]
    listing = tabulate(problems, headers=headers, tablefmt=_FORMATS.get(args.format, "simple"))
    report = f"Missing and unfinished runs ({len(problems)}):\n{listing}" if problems else "All expected runs finished."
    print("\n" + report, file=side)
    if args.plots:
        # Imported here, not at the top, because plots imports this module for dpt-plot OUTPUT_ROOT.
        from dpt.tools.plots import plot_accuracy_vs_shots

        try:
            path = plot_accuracy_vs_shots(tables[0], os.path.join(args.plots, "accuracy_vs_shots.png"), args.metric)
        except ValueError as err:
            print(f"dpt-results: {err}", file=sys.stderr)
            return 1
        print(f"Wrote {path}", file=side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
