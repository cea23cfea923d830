"""Image transforms by Dassl's names (docs/reference.md 3): INPUT.TRANSFORMS picks the train augmentations.

Train order (each only if named): resize (only without a random crop) -> random_translation ->
random_crop -> random_resized_crop -> random_flip -> colorjitter -> randomgrayscale ->
gaussian_blur -> to tensor -> cutout -> normalize -> gaussian_noise -> instance_norm.
Test: resize the shorter side to max(SIZE) -> center crop SIZE -> to tensor -> normalize /
instance_norm if named. ``center_crop`` is accepted for Dassl configs; like Dassl it adds nothing to
the train pipeline (the test pipeline always center-crops).
"""
from __future__ import annotations

import random
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from yacs.config import CfgNode

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

AVAILABLE_TRANSFORMS = (
    "random_flip",
    "random_resized_crop",
    "random_crop",
    "random_translation",
    "center_crop",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
    "cutout",
    "gaussian_noise",
    "normalize",
    "instance_norm",
)


class RandomTranslation:
    """With probability ``p`` resize to 1.125x the target and crop a random window, else resize.

    Dassl's ``Random2DTranslation``; draws from Python's ``random``. PIL image in, PIL image out.
    """

    def __init__(
        self, height: int, width: int, p: float = 0.5, interpolation: InterpolationMode = InterpolationMode.BILINEAR
    ) -> None:
        self.height, self.width, self.p, self.interpolation = height, width, p, interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.uniform(0, 1) > self.p:
            return F.resize(img, [self.height, self.width], interpolation=self.interpolation)
        new_w, new_h = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        resized = F.resize(img, [new_h, new_w], interpolation=self.interpolation)
        left = int(round(random.uniform(0, new_w - self.width)))
        top = int(round(random.uniform(0, new_h - self.height)))
        return F.crop(resized, top, left, self.height, self.width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(height={self.height}, width={self.width}, p={self.p})"


class Cutout:
    """Zero ``n_holes`` squares of side ``length`` at numpy-random centres; [3, H, W] float in and out."""

    def __init__(self, n_holes: int = 1, length: int = 16) -> None:
        self.n_holes, self.length = n_holes, length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[1:]
        mask = torch.ones(h, w, dtype=img.dtype)
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            y1, y2 = max(y - self.length // 2, 0), min(y + self.length // 2, h)
            x1, x2 = max(x - self.length // 2, 0), min(x + self.length // 2, w)
            mask[y1:y2, x1:x2] = 0.0
        return img * mask  # [H, W] broadcast over channels

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_holes={self.n_holes}, length={self.length})"


class GaussianNoise:
    """With probability ``p`` add N(mean, std) noise; [3, H, W] float in and out."""

    def __init__(self, mean: float = 0.0, std: float = 0.15, p: float = 0.5) -> None:
        self.mean, self.std, self.p = mean, std, p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std}, p={self.p})"


