"""Prompted CLIP on the tiny 12-block CLIP (fp32): reference paths, switch equivalences, gradients, goldens."""
from __future__ import annotations

import importlib.util
from typing import Dict

import pytest
import torch
import torch.nn.functional as F

from dpt.demo.tiny_clip import make_tiny_clip
from dpt.modeling import PromptedVisionEncoder, PromptLearner, TextEncoder, clip
from dpt.modeling.prompt_tokens import ClassNameTooLong, tokenize_class_prompts
from helpers import REPO, compose_clip, vpt_part

CLASSNAMES = ["cat", "golden_retriever", "sea urchin", "aeroplane", "x"]


def _images(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _zero_shot_reference(clip_model, images: torch.Tensor, template: str) -> torch.Tensor:
    with torch.no_grad():
        image = F.normalize(clip_model.encode_image(images), dim=-1)
        tokens = clip.tokenize([template.format(name.replace("_", " ")) for name in CLASSNAMES])
        text = F.normalize(clip_model.encode_text(tokens), dim=-1)
        return clip_model.logit_scale.exp() * image @ text.t()


# --- text encoder -------------------------------------------------------------------------------------------


def test_text_encoder_reference_path_equals_encode_text(tiny_clip) -> None:
    tokens = clip.tokenize(["a photo of a cat.", "x", "a photo of a sea urchin, a type of animal."])
    with torch.no_grad():
        ours = TextEncoder(tiny_clip, truncate=False).encode_text_tokens(tokens)
        theirs = tiny_clip.encode_text(tokens)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_truncated_chunked_text_encoder_matches_reference_values_and_grads(tiny_clip) -> None:
    tokens = clip.tokenize(["x", "a photo of a cat.", "a b c d e f g h i j k l m n o p q r s t.", "cat", "dog."])
    embeds = tiny_clip.token_embedding(tokens).detach()
    weights = torch.randn(5, 32, generator=torch.Generator().manual_seed(3))
    outputs, grads = [], []
    for encoder in (TextEncoder(tiny_clip, truncate=False), TextEncoder(tiny_clip, truncate=True, chunk_size=2)):
        leaf = embeds.clone().requires_grad_(True)
        features = encoder(leaf, tokens)
        (features * weights).sum().backward()
        outputs.append(features.detach())
        grads.append(leaf.grad)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)
    eot = tokens.argmax(-1)
    assert grads[0][0, eot[0] + 1 :].abs().max() == 0  # nothing after EOT matters under the causal mask


# --- zero-shot and CoOp prompts -----------------------------------------------------------------------------


def test_zero_shot_logits_equal_clip(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}, a type of pet.", learn_text=False)
    images = _images()
    with torch.no_grad():
        out = model(images)
    expected = _zero_shot_reference(tiny_clip, images, "a photo of a {}, a type of pet.")
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert out.logits_zs_image is None and out.logits_zs_text is None and out.topk_indices is None
    assert out.layer_logits == [] and out.attention is None


def test_ctx_init_prompt_equals_hand_crafted_template(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "{} texture.", learn_text=True, ctx_init="a_photo of a")
    assert model.prompt_learner.n_ctx == 4 and model.prompt_learner.ctx.shape == (4, 64)
    images = _images()
    with torch.no_grad():
        out = model(images, need_guidance=True)
    expected = _zero_shot_reference(tiny_clip, images, "a photo of a {}.")
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits_zs_image, expected, rtol=1e-5, atol=1e-5)  # no visual prompts
    zs_text = _zero_shot_reference(tiny_clip, images, "{} texture.")
    torch.testing.assert_close(out.logits_zs_text, zs_text, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "position, words",
    [("end", "a photo of a {}."), ("middle", "a photo {} of a."), ("front", "{} a photo of a.")],
)
def test_class_token_positions(tiny_clip, position: str, words: str) -> None:
    learner = PromptLearner(tiny_clip, CLASSNAMES, ctx_init="a photo of a", class_token_position=position)
    prompts = learner()
    for index, name in enumerate(CLASSNAMES):
        tokens = clip.tokenize(words.format(name.replace("_", " ")))
        expected = tiny_clip.token_embedding(tokens)[0]
        torch.testing.assert_close(prompts[index], expected, rtol=0, atol=0)
        assert learner.tokenized_prompts[index].argmax() == tokens[0].argmax()  # EOT row unchanged
    assert learner.name_lens == [len(clip.clip._tokenizer.encode(n.replace("_", " "))) for n in CLASSNAMES]


