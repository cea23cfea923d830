"""``python -m dpt.tools.jobs JOBFILE... [--ledger DIR]``: the jobs of reproduce.sh job files not yet finished.

Prints dpt.launch.jobs' markdown listing (reproduce.sh puts it into report.md).
"""
from __future__ import annotations

import argparse
import sys

from dpt.errors import ArgumentParser, cli_main
from dpt.launch.jobs import read_job_file, read_ledger, unfinished_listing


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m dpt.tools.jobs",
                            description="List the jobs of reproduce.sh job files that are not finished.")
    parser.add_argument("job_files", nargs="+", help="files of '<number> <command>' lines")
    parser.add_argument("--ledger", default="", metavar="DIR", help="folder of the launcher's submitted.json")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Print the listing of the unfinished jobs."""
    jobs = [job for path in args.job_files for job in read_job_file(path)]
    ledger = read_ledger(args.ledger) if args.ledger else {}
    print(unfinished_listing(jobs, ledger))


if __name__ == "__main__":
    sys.exit(main())
