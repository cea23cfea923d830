"""CoCoOp: the chunked per-image text path equals the official per-image loop at 77 tokens (values and gradients),
its chunks stay bounded, and the trainer reads CoCoOp's own keys (precision, chunk size) and official checkpoints."""
from __future__ import annotations

import os
import subprocess
from typing import List, Tuple

import pytest
import torch
import torch.nn.functional as F

from dpt.config.merge import setup_cfg
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import save_checkpoint
from dpt.modeling.prompted_clip import PromptedCLIP
from dpt.modeling.text_encoder import TextEncoder
from dpt.reporting.logparse import parse_metric
from dpt.train import build_parser, main
from helpers import REPO, argv, compose_clip

NAMES = ["cat", "sea lion", "golden retriever dog", "x", "airliner", "a b c d e f"]


def _model(clip_model, chunk_size: int, **switches) -> PromptedCLIP:
    torch.manual_seed(0)
    model = compose_clip(clip_model, NAMES, "a photo of a {}.", learn_text=True, n_ctx=4, image_conditioned=True,
                         text_chunk_size=chunk_size, **switches)
    model.freeze_clip()
    return model


def official_loop_logits(model: PromptedCLIP, image: torch.Tensor) -> torch.Tensor:
    """The official CoCoOp forward: per image, all n_cls prompts [SOS, ctx + shift, class, ., EOT] at 77 tokens."""
    learner = model.prompt_learner
    encoder = TextEncoder(model.clip_model, truncate=False, chunk_size=learner.n_cls)  # one image per call
    image_features = F.normalize(model.vision(image).features, dim=-1)  # [B, E]
    shift = learner.meta_net(image_features)  # [B, D]
    logits = []
    for feature, bias in zip(image_features, shift):
        ctx = (learner.ctx + bias).unsqueeze(0).expand(learner.n_cls, -1, -1)  # [n_cls, n_ctx, D]
        prompts = torch.cat([learner.token_prefix, ctx, learner.token_suffix], dim=1)  # [n_cls, 77, D]
        text = F.normalize(encoder(prompts, learner.tokenized_prompts), dim=-1)  # [n_cls, E]
        logits.append(model.logit_scale * feature @ text.t())
    return torch.stack(logits)  # [B, n_cls]


def _logits_and_grads(model: PromptedCLIP, forward) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    learnable = list(model.prompt_learner.parameters())
    for p in learnable:
        p.grad = None
    logits = forward()
    weights = torch.linspace(-1, 1, logits.numel()).view_as(logits)
    (logits * weights).sum().backward()
    return logits.detach(), [p.grad.clone() for p in learnable]


@pytest.mark.parametrize("chunk_size", [18, 4, 1])  # one chunk (B x n_cls = 18), uneven recomputed chunks, one each
def test_chunked_path_equals_official_per_image_loop(tiny_clip, chunk_size: int) -> None:
    model = _model(tiny_clip, chunk_size)
    image = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref_logits, ref_grads = _logits_and_grads(model, lambda: official_loop_logits(model, image))
    logits, grads = _logits_and_grads(model, lambda: model(image).logits)
    assert all(g.abs().sum() > 0 for g in ref_grads)  # ctx and all four meta-net tensors are reached
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)  # scale-100 logits, fp32: observed 1e-5
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert all(p.grad is None for p in tiny_clip.parameters())


def test_chunks_are_bounded_and_cut_at_their_own_eot(tiny_clip, monkeypatch) -> None:
    """3 images x 6 classes in chunks of 4 prompts, ordered by EOT: each chunk is cut at its own longest prompt."""
    model = _model(tiny_clip, chunk_size=4)
    calls = []
    encode = TextEncoder._encode

    def spy(self, embeds, eot, parts=()):
        calls.append((embeds.shape[0], embeds.shape[1], int(eot.max())))
        return encode(self, embeds, eot, parts)

    monkeypatch.setattr(TextEncoder, "_encode", spy)
    with torch.no_grad():
        model(torch.randn(3, 3, 32, 32))
    class_eot = sorted(model.prompt_learner.tokenized_prompts.argmax(dim=-1).tolist())  # per class, ascending
    pair_eot = [eot for eot in class_eot for _ in range(3)]  # 18 pairs, class-major
    assert [n for n, _, _ in calls] == [4, 4, 4, 4, 2]
    assert [length for _, length, _ in calls] == [max(pair_eot[i:i + 4]) + 1 for i in range(0, 18, 4)]
    assert all(length == eot + 1 for _, length, eot in calls) and calls[0][1] < calls[-1][1] < 77


