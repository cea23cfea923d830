"""``dpt-results``: the result tables of an output tree (few-shot, domain generalisation), the missing runs,
and optionally the comparison with the paper and the accuracy-vs-shots plot.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from tabulate import tabulate

from dpt.tools import paper
from dpt.tools.plots import plot_accuracy_vs_shots
from dpt.tools.runs import Run, collect_runs
from dpt.tools.tables import DG_SOURCE, DG_TARGETS, FORMATS, Table, build_tables, issues, render_table, tables_csv


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
        comparison = paper.render(compared, FORMATS.get(args.format, "csv"))
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
    listing = tabulate(problems, headers=headers, tablefmt=FORMATS.get(args.format, "simple"))
    report = f"Missing and unfinished runs ({len(problems)}):\n{listing}" if problems else "All expected runs finished."
    print("\n" + report, file=side)
    if args.plots:
        try:
            path = plot_accuracy_vs_shots(tables[0], os.path.join(args.plots, "accuracy_vs_shots.png"), args.metric)
        except ValueError as err:
            print(f"dpt-results: {err}", file=sys.stderr)
            return 1
        print(f"Wrote {path}", file=side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
