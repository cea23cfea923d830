"""Cache of the frozen zero-shot (CAVPT selector) image features of a fixed evaluation split.

Why: DPT's selector runs the whole frozen ViT on every test image at every evaluation although its
output never changes for a deterministic test transform; computing it once saves one of the two ViT
forwards per evaluated image (docs/design.md "Speed lives in the same places"). Features are kept in memory
for the run and on disk as ``<cache_dir>/selector_<Dataset>_<split>_<digest>.pt`` (``dpt.cache.kinds``); the
digest (``dpt.cache.digest``) covers the dataset, split, backbone (``clip_loader.backbone_id``: a name, or the
SHA-256 of a weights file), precision, the transform's repr and every image's (path, size, mtime), so changed
images or settings select a new file (a cache is never
used for other sources; the features do not depend on class names). Writes are atomic; each use refreshes the
file's modification time for ``dpt-cache clear --older-than``.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Optional, Sequence

import torch
from tqdm import tqdm

from dpt.cache.atomic import mark_used, save_torch_atomic
from dpt.cache.digest import source_digest
from dpt.cache.kinds import CLIP_FEATURES, SELECTOR, image_cache_folder
from dpt.data.datum import Datum


def cache_key(
    dataset: str, split: str, backbone: str, precision: str, transform: object, items: Sequence[Datum]
) -> str:
    """Hex digest naming one split's image features; changes with any image's path, size or mtime."""
    return source_digest([dataset, split, backbone, precision, repr(transform)], items)


def split_cache_path(
    cfg, kind: str, split: str, backbone: str, precision: str, transform: object, items: Sequence[Datum],
    dataset_dir: str,
) -> str:
    """``<DATALOADER.CACHE_DIR or dataset_dir/image_cache>/<kind>_<DATASET.NAME>_<split>_<key>.pt``.

    ``kind`` names what is cached ("selector": DPT's normalised zero-shot features; "clip_features": the
    linear probe's raw image features); ``backbone`` is ``clip_loader.backbone_id``. Reads DATASET.NAME and
    DATALOADER.CACHE_DIR.
    """
    cache_kind = {SELECTOR.name: SELECTOR, CLIP_FEATURES.name: CLIP_FEATURES}[kind]
    name = cfg.DATASET.NAME
    digest = cache_key(name, split, backbone, precision, transform, items)
    folder = image_cache_folder(cfg.DATALOADER.CACHE_DIR, dataset_dir)
    return cache_kind.path(folder, dataset=name, split=split, digest=digest)


class SelectorFeatureCache:
    """Per-split table of normalised zero-shot image features ``[N, E]``, filled on first use.

    Rows are looked up by dataset index (``batch["index"]``). Missing rows are computed by the caller's
    function and stored; once every row is known the table is written to ``path`` (if given) and later
    runs load it.

    Args:
        n_items: number of images in the split.
        path: ``.pt`` file to load from / save to, or None for memory only.
    """

    def __init__(self, n_items: int, path: Optional[str] = None) -> None:
        self.n_items = n_items
        self.path = path
        self.features: Optional[torch.Tensor] = None  # [N, E]
        self.known = torch.zeros(n_items, dtype=torch.bool)
        self.saved = False
        if path is not None and os.path.isfile(path):
            self._load(path)
            mark_used(path)

    def _load(self, path: str) -> None:
        try:
            features = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            reason = type(err).__name__
            raise ValueError(f"{path}: corrupt selector feature cache ({reason}); delete it to rebuild") from err
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != self.n_items:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"{path}: selector feature cache holds {shape}, expected [{self.n_items}, E]; delete it")
        self.features = features
        self.known[:] = True
        self.saved = True

    @property
    def complete(self) -> bool:
        return bool(self.known.all())

    def lookup(
        self, index: torch.Tensor, image: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Features ``[B, E]`` of the images with dataset indices ``index`` [B] (int64), on image's device.

        ``compute(image[missing])`` -> ``[b, E]`` fills the rows not yet known.
        """
        index = index.cpu()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.n_items):
            raise IndexError(f"selector cache: index out of range [0, {self.n_items}): {index.tolist()}")
        missing = ~self.known[index]
        if bool(missing.any()):
            computed = compute(image[missing.to(image.device)]).detach()  # [b, E]
            if self.features is None:
                self.features = torch.zeros(self.n_items, computed.shape[1], dtype=computed.dtype)
            self.features[index[missing]] = computed.to("cpu", self.features.dtype)
            self.known[index[missing]] = True
        return self.features[index].to(image.device)

    def fill(self, loader: Iterable, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Every row ``[N, E]``: missing rows are computed from ``loader``'s batches (``img``, ``index``), then
        the table is saved. A complete table (e.g. loaded from disk) reads no image at all."""
        if not self.complete:
            for batch in tqdm(loader, desc="image features", leave=False):
                self.lookup(batch["index"], batch["img"], compute)
        self.save_if_complete()
        return self.features

    def save_if_complete(self) -> None:
        """Write the table atomically once every row is known (no-op without a path or when saved)."""
        if self.path is None or self.saved or not self.complete:
            return
        save_torch_atomic(self.features, self.path)
        self.saved = True
