"""Goldens from the official MaPLe, IVLP, PromptSRC and KgCoOp code on tiny CLIPs, and our trainers against them.

Why: our trainers build these methods from our parts; these numbers come from running the official code itself,
so matching them proves the prompt insertion (docs/reference.md 10.1), the couplings (10.2), the independent
prompts (10.3), PromptSRC's losses, frozen targets and GPA weights (10.4) and KgCoOp's guidance term (10.5).
The first tests check that each golden file is whole and agrees with itself; the last ones ("phase 2") build
our IVLP / MaPLe / PromptSRC models on the golden's tiny CLIP, load the filled official tensors through the
official-name mapping (the trainers' ``official_names``) and compare logits, loss terms and gradients (1e-4).

How tests/data/official/official_{maple,ivlp,promptsrc,kgcoop}.pt were produced (scratch driver in /work/tmp,
never committed; rerun to regenerate):
1. Official code: muzairkhattak/multimodal-prompt-learning at 69bce21 (trainers/maple.py; IVLP =
   trainers/independentVL.py), muzairkhattak/PromptSRC at bb95c77 (trainers/promptsrc.py), each with
   KaiyangZhou/Dassl.pytorch at c61a1b5; htyao89/KgCoOp at c43ccc3 (KgCoOp/trainers/kgcoop.py) with its own
   Dassl fork (Dassl.ProGrad.pytorch). Each ran in its own process with the repository root (its clip/ package
   shadows clip-anytorch) and its Dassl on PYTHONPATH, Python 3.11, torch CPU. Modules imported by Dassl but
   unused on this path were stubbed in sys.modules (gdown, wilds with a ``get_dataset`` name, pandas). No line
   of theirs was edited.
2. Process 1 (ours) saved ``tiny_clip_state_dict(make_tiny_clip(**golden["clip"]["kwargs"]))`` (seed
   ``golden["clip"]["seed"]``, TINY_SEED): ``transformer_layers=12`` (12 text blocks, as the 12 vision blocks)
   with the default widths 64 / 64 and embed 32 for IVLP, PromptSRC and KgCoOp; for MaPLe, whose official
   prompt learner hard-codes text width 512 (compound_prompts_text) and vision width 768 (proj and
   compound_prompt_projections), ``transformer_width=512, vision_width=768`` instead (nothing patched). The
   images are ``torch.randn(3, 3, 32, 32)`` from a generator seeded 5, the labels [1, 4, 6].
3. Process 2 monkeypatched, from the driver: ``clip.clip._download`` returns that file (their unchanged
   ``load_clip_to_cpu`` then falls back from torch.jit.load to torch.load and their ``clip.build_model``);
   ``torch.Tensor.cuda`` / ``nn.Module.cuda`` are the identity (CPU); ``torch.Tensor.half`` / ``nn.Module.half``
   are the identity. The last disables every fp16 cast of the PREC fp32 path (10.1): the ``.half()`` of each
   inserted prompt in their ResidualAttentionBlock_IVLP / _MaPLe and VisionTransformer(_MaPLe).forward,
   MaPLe's ``self.proj.half()`` (a crash in fp32), PromptSRC's fp16 zero-shot towers and
   ``fixed_embeddings.half()``, KgCoOp's fp16 hand-crafted-text CLIP, and build_model's fp16 weight conversion
   (exact anyway: the tiny weights are fp16-representable). The list is ``golden["patches"]``.
4. Their trainer class was instantiated without a DataManager (``Trainer.__new__``, ``TrainerBase.__init__``,
   cfg, device cpu, ``dm.dataset.classnames`` = CLASSNAMES) and their own ``build_model()`` ran: it built the
   model from a Dassl default cfg + their train.py keys as in ``case["cfg"]`` (PREC fp32, INPUT.SIZE 32,
   DATASET.NAME OxfordPets, OPTIM.MAX_EPOCH 20, the yaml's LR), froze by their name filter and registered the
   Dassl model. The learnable tensors are exactly those their filter left trainable (``case["shapes"]``);
   ``case["initial_ctx"]`` is their word initialisation of prompt_learner.ctx, ``case["tokenized_prompts"]``
   their class prompts [8, 77]; PromptSRC's case keeps their 60 ``templates``, KgCoOp's its ``template``.
5. Every learnable tensor was then overwritten: one ``torch.Generator().manual_seed(golden["fill"]["seed"])``,
   names in sorted order, ``std * randn(shape)`` with std 0.02. ``case["values"]`` holds the filled tensors of
   at most ``golden["sketch"]["small"]`` elements; ``case["value_sums"]`` the float64 sum of every one (MaPLe's
   768 x 512 coupling weights are regenerated from the recipe, not stored).
6. Recorded: ``logits`` of ``model.eval()`` [3, 8]; ``loss`` = the ``loss`` of their trainer's own
   ``forward_backward`` (batch_idx 0 of 1000, so no lr step and no GPA accumulation), whose backward leaves
   ``grads`` on every learnable tensor (stored whole up to ``small`` elements; larger ones as
   ``grad_sketches``: ``grad.reshape(rows, -1) @ R``, R = randn(cols, 8) from a generator seeded
   ``golden["sketch"]["seed"]`` per tensor). PromptSRC: ``terms`` CE, KL (sum over B x C, / B*C), L1 text, L1
   image with ``loss_weights`` 1, 1, 25, 10; ``frozen_text_features`` = their ``fixed_embeddings`` (mean of the
   60 ImageNet templates, unnormalised) [8, 32]; ``frozen_image_features`` (normalised) and
   ``zero_shot_logits``; ``gpa_weights`` from their ``get_gauss(15, 1)`` over epochs 1..20, normalised as their
   build_model does. KgCoOp: ``terms`` CE and the guidance score 1 - mean cos with ``loss_weights`` 1 and W 8.0,
   and ``hand_crafted_text_features`` (normalised, template "a photo of a {}, a type of pet."). The terms were
   recomputed by the driver from their model's outputs with their formulas, before the step.
7. Checkpoint layout: ``case["checkpoint"]`` = the Dassl model name their build_model registers and the keys of
   that module's state_dict (what save_model writes): the whole CustomCLIP for MaPLe ("MultiModalPromptLearner"),
   IVLP and PromptSRC ("VLPromptLearner", including PromptSRC's frozen ``prompt_learner.ZS_image_encoder.*``),
   only the prompt learner for KgCoOp ("prompt_learner", with its unused bias_vectors and meta_net). Dassl's
   save_model writes ``<output>/<model name>/model.pth.tar-<epoch>`` holding {"state_dict", "epoch",
   "optimizer", "scheduler", "val_result"} (KgCoOp's Dassl fork: no "val_result"); their load_model drops
   ``prompt_learner.token_prefix`` / ``token_suffix`` (KgCoOp: ``token_prefix`` / ``token_suffix``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.config.defaults import get_cfg_default
from dpt.demo.tiny_clip import TINY_LOGIT_SCALE, TINY_SEED, make_tiny_clip
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.templates import custom_template
from dpt.trainers.ivlp import IVLP
from dpt.trainers.maple import MaPLe
from dpt.trainers.promptsrc import PromptSRC, gaussian_weights

OFFICIAL = Path(__file__).resolve().parent / "data" / "official"
METHODS = ("maple", "ivlp", "promptsrc", "kgcoop")
CLASSNAMES = ["abyssinian", "golden_retriever", "sea urchin", "aeroplane", "x", "tabby cat", "pug", "newfoundland"]
CASES = {
    "maple": ["2ctx_depth9"],
    "ivlp": ["2+2ctx_depth12", "2+2ctx_depth9"],
    "promptsrc": ["4+4ctx_depth9"],
    "kgcoop": ["ctxv1_w8"],
}
MODEL_NAMES = {"maple": "MultiModalPromptLearner", "ivlp": "VLPromptLearner", "promptsrc": "VLPromptLearner",
               "kgcoop": "prompt_learner"}
# learnable tensors per case: ctx, plus one prompt per prompted text / vision block, plus MaPLe's couplings
N_LEARNABLE = {"2ctx_depth9": 1 + 8 + 2 * 9, "2+2ctx_depth12": 1 + 1 + 11 + 11, "2+2ctx_depth9": 1 + 1 + 8 + 8,
               "4+4ctx_depth9": 1 + 1 + 8 + 8, "ctxv1_w8": 1}


def _load(method: str) -> dict:
    return torch.load(OFFICIAL / f"official_{method}.pt", weights_only=True)


@pytest.fixture(scope="module")
def goldens() -> Dict[str, dict]:
    return {method: _load(method) for method in METHODS}


def _cases(goldens: Dict[str, dict]):
    for method in METHODS:
        for case in CASES[method]:
            yield method, case, goldens[method]["cases"][case]


def _fill(shapes: Dict[str, list], seed: int, std: float) -> Dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: std * torch.randn(shapes[name], generator=generator) for name in sorted(shapes)}


def test_files_are_small_and_name_their_inputs(goldens) -> None:
    for method in METHODS:
        assert (OFFICIAL / f"official_{method}.pt").stat().st_size < 500_000
        gold = goldens[method]
        assert gold["method"] == method and gold["classnames"] == CLASSNAMES
        assert sorted(gold["cases"]) == sorted(CASES[method])
        assert gold["clip"]["seed"] == TINY_SEED and gold["clip"]["kwargs"]["transformer_layers"] == 12
        assert tuple(gold["images"].shape) == (3, 3, 32, 32) and gold["labels"].tolist() == [1, 4, 6]
        generator = torch.Generator().manual_seed(5)
        assert torch.equal(gold["images"], torch.randn(3, 3, 32, 32, generator=generator))
        assert any("half" in patch for patch in gold["patches"])
    assert goldens["maple"]["clip"]["kwargs"]["transformer_width"] == 512  # MaPLe's hard-coded widths
    assert goldens["maple"]["clip"]["kwargs"]["vision_width"] == 768


def test_learnable_values_are_the_seeded_fill(goldens) -> None:
    """Phase 2 loads these by name; the recipe (seed, sorted names, std 0.02) regenerates every one."""
    for method, case, gold in _cases(goldens):
        fill = goldens[method]["fill"]
        expected = _fill(gold["shapes"], fill["seed"], fill["std"])
        assert len(gold["shapes"]) == N_LEARNABLE[case], case
        assert sorted(gold["value_sums"]) == sorted(gold["shapes"])
        for name, tensor in expected.items():
            assert torch.allclose(gold["value_sums"][name], tensor.double().sum(), atol=1e-9), name
            if name in gold["values"]:
                assert torch.equal(gold["values"][name], tensor), name
        big = [n for n in gold["shapes"] if math.prod(gold["shapes"][n]) > goldens[method]["sketch"]["small"]]
        assert sorted(big) == sorted(set(gold["shapes"]) - set(gold["values"]))


def test_every_learnable_tensor_has_a_finite_nonzero_gradient(goldens) -> None:
    for method, case, gold in _cases(goldens):
        cols = goldens[method]["sketch"]["cols"]
        assert sorted({**gold["grads"], **gold["grad_sketches"]}) == sorted(gold["shapes"]), case
        for name, grad in gold["grads"].items():
            assert list(grad.shape) == gold["shapes"][name] and torch.isfinite(grad).all(), name
            assert grad.abs().max() > 0, f"{case} {name}: no gradient"
        for name, sketch in gold["grad_sketches"].items():
            assert tuple(sketch.shape) == (gold["shapes"][name][0], cols) and sketch.abs().max() > 0, name


def test_logits_and_loss_agree(goldens) -> None:
    """CE of the eval logits is the recorded CE (no dropout: train and eval forwards are the same)."""
    for method, case, gold in _cases(goldens):
        labels = goldens[method]["labels"]
        assert tuple(gold["logits"].shape) == (3, len(CLASSNAMES)) and torch.isfinite(gold["logits"]).all()
        ce = F.cross_entropy(gold["logits"], labels)
        recorded = gold["terms"]["ce"] if "terms" in gold else gold["loss"].float()
        assert torch.allclose(ce, recorded, atol=1e-5), case  # fp32 loss, O(1-10)


def test_loss_terms_add_up_with_the_published_weights(goldens) -> None:
    src = goldens["promptsrc"]["cases"]["4+4ctx_depth9"]
    assert src["loss_weights"] == {"ce": 1.0, "kl": 1.0, "l1_text": 25.0, "l1_image": 10.0}
    kg = goldens["kgcoop"]["cases"]["ctxv1_w8"]
    assert kg["loss_weights"] == {"ce": 1.0, "kg": 8.0}
    for gold in (src, kg):
        total = sum(gold["loss_weights"][k] * gold["terms"][k].double() for k in gold["terms"])
        assert torch.allclose(total, gold["loss"], atol=1e-5), total  # their loss.item() of the same fp32 sum
        assert all(gold["terms"][k] > 0 for k in gold["terms"])


def test_promptsrc_targets_and_kl_agree() -> None:
    gold = _load("promptsrc")["cases"]["4+4ctx_depth9"]
    frozen_text = F.normalize(gold["frozen_text_features"], dim=-1)
    assert tuple(frozen_text.shape) == (len(CLASSNAMES), 32)
    image = gold["frozen_image_features"]
    assert torch.allclose(image.norm(dim=-1), torch.ones(3), atol=1e-6)
    scale = torch.tensor(TINY_LOGIT_SCALE).half().float().exp()  # the tiny weights are fp16-rounded: 100.03
    assert torch.allclose(gold["zero_shot_logits"], scale * image @ frozen_text.t(), atol=1e-4)
    kl = F.kl_div(F.log_softmax(gold["logits"], 1), F.log_softmax(gold["zero_shot_logits"], 1), reduction="sum",
                  log_target=True) / gold["logits"].numel()
    assert torch.allclose(kl, gold["terms"]["kl"], atol=1e-6)


def test_promptsrc_gpa_weights_are_a_normalised_gaussian_over_the_epochs() -> None:
    gold = _load("promptsrc")["cases"]["4+4ctx_depth9"]
    weights, gpa = gold["gpa_weights"], gold["gpa"]
    assert gpa == {"mean": 15.0, "std": 1.0, "max_epoch": 20} and tuple(weights.shape) == (20,)
    assert torch.allclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12)
    epochs = torch.arange(1, 21, dtype=torch.float64)
    density = torch.exp(-0.5 * ((epochs - 15.0) / 1.0) ** 2)
    assert torch.allclose(weights, density / density.sum(), rtol=1e-9, atol=0)
    assert int(weights.argmax()) + 1 == 15 and weights[0] < 1e-40


def test_kgcoop_hand_crafted_targets_are_unit_vectors() -> None:
    gold = _load("kgcoop")["cases"]["ctxv1_w8"]
    features = gold["hand_crafted_text_features"]
    assert tuple(features.shape) == (len(CLASSNAMES), 32)
    assert torch.allclose(features.norm(dim=-1), torch.ones(len(CLASSNAMES)), atol=1e-6)


def test_our_kgcoop_matches_the_official_logits_loss_terms_and_gradients() -> None:
    """Phase 2: KgCoOp composed by its trainer, ctx set to the golden's, equals the official model (10.5)."""
    from dpt.config.defaults import get_cfg_default
    from dpt.trainers.kgcoop import KgCoOp, guidance_score, kgcoop_loss

    golden = _load("kgcoop")
    gold = golden["cases"]["ctxv1_w8"]
    cfg = get_cfg_default()
    cfg.merge_from_file(str(Path(__file__).resolve().parents[1] / "configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml"))
    cfg.TRAINER.COOP.W = gold["cfg"]["W"]
    model = KgCoOp.compose(cfg, make_tiny_clip(**golden["clip"]["kwargs"]), CLASSNAMES, gold["template"])
    learner = model.prompt_learner
    assert torch.equal(learner.ctx.detach(), gold["initial_ctx"])  # "a photo of a": 4 learnable words
    with torch.no_grad():
        learner.ctx.copy_(gold["values"]["prompt_learner.ctx"])
    assert torch.allclose(model.zs_text_features, gold["hand_crafted_text_features"], atol=1e-6)  # unit vectors

    text = model.encode_learned_text()
    logits = model(golden["images"], text_features=text).logits
    score = guidance_score(text.normalized, model.zs_text_features)
    loss = kgcoop_loss(logits, golden["labels"], text.normalized, model.zs_text_features, cfg.TRAINER.COOP.W)
    loss.backward()
    assert torch.allclose(logits, gold["logits"], atol=1e-4)  # logits ~ +-10
    assert torch.allclose(F.cross_entropy(logits, golden["labels"]), gold["terms"]["ce"], atol=1e-5)
    assert torch.allclose(score, gold["terms"]["kg"], atol=1e-6)  # the score is O(0.1)
    assert torch.allclose(loss.double(), gold["loss"], atol=1e-5)
    assert torch.allclose(learner.ctx.grad, gold["grads"]["prompt_learner.ctx"], atol=1e-4)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["prompt_learner.ctx"]


