"""The 11 few-shot datasets, 4 ImageNet variants and one's own images (ImageFolder, CSV); importing this
package registers them all."""
from dpt.datasets import (  # noqa: F401
    caltech101,
    csv_file,
    dtd,
    eurosat,
    fgvc_aircraft,
    food101,
    image_folder,
    imagenet,
    imagenet_a,
    imagenet_r,
    imagenet_sketch,
    imagenetv2,
    oxford_flowers,
    oxford_pets,
    stanford_cars,
    sun397,
    ucf101,
)
