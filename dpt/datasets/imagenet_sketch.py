"""ImageNet-Sketch (test only): ``imagenet-sketch/images/<wnid>/``, sorted wnids -> labels 0..999."""
from __future__ import annotations

from dpt.datasets.imagenet import ImageNetVariant
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    """Class names looked up in ``imagenet-sketch/classnames.txt``."""

    folder_name = "imagenet-sketch"
    image_subdir = "images"