def test_official_kgcoop_checkpoint_loads_into_our_prompt_learner(tmp_path) -> None:
    """Their checkpoint keys (case["checkpoint"]) read as CoOp's: the unused bias_vectors / meta_net are dropped."""
    from dpt.compat.weights import check_layout, load_into, read_weights
    from dpt.config.defaults import get_cfg_default
    from dpt.trainers.kgcoop import KgCoOp

    golden = _load("kgcoop")
    gold = golden["cases"]["ctxv1_w8"]
    cfg = get_cfg_default()
    cfg.TRAINER.COOP.CTX_INIT = "a photo of a"
    learner = KgCoOp.compose(cfg, make_tiny_clip(**golden["clip"]["kwargs"]), CLASSNAMES, gold["template"]).prompt_learner
    shapes = {"ctx": (4, 64), "bias_vectors": (1, 512), "token_prefix": (8, 1, 64), "token_suffix": (8, 72, 64),
              "meta_net.linear1.weight": (512, 512), "meta_net.linear1.bias": (512,)}
    assert sorted(shapes) == sorted(gold["checkpoint"]["keys"])
    state = {key: torch.randn(shape).half() for key, shape in shapes.items()}
    path = tmp_path / "prompt_learner" / "model.pth.tar-100"
    path.parent.mkdir()
    torch.save({"state_dict": state, "epoch": 100, "optimizer": {}, "scheduler": {}}, path)
    weights = read_weights(str(path), KgCoOp.official_names["prompt_learner"])
    assert weights.foreign and sorted(weights.state_dict) == ["ctx", "token_prefix", "token_suffix"]
    check_layout(str(path), KgCoOp.describe_checkpoint({"prompt_learner": weights.state_dict}),
                 KgCoOp.describe_checkpoint({"prompt_learner": learner.state_dict()}))
    load_into(learner, weights.state_dict, ["token_prefix", "token_suffix"], str(path), "the prompt learner")
    assert torch.equal(learner.ctx.detach(), state["ctx"].float())


