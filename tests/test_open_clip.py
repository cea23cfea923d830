"""open_clip backbones (issue 11): the adapter computes what open_clip computes, every trainer runs on it, the
backbone is recorded in checkpoints, and each bad input is one line. Tiny random models, no download."""
from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dpt.config import get_cfg_default
from dpt.data.transforms import build_transform
from dpt.engine.checkpoint import load_checkpoint
from dpt.modeling import PromptedVisionEncoder, TextEncoder, clip
from dpt.modeling.backbones.loader import backbone_id, image_preprocess, load_clip
from dpt.modeling.backbones.open_clip_adapter import OPENAI_MEAN, OPENAI_STD
from dpt.modeling.backbones.open_clip_loader import (
    CACHE_ENV,
    open_clip_arch,
    parse_open_clip_name,
    pretrained_file,
    unsupported_reason,
)
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from helpers import (
    CONFIG, FITTED, LEARNED, TINY_OPEN_CLIP_CONFIG, argv, compose_clip, epoch_losses, needs_open_clip, vpt_part,
    write_tiny_open_clip,
)

CLASSNAMES = ["cat", "golden retriever", "sea urchin", "aeroplane"]
TEMPLATE = "a photo of a {}."


def _reference(name: str) -> torch.nn.Module:
    """open_clip's own model of an ``open_clip:<json>:<pt>`` name, built and loaded without our loader."""
    import open_clip

    spec = parse_open_clip_name(name)
    model = open_clip.CLIP(**json.loads(Path(spec.arch).read_text()))
    model.load_state_dict(torch.load(spec.pretrained, weights_only=True))
    return model.eval()


def _images(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- the adapter computes what open_clip computes -------------------------------------------------------------


@needs_open_clip
def test_zero_shot_logits_equal_open_clips_model_tokenizer_and_preprocess(tiny_open_clip_name) -> None:
    import open_clip

    spec = parse_open_clip_name(tiny_open_clip_name)
    open_clip.add_model_config(spec.arch)  # registers "tiny_open_clip" with open_clip's own factory
    reference, _, preprocess = open_clip.create_model_and_transforms("tiny_open_clip", pretrained=spec.pretrained)
    tokenizer = open_clip.get_tokenizer("tiny_open_clip")
    rng = np.random.default_rng(0)
    sizes = [(40, 56, 3), (32, 32, 3), (70, 35, 3)]  # resize + center crop matter
    pictures = [Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)) for size in sizes]

    cfg = get_cfg_default()
    cfg.INPUT.SIZE, cfg.INPUT.INTERPOLATION, cfg.INPUT.TRANSFORMS = (32, 32), "bicubic", ("normalize",)
    cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD = list(OPENAI_MEAN), list(OPENAI_STD)
    ours = torch.stack([build_transform(cfg, is_train=False)(p) for p in pictures])
    theirs = torch.stack([preprocess(p) for p in pictures])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)  # the test transform is open_clip's preprocess

    model = compose_clip(load_clip(tiny_open_clip_name), CLASSNAMES, TEMPLATE, learn_text=False)
    with torch.no_grad():
        logits = model(ours).logits
        expected, _ = reference.eval().get_logits(theirs, tokenizer([TEMPLATE.format(c) for c in CLASSNAMES]))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)  # scale 100: ~1e-6 relative
    assert logits.std() > 0.1


