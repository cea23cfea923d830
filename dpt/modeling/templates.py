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


def custom_template(dataset_name: str) -> str:
    """The CUSTOM_TEMPLATES entry for DATASET.NAME, with a one-line error listing the known names."""
    if dataset_name not in CUSTOM_TEMPLATES:
        raise KeyError(
            f"DATASET.NAME {dataset_name!r} has no prompt template; known: {', '.join(sorted(CUSTOM_TEMPLATES))}"
        )
    return CUSTOM_TEMPLATES[dataset_name]