@pytest.mark.parametrize("method", ["ivlp", "promptsrc", "kgcoop"])
def test_initial_ctx_is_the_word_embedding_of_our_tiny_clip(method: str) -> None:
    """The golden's CLIP is make_tiny_clip(**kwargs): their word init equals our token embeddings of the words."""
    gold = _load(method)
    model = make_tiny_clip(**gold["clip"]["kwargs"])
    tokens = clip.tokenize("a photo of a")
    with torch.no_grad():
        embedding = model.token_embedding(tokens)[0]
    for case in CASES[method]:
        initial = gold["cases"][case]["initial_ctx"]
        assert torch.equal(initial, embedding[1:1 + initial.shape[0]]), case


def test_checkpoint_layout(goldens) -> None:
    for method, case, gold in _cases(goldens):
        checkpoint = gold["checkpoint"]
        assert checkpoint["model_name"] == MODEL_NAMES[method]
        keys = set(checkpoint["keys"])
        prefix = "prompt_learner." if method == "kgcoop" else ""
        learnable = {name[len(prefix):] if name.startswith(prefix) else name for name in gold["shapes"]}
        assert learnable <= keys, case
        assert {"token_prefix", "token_suffix"} <= {k.split(".")[-1] for k in keys}
    promptsrc = goldens["promptsrc"]["cases"]["4+4ctx_depth9"]["checkpoint"]["keys"]
    assert any(k.startswith("prompt_learner.ZS_image_encoder.") for k in promptsrc)
    assert goldens["kgcoop"]["cases"]["ctxv1_w8"]["checkpoint"]["keys"] == [
        "ctx", "bias_vectors", "token_prefix", "token_suffix", "meta_net.linear1.weight", "meta_net.linear1.bias"]


