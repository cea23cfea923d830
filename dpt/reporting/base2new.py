"""Base-to-novel table (CoCoOp's protocol, docs/reference.md 9.2): Base, New and their harmonic mean per dataset.

Base cells hold the ``train_base`` runs' final test accuracy (on the base classes), New cells the
``test_new`` evaluations, each as mean +- spread over seeds like the few-shot table. HM = 2 B N / (B + N) of
the two means. The Average rows average Base and New over the table's datasets and take the HM of those
averages, as CoCoOp's and MaPLe's tables do; they are "incomplete" until every dataset has both values.
``compare_b2n`` puts the published Base / New / HM ("b2n" rows of the paper CSV) beside ours.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from dpt.reporting.logparse import mean_and_spread
from dpt.reporting.paper import PaperClaim
from dpt.reporting.runs import ZEROSHOT, Run
from dpt.reporting.tables import (
    FORMATS, Cell, RowKey, Table, _build_table, _method_rank, dataset_order, format_average, format_cell,
)

AVERAGE = "Average"


def harmonic_mean(base: float, new: float) -> float:
    """2 B N / (B + N); 0 when both are 0."""
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


@dataclass
class B2NTable:
    """The base and the new accuracies as two few-shot-style tables over the same datasets and rows."""

    base: Table
    new: Table
    rows: List[RowKey]
    labels: Dict[RowKey, str]

    @property
    def datasets(self) -> List[str]:
        return self.base.columns

    def means(self, row: RowKey, dataset: str) -> Tuple[Optional[float], Optional[float]]:
        """(base mean, new mean) of a dataset or of "Average"; None where it has no usable value."""
        if dataset == AVERAGE:
            return self.base.average(row)[0], self.new.average(row)[0]
        found = []
        for table in (self.base, self.new):
            cell = table.cells.get((row, dataset))
            found.append(mean_and_spread(cell.values)[0] if cell is not None and cell.usable else None)
        return found[0], found[1]

    def hm(self, row: RowKey, dataset: str) -> Optional[float]:
        base, new = self.means(row, dataset)
        return None if base is None or new is None else harmonic_mean(base, new)


def build_b2n_table(runs: Sequence[Run], metric: str = "accuracy") -> Optional[B2NTable]:
    """The base-to-novel table of the ``base2new/`` runs, or None when there are none."""
    counted = [r for r in runs if r.status != "ignored"]
    phases = {kind: [r for r in counted if r.kind == kind] for kind in ("b2n_base", "b2n_new")}
    if not any(phases.values()):
        return None
    datasets = dataset_order({r.dataset for members in phases.values() for r in members})
    base, new = (_build_table(kind, members, datasets, (AVERAGE, datasets), metric) for kind, members in phases.items())
    rows = sorted(set(base.rows) | set(new.rows), key=lambda r: (_method_rank(r.trainer), r.setting, r.shots))
    return B2NTable(base, new, rows, {**new.labels, **base.labels})


def render_b2n(table: B2NTable, fmt: str = "table", ci95: bool = False) -> str:
    """Rows per dataset (then Average) and method: Base, New, HM; markdown/text via tabulate, or CSV."""
    if fmt == "csv":
        return b2n_csv(table, ci95)
    body = []
    for dataset in [*table.datasets, AVERAGE]:
        for row in table.rows:
            hm = table.hm(row, dataset)
            if dataset == AVERAGE:
                cells = [format_average(table.base, row), format_average(table.new, row)]
            else:
                cells = [format_cell(t.cells.get((row, dataset)), ci95) for t in (table.base, table.new)]
            body.append([dataset, table.labels[row], row.shots, *cells, "-" if hm is None else f"{hm:.2f}"])
    headers = ["Dataset", "Method", "Shots", "Base", "New", "HM"]
    return tabulate(body, headers=headers, tablefmt=FORMATS[fmt], disable_numparse=True)


def _status(cells: Sequence[Optional[Cell]]) -> str:
    if any(c is None for c in cells):
        return "missing"
    if not all(c.usable for c in cells):
        return "no result"
    return "complete" if all(len(c.values) == c.expected for c in cells) else "partial"


def b2n_csv(table: B2NTable, ci95: bool = False) -> str:
    """One line per (method, dataset) and per method's Average: base, new, hm with spreads and seed counts."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "trainer", "setting", "shots", "dataset", "base", "base_spread", "base_n", "new",
                     "new_spread", "new_n", "hm", "n_expected", "spread_kind", "status"])
    kind = "ci95" if ci95 else "std"
    for row in table.rows:
        head = [table.labels[row], row.trainer, row.setting, row.shots]
        for dataset in table.datasets:
            cells = [t.cells.get((row, dataset)) for t in (table.base, table.new)]
            values: List[object] = []
            for cell in cells:
                if cell is None or not cell.usable:
                    values += ["", "", 0 if cell is None else len(cell.values)]
                else:
                    mean, spread = mean_and_spread(cell.values, ci95)
                    values += [f"{mean:.2f}", f"{spread:.2f}", len(cell.values)]
            hm = table.hm(row, dataset)
            expected = max((c.expected for c in cells if c is not None), default="")
            writer.writerow(head + [dataset, *values, "" if hm is None else f"{hm:.2f}", expected, kind,
                                    _status(cells)])
        base, new = table.means(row, AVERAGE)
        hm = table.hm(row, AVERAGE)
        counts = [t.average(row)[1] for t in (table.base, table.new)]
        status = "incomplete" if hm is None else "complete"
        writer.writerow(head + [AVERAGE, "" if base is None else f"{base:.2f}", "", counts[0],
                                "" if new is None else f"{new:.2f}", "", counts[1], "" if hm is None else f"{hm:.2f}",
                                len(table.datasets), kind, status])
    return buf.getvalue().rstrip("\n")