def test_class_specific_context_and_state_dict_keys(tiny_clip) -> None:
    learner = PromptLearner(tiny_clip, CLASSNAMES, n_ctx=3, csc=True, class_token_position="front")
    assert learner.ctx.shape == (5, 3, 64)
    assert set(learner.state_dict()) == {"ctx", "token_prefix", "token_suffix"}  # CoOp's checkpoint keys
    prompts = learner()
    for index, name_len in enumerate(learner.name_lens):
        torch.testing.assert_close(prompts[index, 1 + name_len : 4 + name_len], learner.ctx[index].detach())
    assert 0.015 < learner.ctx.std().item() < 0.025  # N(0, 0.02)


def test_resnet_backbone_serves_zero_shot_and_coop_but_not_visual_prompts() -> None:
    resnet_clip = make_tiny_clip(vision_layers=(1, 1, 1, 1), vision_width=8)
    images = _images()
    zero_shot = compose_clip(resnet_clip, CLASSNAMES, "a photo of a {}.", learn_text=False)
    coop = compose_clip(resnet_clip, CLASSNAMES, "{} texture.", learn_text=True, ctx_init="a photo of a")
    expected = _zero_shot_reference(resnet_clip, images, "a photo of a {}.")
    with torch.no_grad():
        torch.testing.assert_close(zero_shot(images).logits, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(coop(images).logits, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="ViT"):
        compose_clip(resnet_clip, CLASSNAMES, "{}.", learn_text=True, vpt_layers=[0], n_vpt_ctx=2)
    with pytest.raises(ValueError, match="ViT"):
        zero_shot.vision(images, return_attention=True)


# --- prompted ViT -------------------------------------------------------------------------------------------


def test_prompted_vision_encoder_without_switches_equals_encode_image(tiny_clip) -> None:
    images = _images(4)
    with torch.no_grad():
        out = PromptedVisionEncoder(tiny_clip.visual)(images)
        expected = tiny_clip.encode_image(images)
    torch.testing.assert_close(out.features, expected, rtol=0, atol=1e-6)


def test_vpt_equals_prompts_between_cls_and_patches(tiny_clip) -> None:
    """Official VPT appends prompts at the end; the paper puts them after CLS: same result without positions."""
    layers = [0, 3, 4, 11]
    prompts = torch.randn(4, 2, 64, generator=torch.Generator().manual_seed(5))
    images = _images(2)
    visual = tiny_clip.visual
    with torch.no_grad():
        ours = PromptedVisionEncoder(visual)(images, [vpt_part(layers, prompts)]).features
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(2, 1, -1), x], dim=1) + visual.positional_embedding
        x = visual.ln_pre(x)
        for index, block in enumerate(visual.transformer.resblocks):
            if index in layers:
                row = prompts[layers.index(index)].expand(2, -1, -1)
                x = torch.cat([x[:, :1], row, x[:, 1:]], dim=1)
                x = block(x.transpose(0, 1)).transpose(0, 1)
                x = torch.cat([x[:, :1], x[:, 3:]], dim=1)
            else:
                x = block(x.transpose(0, 1)).transpose(0, 1)
        expected = visual.ln_post(x[:, 0]) @ visual.proj
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert (ours - tiny_clip.encode_image(images)).abs().max() > 1e-3  # the prompts do change the feature


def test_last_block_cls_attention_by_hand(tiny_clip) -> None:
    visual = tiny_clip.visual
    images = _images(2)
    with torch.no_grad():
        out = PromptedVisionEncoder(visual)(images, return_attention=True)
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(2, 1, -1), x], dim=1) + visual.positional_embedding
        x = visual.ln_pre(x).transpose(0, 1)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        hidden = last.ln_1(x).transpose(0, 1)  # [B, 17, 64], one head of width 64
        w_q, w_k, _ = last.attn.in_proj_weight.chunk(3)
        b_q, b_k, _ = last.attn.in_proj_bias.chunk(3)
        scores = (hidden @ w_q.t() + b_q) @ (hidden @ w_k.t() + b_k).transpose(1, 2) / 8.0  # sqrt(64)
        expected = scores.softmax(-1)[:, 0, 1:]
    assert out.attention.shape == (2, 16)
    torch.testing.assert_close(out.attention, expected, rtol=0, atol=1e-6)