def test_class_prompts_templates_and_targets_text(goldens) -> None:
    """Their class prompts are "<CTX_INIT> <class>." (docs/reference.md 10.1, 10.5); the template texts ride along."""
    expected = clip.tokenize([f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES])
    for method, case, gold in _cases(goldens):
        assert torch.equal(gold["tokenized_prompts"], expected), case
    kgcoop = goldens["kgcoop"]["cases"]["ctxv1_w8"]
    assert kgcoop["template"] == custom_template("OxfordPets")
    templates = goldens["promptsrc"]["cases"]["4+4ctx_depth9"]["templates"]
    assert len(templates) == 60 == len(set(templates)) and all(t.count("{}") == 1 for t in templates)


# --- phase 2: our trainers' models against the goldens --------------------------------------------------------
OUR_TRAINERS = {"maple": MaPLe, "ivlp": IVLP, "promptsrc": PromptSRC}


def _our_model(method: str, case: str):
    """Our trainer's composition on the golden's tiny CLIP, with the official filled tensors loaded by name."""
    gold = _load(method)
    data = gold["cases"][case]
    trainer = OUR_TRAINERS[method]
    cfg = get_cfg_default()
    for key, value in data["cfg"].items():
        cfg.TRAINER[trainer.text_prompt_key.split(".")[-1]][key] = value
    model = trainer.compose(cfg, make_tiny_clip(**gold["clip"]["kwargs"]), CLASSNAMES, "a photo of a {}.")
    parts = nn.ModuleDict({"prompt_learner": model.prompt_learner, **model.text_block_parts, **model.vision_parts})
    official = _fill(data["shapes"], gold["fill"]["seed"], gold["fill"]["std"])
    names = trainer.official_names[MODEL_NAMES[method]]
    ours = {name: names.to_ours({name: tensor}) for name, tensor in official.items()}
    missing, unexpected = parts.load_state_dict({k: v for o in ours.values() for k, v in o.items()}, strict=False)
    assert sorted(missing) == ["prompt_learner.token_prefix", "prompt_learner.token_suffix"] and not unexpected
    assert torch.equal(model.prompt_learner.tokenized_prompts, data["tokenized_prompts"])
    # every key of their Dassl model's state dict is one of our part tensors or frozen CLIP (dropped on load)
    keys = data["checkpoint"]["keys"]
    assert sorted(names.to_ours({key: torch.zeros(1) for key in keys})) == sorted(parts.state_dict())
    back = names.to_official(names.to_ours(official))  # the table read both ways
    assert back.keys() == official.keys() and all(back[k] is official[k] for k in official)
    assert "image_encoder.conv1.weight" in keys
    return cfg, model, parts, {name: next(iter(o)) for name, o in ours.items()}, gold, data


