"""The paper's stated results as data (``dpt/reporting/paper_results.csv``) and their comparison with ours.

Only what docs/reference.md 8 records is encoded: the relative headline claims at 16 shots (mean over the
11 datasets) and the domain-generalisation orderings. The per-dataset cells are present with empty
values, to be filled in from the paper's figures; empty rows are never compared. "b2n" rows hold the published
base-to-novel Base / New / HM (docs/reference.md 10.6), each with its source; ``dpt.reporting.base2new`` compares
them, ``compare`` here skips them.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Protocol, Sequence, Tuple

from tabulate import tabulate

PAPER_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.csv")
COLUMNS = ("table", "dataset", "method", "shots", "metric", "relation", "value", "source", "note")
TABLES = ("fewshot", "headline", "dg", "b2n")
B2N_METRICS = ("base", "new", "hm")
# "=" a stated number, "~" an approximate one ("about 1"), ">" / "<" a sign-only claim against value.
RELATIONS = ("=", "~", ">", "<")
GAIN_PREFIX = "gain_over_"


class ResultTable(Protocol):
    """What ``compare`` needs of a result table (``dpt.tools.results.Table``)."""

    def lookup(self, method: str, dataset: str, shots: int) -> Tuple[Optional[float], str]:
        """(our mean or None, note) for a method, a dataset or "Average", and shots (zero-shot: any shots)."""


@dataclass(frozen=True)
class PaperClaim:
    """One row of the paper CSV; ``value`` None where the paper's number is not transcribed.

    ``metric`` is "accuracy" or "gain_over_<Method>" (accuracy of ``method`` minus that of <Method>,
    zero-shot CLIP read at shots 0); in "b2n" rows "base", "new" or "hm". "headline" rows use the few-shot
    table's Average column.
    """

    table: str
    dataset: str
    method: str
    shots: int
    metric: str
    relation: str
    value: Optional[float]
    source: str
    note: str


def _claim(path: str, line: int, row: dict) -> PaperClaim:
    where = f"{path}:{line}"
    if row["table"] not in TABLES:
        raise ValueError(f"{where}: table {row['table']!r}, expected one of {', '.join(TABLES)}")
    if row["relation"] not in RELATIONS:
        raise ValueError(f"{where}: relation {row['relation']!r}, expected one of {' '.join(RELATIONS)}")
    metric = row["metric"]
    if row["table"] == "b2n":
        if metric not in B2N_METRICS:
            raise ValueError(f"{where}: metric {metric!r} of a b2n row, expected one of {', '.join(B2N_METRICS)}")
    elif metric != "accuracy" and not (metric.startswith(GAIN_PREFIX) and len(metric) > len(GAIN_PREFIX)):
        raise ValueError(f"{where}: metric {row['metric']!r}, expected 'accuracy' or '{GAIN_PREFIX}<Method>'")
    try:
        shots = int(row["shots"])
        value = float(row["value"]) if row["value"].strip() else None
    except ValueError:
        raise ValueError(f"{where}: shots {row['shots']!r} / value {row['value']!r}, "
                         "expected an integer / a number or empty") from None
    return PaperClaim(row["table"], row["dataset"], row["method"], shots, metric, row["relation"], value,
                      row["source"], row["note"])


def load_claims(path: str = PAPER_CSV) -> List[PaperClaim]:
    """Parse and validate the paper CSV (header must equal ``COLUMNS``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"paper results CSV {path!r} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames}, expected {','.join(COLUMNS)}")
        return [_claim(path, i, row) for i, row in enumerate(reader, start=2)]


@dataclass(frozen=True)
class Comparison:
    """Our number for a claim: ``diff`` = ours - paper value; ``check`` "holds"/"fails" for > and < claims."""

    claim: PaperClaim
    ours: Optional[float]
    diff: Optional[float]
    check: str
    note: str


def _lookup(tables: Mapping[str, Optional[ResultTable]], table: str, method: str, dataset: str,
            shots: int) -> Tuple[Optional[float], str]:
    source = tables.get(table)
    return (None, f"no {table} runs") if source is None else source.lookup(method, dataset, shots)


def _ours(claim: PaperClaim, tables: Mapping[str, Optional[ResultTable]]) -> Tuple[Optional[float], str]:
    table = "dg" if claim.table == "dg" else "fewshot"
    ours, note = _lookup(tables, table, claim.method, claim.dataset, claim.shots)
    if claim.metric == "accuracy":
        return ours, note
    baseline = claim.metric[len(GAIN_PREFIX):]
    base, base_note = _lookup(tables, table, baseline, claim.dataset, claim.shots)
    gain = None if ours is None or base is None else ours - base
    if note == base_note:
        return gain, note
    return gain, "; ".join(f"{method}: {n}" for method, n in ((claim.method, note), (baseline, base_note)) if n)


def compare(claims: Sequence[PaperClaim], tables: Mapping[str, Optional[ResultTable]]) -> List[Comparison]:
    """Compare every claim that has a paper value with our numbers (rows without a value and b2n rows are skipped).

    Args:
        tables: "fewshot" and "dg" result tables (None where absent); "headline" claims read the
            few-shot table's Average column.
    """
    rows = []
    for claim in claims:
        if claim.value is None or claim.table == "b2n":
            continue
        ours, note = _ours(claim, tables)
        diff = None if ours is None else ours - claim.value
        if diff is None:
            check = "n/a"
        elif claim.relation in "<>":
            check = "holds" if (diff > 0 if claim.relation == ">" else diff < 0) else "fails"
        else:
            check = ""
        rows.append(Comparison(claim, ours, diff, check, note))
    return rows


def render(rows: Sequence[Comparison], tablefmt: str = "simple") -> str:
    """One line per compared claim; ``tablefmt`` is a tabulate format or "csv". The note says why ours is missing,
    then the claim's own note."""
    headers = ["table", "dataset", "method", "shots", "metric", "paper", "ours", "diff", "check", "note"]
    body = [
        [c.claim.table, c.claim.dataset, c.claim.method, c.claim.shots, c.claim.metric,
         f"{c.claim.relation} {c.claim.value:.2f}",
         "" if c.ours is None else f"{c.ours:.2f}", "" if c.diff is None else f"{c.diff:+.2f}", c.check,
         "; ".join(n for n in (c.note, c.claim.note) if n)]  # ours first, then what the claim is (whose run)
        for c in rows
    ]
    if tablefmt != "csv":
        return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([headers, *body])
    return buf.getvalue().rstrip("\n")