@needs_open_clip
def test_text_cut_at_eot_and_chunks_match_the_full_reference_values_and_grads(tiny_open_clip_name) -> None:
    model, reference = load_clip(tiny_open_clip_name), _reference(tiny_open_clip_name)
    tokens = clip.tokenize(["x", "a photo of a cat.", "a b c d e f g h i j k l m n o p q r s t.", "cat", "dog."])
    with torch.no_grad():
        torch.testing.assert_close(TextEncoder(model, truncate=False).encode_text_tokens(tokens),
                                   reference.encode_text(tokens), rtol=1e-5, atol=1e-5)
    model.double()  # float64: the cut and the chunks are exact, so only float64 rounding may differ
    embeds = model.token_embedding(tokens).detach()
    weights = torch.randn(5, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    outputs, grads = [], []
    for encoder in (TextEncoder(model, truncate=False), TextEncoder(model, truncate=True, chunk_size=2)):
        leaf = embeds.clone().requires_grad_(True)
        features = encoder(leaf, tokens)  # 5 prompts in chunks of 2: cut at each chunk's EOT, recomputed
        (features * weights).sum().backward()
        outputs.append(features.detach())
        grads.append(leaf.grad)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
    assert grads[0][1, tokens[1].argmax() + 1:].abs().max() == 0  # the causal mask holds in the adapter


@needs_open_clip
def test_visual_prompts_and_attention_map_by_hand_on_open_clips_blocks(tiny_open_clip_name) -> None:
    model, visual = load_clip(tiny_open_clip_name), _reference(tiny_open_clip_name).visual
    layers, images = [0, 5, 11], _images(2)
    prompts = torch.randn(3, 2, 64, generator=torch.Generator().manual_seed(5))
    encoder = PromptedVisionEncoder(model.visual)
    with torch.no_grad():
        plain = encoder(images, return_attention=True)
        prompted = encoder(images, [vpt_part(layers, prompts)]).features
        torch.testing.assert_close(plain.features, visual(images), rtol=0, atol=1e-6)
        x = visual._embeds(images)  # [B, 17, 64], batch-first as open_clip runs it
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        hidden = last.ln_1(x)
        _, weights = last.attn(hidden, hidden, hidden, need_weights=True, average_attn_weights=True)  # [B, 17, 17]
        x = visual._embeds(images)
        for index, block in enumerate(visual.transformer.resblocks):
            if index in layers:  # prompts appended to the block's input, dropped after it
                x = block(torch.cat([x, prompts[layers.index(index)].expand(2, -1, -1)], dim=1))[:, :17]
            else:
                x = block(x)
        expected = visual.ln_post(x[:, 0]) @ visual.proj
    torch.testing.assert_close(plain.attention, weights[:, 0, 1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(prompted, expected, rtol=1e-5, atol=1e-5)
    assert (prompted - plain.features).abs().max() > 1e-3


@needs_open_clip
def test_accepted_tower_flags_keep_open_clip_equality(tmp_path) -> None:
    """no_ln_pre, final_ln_after_pool, LayerScale, QuickGELU, patch dropout, sin-cos positions, LN eps: same logits."""
    config = copy.deepcopy(TINY_OPEN_CLIP_CONFIG)
    config["quick_gelu"] = True
    config["vision_cfg"].update(no_ln_pre=True, final_ln_after_pool=True, ls_init_value=0.5, patch_dropout=0.5,
                                pos_embed_type="sin_cos_2d", norm_kwargs={"eps": 1e-6})
    config["text_cfg"].update(ls_init_value=0.5, pad_id=3)
    assert unsupported_reason("flags", config) is None
    name = write_tiny_open_clip(tmp_path, config, seed=1)
    model, reference = load_clip(name), _reference(name)
    tokens = clip.tokenize([TEMPLATE.format(c) for c in CLASSNAMES])
    with torch.no_grad():
        logits = compose_clip(model, CLASSNAMES, TEMPLATE, learn_text=False)(_images()).logits
        expected, _ = reference.get_logits(_images(), tokens)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)


@needs_open_clip
def test_fp16_mirrors_openai_fp16_and_bf16_autocast_stays_close(tiny_open_clip_name) -> None:
    half = load_clip(tiny_open_clip_name, precision="fp16")
    assert half.dtype == torch.float16 and half.text_projection.dtype == torch.float16
    assert half.ln_final.weight.dtype == torch.float32  # LayerNorms keep fp32 weights and compute in fp32
    model = compose_clip(half, CLASSNAMES, TEMPLATE, learn_text=True, vpt_layers=range(11), n_vpt_ctx=2,
                         cavpt_layers=[11], n_cavpt=2)
    model.freeze_clip()
    out = model(_images(2), need_guidance=True)
    assert out.logits.dtype == torch.float16
    (F.cross_entropy(out.logits.float(), torch.tensor([0, 1])) + out.layer_logits[0].float().mean()).backward()
    learnable = [model.prompt_learner.ctx, model.visual_prompts.ctx, *model.cavpt.parameters()]
    assert all(p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all() for p in learnable)

    full = compose_clip(load_clip(tiny_open_clip_name), CLASSNAMES, TEMPLATE, learn_text=False)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = full(_images()).logits.float()
    with torch.no_grad():
        torch.testing.assert_close(low, full(_images()).logits, rtol=0, atol=2.0)  # bf16: ~3 digits at scale 100


# --- every trainer, end to end ---------------------------------------------------------------------------------


@needs_open_clip
@pytest.mark.parametrize("trainer", sorted(CONFIG))
def test_every_trainer_runs_on_an_open_clip_backbone(trainer, eurosat_root, tiny_open_clip_name, tmp_path):
    out = tmp_path / trainer
    if trainer in FITTED:  # fitted once on frozen image features: one "epoch", then the usual result block
        assert main(argv(trainer, eurosat_root, out, tiny_open_clip_name, epochs=1)) == 0
        assert 0.0 <= parse_metric(str(out / "log.txt")) <= 100.0
        for name in FITTED[trainer]:
            assert load_checkpoint(str(out / name / "model.pth.tar-1"))["meta"]["backbone"] == backbone_id(
                tiny_open_clip_name)
        return
    if trainer not in LEARNED:
        assert main(argv(trainer, eurosat_root, out, tiny_open_clip_name, extra=["--eval-only"])) == 0
        assert 0.0 <= parse_metric(str(out / "log.txt"), end_signal="=> result") <= 100.0
        return
    # KgCoOp's yaml starts from the words "a photo of a", which the tiny random open_clip reads as a confident
    # wrong prompt (CE ~15): two short epochs then show no decrease, so it starts from a random context as CoOp.
    opts = ("TRAINER.COOP.CTX_INIT", "") if trainer == "KgCoOp" else ()
    assert main(argv(trainer, eurosat_root, out, tiny_open_clip_name, "OPTIM.LR", "0.002", *opts, epochs=2)) == 0
    losses = epoch_losses(out / "log.txt")
    assert len(losses) == 2 and losses[1] < losses[0]
    assert parse_metric(str(out / "log.txt")) is not None
    for name in LEARNED[trainer]:
        meta = load_checkpoint(str(out / name / "model.pth.tar-2"))["meta"]
        assert meta["trainer"] == trainer and meta["backbone"] == backbone_id(tiny_open_clip_name)


@needs_open_clip
def test_checkpoint_records_the_backbone_and_refuses_another(eurosat_root, tiny_open_clip_name, tiny_clip_path,
                                                             tmp_path, capsys):
    run = tmp_path / "run"
    assert main(argv("CoOp", eurosat_root, run, tiny_open_clip_name, epochs=1)) == 0
    evaluate = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]
    spec = parse_open_clip_name(tiny_open_clip_name)
    moved = tmp_path / "moved"  # the same files elsewhere: the same backbone
    moved.mkdir()
    shutil.copy(spec.arch, moved / "arch.json")
    shutil.copy(spec.pretrained, moved / "weights.pt")
    assert main(argv("CoOp", eurosat_root, tmp_path / "ev", f"open_clip:{moved}/arch.json:{moved}/weights.pt",
                     epochs=1, extra=evaluate)) == 0
    capsys.readouterr()
    assert main(argv("CoOp", eurosat_root, tmp_path / "ev2", tiny_clip_path, epochs=1, extra=evaluate)) == 2
    message = _one_line_error(capsys)
    assert f"was written with backbone = {backbone_id(tiny_open_clip_name)!r}" in message
    assert f"this run has backbone = {backbone_id(str(tiny_clip_path))!r}" in message


@needs_open_clip
def test_backbone_identity_names_tags_and_hashes_files(tiny_open_clip_name, tiny_clip_path, tmp_path) -> None:
    assert backbone_id("ViT-B/32") == "ViT-B/32"
    assert backbone_id("open_clip:ViT-B-32:LAION2B-S34B-B79K") == "open_clip:ViT-B-32:laion2b_s34b_b79k"
    assert backbone_id(str(tiny_clip_path)).startswith("sha256:")
    spec = parse_open_clip_name(tiny_open_clip_name)
    reformatted = tmp_path / "same.json"  # same model config, other formatting: same architecture
    reformatted.write_text(json.dumps({"model_cfg": json.loads(Path(spec.arch).read_text())}))
    assert backbone_id(f"open_clip:{reformatted}:{spec.pretrained}") == backbone_id(tiny_open_clip_name)
    other = write_tiny_open_clip(tmp_path / "other", seed=7)
    assert backbone_id(other) != backbone_id(tiny_open_clip_name)


# --- bad input: one line ---------------------------------------------------------------------------------------


@needs_open_clip
def test_input_size_mean_and_std_follow_the_model(eurosat_root, tiny_open_clip_name, tiny_clip_path, tmp_path, capsys):
    spec = parse_open_clip_name(tiny_open_clip_name)
    half = tmp_path / "half.json"  # open_clip_config.json layout with the weights' own preprocessing
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3}
    half.write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP_CONFIG, "preprocess_cfg": preprocess}))
    name = f"open_clip:{half}:{spec.pretrained}"
    assert image_preprocess(load_clip(name)).mean == (0.5, 0.5, 0.5)
    build_only = dict(extra=["--no-train"])
    assert main(argv("CoOp", eurosat_root, tmp_path / "a", name, **build_only)) == 2
    assert _one_line_error(capsys) == (
        f"error: config key 'INPUT.PIXEL_MEAN' is {list(OPENAI_MEAN)} but {name} expects [0.5, 0.5, 0.5] "
        f"(append `INPUT.PIXEL_MEAN [0.5,0.5,0.5]`)")
    mean_fixed = ("INPUT.PIXEL_MEAN", "[0.5,0.5,0.5]")
    assert main(argv("CoOp", eurosat_root, tmp_path / "b", name, *mean_fixed, **build_only)) == 2
    assert f"'INPUT.PIXEL_STD' is {list(OPENAI_STD)} but {name} expects [0.5, 0.5, 0.5]" in _one_line_error(capsys)
    fixed = ("INPUT.PIXEL_MEAN", "[0.5,0.5,0.5]", "INPUT.PIXEL_STD", "[0.5,0.5,0.5]")
    assert main(argv("CoOp", eurosat_root, tmp_path / "c", name, *fixed, **build_only)) == 0
    capsys.readouterr()
    assert main(argv("CoOp", eurosat_root, tmp_path / "d", name, *fixed, "INPUT.SIZE", "(64, 64)", **build_only)) == 2
    assert f"'INPUT.SIZE' is (64, 64) but {name} expects (32, 32)" in _one_line_error(capsys)
    assert main(argv("CoOp", eurosat_root, tmp_path / "e", tiny_clip_path, "INPUT.PIXEL_STD", "[0.5,0.5,0.5]",
                     **build_only)) == 2  # OpenAI's CLIP expects its own constants too
    message = _one_line_error(capsys)
    assert f"'INPUT.PIXEL_STD' is [0.5, 0.5, 0.5] but {tiny_clip_path} expects {list(OPENAI_STD)}" in message


