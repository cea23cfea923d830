"""ImageNet-A (test only, 200 classes): ``imagenet-adversarial/imagenet-a/<wnid>/``, sorted -> 0..199."""
from __future__ import annotations

from dpt.datasets.imagenet import ImageNetVariant
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    """Class names from the full ``imagenet-adversarial/classnames.txt``; files like ``README.txt`` skipped."""

    folder_name = "imagenet-adversarial"
    image_subdir = "imagenet-a"
