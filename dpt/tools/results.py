"""``dpt-results``: the result tables of an output tree (few-shot, domain generalisation, cross-dataset,
base-to-novel), the missing runs, and optionally the comparison with the paper and the plots.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from tabulate import tabulate

from dpt.reporting import paper
from dpt.reporting.base2new import B2NTable, build_b2n_table, compare_b2n, render_b2n, render_b2n_comparison
from dpt.reporting.plots import plot_accuracy_vs_shots, plot_base_vs_new
from dpt.reporting.runs import Run, collect_runs
from dpt.reporting.tables import (
    DG_SOURCE, DG_TARGETS, FORMATS, Table, build_tables, build_xd_tables, issues, render_table, tables_csv,
)

TABLES = ("all", "fewshot", "dg", "xd", "b2n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpt-results", description="Result tables (mean +- std over seeds).")
    parser.add_argument("output_root", help="folder holding <dataset>/<Trainer>/..., ZeroshotCLIP/..., evaluation/...")
    parser.add_argument("--format", choices=("table", "markdown", "csv"), default="table", help="default table")
    parser.add_argument("--ci95", action="store_true", help="report 1.96*std/sqrt(n) instead of the population std")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="expected seeds (default 1 2 3)")
    parser.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy", help="value to tabulate")
    parser.add_argument("--select", nargs="+", default=[], metavar="GLOB",
                        help="keep only runs whose Trainer/<cfg>_<N>shots/<variant> (ZeroshotCLIP/<cfg>) matches")
    parser.add_argument("--table", choices=TABLES, default="all",
                        help="which tables to print (default all); with --format csv, b2n gives base,new,hm columns")
    parser.add_argument("--compare-paper", action="store_true",
                        help="add ours-vs-paper accuracy rows (with --table b2n or all: published Base/New/HM)")
    parser.add_argument("--paper-csv", default=paper.PAPER_CSV, help="paper results CSV (default: the packaged one)")
    parser.add_argument("--plots", metavar="DIR",
                        help="also write DIR/accuracy_vs_shots.png (and DIR/base_vs_new.png with base-to-novel runs)")
    return parser


def _title(table: Table, args: argparse.Namespace) -> str:
    """The line printed above a few-shot, DG or cross-dataset table."""
    if table.name == "fewshot":
        spread = "ci95 (1.96*std/sqrt(n))" if args.ci95 else "population std"
        return (f"Few-shot test {args.metric}: mean +- {spread} over seeds {args.seeds}; "
                "(k/n) = k of n expected seeds finished")
    if table.name == "dg":
        return f"Domain generalisation ({DG_SOURCE} -> {', '.join(DG_TARGETS)}), test {args.metric}"
    return f"Cross-dataset transfer ({table.columns[0]} -> {', '.join(table.columns[1:])}), test {args.metric}"


def _sections(args: argparse.Namespace, runs: Sequence[Run], tables: Sequence[Optional[Table]],
              xd: Sequence[Table], b2n: Optional[B2NTable], claims: Sequence[paper.PaperClaim]) -> List[str]:
    """The printed blocks: the tables (one CSV in csv format), then the paper comparison."""
    fewshot, dg = tables
    wanted = {name for name in TABLES[1:] if args.table in ("all", name)}
    long_tables = [t for name, t in (("fewshot", fewshot), ("dg", dg)) if name in wanted and t is not None and t.rows]
    long_tables += [t for t in xd if "xd" in wanted]
    if args.format == "csv" and args.table == "b2n":
        sections = [render_b2n(b2n, "csv", args.ci95)] if b2n is not None else []
    elif args.format == "csv":
        long_tables += [b2n.base, b2n.new] if b2n is not None and args.table == "all" else []
        sections = [tables_csv(long_tables, args.ci95)] if long_tables else []
    else:
        sections = []
        for table in long_tables:
            sections += [_title(table, args), render_table(table, args.format, args.ci95)]
        if b2n is not None and "b2n" in wanted:
            sections += [f"Base-to-novel generalisation, test {args.metric} on the base and the new classes "
                         f"(HM: harmonic mean; Average: means over datasets, HM of the means)",
                         render_b2n(b2n, args.format, args.ci95)]
    if args.compare_paper and b2n is not None and "b2n" in wanted:
        acc_b2n = b2n if args.metric == "accuracy" else build_b2n_table(runs, "accuracy")
        compared = compare_b2n(claims, acc_b2n)
        shown = [r for r in compared if r.status != "no runs" or args.format == "csv"]  # csv: every row
        if args.format != "csv":
            sections.append(f"Base-to-novel, ours vs published (accuracy; {args.paper_csv}); diff = ours - published")
        sections.append(render_b2n_comparison(shown, args.format))
        unrun = sorted({r.method for r in compared} - {r.method for r in shown})
        if unrun and args.format != "csv":
            sections.append(f"Published base-to-novel results of methods without runs here: {', '.join(unrun)}.")
    if args.compare_paper and args.table != "b2n":
        acc_few, acc_dg = (fewshot, dg) if args.metric == "accuracy" else build_tables(runs, "accuracy")
        compared = paper.compare(claims, {"fewshot": acc_few, "dg": acc_dg})
        comparison = paper.render(compared, FORMATS.get(args.format, "csv"))
        empty = sum(1 for c in claims if c.value is None and c.table != "b2n")
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
    xd, b2n = build_xd_tables(runs, args.metric), build_b2n_table(runs, args.metric)
    sections = _sections(args, runs, tables, xd, b2n, claims)
    if not sections:
        print(f"dpt-results: no {args.table} runs under {args.output_root!r}", file=sys.stderr)
        return 1
    print("\n\n".join(sections))
    side = sys.stderr if args.format == "csv" else sys.stdout
    listed = [t for t in (*tables, *xd) if t is not None] + ([b2n.base, b2n.new] if b2n is not None else [])
    problems = issues(runs, listed, args.metric)
    headers = ["status", "dataset", "run / method", "shots", "seed", "where"]
    listing = tabulate(problems, headers=headers, tablefmt=FORMATS.get(args.format, "simple"))
    report = f"Missing and unfinished runs ({len(problems)}):\n{listing}" if problems else "All expected runs finished."
    print("\n" + report, file=side)
    if args.plots:
        try:
            paths = []
            if tables[0].rows or b2n is None:
                paths.append(plot_accuracy_vs_shots(tables[0], os.path.join(args.plots, "accuracy_vs_shots.png"),
                                                     args.metric))
            if b2n is not None:
                paths.append(plot_base_vs_new(b2n, os.path.join(args.plots, "base_vs_new.png"), args.metric))
        except ValueError as err:
            print(f"dpt-results: {err}", file=sys.stderr)
            return 1
        print("\n".join(f"Wrote {path}" for path in paths), file=side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
