"""The one source digest that names every cache file made from images (test images, frozen image features).

Why: a cache is never used for other sources, so its file name carries a digest of everything it was made
from: the settings the caller passes and every image's (path, size, mtime). Changed images or settings
select a new file. 20 hex digits (80 bits) is the length the test-image caches have always used, so those
(up to ~7.5 GB for ImageNet) stay valid; feature caches named with the former 24 digits are made again once.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Protocol, Sequence

DIGEST_HEX = 20


class ImageItem(Protocol):
    """Anything with an image path (a ``dpt.data.datum.Datum``); the cache layer sits below the data layer."""

    @property
    def impath(self) -> str: ...


def image_records(items: Sequence[ImageItem]) -> list:
    """``[(path, size, mtime_ns)]`` of each item's image file, in order."""
    records = []
    for item in items:
        stat = os.stat(item.impath)
        records.append((item.impath, stat.st_size, stat.st_mtime_ns))
    return records


def source_digest(settings: Sequence[Any], items: Sequence[ImageItem]) -> str:
    """``DIGEST_HEX`` hex digits of SHA-256 over ``settings`` (JSON-able) and the images of ``items``."""
    key = json.dumps([*settings, image_records(items)])
    return hashlib.sha256(key.encode()).hexdigest()[:DIGEST_HEX]