@pytest.mark.parametrize("arch,reason", [
    ("ViT-B-16-SigLIP", "its image tower is a timm trunk"),
    ("EVA02-B-16", "its image tower is a timm trunk (eva02_base_patch16_clip_224)"),
    ("coca_ViT-B-32", "it is a CoCa model"),
    ("ViT-H-14-CLIPA", "its image tower pools with 'avg' instead of the class token"),
    ("roberta-ViT-B-32", "its text tower is a Hugging Face model (roberta-base)"),
    ("ViT-L-14-worldwide", "its tokenizer is google/mt5-base, not CLIP's BPE"),
])
@needs_open_clip
def test_unsupported_towers_are_one_line_naming_the_model_and_why(arch, reason, eurosat_root, tmp_path, capsys):
    assert main(argv("CoOp", eurosat_root, tmp_path, f"open_clip:{arch}:any_tag")) == 2
    message = _one_line_error(capsys)
    assert f"open_clip model {arch} is not supported: " in message and reason in message


@pytest.mark.parametrize("section,key,value,reason", [
    ("vision_cfg", "attentional_pool", True, "pools with attention"),
    ("vision_cfg", "pool_type", "avg", "pools with 'avg'"),
    ("vision_cfg", "qk_norm", True, "image tower uses custom attention blocks"),
    ("text_cfg", "no_causal_mask", True, "no causal mask"),
    ("text_cfg", "pool_type", "last", "pools at 'last' instead of the EOT token"),
    ("text_cfg", "proj_bias", True, "text projection is not a plain matrix"),
    ("text_cfg", "embed_cls", True, "appends a class token"),
    ("text_cfg", "context_length", 64, "context length {'vocab_size': 49408, 'context_length': 64}"),
    ("text_cfg", "tokenizer_kwargs", {"clean": "canonicalize"}, "tokenizer options {'clean': 'canonicalize'}"),
])
def test_each_non_clip_tower_flag_has_a_reason(section, key, value, reason) -> None:
    config = copy.deepcopy(TINY_OPEN_CLIP_CONFIG)
    config[section][key] = value
    assert reason in unsupported_reason("tiny", config)
    assert unsupported_reason("tiny", TINY_OPEN_CLIP_CONFIG) is None


