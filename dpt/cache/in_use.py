"""Locks that mark caches as in use by a live run, so ``dpt-cache clear`` never pulls a cache from under a job.

A run holds ``<folder>/.dpt-in-use/<host>-<pid>.json`` for each folder whose caches it may read or write: its
dataset folder (holding ``split_fewshot/`` and ``image_cache/``) and DATALOADER.CACHE_DIR. The file records the
host, the pid, the process start time and the command. A lock is live while that process runs; on this host a
lock whose process is gone (a run killed with -9) or whose pid now belongs to another process is stale and
ignored (``dpt-cache clear`` removes it). A lock written on another host cannot be checked from here and counts
as live: delete the file once that run has ended.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

LOCK_DIR = ".dpt-in-use"
# Cache folders kept inside a dataset folder: their locks live in the dataset folder itself.
DATASET_CACHE_FOLDERS = ("split_fewshot", "image_cache")


@dataclass(frozen=True)
class Holder:
    """A run holding a folder's caches: where its lock file is and what it records."""

    path: str
    host: str
    pid: int
    start: Optional[int]
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command})"


def _start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)": state is field 3, starttime 22


def _alive(pid: int, start: Optional[int]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return start is None or _start_time(pid) in (None, start)  # the same process, not a reused pid


def lock_folder(cache_folder: str) -> str:
    """The folder whose ``.dpt-in-use/`` guards ``cache_folder`` (a dataset's cache folders: the dataset folder)."""
    cache_folder = os.path.abspath(cache_folder)
    if os.path.basename(cache_folder) in DATASET_CACHE_FOLDERS:
        return os.path.dirname(cache_folder)
    return cache_folder


def holders(folder: str) -> List[Holder]:
    """Every lock in ``folder/.dpt-in-use`` (live or stale), sorted by path; unreadable files are skipped."""
    directory = os.path.join(folder, LOCK_DIR)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                record = json.load(f)
            found.append(Holder(path, str(record["host"]), int(record["pid"]), record.get("start"),
                                str(record.get("command", ""))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
    return found


def is_live(holder: Holder) -> bool:
    """On this host: whether the process still runs; on another host: True (it cannot be checked)."""
    return holder.host != socket.gethostname() or _alive(holder.pid, holder.start)


def lock_caches(folders: Sequence[str]) -> List[str]:
    """Take a lock in each existing folder of ``folders`` for this process; returns the lock files written
    (give them to ``release_locks`` when the run ends). Best effort: a folder this process cannot write (a
    read-only dataset) is not locked."""
    pid = os.getpid()
    record = {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid),
              "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:300]}
    written = []
    for folder in dict.fromkeys(os.path.abspath(f) for f in folders if f and os.path.isdir(f)):
        path = os.path.join(folder, LOCK_DIR, f"{record['host']}-{pid}.json")
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(f"{path}.tmp", "w") as f:
                json.dump(record, f)
            os.replace(f"{path}.tmp", path)
            written.append(path)
    return written


def release_locks(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)