Triple = Tuple[Optional[float], Optional[float], Optional[float]]


@dataclass(frozen=True)
class B2NComparison:
    """One published (dataset, method, source) Base / New / HM beside ours; ``diff`` = ours - published.

    ``status`` says why ours is missing ("no runs" of the method, "no result" for the dataset, ...), else "".
    """

    dataset: str
    method: str
    source: str
    paper: Triple
    ours: Triple
    diff: Triple
    note: str
    status: str


def _lookup_b2n(table: Optional[B2NTable], method: str, dataset: str, shots: int) -> Tuple[Triple, str]:
    """Our (base, new, hm) means of a trainer with one setting, or Nones and why."""
    if table is None:
        return (None, None, None), "no b2n runs"
    rows = [r for r in table.rows if r.trainer == method and (r.shots == shots or method == ZEROSHOT)]
    if len(rows) != 1:
        return (None, None, None), ("no runs" if not rows else f"{len(rows)} settings, pick one with --select")
    base, new = table.means(rows[0], dataset)
    note = "" if base is not None and new is not None else "incomplete" if dataset == AVERAGE else "no result"
    return (base, new, table.hm(rows[0], dataset)), note


def compare_b2n(claims: Sequence[PaperClaim], table: Optional[B2NTable]) -> List[B2NComparison]:
    """Put ours beside each published result: the "b2n" claims' consecutive Base / New / HM rows of one
    (dataset, method, shots, source), in file order (a repeated metric starts the next result, so one source may
    publish two settings of a method).

    Our Average HM is the HM of the averaged Base and New (as CoCoOp's table); the note of a claim says when
    its source computed it otherwise.
    """
    groups: List[Dict[str, PaperClaim]] = []
    for claim in claims:
        if claim.table != "b2n" or claim.value is None:
            continue
        last = next(iter(groups[-1].values())) if groups else None
        same = last is not None and (last.dataset, last.method, last.shots, last.source) == (
            claim.dataset, claim.method, claim.shots, claim.source)
        if not same or claim.metric in groups[-1]:
            groups.append({})
        groups[-1][claim.metric] = claim
    rows = []
    for by_metric in groups:
        first = next(iter(by_metric.values()))
        published = tuple(by_metric[m].value if m in by_metric else None for m in ("base", "new", "hm"))
        ours, why = _lookup_b2n(table, first.method, first.dataset, first.shots)
        diff = tuple(None if o is None or p is None else o - p for o, p in zip(ours, published))
        notes = list(dict.fromkeys(c.note for c in by_metric.values() if c.note))
        rows.append(B2NComparison(first.dataset, first.method, first.source, published, ours, diff,
                                  "; ".join(notes), why))
    return rows


def render_b2n_comparison(rows: Sequence[B2NComparison], fmt: str = "table") -> str:
    """Published Base / New / HM, ours, and ours - published; tabulate formats as ``render_b2n`` (why ours is
    missing leads the note), or CSV with a separate status column."""
    headers = ["Dataset", "Method", "Paper Base", "Paper New", "Paper HM", "Ours Base", "Ours New", "Ours HM",
               "diff Base", "diff New", "diff HM", "Source"]
    body = [[r.dataset, r.method, *(_num(v) for v in r.paper), *(_num(v) for v in r.ours),
             *(_num(v, "+") for v in r.diff), r.source] for r in rows]
    if fmt != "csv":
        notes = ["; ".join(n for n in (r.status, r.note) if n) for r in rows]
        return tabulate([[*line, note] for line, note in zip(body, notes)], headers=[*headers, "Note"],
                        tablefmt=FORMATS[fmt], disable_numparse=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*(h.lower().replace(" ", "_") for h in headers), "note", "status"])
    writer.writerows([*line, r.note, r.status] for line, r in zip(body, rows))
    return buf.getvalue().rstrip("\n")


def _num(value: Optional[float], sign: str = "") -> str:
    return "" if value is None else f"{value:{sign}.2f}"