def _assert_grads(parts: nn.Module, our_names: Dict[str, str], gold: dict, data: dict) -> None:
    params = dict(parts.named_parameters())
    assert sorted(params) == sorted(our_names.values())  # every learnable tensor is an official one, and back
    for official, ours in our_names.items():
        grad = params[ours].grad
        ref = data["grads"].get(official)
        if ref is None:
            probe = torch.randn(grad[0].numel(), gold["sketch"]["cols"],
                                generator=torch.Generator().manual_seed(gold["sketch"]["seed"]))
            grad, ref = grad.reshape(grad.shape[0], -1) @ probe, data["grad_sketches"][official]
        assert torch.allclose(grad, ref, rtol=0, atol=1e-4 * max(1.0, ref.abs().max().item())), official


@pytest.mark.parametrize("method,case", [(m, c) for m in ("maple", "ivlp") for c in CASES[m]])
def test_our_model_matches_the_official_logits_loss_and_gradients(method: str, case: str) -> None:
    _, model, parts, our_names, gold, data = _our_model(method, case)
    logits = model(gold["images"]).logits
    assert torch.allclose(logits, data["logits"], rtol=0, atol=1e-4)
    loss = F.cross_entropy(logits, gold["labels"])
    assert abs(loss.item() - data["loss"].item()) < 1e-4
    loss.backward()
    _assert_grads(parts, our_names, gold, data)


