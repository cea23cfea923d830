"""CAVPT generator (dpt/modeling/cavpt.py) recomputed by hand, and its use inside PromptedCLIP."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dpt.modeling import ClassAwarePromptGenerator
from helpers import compose_clip

CLASSNAMES = ["cat", "dog", "sea urchin", "aeroplane", "tabby cat", "x", "car"]


def _by_hand(layer, sequence: torch.Tensor, queries: torch.Tensor, attn_dim: int):
    """docs/reference.md 7.6 step 4 with explicit ops on the layer's own weights."""
    q0 = queries @ layer.meta_net.weight.t() + layer.meta_net.bias  # [B, K, W]
    keys = layer.key_tokens.unsqueeze(0).expand(sequence.shape[0], -1, -1)
    kv = torch.cat([sequence, keys], dim=1)  # [B, L + n_key, W]
    q = q0 @ layer.q_proj.weight.t()
    k = kv @ layer.k_proj.weight.t()
    attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(attn_dim), dim=-1)  # [B, K, L + n_key]
    o = (attention @ kv) @ layer.v_proj.weight.t()
    norm, token_norm = layer.norm, layer.token_norm
    logits = F.layer_norm(o, o.shape[-1:], norm.weight, norm.bias, norm.eps) @ layer.classifier.weight.t()
    tokens = F.layer_norm(o + q0, o.shape[-1:], token_norm.weight, token_norm.bias, token_norm.eps)
    return tokens, logits


@pytest.mark.parametrize("shared", [False, True])
def test_generator_matches_explicit_ops(shared: bool) -> None:
    torch.manual_seed(0)
    generator = ClassAwarePromptGenerator(n_layers=3, text_dim=16, width=24, n_cls=7, n_key_tokens=5,
                                          attn_dim=8, shared=shared)
    with torch.no_grad():  # make LayerNorm affine parameters non-trivial
        for parameter in generator.parameters():
            if parameter.dim() == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    sequence, queries = torch.randn(2, 9, 24), torch.randn(2, 4, 16)
    assert len(generator.layers) == (1 if shared else 3)
    for layer in range(3):
        out = generator(layer, sequence, queries)
        tokens, logits = _by_hand(generator.layers[0 if shared else layer], sequence, queries, attn_dim=8)
        assert out.tokens.shape == (2, 4, 24) and out.logits.shape == (2, 4, 7)
        torch.testing.assert_close(out.tokens, tokens, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    if not shared:
        assert not torch.allclose(generator(0, sequence, queries).tokens, generator(1, sequence, queries).tokens)


def test_parameter_shapes_and_n_cls_dependent_keys() -> None:
    generator = ClassAwarePromptGenerator(n_layers=2, text_dim=32, width=64, n_cls=7)
    shapes = {key: tuple(value.shape) for key, value in generator.state_dict().items()}
    assert shapes["layers.1.meta_net.weight"] == (64, 32) and shapes["layers.1.meta_net.bias"] == (64,)
    assert shapes["layers.0.q_proj.weight"] == (32, 64) and shapes["layers.0.k_proj.weight"] == (32, 64)
    assert shapes["layers.0.v_proj.weight"] == (64, 64) and shapes["layers.0.key_tokens"] == (10, 64)
    assert "layers.0.q_proj.bias" not in shapes and "layers.0.classifier.bias" not in shapes
    assert sorted(generator.n_cls_dependent_keys()) == sorted(k for k, s in shapes.items() if 7 in s)

    other = ClassAwarePromptGenerator(n_layers=2, text_dim=32, width=64, n_cls=3)
    state = {k: v for k, v in generator.state_dict().items() if k not in generator.n_cls_dependent_keys()}
    result = other.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == sorted(other.n_cls_dependent_keys()) and not result.unexpected_keys
    assert torch.equal(other.layers[1].meta_net.weight, generator.layers[1].meta_net.weight)


def test_vit_b32_parameter_count_matches_reference() -> None:
    """docs/reference.md 7.6: 1,043,712 + 768 n_cls trainable CAVPT parameters for one layer of ViT-B/32."""
    generator = ClassAwarePromptGenerator(n_layers=1, text_dim=512, width=768, n_cls=37)
    assert sum(p.numel() for p in generator.parameters()) == 1_043_712 + 768 * 37


def test_dpt_selects_zero_shot_top_k_and_feeds_their_learned_text(tiny_clip) -> None:
    model = compose_clip(tiny_clip, CLASSNAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(10), n_vpt_ctx=2, cavpt_layers=[10, 11], n_cavpt=3)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(images)
        zs_image = F.normalize(tiny_clip.encode_image(images), dim=-1)
        zs_logits = tiny_clip.logit_scale.exp() * zs_image @ model.zs_text_features.t()
        expected = zs_logits.argsort(dim=-1, descending=True)[:, :3]
        assert torch.equal(out.topk_indices, expected)

        # The last block's CAVPT tokens come from the learned, unnormalised text of the selected classes.
        text = model.encode_learned_text()
        visual = tiny_clip.visual
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = visual.ln_pre(torch.cat([visual.class_embedding.expand(4, 1, -1), x], 1) + visual.positional_embedding)
        x = x.transpose(0, 1)  # [L, B, W]
        for index, block in enumerate(visual.transformer.resblocks):
            if index < 10:
                extra = model.visual_prompts.ctx[index].unsqueeze(1).expand(-1, 4, -1)
            else:
                generated = model.cavpt(index - 10, x.transpose(0, 1), text.raw[expected])
                torch.testing.assert_close(out.layer_logits[index - 10], generated.logits, rtol=1e-5, atol=1e-5)
                extra = generated.tokens.transpose(0, 1)
            x = block(torch.cat([x, extra]))[: x.shape[0]]
        features = F.normalize(visual.ln_post(x[0]) @ visual.proj, dim=-1)
        logits = tiny_clip.logit_scale.exp() * features @ text.normalized.t()
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    assert [tuple(t.shape) for t in out.layer_logits] == [(4, 3, 7), (4, 3, 7)]


def test_cavpt_loss_uses_exactly_the_true_class_rows():
    """Rows (sample b, layer j, slot k) with topk[b, k] == label[b], checked by hand on a 3-sample batch."""
    from dpt.trainers.dpt import cavpt_loss

    gen = torch.Generator().manual_seed(0)
    layer_logits = [torch.randn(3, 2, 5, generator=gen) for _ in range(2)]  # 2 CAVPT layers, K = 2, 5 classes
    topk = torch.tensor([[4, 1], [0, 2], [3, 1]])
    label = torch.tensor([1, 3, 3])  # sample 0: slot 1; sample 1: none; sample 2: slot 0
    rows = [(0, 1), (2, 0)]
    expected = torch.stack([
        F.cross_entropy(layer_logits[j][b, k][None], label[b][None]) for j in range(2) for b, k in rows
    ]).mean()
    torch.testing.assert_close(cavpt_loss(layer_logits, topk, label), expected)
