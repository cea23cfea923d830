"""The one error contract of every command-line entry point (console scripts and ``python -m`` tools).

- Bad input (an argument, a file or folder it names, a config key or value): ``error: <one line>`` on
  stderr, exit status 2. Argument-parser errors and ``INPUT_ERRORS`` raised by the work count as such:
  the library raises ``ValueError`` / ``KeyError`` / ``FileNotFoundError`` (and ``RuntimeError`` for a
  file it cannot use) where input enters, before anything is written.
- A failure during the work (``WORK_ERRORS``: a full disk, a diverging loss): ``error: <line>``, exit 1.
- Otherwise the status ``main`` returns (0; 1 where a tool reports failed items, e.g. unusable datasets).
A message of several lines (a preflight lists each problem) prints one ``error:`` line per line.
``DPT_DEBUG=1`` re-raises instead, for the traceback. ``cli_main`` applies it; every ``main`` uses it.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Callable, NoReturn, Optional, Sequence

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# FileNotFoundError & co. are OSErrors: the input tuple is tested first.
INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                PermissionError, RuntimeError)
WORK_ERRORS = (OSError, ArithmeticError)


def error_message(err: BaseException) -> str:
    """``str(err)``, without the quotes ``KeyError`` adds around its message."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)


def print_error(message: str) -> None:
    """``error: <line>`` on stderr for each line of ``message``."""
    for line in message.splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)


class UsageError(ValueError):
    """A bad command-line argument, as the argument parser reports it."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises ``UsageError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def cli_main(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable:
    """Turn ``run(args) -> Optional[int]`` into ``main(argv=None) -> int`` under the contract above.

    ``build_parser`` should return a ``dpt.errors.ArgumentParser``; a plain one still exits with status 2
    on a bad argument, with argparse's usage text.
    """

    def wrap(run: Callable[[argparse.Namespace], Optional[int]]) -> Callable[[Optional[Sequence[str]]], int]:
        @functools.wraps(run)
        def main(argv: Optional[Sequence[str]] = None) -> int:
            try:
                args = build_parser().parse_args(argv)
                status = run(args)
            except INPUT_ERRORS as err:
                return _report(err, EXIT_BAD_INPUT)
            except WORK_ERRORS as err:
                return _report(err, EXIT_FAILED)
            return 0 if status is None else status

        return main

    return wrap


def _report(err: BaseException, status: int) -> int:
    if os.environ.get("DPT_DEBUG"):
        raise err
    print_error(error_message(err))
    return status