def test_our_promptsrc_matches_the_official_targets_terms_and_gradients() -> None:
    cfg, model, parts, our_names, gold, data = _our_model("promptsrc", "4+4ctx_depth9")
    trainer = PromptSRC.__new__(PromptSRC)  # its loss methods read only cfg, model and the frozen targets
    trainer.cfg, trainer.model = cfg, model
    trainer.frozen_text_features = PromptSRC.template_ensemble(model, CLASSNAMES)
    expected = F.normalize(data["frozen_text_features"], dim=-1)
    assert torch.allclose(trainer.frozen_text_features, expected, rtol=0, atol=1e-5)
    terms = trainer.losses(gold["images"], gold["labels"])
    assert torch.allclose(terms["logits"], data["logits"], rtol=0, atol=1e-4)
    for key in ("ce", "kl", "l1_text", "l1_image"):
        assert abs(terms[key].item() - data["terms"][key].item()) < 1e-4 * max(1.0, abs(data["terms"][key].item())), key
    loss = trainer.loss(terms)
    assert abs(loss.item() - data["loss"].item()) < 1e-4
    loss.backward()
    _assert_grads(parts, our_names, gold, data)
    weights = gaussian_weights(cfg.TRAINER.PROMPTSRC.GPA_MEAN, cfg.TRAINER.PROMPTSRC.GPA_STD, 20)
    assert torch.allclose(weights, data["gpa_weights"], rtol=1e-12, atol=0)
