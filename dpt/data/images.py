"""Image decoding: the one place image files are opened."""
from __future__ import annotations

from PIL import Image


def read_image(path: str) -> Image.Image:
    """Open ``path`` as an RGB PIL image (docs/reference.md 3); a missing or corrupt file raises naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"image not found: {path}") from err
    except OSError as err:
        raise OSError(f"cannot read image {path}: {err}") from err
