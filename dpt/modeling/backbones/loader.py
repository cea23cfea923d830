"""Load the CLIP backbone named by MODEL.BACKBONE.NAME: OpenAI weights by name (checksummed cache file) or by
path (docs/reference.md 7.1), or an open_clip model (``open_clip:ARCH:PRETRAINED``, open_clip_loader.py).

Each of the three schemes is one object (``OpenAIModel``, ``WeightsFile``, ``OpenClipBackbone``) offering its
weights file (the preflight's check), ``load`` and ``identity`` (for checkpoints and caches);
``resolve_backbone`` chooses the scheme of a name, once.

Why: architecture and weights are separate steps (docs/design.md "Weights apart from architecture"), so tests save a tiny random CLIP to a file
and load it through the very function users hit. Nothing here downloads: offline machines get an
error naming the expected cache file and how to fetch it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, NamedTuple, Protocol, Tuple, Union

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.open_clip_adapter import OPENAI_MEAN, OPENAI_STD, ImagePreprocess, OpenCLIP
from dpt.modeling.backbones.open_clip_loader import OPEN_CLIP_PREFIX, OpenClipBackbone
from dpt.modeling.backbones.weights_file import file_sha256, read_state_dict

_URL_ROOT = "https://openaipublic.azureedge.net/clip/models"
PRECISIONS = ("fp16", "fp32", "amp", "bf16")


class ClipWeights(NamedTuple):
    """One downloadable OpenAI CLIP checkpoint."""

    file_name: str
    url: str
    sha256: str


def _entry(sha256: str, file_name: str) -> ClipWeights:
    return ClipWeights(file_name, f"{_URL_ROOT}/{sha256}/{file_name}", sha256)


# The SHA-256 of each file is the path component of OpenAI's URL (as in clip.clip._MODELS).
CLIP_MODELS: Dict[str, ClipWeights] = {
    "RN50": _entry("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
    "RN101": _entry("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
    "RN50x4": _entry("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
    "RN50x16": _entry("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
    "RN50x64": _entry("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt"),
    "ViT-B/32": _entry("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    "ViT-B/16": _entry("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    "ViT-L/14": _entry("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    "ViT-L/14@336px": _entry(
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt"
    ),
}


def clip_cache_dir() -> Path:
    """Folder holding named CLIP files: ``$DPT_CLIP_CACHE``, else ``~/.cache/clip`` (the clip package's default)."""
    return Path(os.environ.get("DPT_CLIP_CACHE") or os.path.expanduser("~/.cache/clip"))


# Files verified in this process: path -> (size, mtime, inode, expected hash) at the time.
_VERIFIED: Dict[Path, Tuple[int, int, int, str]] = {}


def _verify_sha256(path: Path, name: str, weights: ClipWeights) -> None:
    """Check ``path`` against the table's hash, once per process and file state (hashing takes ~1 s per 350 MB)."""
    stat = path.stat()
    state = (stat.st_size, stat.st_mtime_ns, stat.st_ino, weights.sha256)
    if _VERIFIED.get(path) == state:
        return
    actual = file_sha256(path)
    if actual != weights.sha256:
        raise ValueError(
            f"{path}: SHA-256 mismatch for CLIP {name!r}: expected {weights.sha256}, got {actual}; "
            f"the file is corrupt or incomplete, delete it and re-download from {weights.url}"
        )
    _VERIFIED[path] = state


CLIPModel = Union[clip.model.CLIP, OpenCLIP]


class Backbone(Protocol):
    """What every MODEL.BACKBONE.NAME scheme offers."""

    name: str

    def weights_file(self) -> Path:
        """The weights file, checked (FileNotFoundError / ValueError naming what is wrong); nothing built."""

    def load(self, precision: str) -> CLIPModel:
        """The model on the CPU in eval mode (see ``load_clip``)."""

    def identity(self) -> str:
        """What identifies the weights in checkpoints and caches (see ``backbone_id``)."""


def _build_openai_clip(path: Path, precision: str) -> clip.model.CLIP:
    state_dict = read_state_dict(path)
    if not isinstance(state_dict, Mapping) or "text_projection" not in state_dict:
        raise ValueError(f"{path}: no 'text_projection' tensor, so this is not a CLIP state dict")
    try:
        model = clip.model.build_model(dict(state_dict))
    except (KeyError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:200]
        raise ValueError(f"{path}: state dict does not build a CLIP model ({type(err).__name__}: {reason})") from err
    if precision != "fp16":
        model = model.float()
    return model.eval()


class OpenAIModel(NamedTuple):
    """A key of ``CLIP_MODELS``: its file in ``clip_cache_dir()``, SHA-256 verified once per process."""

    name: str

    def weights_file(self) -> Path:
        weights = CLIP_MODELS[self.name]
        path = clip_cache_dir() / weights.file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"CLIP weights for {self.name!r} not found at {path}; download them there with "
                f"`python -c \"import clip; clip.load('{self.name}', download_root='{path.parent}')\"` "
                f"or `curl -L -o {path} {weights.url}` (or set DPT_CLIP_CACHE to the folder holding "
                f"{weights.file_name})"
            )
        _verify_sha256(path, self.name, weights)
        return path

    def load(self, precision: str) -> clip.model.CLIP:
        return _build_openai_clip(self.weights_file(), precision)

    def identity(self) -> str:
        """The name: it pins one published set of weights."""
        return self.name