@needs_open_clip
def test_clip_style_builtins_are_accepted_and_the_others_are_not() -> None:
    import open_clip

    accepted = {n for n in open_clip.list_models() if unsupported_reason(n, open_clip.get_model_config(n)) is None}
    assert {"ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "ViT-g-14", "ViT-bigG-14",
            "ViT-B-32-quickgelu", "ViT-M-16-alt", "RN50", "RN101"} <= accepted
    assert not [n for n in accepted if any(k in n for k in ("SigLIP", "coca", "EVA", "CLIPA", "worldwide", "roberta"))]


@needs_open_clip
@pytest.mark.parametrize("name,message", [
    ("open_clip:ViT-B-32", "expected open_clip:ARCH:PRETRAINED, e.g. open_clip:ViT-B-32:laion2b_s34b_b79k"),
    ("open_clip:ViT-B-33:laion2b_s34b_b79k", "open_clip architecture 'ViT-B-33' is neither one of"),
    ("open_clip:ViT-B-32:laion5b", "'laion5b' are neither a pretrained tag of ViT-B-32 (openai, laion400m_e31,"),
    ("open_clip:ViT-B-32:openai",
     "were trained with QuickGELU, but ViT-B-32 uses GELU; use open_clip:ViT-B-32-quickgelu:openai"),
    ("open_clip:/absent/tiny.json:weights.pt", "open_clip model config not found: /absent/tiny.json"),
])
def test_bad_open_clip_names_are_one_line(name, message, eurosat_root, tmp_path, capsys):
    assert main(argv("CoOp", eurosat_root, tmp_path, name)) == 2
    assert message in _one_line_error(capsys)


