"""Hand-crafted CLIP prompt templates (docs/reference.md 7.2), keyed by dataset registry name (DATASET.NAME)."""
from __future__ import annotations

from typing import Dict, Tuple

_PHOTO = "a photo of a {}."

# One template per dataset, used by ZeroshotCLIP and as the frozen text side / guidance of VPT, VLP, DPT.
CUSTOM_TEMPLATES: Dict[str, str] = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": _PHOTO,
    "Food101": "a photo of {}, a type of food.",
    "SUN397": _PHOTO,
    "Caltech101": _PHOTO,
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": _PHOTO,
    "ImageNetSketch": _PHOTO,
    "ImageNetV2": _PHOTO,
    "ImageNetA": _PHOTO,
    "ImageNetR": _PHOTO,
    "ImageFolder": _PHOTO,
    "CSV": _PHOTO,
}

# The 7-template ensemble of ZeroshotCLIP2 (plus the dataset's own template unless ImageNet).
IMAGENET_TEMPLATES_SELECT: Tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

# CLIP's 60 ImageNet prompt templates (order kept): PromptSRC's frozen text targets are their mean.
IMAGENET_TEMPLATES: Tuple[str, ...] = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
)

def custom_template(dataset_name: str) -> str:
    """The CUSTOM_TEMPLATES entry for DATASET.NAME, with a one-line error listing the known names."""
    if dataset_name not in CUSTOM_TEMPLATES:
        raise KeyError(
            f"DATASET.NAME {dataset_name!r} has no prompt template (known: {', '.join(sorted(CUSTOM_TEMPLATES))}); "
            f"set DATASET.TEMPLATE"
        )
    return CUSTOM_TEMPLATES[dataset_name]
