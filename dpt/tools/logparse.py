"""``python -m dpt.tools.logparse DIR [--ci95] [--test-log] [--multi-exp] [--keyword accuracy]``.

A drop-in for CoOp's ``parse_test_res.py`` (docs/reference.md 6): the mean and spread of the final test result over
the run folders of DIR, read by dpt.reporting.logparse.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

from dpt.errors import ArgumentParser, cli_main
from dpt.reporting.logparse import (END_SIGNAL_TEST, END_SIGNAL_TRAIN, mean_and_spread, parse_directory,
                                    summary_lines)


def _summarize(directory: str, args: argparse.Namespace, end_signal: str) -> float:
    print(f"Parsing files in {directory}")
    entries = parse_directory(directory, args.keyword, end_signal)
    if not entries:
        raise ValueError(f"{directory}: no '* {args.keyword}:' line after '{end_signal}' in any log.txt")
    for line in summary_lines(directory, entries, args.keyword, args.ci95):
        print(line)
    return mean_and_spread([value for _, value in entries])[0]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m dpt.tools.logparse",
        description="Mean and std of the final test result over run folders (CoOp's parse_test_res.py).",
    )
    parser.add_argument("directory", help="folder whose subfolders (seed1, seed2, ...) each hold a log.txt")
    parser.add_argument("--ci95", action="store_true", help="report 1.96*std/sqrt(n) instead of the std")
    parser.add_argument("--test-log", action="store_true", help="eval-only logs: parse after '=> result'")
    parser.add_argument("--multi-exp", action="store_true", help="subfolders of DIRECTORY are experiments")
    parser.add_argument("--keyword", default="accuracy", help="metric name in '* <keyword>: x%%' (default accuracy)")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Print parse_test_res's summary of DIRECTORY (or of each experiment in it, then their average)."""
    end_signal = END_SIGNAL_TEST if args.test_log else END_SIGNAL_TRAIN
    if not args.multi_exp:
        _summarize(args.directory, args, end_signal)
        return
    if not os.path.isdir(args.directory):
        raise FileNotFoundError(f"{args.directory}: expected a directory of experiments, found none")
    means = [
        _summarize(os.path.join(args.directory, name), args, end_signal)
        for name in sorted(os.listdir(args.directory))
        if not name.startswith(".") and os.path.isdir(os.path.join(args.directory, name))
    ]
    if not means:
        raise ValueError(f"{args.directory}: expected experiment subfolders, found none")
    print("Average performance")
    print(f"* {args.keyword}: {statistics.fmean(means):.2f}%")


if __name__ == "__main__":
    sys.exit(main())