class WeightsFile(NamedTuple):
    """A TorchScript archive or ``torch.save`` state dict of an OpenAI-layout CLIP (no hash check)."""

    name: str

    def weights_file(self) -> Path:
        return Path(self.name).expanduser()

    def load(self, precision: str) -> clip.model.CLIP:
        return _build_openai_clip(self.weights_file(), precision)

    def identity(self) -> str:
        """``sha256:<hex>`` of the contents: paths move between machines, the contents decide the features."""
        return "sha256:" + file_sha256(self.weights_file())


def resolve_backbone(name_or_path: str) -> Backbone:
    """The scheme of MODEL.BACKBONE.NAME: ``open_clip:ARCH:PRETRAINED``, a key of ``CLIP_MODELS``, or a file.

    Raises ValueError when it is none of them (open_clip names are checked by their scheme's methods).
    """
    if name_or_path.startswith(OPEN_CLIP_PREFIX):
        return OpenClipBackbone(name_or_path)
    if name_or_path in CLIP_MODELS:
        return OpenAIModel(name_or_path)
    if Path(name_or_path).expanduser().is_file():
        return WeightsFile(name_or_path)
    raise ValueError(
        f"MODEL.BACKBONE.NAME {name_or_path!r} is neither a known CLIP model ({', '.join(CLIP_MODELS)}) "
        f"nor an existing file"
    )


def resolve_weights(name_or_path: str) -> Path:
    """The weights file for MODEL.BACKBONE.NAME: a known model's verified cache file, an existing file path, or
    the file an ``open_clip:ARCH:PRETRAINED`` name resolves to (open_clip's caches or a path).

    Raises FileNotFoundError (named model not downloaded: where it was looked for and how to fetch it) or
    ValueError (hash mismatch, neither a known name nor a file). The preflight calls this before anything
    heavy is built; ``load_clip`` calls it again at no extra cost (the hash is checked once per process).
    """
    return resolve_backbone(name_or_path).weights_file()


def load_clip(name_or_path: str, precision: str = "fp32") -> CLIPModel:
    """Build a CLIP model on the CPU in eval mode.

    Args:
        name_or_path: a key of ``CLIP_MODELS`` (file looked up in ``clip_cache_dir()`` and SHA-256 verified),
            a path to a TorchScript archive / ``torch.save`` state dict (no hash check), or
            ``open_clip:ARCH:PRETRAINED`` (``OpenClipBackbone``). Config key: MODEL.BACKBONE.NAME.
        precision: TRAINER.COOP.PREC. "fp16" keeps CLIP's fp16 Linear/Conv/attention weights (LayerNorms
            compute in fp32); "fp32", "amp" and "bf16" give fp32 weights (autocast is the engine's job).

    Returns:
        ``clip.model.CLIP`` or the ``OpenCLIP`` adapter (same attributes; ``.dtype`` fp16 or fp32); the caller
        moves it to its device.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"TRAINER.COOP.PREC: expected one of {PRECISIONS}, got {precision!r}")
    return resolve_backbone(name_or_path).load(precision)


def image_preprocess(model: CLIPModel) -> ImagePreprocess:
    """The input a loaded backbone expects: an open_clip model carries its weights' values, OpenAI's CLIP uses
    OpenAI's mean / std, bicubic resizing of the shorter side and its ``input_resolution``."""
    if isinstance(model, OpenCLIP):
        return model.preprocess
    resolution = model.visual.input_resolution
    return ImagePreprocess((resolution, resolution), OPENAI_MEAN, OPENAI_STD)


def backbone_id(name_or_path: str) -> str:
    """What identifies a backbone in checkpoints and caches: names stay names, files become content hashes.

    A name (``ViT-B/32``, ``open_clip:ViT-B-32:laion2b_s34b_b79k``) pins one published set of weights and reads
    the same on every machine; a weights file is identified by ``sha256:<hex>`` of its contents, because paths
    move between machines and clusters while the contents decide the features (a replaced file at the same
    path is another backbone). Hashing reads the file once; callers keep the result for the run.
    """
    return resolve_backbone(name_or_path).identity()
