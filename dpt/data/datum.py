"""One labelled image: the unit every split, sampler and loader passes around (docs/reference.md 2.1)."""
from __future__ import annotations

import os
from typing import Tuple


class Datum:
    """An image path with its label, domain and class name; read-only once built.

    Construction checks that the image exists, so a broken split fails when it is read,
    not in the middle of training.

    Args:
        impath: absolute path of the image file.
        label: 0-based class index.
        domain: domain index (always 0 for the datasets here).
        classname: human-readable class name (underscores kept; trainers replace them).
        source: where the entry was listed (split file, dataset), named in the error if the
            image is missing.
    """

    __slots__ = ("_impath", "_label", "_domain", "_classname")

    def __init__(
        self, impath: str, label: int, domain: int = 0, classname: str = "", source: str = ""
    ) -> None:
        if not isinstance(impath, str):
            raise TypeError(f"Datum impath must be a str, got {type(impath).__name__} {impath!r}")
        if not os.path.isfile(impath):
            where = f" (listed in {source})" if source else ""
            raise FileNotFoundError(f"image not found: {impath}{where}")
        self._impath = impath
        self._label = int(label)
        self._domain = int(domain)
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def key(self) -> Tuple[str, int, int, str]:
        """(impath, label, domain, classname): what equality and hashing compare."""
        return (self._impath, self._label, self._domain, self._classname)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datum) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (
            f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, "
            f"classname={self._classname!r})"
        )
