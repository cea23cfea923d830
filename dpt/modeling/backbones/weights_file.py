"""Read a backbone's weights file into a state dict, and fingerprint a file by its contents.

Why a module of its own: the OpenAI loader (clip_loader.py) and the open_clip loader (open_clip_loader.py)
read the same on-disk formats (OpenAI's TorchScript archives, ``torch.save`` state dicts, safetensors) and
identify weight files the same way; one reader keeps the ``weights_only`` guarantee and its error in one place.
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Mapping

import torch


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents, read in chunks (weights files are GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``<prefix>/constants.pkl`` entry; torch.save files are not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _read(path: Path) -> Mapping[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as err:  # not an OSError/ValueError: re-raised as one the caller handles
            raise ValueError(str(err)) from err
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """CPU tensors of a TorchScript archive (OpenAI's format), a ``.safetensors`` file or a ``torch.save`` file.

    ``torch.save`` files are loaded with ``weights_only=True`` (tensors and plain containers, never code).
    """
    try:
        return _read(path)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        reason = " ".join(str(err).split())[:200]
        raise ValueError(
            f"{path}: not a readable CLIP checkpoint (TorchScript archive, safetensors or torch.save state dict); "
            f"it may be truncated, delete it and re-download ({type(err).__name__}: {reason})"
        ) from err
