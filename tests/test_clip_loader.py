"""Tests for the clip import shim and the checksummed CLIP loader (dpt/modeling/backbones/clip_import.py, clip_loader.py)."""
import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch

from dpt.demo.tiny_clip import make_tiny_clip
from dpt.modeling.backbones import loader as clip_loader
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.loader import (
    CLIP_MODELS,
    ClipWeights,
    OpenAIModel,
    WeightsFile,
    clip_cache_dir,
    load_clip,
    resolve_backbone,
    resolve_weights,
)
from dpt.modeling.backbones.open_clip_loader import OpenClipBackbone
from dpt.modeling.backbones.weights_file import file_sha256


def test_clip_import_tokenizes_and_leaves_no_stub() -> None:
    tokens = clip.tokenize(["a photo of a cat."])
    assert tokens.shape == (1, 77)
    assert tokens[0, 0].item() == 49406  # <start_of_text>
    assert tokens[0].argmax().item() == 7  # <end_of_text> after a, photo, of, a, cat, "."
    stub = sys.modules.get("pkg_resources")
    assert stub is None or hasattr(stub, "__file__"), "our pkg_resources stub was left in sys.modules"


def test_table_matches_clip_package_urls() -> None:
    assert set(CLIP_MODELS) == set(clip.available_models())
    for name, weights in CLIP_MODELS.items():
        assert weights.url == clip.clip._MODELS[name]
        assert weights.url.split("/")[-2] == weights.sha256
        assert weights.url.endswith("/" + weights.file_name)


def _assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    loaded, expected = model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert torch.equal(loaded[key].float(), expected[key]), key


@pytest.mark.parametrize("fixture_name", ["tiny_clip_path", "tiny_clip_jit_path"])
def test_load_by_path_both_formats(fixture_name: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture_name)
    model = load_clip(str(path))
    assert model.dtype == torch.float32
    assert not model.training
    assert model.visual.input_resolution == 32 and len(model.visual.transformer.resblocks) == 12
    _assert_same_weights(model, make_tiny_clip())

    half = load_clip(str(path), precision="fp16")
    assert half.dtype == torch.float16
    assert half.ln_final.weight.dtype == torch.float32  # build_model keeps LayerNorms fp32
    _assert_same_weights(half, make_tiny_clip())


def _install_named(monkeypatch: pytest.MonkeyPatch, cache: Path, source: Path, sha256: str) -> Path:
    monkeypatch.setenv("DPT_CLIP_CACHE", str(cache))
    url = f"https://example.invalid/clip/models/{sha256}/ViT-B-32.pt"
    monkeypatch.setitem(CLIP_MODELS, "ViT-B/32", ClipWeights("ViT-B-32.pt", url, sha256))
    cache.mkdir(exist_ok=True)
    target = cache / "ViT-B-32.pt"
    shutil.copyfile(source, target)
    return target


def test_named_model_loads_from_cache_with_verified_hash(
    tiny_clip_jit_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = hashlib.sha256(tiny_clip_jit_path.read_bytes()).hexdigest()
    _install_named(monkeypatch, tmp_path / "cache", tiny_clip_jit_path, sha256)
    assert clip_cache_dir() == tmp_path / "cache"
    _assert_same_weights(load_clip("ViT-B/32"), make_tiny_clip())


def test_named_model_is_hashed_once_per_process_and_file_state(
    tiny_clip_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight verifies the weights; the load that follows does not hash the file again."""
    sha256 = hashlib.sha256(tiny_clip_path.read_bytes()).hexdigest()
    target = _install_named(monkeypatch, tmp_path / "cache", tiny_clip_path, sha256)
    calls = []
    monkeypatch.setattr(clip_loader, "file_sha256", lambda path: calls.append(path) or file_sha256(path))
    assert resolve_weights("ViT-B/32") == target
    load_clip("ViT-B/32")
    assert calls == [target]
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")  # replaced by another file: checked again
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        load_clip("ViT-B/32")
    assert calls == [target, target]


def test_named_model_with_wrong_hash_names_both_hashes(
    tiny_clip_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _install_named(monkeypatch, tmp_path / "cache", tiny_clip_path, "0" * 64)
    actual = hashlib.sha256(tiny_clip_path.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as info:
        load_clip("ViT-B/32")
    message = str(info.value)
    assert str(target) in message and "0" * 64 in message and actual in message
    assert "delete" in message and "\n" not in message


def test_missing_named_model_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPT_CLIP_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        load_clip("ViT-B/16")
    message = str(info.value)
    assert str(tmp_path / "ViT-B-16.pt") in message
    assert CLIP_MODELS["ViT-B/16"].url in message
    assert "clip.load('ViT-B/16'" in message


def test_default_cache_dir_is_clip_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPT_CLIP_CACHE", raising=False)
    assert clip_cache_dir() == Path("~/.cache/clip").expanduser()


@pytest.mark.parametrize("fixture_name", ["tiny_clip_path", "tiny_clip_jit_path"])
def test_truncated_file_error_names_it(fixture_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source: Path = request.getfixturevalue(fixture_name)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ValueError) as info:
        load_clip(str(broken))
    assert str(broken) in str(info.value) and "\n" not in str(info.value)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        load_clip("ViT-B/33")
    assert "ViT-B/33" in str(info.value) and "ViT-B/32" in str(info.value) and "RN50x64" in str(info.value)


def test_non_clip_state_dict_and_bad_precision_are_rejected(tiny_clip_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="text_projection"):
        load_clip(str(other))
    with pytest.raises(ValueError, match="TRAINER.COOP.PREC"):
        load_clip(str(tiny_clip_path), precision="fp8")


def test_sha256_streams_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert file_sha256(path, chunk_bytes=4096) == hashlib.sha256(data).hexdigest()


def test_resolve_backbone_chooses_one_scheme_per_name(tiny_clip_path: Path, tmp_path: Path) -> None:
    assert resolve_backbone("ViT-B/32") == OpenAIModel("ViT-B/32")
    assert resolve_backbone(str(tiny_clip_path)) == WeightsFile(str(tiny_clip_path))
    assert resolve_backbone("open_clip:ViT-B-32:laion2b_s34b_b79k") == OpenClipBackbone(
        "open_clip:ViT-B-32:laion2b_s34b_b79k")
    assert resolve_backbone("ViT-B/32").identity() == "ViT-B/32"
    digest = hashlib.sha256(tiny_clip_path.read_bytes()).hexdigest()
    assert resolve_backbone(str(tiny_clip_path)).identity() == f"sha256:{digest}"
    with pytest.raises(ValueError, match=r"MODEL.BACKBONE.NAME '.*nope.pt' is neither a known CLIP model \(RN50, "):
        resolve_backbone(str(tmp_path / "nope.pt"))
