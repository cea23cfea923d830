"""open_clip backbones by name, offline: ``MODEL.BACKBONE.NAME open_clip:ARCH:PRETRAINED`` -> ``OpenCLIP``.

ARCH is an open_clip architecture (``ViT-B-32``; ``open_clip.list_models()``) or a path to an open_clip model
config JSON (bare, or open_clip_config.json's ``{"model_cfg": ..., "preprocess_cfg": ...}``). PRETRAINED is a
pretrained tag of ARCH (``laion2b_s34b_b79k``; ``open_clip.list_pretrained_tags_by_model(ARCH)``) or a path to a
weights file. A tag's file is looked up where open_clip downloads it (the Hugging Face hub cache, or
``~/.cache/clip`` for URL downloads; ``$DPT_OPEN_CLIP_CACHE`` plays open_clip's ``cache_dir``) and never
downloaded here: a missing file is one error naming where it was looked for and the command that fetches it.
Only CLIP-style towers are accepted (``unsupported_reason``), so the one prompted ViT / text path computes what
open_clip computes. open_clip is an optional dependency, imported only when such a name is used.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn

from dpt.modeling.backbones.open_clip_adapter import OPENAI_MEAN, OPENAI_STD, ImagePreprocess, OpenCLIP
from dpt.modeling.backbones.weights_file import file_sha256, read_state_dict

OPEN_CLIP_PREFIX = "open_clip:"
CACHE_ENV = "DPT_OPEN_CLIP_CACHE"
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's default file in a hub repo
CLIP_TOKENIZER = {"vocab_size": 49408, "context_length": 77}  # clip.tokenize, which the prompt modules use
_CUSTOM_BLOCK_KEYS = ("qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc")
SUPPORTED = (
    "supported are CLIP-style towers (a ViT pooled at its class token, or a ModifiedResNet; a causal text "
    "transformer with CLIP's tokenizer), e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14, ViT-g-14, ViT-bigG-14, RN50"
)


class OpenClipName(NamedTuple):
    """The parts of ``open_clip:ARCH:PRETRAINED``."""

    arch: str
    pretrained: str


class OpenClipArch(NamedTuple):
    """An architecture: ``name`` (built-in name or JSON path), open_clip ``config`` (model_cfg), the JSON's
    ``preprocess`` overrides ({} for built-ins) and whether it is ``builtin`` (then it has pretrained tags)."""

    name: str
    config: Dict[str, Any]
    preprocess: Dict[str, Any]
    builtin: bool


def parse_open_clip_name(name: str) -> OpenClipName:
    """``open_clip:ARCH:PRETRAINED`` -> its parts (PRETRAINED, a tag or a path, may itself hold ':')."""
    arch, _, pretrained = name[len(OPEN_CLIP_PREFIX):].partition(":")
    if not arch or not pretrained:
        raise ValueError(
            f"MODEL.BACKBONE.NAME {name!r}: expected open_clip:ARCH:PRETRAINED, e.g. "
            f"open_clip:ViT-B-32:laion2b_s34b_b79k (PRETRAINED: a pretrained tag of ARCH or a weights file)"
        )
    return OpenClipName(arch, pretrained)


def import_open_clip(what: str):
    """The ``open_clip`` module, or one error saying how to install it (``what`` names the requester)."""
    try:
        import open_clip
    except ImportError as err:
        raise ValueError(
            f"{what} needs the optional package open_clip_torch, which is not installed ({err}): "
            f"pip install -e .[open_clip]"
        ) from err
    return open_clip


def _is_config_path(arch: str) -> bool:
    return arch.endswith(".json") or os.sep in arch


def open_clip_arch(arch: str) -> OpenClipArch:
    """Look up a built-in architecture or read a model config JSON."""
    open_clip = import_open_clip(f"open_clip architecture {arch!r}")
    if not _is_config_path(arch):
        config = open_clip.get_model_config(arch)
        if config is None:
            close = difflib.get_close_matches(arch, open_clip.list_models(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"open_clip architecture {arch!r} is neither one of open_clip.list_models() "
                             f"nor a model config JSON{hint}")
        return OpenClipArch(arch, config, {}, builtin=True)
    path = Path(arch).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"open_clip model config not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({' '.join(str(err).split())})") from err
    config = data.get("model_cfg", data) if isinstance(data, dict) else None
    if not isinstance(config, dict) or not all(key in config for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ValueError(f"{path}: expected an open_clip model config with embed_dim, vision_cfg and text_cfg "
                         f"(at the top level or under model_cfg)")
    return OpenClipArch(str(path), config, dict(data.get("preprocess_cfg") or {}), builtin=False)


def unsupported_reason(arch: str, config: Mapping[str, Any]) -> Optional[str]:
    """Why an open_clip config is not CLIP-equivalent for the prompted path ("; "-joined), or None.

    Accepted tower flags (equal to OpenAI's computation, or inactive for a frozen tower in eval mode):
    quick_gelu, no_ln_pre, final_ln_after_pool (a per-token LayerNorm commutes with taking the class token),
    pos_embed_type, ls_init_value, patch_dropout, mlp_ratio / head_width, norm_kwargs / act_kwargs, pad_id (with a
    causal mask the padding after EOT never reaches the EOT row) and output_tokens.
    """
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    tokenizer_kwargs = text.get("tokenizer_kwargs") or {}
    vocabulary = {key: text.get(key, value) for key, value in CLIP_TOKENIZER.items()}
    checks = [
        (vision.get("timm_model_name"), f"its image tower is a timm trunk ({vision.get('timm_model_name')})"),
        (text.get("hf_model_name"), f"its text tower is a Hugging Face model ({text.get('hf_model_name')})"),
        ("siglip" in Path(arch).stem.lower() or config.get("init_logit_bias") is not None,
         "it is a SigLIP-style model (sigmoid logits with a bias, its own tokenizer)"),
        ("multimodal_cfg" in config, "it is a CoCa model (text decoder and attention pooling)"),
        (config.get("custom_text"), "its text tower is a CustomTextCLIP tower"),
        (vision.get("attentional_pool"), "its image tower pools with attention (attentional_pool)"),
        (vision.get("pool_type", "tok") != "tok",
         f"its image tower pools with {vision.get('pool_type')!r} instead of the class token"),
        (vision.get("block_type") == "custom" or any(vision.get(key) for key in _CUSTOM_BLOCK_KEYS),
         "its image tower uses custom attention blocks"),
        (text.get("block_type") == "custom" or any(text.get(key) for key in _CUSTOM_BLOCK_KEYS),
         "its text tower uses custom attention blocks"),
        (text.get("no_causal_mask"), "its text transformer has no causal mask"),
        (text.get("embed_cls"), "its text tower appends a class token (embed_cls)"),
        (text.get("pool_type", "argmax") != "argmax",
         f"its text tower pools at {text.get('pool_type')!r} instead of the EOT token"),
        (text.get("proj_bias") or text.get("proj_type", "linear") != "linear",
         "its text projection is not a plain matrix (proj_bias / proj_type)"),
        (text.get("hf_tokenizer_name"), f"its tokenizer is {text.get('hf_tokenizer_name')}, not CLIP's BPE"),
        (tokenizer_kwargs not in ({}, {"clean": "lower"}),
         f"its tokenizer options {tokenizer_kwargs} differ from CLIP's"),
        (vocabulary != CLIP_TOKENIZER,
         f"its text vocabulary / context length {vocabulary} differ from CLIP's tokenizer"),
    ]
    reasons = [reason for failed, reason in checks if failed]
    return "; ".join(reasons) or None


def _safetensors_names(filename: str) -> List[str]:
    """The safetensors files open_clip prefers to ``filename`` in a hub repo."""
    if filename == HF_WEIGHTS_NAME:
        return ["open_clip_model.safetensors"]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def _expected_sha256(url: str) -> str:
    """The SHA-256 (prefix) a download URL carries, as open_clip checks it ('' when none)."""
    if "openaipublic" in url:
        return url.split("/")[-2]
    if "mlfoundations" in url:
        return os.path.splitext(os.path.basename(url))[0].split("-")[-1]
    return ""


def _cached_tag_file(arch: str, tag: str, tag_cfg: Mapping[str, Any]) -> Path:
    """Where open_clip keeps the tag's file (hub cache, then URL cache), without downloading."""
    cache_dir = os.environ.get(CACHE_ENV) or None
    looked = []
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, filename = os.path.split(hub)  # "org/repo/" names the repo's default file
        filename = filename or HF_WEIGHTS_NAME
        for candidate in [*_safetensors_names(filename), filename]:
            found = try_to_load_from_cache(repo, candidate, cache_dir=cache_dir)
            if isinstance(found, str):
                return Path(found)
        looked.append(f"{repo}/{filename} in the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}")
    url = tag_cfg.get("url", "")
    if url:
        path = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(url)
        if path.is_file():
            expected = _expected_sha256(url)
            if expected and not file_sha256(path).startswith(expected):
                raise ValueError(f"{path}: SHA-256 does not match {url}; the file is corrupt or incomplete, "
                                 f"delete it and re-download")
            return path
        looked.append(str(path))
    where = f", cache_dir='{cache_dir}'" if cache_dir else ""
    hint = "" if cache_dir else f" (or set {CACHE_ENV} to the cache_dir that holds them)"
    raise FileNotFoundError(
        f"open_clip weights for {arch}:{tag} not found: looked for {' and '.join(looked)}; nothing is downloaded at "
        f"run time, fetch them with `python -c \"import open_clip; open_clip.create_model('{arch}', "
        f"pretrained='{tag}'{where})\"`{hint}"
    )


def _check_quick_gelu(arch: OpenClipArch, tag: str, tag_cfg: Mapping[str, Any]) -> None:
    """A tag trained with QuickGELU on an architecture with GELU (or back) gives wrong features: refuse it."""
    trained, built = bool(tag_cfg.get("quick_gelu", False)), bool(arch.config.get("quick_gelu", False))
    if trained == built:
        return
    other = f"{arch.name}-quickgelu" if trained else arch.name.removesuffix("-quickgelu")
    raise ValueError(
        f"open_clip weights {arch.name}:{tag} were trained with {'QuickGELU' if trained else 'GELU'}, but {arch.name} "
        f"uses {'QuickGELU' if built else 'GELU'}; use open_clip:{other}:{tag}"
    )


def pretrained_file(arch: OpenClipArch, pretrained: str) -> Tuple[Path, Dict[str, Any]]:
    """PRETRAINED -> (weights file, the tag's open_clip config or {} for a file path); nothing is downloaded."""
    open_clip = import_open_clip(f"open_clip weights {pretrained!r}")
    tag_cfg = open_clip.get_pretrained_cfg(arch.name, pretrained) if arch.builtin else {}
    if tag_cfg:
        _check_quick_gelu(arch, pretrained, tag_cfg)
        return _cached_tag_file(arch.name, pretrained, tag_cfg), tag_cfg
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path, {}
    tags = open_clip.list_pretrained_tags_by_model(arch.name) if arch.builtin else []
    raise ValueError(
        f"open_clip weights {pretrained!r} are neither a pretrained tag of {arch.name} "
        f"({', '.join(tags) or 'it has none'}) nor an existing file"
    )


def build_open_clip(config: Mapping[str, Any], precision: str = "fp32") -> nn.Module:
    """An ``open_clip.CLIP`` of ``config`` with open_clip's random init, on the CPU.

    precision "fp16" builds open_clip's fp16 layout (LayerNorms computing in fp32; cast the weights with
    ``convert_weights_to_lp`` after loading them), anything else fp32.
    """
    open_clip = import_open_clip("an open_clip backbone")
    kwargs = {key: value for key, value in config.items() if key != "custom_text"}
    cast_dtype = torch.float16 if precision == "fp16" else None
    try:
        return open_clip.CLIP(**kwargs, cast_dtype=cast_dtype)
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        reason = " ".join(str(err).split())[:200]
        raise ValueError(f"open_clip model config does not build a CLIP ({type(err).__name__}: {reason})") from err


def _load_weights(model: nn.Module, path: Path, arch: str) -> None:
    """Load a state dict, open_clip training checkpoint or OpenAI archive strictly, one line on mismatch."""
    state = read_state_dict(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # open_clip's training checkpoints (epoch_N.pt)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    skip = {"input_resolution", "context_length", "vocab_size"}  # ints in OpenAI's archives
    state = {key.removeprefix("module."): value for key, value in state.items() if key not in skip}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        reason = " ".join(str(err).split())[:300]
        raise ValueError(f"{path}: weights do not fit open_clip {arch} ({reason})") from err
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit open_clip {arch}: missing {sorted(missing)[:5]} ({len(missing)}), "
            f"unexpected {sorted(unexpected)[:5]} ({len(unexpected)})"
        )


def _three(value: Any) -> Tuple[float, ...]:
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * 3


def _preprocess(model: nn.Module, *overrides: Mapping[str, Any]) -> ImagePreprocess:
    """open_clip's defaults (OpenAI mean/std, bicubic, shortest side) updated by the JSON's and the tag's values."""
    values: Dict[str, Any] = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic",
                              "resize_mode": "shortest"}
    for source in overrides:
        values.update({key: source[key] for key in values if source.get(key) is not None})
    size = model.visual.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return ImagePreprocess(size, _three(values["mean"]), _three(values["std"]), values["interpolation"],
                           values["resize_mode"])


