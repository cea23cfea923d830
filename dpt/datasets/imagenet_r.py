"""ImageNet-R (test only, 200 classes): ``imagenet-rendition/imagenet-r/<wnid>/``, sorted -> 0..199."""
from __future__ import annotations

from dpt.datasets.imagenet import ImageNetVariant
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    """Class names from the full ``imagenet-rendition/classnames.txt``; files like ``README.txt`` skipped."""

    folder_name = "imagenet-rendition"
    image_subdir = "imagenet-r"
