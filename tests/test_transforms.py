"""Transforms built from INPUT.TRANSFORMS: the test pipeline against a hand-written PIL/numpy one."""
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from dpt.config import get_cfg_default
from dpt.data.transforms import AVAILABLE_TRANSFORMS, Cutout, RandomTranslation, build_transform

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def make_cfg(transforms=("random_resized_crop", "random_flip", "normalize"), size=(24, 24), interp="bicubic"):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = size
    cfg.INPUT.INTERPOLATION = interp
    cfg.INPUT.TRANSFORMS = transforms
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    return cfg


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))  # width 40, height 32


@pytest.mark.parametrize("interp, pil_filter", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
def test_test_transform_equals_manual_pipeline(image, interp, pil_filter):
    out = build_transform(make_cfg(interp=interp), is_train=False)(image)
    # Shorter side 32 -> 24 keeps the aspect: 40 x 32 -> 30 x 24; centre crop 24 x 24 starts at x = 3.
    resized = image.resize((30, 24), pil_filter)
    arr = np.asarray(resized, dtype=np.float32)[:, 3:27] / 255.0
    manual = (arr - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.from_numpy(manual).permute(2, 0, 1), atol=1e-5, rtol=0)


def test_test_transform_without_normalize_is_in_unit_range(image):
    out = build_transform(make_cfg(transforms=("random_flip",)), is_train=False)(image)
    expected = np.asarray(image.resize((30, 24), Image.BICUBIC), dtype=np.float32)[:, 3:27] / 255.0
    torch.testing.assert_close(out, torch.from_numpy(expected).permute(2, 0, 1), atol=1e-6, rtol=0)


def test_train_transform_is_coop_pipeline(image, capsys):
    tfm = build_transform(make_cfg(), is_train=True)
    kinds = [type(t) for t in tfm.transforms]
    assert kinds == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    rrc = tfm.transforms[0]
    assert rrc.scale == (0.08, 1.0) and rrc.size == (24, 24) and rrc.interpolation == T.InterpolationMode.BICUBIC
    out = tfm(image)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "Building transform_train",
        "+ random resized crop (size=(24, 24), scale=(0.08, 1.0))",
        "+ random flip",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
    ]


def test_train_without_crop_resizes_and_order_follows_dassl(image):
    names = ("gaussian_blur", "colorjitter", "random_translation", "randomgrayscale", "cutout", "normalize", "center_crop")
    tfm = build_transform(make_cfg(transforms=names), is_train=True)
    kinds = [type(t).__name__ for t in tfm.transforms]
    assert kinds == ["Resize", "RandomTranslation", "ColorJitter", "RandomGrayscale", "RandomApply",
                     "ToTensor", "Cutout", "Normalize"]
    assert tfm(image).shape == (3, 24, 24)


def test_random_crop_uses_padding(image):
    cfg = make_cfg(transforms=("random_crop",), size=(32, 40))
    cfg.INPUT.CROP_PADDING = 6
    tfm = build_transform(cfg, is_train=True)
    assert tfm.transforms[0].padding == 6
    assert tfm(image).shape == (3, 32, 40)


def test_random_translation_crops_a_shifted_window(image):
    random.seed(0)
    out = np.asarray(RandomTranslation(16, 20, p=1.0)(image))
    big = image.resize((22, 18), Image.BILINEAR)  # 1.125 x (20, 16), rounded
    windows = [np.asarray(big.crop((x, y, x + 20, y + 16))) for x in range(3) for y in range(3)]
    assert any(np.array_equal(out, w) for w in windows)
    not_applied = RandomTranslation(16, 20, p=-1.0)(image)
    assert np.array_equal(np.asarray(not_applied), np.asarray(image.resize((20, 16), Image.BILINEAR)))


def test_cutout_zeroes_a_square():
    np.random.seed(0)
    out = Cutout(n_holes=1, length=4)(torch.ones(3, 10, 10))
    zeros = (out == 0).all(0)
    assert 0 < zeros.sum() <= 16 and bool((out[:, ~zeros] == 1).all())


def test_unknown_transform_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown transform\\(s\\) 'random_flipp'; valid: " + ", ".join(AVAILABLE_TRANSFORMS)):
        build_transform(make_cfg(transforms=("random_flipp",)), is_train=True)
    with pytest.raises(ValueError, match="'randaugment'"):
        build_transform(make_cfg(transforms=("randaugment",)), is_train=False)


def test_bad_interpolation_and_no_transform(capsys):
    with pytest.raises(ValueError, match="INPUT.INTERPOLATION: expected one of bilinear, bicubic, nearest, got 'lanczos'"):
        build_transform(make_cfg(interp="lanczos"), is_train=False)
    cfg = make_cfg()
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg, is_train=True) is None
    assert "Note: no transform is applied!" in capsys.readouterr().out