def test_layer_index_errors(tiny_clip) -> None:
    encoder = PromptedVisionEncoder(tiny_clip.visual)
    with pytest.raises(ValueError, match=r"VisualPrompts blocks: expected distinct 0-based block indices in \[0, 12\)"):
        encoder(_images(1), [vpt_part([12], torch.zeros(1, 1, 64))])
    with pytest.raises(ValueError, match="overlap"):
        compose_clip(tiny_clip, CLASSNAMES, "{}.", learn_text=True, vpt_layers=[10, 11], n_vpt_ctx=1,
                     cavpt_layers=[11], n_cavpt=2)(_images(1))
    with pytest.raises(ValueError, match="needs a learned text part"):
        compose_clip(tiny_clip, CLASSNAMES, "{}.", learn_text=False, cavpt_layers=[11], n_cavpt=2)
    with pytest.raises(ValueError, match="placeholder"):
        compose_clip(tiny_clip, CLASSNAMES, "a photo.", learn_text=False)


# --- switch equivalences ------------------------------------------------------------------------------------


def _same_outputs(a, b) -> None:
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.logits_zs_image, b.logits_zs_image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.logits_zs_text, b.logits_zs_text, rtol=1e-5, atol=1e-5)


def test_vlp_with_zero_length_visual_prompts_equals_coop(tiny_clip) -> None:
    coop = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4)
    vlp = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                       vpt_layers=range(12), n_vpt_ctx=0)
    vlp.prompt_learner.load_state_dict(coop.prompt_learner.state_dict())
    assert vlp.visual_prompts.ctx.shape == (12, 0, 64)
    with torch.no_grad():
        _same_outputs(vlp(_images(), need_guidance=True), coop(_images(), need_guidance=True))


def test_dpt_with_cavpt_length_zero_equals_vlp_without_last_layer_prompts(tiny_clip) -> None:
    vlp = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                       vpt_layers=range(11), n_vpt_ctx=3)
    dpt = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                       vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=[11], n_cavpt=0)
    dpt.prompt_learner.load_state_dict(vlp.prompt_learner.state_dict())
    dpt.visual_prompts.load_state_dict(vlp.visual_prompts.state_dict())
    with torch.no_grad():
        out = dpt(_images(), need_guidance=True)
        _same_outputs(out, vlp(_images(), need_guidance=True))
    assert out.topk_indices.shape == (3, 0) and out.layer_logits[0].shape == (3, 0, 5)


def test_cached_text_and_image_features_give_the_same_outputs(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=[11], n_cavpt=3)
    images = _images()
    with torch.no_grad():
        plain = model(images, need_guidance=True)
        cached = model(images, model.encode_learned_text(), need_guidance=True,
                       zs_image_features=model.zero_shot_image_features(images))
    _same_outputs(cached, plain)
    torch.testing.assert_close(cached.layer_logits[0], plain.layer_logits[0], rtol=0, atol=1e-6)
    assert torch.equal(cached.topk_indices, plain.topk_indices)


def test_cavpt_length_is_capped_at_class_count(tiny_clip, capsys: pytest.CaptureFixture) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=2,
                         cavpt_layers=[11], n_cavpt=10)
    assert "capped" in capsys.readouterr().out
    with torch.no_grad():
        out = model(_images(2))
    assert model.cavpt.n_select == 5 and out.topk_indices.shape == (2, 5)
    assert sorted(out.topk_indices[0].tolist()) == [0, 1, 2, 3, 4]


# --- gradients ----------------------------------------------------------------------------------------------


def test_only_prompt_and_cavpt_parameters_get_gradients(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=[11], n_cavpt=3)
    model.freeze_clip()
    assert not any(p.requires_grad for p in tiny_clip.parameters())
    out = model(_images(), need_guidance=True)
    labels = torch.tensor([0, 1, 2])
    loss = sum(F.cross_entropy(x, labels) for x in (out.logits, out.logits_zs_image, out.logits_zs_text))
    loss = loss + out.layer_logits[0].logsumexp(-1).mean()
    loss.backward()
    learnable = {"prompt_learner", "visual_prompts", "cavpt"}
    for name, parameter in model.named_parameters():
        if name.split(".")[0] in learnable:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name


