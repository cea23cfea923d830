"""Atomic file writes: a reader never sees a half-written split, few-shot cache or image cache.

Why: several runs (seeds, methods) often start at once on one dataset folder and create the same
cache file. Each writer fills its own uniquely named temporary file in the target's folder and
then ``os.replace``-s it into place, which is atomic on POSIX and Windows; the last writer wins
and every version is complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a fresh temporary path beside ``path``; on success move it onto ``path``.

    The folder of ``path`` is created if missing. On an exception the temporary file is
    removed and ``path`` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON with 4-space indent (the layout of CoOp's split files), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=4, separators=(",", ": "))


def write_json_once(obj: Any, path: str) -> bool:
    """Write ``obj`` as JSON at ``path`` unless it exists; True if this call created the file.

    Why: runs racing to create the same few-shot cache may hold different samples (one of them
    drew its split with extra RNG calls); letting only the first publish, and the others read
    what it wrote, keeps every run on the subset the file records. The complete temporary file
    is hard-linked into place, which fails if ``path`` exists; where links are unsupported, the
    last writer wins as in ``write_json_atomic``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=4, separators=(",", ": "))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