class OpenClipBackbone(NamedTuple):
    """MODEL.BACKBONE.NAME ``open_clip:ARCH:PRETRAINED``: one scheme of ``loader.resolve_backbone``."""

    name: str

    def resolve(self) -> Tuple[OpenClipArch, Path, Dict[str, Any]]:
        """The architecture, weights file and tag config, checked, nothing built.

        Raises ValueError (open_clip missing, bad name, unsupported tower) or FileNotFoundError (weights not in
        the caches: where they were looked for and how to fetch them).
        """
        name = self.name
        import_open_clip(f"MODEL.BACKBONE.NAME {name!r}")
        spec = parse_open_clip_name(name)
        arch = open_clip_arch(spec.arch)
        reason = unsupported_reason(arch.name, arch.config)
        if reason:
            raise ValueError(f"MODEL.BACKBONE.NAME {name!r}: open_clip model {arch.name} is not supported: {reason}; "
                             f"{SUPPORTED}")
        path, tag_cfg = pretrained_file(arch, spec.pretrained)
        return arch, path, tag_cfg

    def weights_file(self) -> Path:
        """The weights file (the preflight's check); raises as ``resolve``."""
        return self.resolve()[1]

    def load(self, precision: str = "fp32") -> OpenCLIP:
        """Build the ``OpenCLIP`` adapter on the CPU in eval mode.

        Args:
            precision: TRAINER.COOP.PREC; "fp16" gives open_clip's fp16 model (fp16 Linear / Conv / attention /
                projections, LayerNorms computing in fp32), as OpenAI's fp16 CLIP; otherwise fp32.

        Returns:
            ``OpenCLIP`` (``.dtype`` fp16 or fp32, ``.preprocess`` the input its weights expect).
        """
        open_clip = import_open_clip(f"MODEL.BACKBONE.NAME {self.name!r}")
        arch, path, tag_cfg = self.resolve()
        model = build_open_clip(arch.config, precision)
        _load_weights(model, path, arch.name)
        if precision == "fp16":
            open_clip.convert_weights_to_lp(model, torch.float16)
        adapter = OpenCLIP(model, _preprocess(model, arch.preprocess, tag_cfg))
        assert {id(p) for p in adapter.parameters()} == {id(p) for p in model.parameters()}, "adapter lost a parameter"
        return adapter.eval()

    def identity(self) -> str:
        """``open_clip:<arch>:<weights>``: a built-in ARCH and a tag by name, a config JSON by the SHA-256 of its
        model config and a weights file by the SHA-256 of its contents (see ``loader.backbone_id``)."""
        spec = parse_open_clip_name(self.name)
        arch = open_clip_arch(spec.arch)
        arch_id = arch.name
        if not arch.builtin:
            canonical = json.dumps(arch.config, sort_keys=True).encode()
            arch_id = "sha256:" + hashlib.sha256(canonical).hexdigest()
        open_clip = import_open_clip(self.name)
        if arch.builtin and open_clip.get_pretrained_cfg(arch.name, spec.pretrained):
            weights_id = spec.pretrained.lower().replace("-", "_")  # open_clip's tag normalisation
        else:
            weights_id = "sha256:" + file_sha256(Path(spec.pretrained).expanduser())
        return f"{OPEN_CLIP_PREFIX}{arch_id}:{weights_id}"