def test_cavpt_keys_are_detached_from_earlier_visual_prompts(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=[11], n_cavpt=3)
    model.freeze_clip()
    model(_images()).layer_logits[0].square().sum().backward()
    assert model.visual_prompts.ctx.grad is None  # docs/reference.md 7.8 #14: keys/values are detached
    assert model.prompt_learner.ctx.grad.abs().sum() > 0  # queries are the learned text features


# --- precision and goldens ----------------------------------------------------------------------------------


def test_bf16_autocast_runs_close_to_fp32(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=[11], n_cavpt=3)
    images = _images()
    with torch.no_grad():
        reference = model(images, need_guidance=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images, need_guidance=True)
    for got, want in ((low.logits, reference.logits), (low.layer_logits[0], reference.layer_logits[0])):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.float(), want, rtol=0.05, atol=1.5)  # bf16 keeps ~3 significant digits


def _load_golden_script():
    spec = importlib.util.spec_from_file_location("make_goldens", REPO / "scripts" / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden_now() -> Dict[str, Dict[str, torch.Tensor]]:
    return _load_golden_script().golden_outputs()


GOLDEN_CASES = sorted(p.stem for p in (REPO / "tests" / "data" / "golden").glob("*.pt"))


def test_golden_cases_cover_every_switch_set() -> None:
    assert set(GOLDEN_CASES) == set(_load_golden_script().SWITCHES) | {"text_encoder", "cavpt"}


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_outputs_match_goldens(case: str, golden_now: Dict[str, Dict[str, torch.Tensor]]) -> None:
    stored = torch.load(REPO / "tests" / "data" / "golden" / f"{case}.pt", weights_only=True)
    assert stored.keys() == golden_now[case].keys()
    for key, expected in stored.items():
        # atol scales with the tensor: logits ~30 carry fp32 summation noise of ~1e-4 that differs between CPUs
        atol = 1e-5 * max(1.0, expected.float().abs().max().item())
        torch.testing.assert_close(golden_now[case][key], expected, rtol=1e-4, atol=atol, msg=f"{case}/{key}")


# --- class names that do not fit the context ----------------------------------------------------------------


def test_class_name_too_long_names_class_tokens_and_budget(tiny_clip) -> None:
    long_name = " ".join(["word"] * 60)  # 60 tokens: fits "a photo of a {}." (budget 70), not 16 context tokens
    compose_clip(tiny_clip, ["cat", long_name], "a photo of a {}.", learn_text=False)
    with pytest.raises(ClassNameTooLong) as info:
        compose_clip(tiny_clip, ["cat", long_name], "a photo of a {}.", learn_text=True, n_ctx=16)
    assert str(info.value) == (
        f"class {long_name!r} (60 tokens) does not fit CLIP's context: the budget for a class name is 58 tokens "
        f"(77 - 16 context tokens - 3 for SOS, EOT and the template '{{}}.')")
    assert (info.value.too_long, info.value.budget, info.value.n_ctx) == ([(long_name, 60)], 58, 16)
    compose_clip(tiny_clip, ["cat", long_name], "a photo of a {}.", learn_text=True, n_ctx=4)  # 46 + 4 + 3 fit
    longer = [" ".join([w] * 75) for w in ("cat", "dog")]
    with pytest.raises(ClassNameTooLong, match=r"classes '(cat )+cat' \(75 tokens\), '(dog )+dog' \(75 tokens\) do "
                                               r"not fit .* budget for a class name is 70 tokens \(77 - 7 for SOS, "
                                               r"EOT and the template 'a photo of a \{\}.'\)"):
        compose_clip(tiny_clip, longer, "a photo of a {}.", learn_text=False)


def test_tokenize_class_prompts_equals_clip_tokenize() -> None:
    names = ["cat", "sea urchin", "St. Bernard"]
    assert torch.equal(tokenize_class_prompts(names, "a photo of a {}, a type of pet."),
                       clip.tokenize([f"a photo of a {n}, a type of pet." for n in names]))
    assert torch.equal(tokenize_class_prompts(names, "{}.", context_prefix="X X X", n_ctx=3),
                       clip.tokenize([f"X X X {n}." for n in names]))
