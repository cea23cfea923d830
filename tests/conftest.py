"""Shared fixtures: tiny random CLIPs (OpenAI and open_clip) saved to files, synthetic datasets in real on-disk
formats, and a synthetic tree of finished runs. Plain helpers are in helpers.py.

Why files: real weights and datasets cannot be downloaded here; a tiny model of the real ``clip.model.CLIP``
class (12 vision blocks, so layer indexing matters) and images in each dataset's real layout go through the
same loaders and readers users hit.
"""
from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, Tuple  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from dpt.demo.synthetic import make_dataset  # noqa: E402
from dpt.demo.tiny_clip import make_tiny_clip, tiny_clip_state_dict  # noqa: E402
from dpt.modeling.backbones.clip_import import clip  # noqa: E402
from dpt.modeling.backbones.loader import load_clip  # noqa: E402
from helpers import FEWSHOT, ZEROSHOT, save_torchscript_state, trained_dir, write_log, write_tiny_open_clip  # noqa: E402


# ----- tiny CLIPs ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a ``torch.save`` state dict of ``make_tiny_clip()`` (12 vision blocks)."""
    path = tmp_path_factory.mktemp("tiny_clip") / "tiny_clip.pt"
    torch.save(tiny_clip_state_dict(make_tiny_clip()), path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_jit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the same tiny CLIP saved as a TorchScript archive (OpenAI's on-disk format)."""
    path = tmp_path_factory.mktemp("tiny_clip_jit") / "tiny_clip_jit.pt"
    save_torchscript_state(tiny_clip_state_dict(make_tiny_clip()), path)
    return path


@pytest.fixture
def tiny_clip(tiny_clip_path: Path) -> clip.model.CLIP:
    """A fresh fp32 tiny CLIP loaded through ``load_clip`` (function scope: tests may freeze or mutate it)."""
    return load_clip(str(tiny_clip_path))


@pytest.fixture(scope="session")
def tiny_open_clip_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``open_clip:<json>:<pt>`` of the tiny random open_clip CLIP (skips without open_clip_torch)."""
    pytest.importorskip("open_clip", reason="open_clip_torch is not installed (pip install -e .[open_clip])")
    return write_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))


# ----- synthetic datasets ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ROOT with a learnable EuroSAT: 4 classes x 8 train / 2 val / 4 test images (4 shots: 16 images)."""
    root = tmp_path_factory.mktemp("data")
    make_dataset(root, "EuroSAT", n_classes=4, n_train=8, n_val=2, n_test=4, learnable=True, seed=3)
    return root


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A ROOT holding small OxfordPets, EuroSAT, DescribableTextures, Caltech101, FGVCAircraft and ImageNet."""
    root = tmp_path / "data"
    names = ("OxfordPets", "EuroSAT", "DescribableTextures", "Caltech101", "FGVCAircraft", "ImageNet")
    for i, name in enumerate(names):
        make_dataset(root, name, seed=i)
    return root


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Callable[..., Tuple[Path, Dict[str, Any]]]:
    """Factory: ``synthetic_root(name, **make_dataset_kwargs) -> (root, info)`` in a fresh folder."""
    count = [0]

    def _make(name: str, **kwargs: Any) -> Tuple[Path, Dict[str, Any]]:
        count[0] += 1
        root = tmp_path / f"root{count[0]}"
        return root, make_dataset(root, name, **kwargs)

    return _make


# ----- finished runs -----------------------------------------------------------------------------


@pytest.fixture
def fewshot_root(tmp_path: Path) -> str:
    """An output tree of the runs in helpers.FEWSHOT (few-shot, seeds 1..3) and helpers.ZEROSHOT."""
    root = str(tmp_path / "output")
    for (trainer, cfg, variant, shots, dataset), accs in FEWSHOT.items():
        for seed, acc in enumerate(accs, start=1):
            folder = trained_dir(root, dataset, trainer, cfg, shots, variant, seed)
            write_log(folder, acc, finish=acc is not None)
    for dataset, acc in ZEROSHOT.items():
        write_log(os.path.join(root, "ZeroshotCLIP", "vit_b32", dataset), acc, eval_only=True)
    return root
