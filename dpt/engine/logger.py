"""stdout tee into OUTPUT_DIR/log.txt, as Dassl's setup_logger (docs/reference.md 4.6)."""
from __future__ import annotations

import os
import sys
import time
from typing import Optional, TextIO


class _Tee:
    """Writes to the original stream and to a log file; everything else is delegated."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream = stream
        self.log = log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def log_path_for(output: str) -> str:
    """``output`` itself if it names a .txt/.log file, else ``output/log.txt``; never an existing file."""
    path = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
    if os.path.exists(path):
        path += time.strftime("-%Y-%m-%d-%H-%M-%S")
    return path


_active: Optional[_Tee] = None


def setup_logger(output: str) -> str:
    """Tee ``sys.stdout`` into the log file (stderr, e.g. progress bars, is not logged). Returns its path."""
    global _active
    path = log_path_for(output)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent or ".", exist_ok=True)
        log = open(path, "w")
    except OSError as err:
        raise PermissionError(f"cannot write the log file {path}: {err.strerror}") from err
    close_logger()
    _active = _Tee(sys.stdout, log)
    sys.stdout = _active
    return path


def close_logger() -> None:
    """Restore ``sys.stdout`` and close the log file (tests and in-process re-runs call this)."""
    global _active
    if _active is not None:
        sys.stdout = _active.stream
        _active.log.close()
        _active = None
