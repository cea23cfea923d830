"""The part protocol (dpt/modeling/parts.py): new kinds of prompts are new part classes, run by the one text and
ViT forward with no change to shared code.

The two test-only parts below are the shapes of the next methods (docs/reference.md 10.1-10.2): deep text
prompts that replace positions 1..n before text blocks 1..J-1 (IVLP / MaPLe / PromptSRC), and vision prompts
coupled from them (MaPLe: layer-0 prompts appended before ln_pre, then the last n tokens replaced). Each is
checked against the same computation written out by hand on CLIP's own modules.
"""
from __future__ import annotations

from typing import Optional

import pytest
import torch
import torch.nn as nn

from dpt.demo.tiny_clip import make_tiny_clip
from dpt.modeling import BlockPrompts, PromptContext, PromptedCLIP, PromptLearner, VisualPrompts

CLASSNAMES = ["cat", "golden retriever", "sea urchin"]
DEPTH = 4  # prompted blocks 0..3: block 0 through the text part's context, 1..3 by the parts
N_CTX = 2


class DeepTextPrompts(BlockPrompts):
    """Before text block i (1..DEPTH-1) positions 1..n are replaced by prompt i; never stripped."""

    position = "front"
    replace = True

    def __init__(self, n_ctx: int, width: int) -> None:
        super().__init__()
        self.blocks = tuple(range(1, DEPTH))
        self.prompts = nn.Parameter(torch.randn(DEPTH - 1, n_ctx, width) * 0.02)

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.prompts[block_index - 1].expand(x.shape[0], -1, -1)


class CoupledVisionPrompts(BlockPrompts):
    """Vision prompt i = Linear_i(text prompt i): layer 0 appended before ln_pre, then the last n replaced."""

    replace = True

    def __init__(self, learner: PromptLearner, deep_text: DeepTextPrompts, text_width: int, width: int) -> None:
        super().__init__()
        self.blocks = tuple(range(1, DEPTH))
        self._text = (learner, deep_text)  # plain references: their parameters stay registered in their own parts
        self.couplings = nn.ModuleList(nn.Linear(text_width, width) for _ in range(DEPTH))

    def _text_prompt(self, index: int) -> torch.Tensor:
        learner, deep_text = self._text
        return learner.ctx if index == 0 else deep_text.prompts[index - 1]  # [n, text_width]

    def embedding_tokens(self, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.couplings[0](self._text_prompt(0)).expand(x.shape[0], -1, -1)

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.couplings[block_index](self._text_prompt(block_index)).expand(x.shape[0], -1, -1)


def _text_by_hand(clip_model, learner: PromptLearner, deep: torch.Tensor) -> torch.Tensor:
    """[n_cls, E]: full 77-token text forward, positions 1..n overwritten before blocks 1..DEPTH-1."""
    x = (learner() + clip_model.positional_embedding).permute(1, 0, 2)  # [77, n_cls, D]
    for index, block in enumerate(clip_model.transformer.resblocks):
        if 1 <= index < DEPTH:
            x = torch.cat([x[:1], deep[index - 1].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + N_CTX:]])
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), learner.tokenized_prompts.argmax(-1)] @ clip_model.text_projection


def _image_by_hand(clip_model, prompts: list, images: torch.Tensor) -> torch.Tensor:
    """[B, E]: layer-0 prompts appended before ln_pre, the last n tokens replaced before blocks 1..DEPTH-1."""
    visual = clip_model.visual
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(images.shape[0], 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(torch.cat([x, prompts[0].expand(images.shape[0], -1, -1)], dim=1)).transpose(0, 1)
    for index, block in enumerate(visual.transformer.resblocks):
        if 1 <= index < DEPTH:
            x = torch.cat([x[:-N_CTX], prompts[index].unsqueeze(1).expand(-1, x.shape[1], -1)])
        x = block(x)
    return visual.ln_post(x[0]) @ visual.proj


@pytest.fixture(scope="module")
def deep_clip():
    """The tiny CLIP with 6 text blocks, so that deep text prompts skip some."""
    return make_tiny_clip(transformer_layers=6)


def _maple_like(clip_model) -> PromptedCLIP:
    torch.manual_seed(0)
    learner = PromptLearner(clip_model, CLASSNAMES, ctx_init="a photo")
    text_width, width = clip_model.ln_final.weight.shape[0], clip_model.visual.conv1.weight.shape[0]
    deep_text = DeepTextPrompts(N_CTX, text_width)
    vision = CoupledVisionPrompts(learner, deep_text, text_width, width)
    model = PromptedCLIP(clip_model, CLASSNAMES, "a photo of a {}.", text=learner,
                         text_blocks={"deep_text": deep_text}, vision={"coupled": vision})
    model.freeze_clip()
    return model


def test_deep_text_part_replaces_positions_before_blocks(deep_clip) -> None:
    model = _maple_like(deep_clip)
    learner, deep = model.prompt_learner, model.deep_text
    features = model.encode_learned_text().raw  # fast path: chunks cut at the longest EOT
    with torch.no_grad():
        expected = _text_by_hand(deep_clip, learner, deep.prompts)
        plain = learner.encode(model.text_encoder)  # CoOp: the same context without deep prompts
    torch.testing.assert_close(features.detach(), expected, rtol=1e-5, atol=1e-5)
    assert (features.detach() - plain).abs().max() > 1e-3  # the deep prompts do change the features
    features.sum().backward()
    assert deep.prompts.grad is not None and deep.prompts.grad.abs().sum() > 0


def test_coupled_vision_part_appends_before_ln_pre_then_replaces(deep_clip) -> None:
    model = _maple_like(deep_clip)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    coupled = model.coupled
    out = model.vision(images, [coupled], PromptContext())
    with torch.no_grad():
        prompts = [coupled.couplings[i](coupled._text_prompt(i)) for i in range(DEPTH)]
        expected = _image_by_hand(deep_clip, prompts, images)
    torch.testing.assert_close(out.features.detach(), expected, rtol=1e-5, atol=1e-5)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert sorted(names) == sorted(
        ["prompt_learner.ctx", "deep_text.prompts"] + [f"coupled.couplings.{i}.{w}" for i in range(DEPTH)
                                                        for w in ("weight", "bias")]
    )  # each parameter registered once, in its own part
    out.features.sum().backward()
    assert model.deep_text.prompts.grad.abs().sum() > 0 and model.prompt_learner.ctx.grad.abs().sum() > 0


def test_parts_may_not_share_a_block_or_leave_the_tower(deep_clip) -> None:
    with pytest.raises(ValueError, match=r"vision parts VisualPrompts and VisualPrompts overlap in blocks \[3\]"):
        model = PromptedCLIP(deep_clip, CLASSNAMES, "a {}.", vision={"a": VisualPrompts([2, 3], 1, 64),
                                                                    "b": VisualPrompts([3], 1, 64)})
        model(torch.randn(1, 3, 32, 32))
    model = _maple_like(deep_clip)
    n_text_blocks = len(deep_clip.transformer.resblocks)
    model.deep_text.blocks = (1, n_text_blocks)
    with pytest.raises(ValueError, match=rf"text part DeepTextPrompts blocks: .* \[0, {n_text_blocks}\), got \[1, {n_text_blocks}\]"):
        model.encode_learned_text()
