"""Result tables from ``Run`` records: mean +- std over seeds per dataset, method and shots.

A table row is (trainer, setting, shots) where the setting is ``<cfg>/<variant>`` with ``_ep<k>``
removed from the cfg name, because the protocol picks the epoch count per shots and dataset
(docs/reference.md 6, 8). Cells never silently average fewer seeds than expected.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from dpt.reporting.logparse import mean_and_spread
from dpt.reporting.runs import ZEROSHOT, Run, method_of, trainer_label

FEWSHOT_DATASETS = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
)
DG_SOURCE = "imagenet"
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
METHOD_ORDER = ("ZeroshotCLIP", "LinearProbeCLIP", "CoOp", "CoCoOp", "KgCoOp", "IVLP", "MaPLe", "PromptSRC",
                "VPT", "VLP", "DPT")
FORMATS = {"table": "simple", "markdown": "github"}


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
    """Methods in METHOD_ORDER first; an official trainer name (MyCoOp) right after its method's own rows."""
    method = method_of(trainer)
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return rank, ("" if trainer in METHOD_ORDER else trainer)


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
    labels = {r: trainer_label(r.trainer) + ("" if len(settings[r.trainer]) == 1 else f" [{r.setting}]") for r in rows}
    return Table(name, columns, average[1], average[0], rows, labels, cells)


def build_tables(runs: Sequence[Run], metric: str = "accuracy") -> Tuple[Table, Optional[Table]]:
    """The few-shot table (zero-shot as shots 0) and the domain-generalisation table (None without DG runs).

    The DG table's source column holds the trained ImageNet runs of each evaluated (trainer, setting, shots).
    """
    counted = [r for r in runs if r.status != "ignored"]
    few = [r for r in counted if r.kind == "trained" or (r.kind == "zeroshot" and r.dataset not in DG_TARGETS)]
    columns = dataset_order({r.dataset for r in few})
    fewshot = _build_table("fewshot", few, columns, ("Average", columns), metric)
    evaluated = [r for r in counted if r.kind == "dg" and r.dataset in DG_TARGETS]
    zeroshots = [r for r in counted if r.kind == "zeroshot" and r.dataset in (DG_SOURCE,) + DG_TARGETS]
    if not evaluated and not any(r.dataset in DG_TARGETS for r in zeroshots):
        return fewshot, None
    keys = {(r.trainer, r.setting, r.shots) for r in evaluated}
    sources = [r for r in counted if r.kind == "trained" and r.dataset == DG_SOURCE
               and (r.trainer, r.setting, r.shots) in keys]
    dg_rows = evaluated + sources + zeroshots
    dg_average = ("Average (targets)", list(DG_TARGETS))
    return fewshot, _build_table("dg", dg_rows, [DG_SOURCE, *DG_TARGETS], dg_average, metric)


def dataset_order(datasets) -> List[str]:
    """The paper's dataset order, then any others sorted."""
    return [d for d in FEWSHOT_DATASETS if d in datasets] + sorted(set(datasets) - set(FEWSHOT_DATASETS))


def build_xd_tables(runs: Sequence[Run], metric: str = "accuracy") -> List[Table]:
    """One cross-dataset table per source: the source's trained 16-shot run, each target, the targets' average.

    Evaluations of ImageNet runs on datasets other than the DG variants (``evaluation/``) have source ImageNet;
    those under ``xd/<source>/`` name theirs. Zero-shot CLIP rows come from its runs on the source and targets.
    """
    counted = [r for r in runs if r.status != "ignored"]
    by_source: Dict[str, List[Run]] = {}
    for r in counted:
        if r.kind == "xd" or (r.kind == "dg" and r.dataset not in DG_TARGETS):
            by_source.setdefault(r.source or DG_SOURCE, []).append(r)
    out = []
    for source, evaluated in sorted(by_source.items()):
        targets = dataset_order({r.dataset for r in evaluated})
        keys = {(r.trainer, r.setting, r.shots) for r in evaluated}
        sources = [r for r in counted if r.kind == "trained" and r.dataset == source
                   and (r.trainer, r.setting, r.shots) in keys]
        zeroshots = [r for r in counted if r.kind == "zeroshot" and r.dataset in (source, *targets)]
        average = ("Average (targets)", targets)
        out.append(_build_table(f"xd_{source}", evaluated + sources + zeroshots, [source, *targets], average, metric))
    return out


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
    return tabulate(body, headers=headers, tablefmt=FORMATS[fmt], disable_numparse=True)


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