def test_meta_net_shifts_every_context_vector_by_the_same_vector(tiny_clip) -> None:
    learner = _model(tiny_clip, 8).prompt_learner
    features = F.normalize(torch.randn(2, 32), dim=-1)
    with torch.no_grad():
        ctx = learner.conditioned_context(features)  # [2, 4, 64]
        net = learner.meta_net
        shift = net.linear2(torch.relu(net.linear1(features)))  # [2, 64], by hand
    assert ctx.shape == (2, 4, 64)
    torch.testing.assert_close(ctx - learner.ctx.detach(), shift[:, None].expand(-1, 4, -1), rtol=0, atol=1e-6)
    assert net.linear1.out_features == 32 // 16 and net.linear2.out_features == 64  # vis_dim // 16, ctx_dim


def test_guidance_logits_use_the_frozen_image_side(tiny_clip) -> None:
    model = _model(tiny_clip, 8)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(image, need_guidance=True)
        zero_shot = compose_clip(tiny_clip, NAMES, "a photo of a {}.", learn_text=False)(image).logits
    assert torch.equal(out.logits_zs_image, out.logits)  # CoCoOp's image feature is CLIP's own
    torch.testing.assert_close(out.logits_zs_text, zero_shot, rtol=0, atol=1e-4)


def test_unsupported_parts_are_refused(tiny_clip) -> None:
    """CoCoOp's part takes no csc / class position (one shared context at the end), and no vision parts."""
    with pytest.raises(ValueError, match="takes no vision parts"):
        _model(tiny_clip, 8, vpt_layers=range(12), n_vpt_ctx=2)
    model = _model(tiny_clip, 8)
    with pytest.raises(ValueError, match="depend on each image"):
        model(torch.randn(1, 3, 32, 32), text_features=model.encode_learned_text())


def _cocoop_argv(root, out, clip_path, *opts, **kwargs):
    return argv("CoCoOp", root, out, clip_path, *opts, **kwargs)


def test_precision_comes_from_the_cocoop_key(eurosat_root, tiny_clip_path, tmp_path, capsys) -> None:
    args = _cocoop_argv(eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COCOOP.PREC", "fp16")  # COOP.PREC is fp32
    cfg = setup_cfg(build_parser().parse_args(args))
    assert cfg.TRAINER.COCOOP.PREC == "fp32"  # fp16 without a GPU resolves to fp32 before freezing
    cfg.defrost()
    cfg.TRAINER.COCOOP.PREC = "fp16"  # given to the engine directly: CoCoOp reads its own key
    cfg.freeze()
    with pytest.raises(ValueError, match="config key 'TRAINER.COCOOP.PREC' is fp16, which needs a CUDA GPU"):
        build_trainer(cfg)
    cfg = setup_cfg(build_parser().parse_args(_cocoop_argv(eurosat_root, tmp_path, tiny_clip_path,
                                                           "TRAINER.COOP.PREC", "bf16")))
    assert build_trainer(cfg).precision == "fp32"


def test_bad_chunk_size_is_one_line_error(eurosat_root, tiny_clip_path, tmp_path, capsys) -> None:
    assert main(_cocoop_argv(eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COCOOP.CHUNK_SIZE", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TRAINER.COCOOP.CHUNK_SIZE" in err[0] and "got 0" in err[0]


def test_bf16_training_and_official_checkpoint_for_eval_only(eurosat_root, tiny_clip_path, tmp_path) -> None:
    """bf16 autocast trains on CPU; a checkpoint with the official CoCoOp keys in fp16 (PREC fp16, no meta) loads."""
    run = tmp_path / "run"
    assert main(_cocoop_argv(eurosat_root, run, tiny_clip_path, "TRAINER.COCOOP.PREC", "bf16", epochs=1)) == 0
    assert parse_metric(str(run / "log.txt")) is not None

    cfg = setup_cfg(build_parser().parse_args(_cocoop_argv(eurosat_root, tmp_path / "ev", tiny_clip_path)))
    trainer = build_trainer(cfg)
    official = {k: (torch.randn_like(v) * 0.1).half() for k, v in trainer.model.prompt_learner.state_dict().items()}
    save_checkpoint({"state_dict": official, "epoch": 10, "optimizer": None, "scheduler": None, "val_result": None},
                    str(tmp_path / "official" / "prompt_learner"))
    trainer.load_model(str(tmp_path / "official"), epoch=10)
    state = trainer.model.prompt_learner.state_dict()
    for key in ("ctx", "meta_net.linear1.weight", "meta_net.linear1.bias", "meta_net.linear2.weight",
                "meta_net.linear2.bias"):
        assert state[key].dtype == torch.float32 and torch.equal(state[key], official[key].float()), key
    assert not torch.equal(state["token_prefix"], official["token_prefix"])  # class-name buffers are not loaded


def test_unknown_cfg_lists_the_cocoop_configs(tmp_path) -> None:
    env = {**os.environ, "CFG": "vit_b32_c9", "OUTPUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(REPO / "scripts" / "cocoop.sh"), "eurosat", "4", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "error: no CoCoOp config" in done.stderr and "vit_b32_c4_ep10_batch1_ctxv1" in done.stderr
    assert not (tmp_path / "out").exists()