class InstanceNormalization:
    """Normalise each channel of one image by its own mean and std; [3, H, W] float in and out."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        flat = img.reshape(img.shape[0], -1)  # [C, H*W]
        mean, std = flat.mean(1).view(-1, 1, 1), flat.std(1).view(-1, 1, 1)
        return (img - mean) / (std + self.eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


def check_transform_names(names: Sequence[str]) -> None:
    """Unknown INPUT.TRANSFORMS entries raise, listing the valid names."""
    unknown = [n for n in names if n not in AVAILABLE_TRANSFORMS]
    if unknown:
        raise ValueError(
            f"INPUT.TRANSFORMS: unknown transform(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(AVAILABLE_TRANSFORMS)}"
        )


def interpolation_mode(cfg: CfgNode) -> InterpolationMode:
    """INPUT.INTERPOLATION as a torchvision mode."""
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(
            f"INPUT.INTERPOLATION: expected one of {', '.join(INTERPOLATION_MODES)}, got {cfg.INPUT.INTERPOLATION!r}"
        )
    return INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]


def build_transform(cfg: CfgNode, is_train: bool) -> Optional[T.Compose]:
    """Train or test pipeline, printing each step as Dassl does. PIL RGB in, [3, H, W] float32 out.

    Returns None when INPUT.NO_TRANSFORM (images stay PIL). Config keys read: INPUT.* (SIZE,
    INTERPOLATION, TRANSFORMS, NO_TRANSFORM, PIXEL_MEAN/STD, CROP_PADDING, RRCROP_SCALE, CUTOUT_*,
    GN_*, COLORJITTER_*, RGS_P, GB_P, GB_K).
    """
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    names = list(cfg.INPUT.TRANSFORMS)
    check_transform_names(names)
    if len(cfg.INPUT.SIZE) != 2:
        raise ValueError(f"INPUT.SIZE: expected (height, width), got {cfg.INPUT.SIZE!r}")
    interp = interpolation_mode(cfg)
    steps = _train_steps(cfg, names, interp) if is_train else _test_steps(cfg, names, interp)
    return T.Compose(steps)


def _tail(cfg: CfgNode, names: Sequence[str], is_train: bool) -> List[Callable]:
    """To tensor and the tensor-level steps shared by both pipelines."""
    inp = cfg.INPUT
    print("+ to torch tensor of range [0, 1]")
    steps: List[Callable] = [T.ToTensor()]
    if is_train and "cutout" in names:
        print(f"+ cutout (n_holes={inp.CUTOUT_N}, length={inp.CUTOUT_LEN})")
        steps.append(Cutout(inp.CUTOUT_N, inp.CUTOUT_LEN))
    if "normalize" in names:
        print(f"+ normalization (mean={inp.PIXEL_MEAN}, std={inp.PIXEL_STD})")
        steps.append(T.Normalize(mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD))
    if is_train and "gaussian_noise" in names:
        print(f"+ gaussian noise (mean={inp.GN_MEAN}, std={inp.GN_STD})")
        steps.append(GaussianNoise(inp.GN_MEAN, inp.GN_STD))
    if "instance_norm" in names:
        print("+ instance normalization")
        steps.append(InstanceNormalization())
    return steps


def _train_steps(cfg: CfgNode, names: Sequence[str], interp: InterpolationMode) -> List[Callable]:
    inp = cfg.INPUT
    size = tuple(inp.SIZE)
    print("Building transform_train")
    steps: List[Callable] = []
    if "random_crop" not in names and "random_resized_crop" not in names:
        print(f"+ resize to {size[0]}x{size[1]}")
        steps.append(T.Resize(size, interpolation=interp))
    if "random_translation" in names:
        print("+ random translation")
        steps.append(RandomTranslation(size[0], size[1], interpolation=interp))
    if "random_crop" in names:
        print(f"+ random crop (padding = {inp.CROP_PADDING})")
        steps.append(T.RandomCrop(size, padding=inp.CROP_PADDING))
    if "random_resized_crop" in names:
        print(f"+ random resized crop (size={size}, scale={tuple(inp.RRCROP_SCALE)})")
        steps.append(T.RandomResizedCrop(size, scale=tuple(inp.RRCROP_SCALE), interpolation=interp))
    if "random_flip" in names:
        print("+ random flip")
        steps.append(T.RandomHorizontalFlip())
    if "colorjitter" in names:
        b, c, s, h = inp.COLORJITTER_B, inp.COLORJITTER_C, inp.COLORJITTER_S, inp.COLORJITTER_H
        print(f"+ color jitter (brightness={b}, contrast={c}, saturation={s}, hue={h})")
        steps.append(T.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    if "randomgrayscale" in names:
        print("+ random gray scale")
        steps.append(T.RandomGrayscale(p=inp.RGS_P))
    if "gaussian_blur" in names:
        print(f"+ gaussian blur (kernel={inp.GB_K})")
        steps.append(T.RandomApply([T.GaussianBlur(inp.GB_K)], p=inp.GB_P))
    return steps + _tail(cfg, names, is_train=True)


def _test_steps(cfg: CfgNode, names: Sequence[str], interp: InterpolationMode) -> List[Callable]:
    size = tuple(cfg.INPUT.SIZE)
    print("Building transform_test")
    print(f"+ resize the smaller edge to {max(size)}")
    print(f"+ {size[0]}x{size[1]} center crop")
    steps: List[Callable] = [T.Resize(max(size), interpolation=interp), T.CenterCrop(size)]
    return steps + _tail(cfg, names, is_train=False)


def split_at_to_tensor(tfm: T.Compose) -> Tuple[T.Compose, T.Compose]:
    """Split a pipeline into its PIL steps (before ToTensor) and the tensor steps (ToTensor on).

    For the test pipeline the first part is deterministic (resize + center crop), which is
    what the on-disk test cache stores.
    """
    kinds = [type(t) for t in tfm.transforms]
    if T.ToTensor not in kinds:
        raise ValueError(f"transform has no ToTensor step to split at: {tfm}")
    cut = kinds.index(T.ToTensor)
    return T.Compose(tfm.transforms[:cut]), T.Compose(tfm.transforms[cut:])