@needs_open_clip
def test_missing_tag_file_says_where_it_looked_and_how_to_fetch(eurosat_root, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    assert main(argv("CoOp", eurosat_root, tmp_path / "out", "open_clip:ViT-B-32:laion2b_s34b_b79k")) == 2
    message = _one_line_error(capsys)
    looked = f"laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_pytorch_model.bin in the Hugging Face cache {cache}"
    assert looked in message
    assert (f"`python -c \"import open_clip; open_clip.create_model('ViT-B-32', pretrained='laion2b_s34b_b79k', "
            f"cache_dir='{cache}')\"`") in message


@needs_open_clip
def test_tag_files_are_found_in_open_clips_caches_without_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"  # huggingface_hub's cache layout
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for file_name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
        (snapshot / file_name).write_bytes(b"weights")
    path, tag_cfg = pretrained_file(open_clip_arch("ViT-B-32"), "laion2b_s34b_b79k")
    assert path == snapshot / "open_clip_model.safetensors"  # open_clip's preference
    assert tuple(tag_cfg["mean"]) == OPENAI_MEAN

    url_file = tmp_path / "vit_b_32-quickgelu-laion400m_e31-d867053b.pt"  # a URL download: hash in the name
    url_file.write_bytes(b"not the published weights")
    with pytest.raises(ValueError, match="SHA-256 does not match .*vit_b_32-quickgelu-laion400m_e31-d867053b.pt"):
        pretrained_file(open_clip_arch("ViT-B-32-quickgelu"), "laion400m_e31")


@needs_open_clip
def test_weights_that_do_not_fit_the_architecture_are_one_line(tiny_open_clip_name, tmp_path) -> None:
    spec = parse_open_clip_name(tiny_open_clip_name)
    state = torch.load(spec.pretrained, weights_only=True)
    partial = tmp_path / "partial.pt"
    torch.save({key: value for key, value in state.items() if not key.startswith("ln_final.")}, partial)
    with pytest.raises(ValueError) as info:
        load_clip(f"open_clip:{spec.arch}:{partial}")
    assert "weights do not fit open_clip" in str(info.value)
    assert "missing ['ln_final.bias', 'ln_final.weight'] (2)" in str(info.value)
    wider = copy.deepcopy(TINY_OPEN_CLIP_CONFIG)
    wider["embed_dim"] = 48
    (tmp_path / "wider.json").write_text(json.dumps(wider))
    with pytest.raises(ValueError) as info:
        load_clip(f"open_clip:{tmp_path / 'wider.json'}:{spec.pretrained}")
    assert "size mismatch for text_projection" in str(info.value) and "\n" not in str(info.value)


def test_without_open_clip_installed_a_name_says_how_to_install(eurosat_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip now fails as if not installed
    assert main(argv("CoOp", eurosat_root, tmp_path, "open_clip:ViT-B-32:laion2b_s34b_b79k")) == 2
    message = _one_line_error(capsys)
    assert "needs the optional package open_clip_torch" in message and "pip install -e .[open_clip]" in message
