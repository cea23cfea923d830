"""Precision modes: amp and bf16 train on CPU; a fp16 CLIP keeps fp32 master weights for the prompts."""
import pytest
import torch
import torch.nn.functional as F

from dpt.modeling.clip_loader import load_clip
from dpt.modeling.prompted_clip import PromptedCLIP
from dpt.tools.logparse import parse_metric
from dpt.train import main
from test_trainers import argv, eurosat_root  # noqa: F401  (module fixture)


@pytest.mark.parametrize("prec", ["amp", "bf16"])
@pytest.mark.parametrize("trainer", ["CoOp", "DPT"])
def test_autocast_precisions_train_on_cpu(prec, trainer, eurosat_root, tiny_clip_path, tmp_path):  # noqa: F811
    args = argv(trainer, eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COOP.PREC", prec, epochs=2)
    assert main(args) == 0
    assert parse_metric(str(tmp_path / "log.txt")) is not None


def test_fp16_clip_keeps_fp32_master_prompts(tiny_clip_path):
    """Gradients reach fp32 prompt parameters through a fp16 CLIP, so one GradScaler can unscale them all."""
    clip_model = load_clip(str(tiny_clip_path), precision="fp16")
    model = PromptedCLIP(clip_model, ["cat", "dog", "car"], "a photo of a {}.", learn_text=True,
                         vpt_layers=range(11), n_vpt_ctx=4, cavpt_layers=[11], n_cavpt=2)
    model.freeze_clip()
    out = model(torch.randn(2, 3, 32, 32), need_guidance=True)
    assert out.logits.dtype == torch.float16
    loss = F.cross_entropy(out.logits.float(), torch.tensor([0, 1])) + out.layer_logits[0].float().mean()
    loss.backward()
    learnable = [model.prompt_learner.ctx, model.visual_prompts.ctx, *model.cavpt.parameters()]
    assert all(p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all() for p in learnable)
    assert all(p.grad is None for p in clip_model.parameters())
