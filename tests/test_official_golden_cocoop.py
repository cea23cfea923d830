"""Our CoCoOp equals the official implementation (KaiyangZhou/CoOp trainers/cocoop.py) on the same tiny CLIP.

Why: tests/test_cocoop.py pins our fast path to our per-image reference loop; these numbers come from running
the official code itself, so a match proves that the prompt assembly (SOS, shifted context, class tokens,
EOT), the meta-net, the per-image text features, the logits, the loss and the gradients are CoCoOp's
(docs/reference.md 9.1), and that official checkpoints load into our "prompt_learner" without a name map.

How tests/data/official/official_cocoop.pt was produced (scratch driver, never committed; rerun to regenerate):
1. Official code: github.com/KaiyangZhou/CoOp at commit ff61507 (trainers/cocoop.py and its clip/ package,
   which shadows clip-anytorch) with KaiyangZhou/Dassl.pytorch at c61a1b5 on PYTHONPATH, Python 3.11, torch CPU
   fp32. Modules imported by Dassl but never used on this path were stubbed in sys.modules (gdown, wilds,
   pandas). No line of theirs was patched.
2. Process 1 ran ``build_ours(case)`` below and saved ``tiny_clip_state_dict(make_tiny_clip())``, our learnable
   tensors (``init``), the images and the labels. Process 2 built their CLIP with their ``clip.build_model``
   (fp16 weights, exact since the tiny weights are fp16-representable) then ``.float()`` as PREC fp32 does, and
   their ``CustomCLIP`` with a cfg of TRAINER.COCOOP.{N_CTX, CTX_INIT} as in CASES, PREC fp32, INPUT.SIZE 32.
   Their CoCoOp trainer's name filter ("prompt_learner") selects exactly ``ctx`` and ``meta_net.*``, which were
   set to ``init``.
3. Recorded: their prompt learner's state-dict names and shapes, its ``token_prefix`` / ``token_suffix`` buffers
   and initial ``ctx`` (a word initialisation for ctxv1), the logits of ``model.eval()``, the loss of
   ``model.train()`` (their forward returns CE in training mode), and the gradients of that loss on ``ctx`` and
   ``meta_net.*``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch

from dpt.demo.tiny_clip import make_tiny_clip
from dpt.modeling import PromptedCLIP
from dpt.trainers.base import cross_entropy
from helpers import compose_clip

GOLDEN = Path(__file__).resolve().parent / "data" / "official" / "official_cocoop.pt"
CLASSNAMES = ["abyssinian", "golden_retriever", "sea urchin", "aeroplane", "x", "tabby cat", "pug", "newfoundland"]
TEMPLATE = "a photo of a {}, a type of pet."  # CUSTOM_TEMPLATES["OxfordPets"] (zero-shot buffer only)
MODEL_SEED = 3
IMAGE_SEED = 5
LABELS = [1, 4, 6]
CASES: Dict[str, dict] = {  # TRAINER.COCOOP of vit_b16_c4_ep10_batch1 and _ctxv1
    "c4": dict(n_ctx=4, ctx_init=""),
    "ctxv1": dict(n_ctx=4, ctx_init="a photo of a"),
}


def build_ours(case: str, chunk_size: int = 5) -> Tuple[PromptedCLIP, torch.Tensor, torch.Tensor]:
    """Our seeded CoCoOp model, the [3, 3, 32, 32] images and labels [3] (the driver fed theirs the same).

    ``chunk_size`` 5 splits the 24 (image, class) prompts into uneven, recomputed chunks.
    """
    with torch.random.fork_rng(devices=[]):  # leave the global RNG of the test session untouched
        torch.manual_seed(MODEL_SEED)
        model = compose_clip(make_tiny_clip(), CLASSNAMES, TEMPLATE, learn_text=True, image_conditioned=True,
                             text_chunk_size=chunk_size, **CASES[case])
    model.freeze_clip()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(IMAGE_SEED))
    return model, images, torch.tensor(LABELS)


@pytest.fixture(scope="module")
def official() -> Dict[str, Dict[str, torch.Tensor]]:
    return torch.load(GOLDEN, weights_only=True)


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float) -> None:
    torch.testing.assert_close(actual.detach(), expected, rtol=1e-4, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_prompt_learner_state_equals_official(official, case: str) -> None:
    """Same state-dict names and shapes (official checkpoints load as they are), same buffers and initial ctx."""
    gold = official[case]
    model, _, _ = build_ours(case)
    state = model.prompt_learner.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(s) for k, s in gold["shapes"].items()}
    assert torch.equal(state["token_prefix"], gold["token_prefix"])
    assert torch.equal(state["token_suffix"], gold["token_suffix"])
    if case == "ctxv1":  # word initialisation: the token embeddings of "a photo of a"
        assert torch.equal(state["ctx"], gold["ctx_init"])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("chunk_size", [5, 1024])
def test_logits_loss_and_gradients_equal_official(official, case: str, chunk_size: int) -> None:
    gold = official[case]
    model, images, labels = build_ours(case, chunk_size)
    learnable = {f"prompt_learner.{k}": p for k, p in model.prompt_learner.named_parameters()}
    assert sorted(learnable) == sorted(gold["init"]) and all(p.requires_grad for p in learnable.values())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == list(learnable)  # CLIP is frozen
    with torch.no_grad():
        for name, param in learnable.items():
            param.copy_(gold["init"][name])

    with torch.no_grad():
        logits = model(images).logits
    # scale-100 logits from fp32 features, our prompts cut at the chunk's EOT (theirs at 77 tokens): observed
    # <= 1.7e-5, 1e-4 leaves room for reordered sums
    _close(logits, gold["logits"], f"{case} logits", atol=1e-4)

    loss = cross_entropy(model(images), labels)  # the CoCoOp trainer's loss (CoOp's supervised step)
    _close(loss, gold["loss"], f"{case} loss", atol=1e-5)  # O(10) losses, observed <= 3e-6
    loss.backward()
    for name, param in learnable.items():
        # fp32 grads differ from theirs by <= 5e-6 of the tensor's largest entry (reordered sums, shorter
        # sequences); 3e-5 of it leaves room for other CPUs while a wrong path moves them by O(1)
        atol = 3e-5 * gold["grads"][name].abs().max().item()
        _close(param.grad, gold["grads"][name], f"{case} grad {name}", atol=atol)
