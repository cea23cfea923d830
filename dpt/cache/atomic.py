"""Atomic file writes: a reader never sees a half-written split, cache, checkpoint, config or figure.

Why: several runs (seeds, methods) often start at once on one dataset folder and create the same
file, and a kill or a full disk may stop a writer half-way. Each writer fills its own uniquely named
temporary file in the target's folder and then ``os.replace``-s it into place, which is atomic on
POSIX and Windows; the last writer wins and every version is complete. Every temporary file (and
folder) is named ``.<target name>.<random>.tmp`` (``TEMPORARY_NAME``): ``dpt-cache`` lists and clears
old ones, and a run removes its own leftovers on restart (``temporary_target``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Any, Callable, Iterator, Optional

# A claim on a stale file older than this was left by a killed run and is taken over.
CLAIM_TIMEOUT_S = 60.0
# ``.<target>.<random>.tmp``: the one temporary naming scheme (``tempfile``'s random part is [a-z0-9_]).
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp")


def temporary_target(name: str) -> Optional[str]:
    """The target file name of a temporary file named ``name``, or None if ``name`` is not one of ours."""
    match = TEMPORARY_NAME.fullmatch(name)
    return match.group("target") if match else None


def _temporary_affixes(path: str) -> tuple:
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder, f".{name}.", ".tmp"


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a fresh temporary path beside ``path``; on success move it onto ``path``.

    The folder of ``path`` is created if missing. On an exception the temporary file is
    removed and ``path`` is left untouched.
    """
    folder, prefix, suffix = _temporary_affixes(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path: str) -> Iterator[str]:
    """Yield a fresh temporary folder beside ``path``; on success rename it to ``path`` (which must not exist).

    On an exception the temporary folder and everything in it is removed.
    """
    parent, prefix, suffix = _temporary_affixes(path.rstrip(os.sep))
    tmp = tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)


def write_with(path: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp)`` on a temporary path and move the result onto ``path``; returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_text_atomic(text: str, path: str) -> str:
    """Write ``text`` to ``path``, atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    return path


def save_torch_atomic(obj: Any, path: str) -> str:
    """``torch.save(obj, path)``, atomically; returns ``path``."""
    import torch  # not at import: the JSON writers serve tools that never load torch

    return write_with(path, lambda tmp: torch.save(obj, tmp))


def _dump_json(obj: Any, f, indent: int) -> None:
    if indent == 4:  # the layout of CoOp's split files
        json.dump(obj, f, indent=4, separators=(",", ": "))
    else:
        json.dump(obj, f, indent=indent)


def write_json_atomic(obj: Any, path: str, indent: int = 4) -> str:
    """Write ``obj`` as JSON (4-space indent by default: CoOp's split files), atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            _dump_json(obj, f, indent)
    return path


def mark_used(path: str) -> None:
    """Set ``path``'s modification time to now, so ``dpt-cache clear --older-than`` spares caches in use.

    Best effort: a read-only dataset folder keeps its old times.
    """
    with contextlib.suppress(OSError):
        os.utime(path)


def write_json_once(obj: Any, path: str) -> bool:
    """Write ``obj`` as JSON at ``path`` unless it exists; True if this call created the file.

    Why: runs racing to create the same few-shot cache may hold different samples (one of them
    drew its split with extra RNG calls); letting only the first publish, and the others read
    what it wrote, keeps every run on the subset the file records. The complete temporary file
    is hard-linked into place, which fails if ``path`` exists; where links are unsupported, the
    last writer wins as in ``write_json_atomic``.
    """
    folder, prefix, suffix = _temporary_affixes(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "w") as f:
            _dump_json(obj, f, 4)
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


def replace_json_once(obj: Any, path: str, stale: os.stat_result) -> bool:
    """Replace the stale file at ``path`` (``stale``: its stat when it was read) by ``obj``, unless another run
    is replacing or has replaced it; True if this call replaced it.

    Why: runs that find the same stale cache at once should end on one version, as with ``write_json_once``:
    the first to claim the stale file publishes, the others read what it wrote. The claim is a hard link to
    the stale file named after its inode, so ``os.link`` lets exactly one run take it, and the inode number
    cannot be reused while the claim exists. A claim older than ``CLAIM_TIMEOUT_S`` (its run was killed) is
    removed, so a later call can take over. Where hard links are unsupported the last writer wins.
    """
    folder, name = os.path.split(os.path.abspath(path))
    claim = os.path.join(folder, f".{name}.replacing-{stale.st_ino}")
    try:
        os.link(path, claim)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.stat(claim).st_ctime > CLAIM_TIMEOUT_S:
                os.remove(claim)
        return False
    except FileNotFoundError:  # removed meanwhile: the caller finds it missing and creates it
        return False
    except OSError:  # no hard links on this file system
        write_json_atomic(obj, path)
        return True
    try:
        if os.stat(claim).st_ino != stale.st_ino:  # another run replaced it before this one linked
            return False
        write_json_atomic(obj, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):  # taken over after CLAIM_TIMEOUT_S, or cleared
            os.remove(claim)
