"""Base-to-novel table (CoCoOp's protocol, docs/reference.md 9.2): Base, New and their harmonic mean per dataset.

Base cells hold the ``train_base`` runs' final test accuracy (on the base classes), New cells the
``test_new`` evaluations, each as mean +- spread over seeds like the few-shot table. HM = 2 B N / (B + N) of
the two means. The Average rows average Base and New over the table's datasets and take the HM of those
averages, as CoCoOp's and MaPLe's tables do; they are "incomplete" until every dataset has both values.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from dpt.reporting.logparse import mean_and_spread
from dpt.reporting.runs import Run
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
