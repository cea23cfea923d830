"""Plain helpers shared by the test modules: paths, train.py argument builders, synthetic log.txt trees,
reference re-statements of official behaviour, tiny-model writers. Fixtures live in conftest.py.

Why one module: test modules never import each other (tests/test_layering.py checks it), so what two of them
need is defined here once.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from dpt.config import get_cfg_default
from dpt.config.access import set_key
from dpt.modeling import (
    BlockPrompts,
    ClassAwarePrompts,
    ConditionedPromptLearner,
    PromptedCLIP,
    PromptLearner,
    VisualPrompts,
)

REPO = Path(__file__).resolve().parents[1]


# ----- train.py arguments -----------------------------------------------------------------------

LEARNED = {  # trained by gradient steps: checkpoint folders
    "CoOp": ["prompt_learner"],
    "CoCoOp": ["prompt_learner"],
    "KgCoOp": ["prompt_learner"],
    "VPT": ["image_encoder.transformer.ctx_learner"],
    "VLP": ["image_encoder.transformer.ctx_learner", "prompt_learner"],
    "DPT": ["image_encoder.transformer.ctx_learner", "image_encoder.transformer.extractor", "prompt_learner"],
    "IVLP": ["VLPromptLearner"],  # the official Dassl model names (docs/reference.md 10.2-10.4)
    "MaPLe": ["MultiModalPromptLearner"],
    "PromptSRC": ["VLPromptLearner"],
}
FITTED = {"LinearProbeCLIP": ["classifier"]}  # fitted once (tests/test_linear_probe.py)
CONFIG = {"ZeroshotCLIP": "CoOp/vit_b32", "ZeroshotCLIP2": "CoOp/vit_b32", "CoOp": "CoOp/vit_b32",
          "CoCoOp": "CoCoOp/vit_b32_c4_ep10_batch1", "LinearProbeCLIP": "LinearProbeCLIP/vit_b32",
          "KgCoOp": "KgCoOp/vit_b16_ep100_ctxv1",
          "VPT": "VPT/vit_b32", "VLP": "VLP/vit_b32", "DPT": "DPT/vit_b32",
          "IVLP": "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", "MaPLe": "MaPLe/vit_b16_c2_ep5_batch4_2ctx",
          "PromptSRC": "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx"}


def argv(trainer, root, out, clip_path, *opts, epochs=4, extra=()):
    """train.py arguments as the scripts pass them, sized for the tiny CLIP (32 px) on CPU."""
    return [
        "--root", str(root), "--output-dir", str(out), "--seed", "1", "--trainer", trainer,
        "--dataset-config-file", str(REPO / "configs/datasets/eurosat.yaml"),
        "--config-file", str(REPO / f"configs/trainers/{CONFIG[trainer]}.yaml"), *extra,
        "MODEL.BACKBONE.NAME", str(clip_path), "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
        "TRAINER.COCOOP.PREC", "fp32", "TRAINER.IVLP.PREC", "fp32", "TRAINER.MAPLE.PREC", "fp32",
        "TRAINER.PROMPTSRC.PREC", "fp32", "DATASET.NUM_SHOTS", "4", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "1", "OPTIM.MAX_EPOCH", str(epochs),
        "OPTIM.WARMUP_EPOCH", "1", "PRETRAIN.C", "1", *opts,
    ]


def epoch_losses(log: Path):
    """Running-mean loss of each epoch's last batch line."""
    losses = {}
    for line in log.read_text().splitlines():
        m = re.match(r"epoch \[(\d+)/\d+\] batch \[\d+/\d+\] .* loss [\d.]+ \(([\d.]+)\)", line)
        if m:
            losses[int(m.group(1))] = float(m.group(2))
    return [losses[k] for k in sorted(losses)]


def reproduce(cwd, **env) -> subprocess.CompletedProcess:
    """Run scripts/reproduce.sh in ``cwd`` with ``env`` added to the environment (this Python as PYTHON)."""
    full = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(REPO / "scripts" / "reproduce.sh")], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=600)


# ----- config and datasets ----------------------------------------------------------------------


def make_data_cfg(root: os.PathLike, name: str, num_shots: int = -1, seed: int = 1,
                  size: Tuple[int, int] = (32, 32), opts: Optional[Dict[str, Any]] = None):
    """A default config for dataset ``name`` under ``root``: no workers, CoOp's transforms.

    ``opts`` maps dotted keys to values, e.g. ``{"DATALOADER.TRAIN_X.BATCH_SIZE": 4}``.
    """
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.SEED = seed
    cfg.INPUT.SIZE = tuple(size)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    for key, value in (opts or {}).items():
        set_key(cfg, key, value)
    return cfg


def reference_fewshot(items, num_shots):
    """Dassl's generate_fewshot_dataset (repeat=False) written from its description (docs/reference.md 2.4)."""
    by_label = defaultdict(list)
    for item in items:
        by_label[item[1]].append(item)
    out = []
    for label in by_label:
        group = by_label[label]
        out += random.sample(group, num_shots) if len(group) >= num_shots else group
    return out


# ----- tiny models written to files -------------------------------------------------------------


def save_torchscript_state(state: Dict[str, torch.Tensor], path: Path) -> None:
    """Save ``state`` as a TorchScript archive whose ``state_dict()`` returns exactly ``state``.

    Why: OpenAI's files are TorchScript archives; a scripted module tree holding the tensors as buffers
    under the same dotted names exercises the loader's ``torch.jit.load(...).state_dict()`` branch.
    """
    root = nn.Module()
    for name, tensor in state.items():
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        module.register_buffer(leaf, tensor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(root), str(path))


HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None
needs_open_clip = pytest.mark.skipif(
    not HAS_OPEN_CLIP, reason="open_clip_torch is not installed (pip install -e .[open_clip])"
)

TINY_OPEN_CLIP_CONFIG: Dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 12, "width": 64, "patch_size": 8, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def write_tiny_open_clip(folder: Path, config: Dict[str, Any] = TINY_OPEN_CLIP_CONFIG, seed: int = 0) -> str:
    """Write ``folder/tiny_open_clip.json`` and ``.pt`` (open_clip's init from ``seed``, logit scale 100);
    return the backbone name ``open_clip:<json>:<pt>``."""
    from dpt.modeling.backbones.open_clip_loader import build_open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = folder / "tiny_open_clip.json", folder / "tiny_open_clip.pt"
    config_path.write_text(json.dumps(config, indent=2))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_open_clip(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # trained CLIP's scale, as the OpenAI tiny CLIP
    torch.save(model.state_dict(), weights_path)
    return f"open_clip:{config_path}:{weights_path}"


# ----- synthetic output trees (log.txt in the engine's exact format) and result tables ----------

COOP_VARIANT = "nctx16_cscFalse_ctpend"
DPT_VARIANT = "nctx16_cscFalse_ctpend_vctx10_cpn10_bl12"


def write_log(folder, acc=None, f1=None, *, epochs=2, batches=2, finish=True, eval_only=False, val_acc=None,
              losses=None, lrs=None, only_last_batch=False, name="log.txt"):
    """Write ``folder/name`` the way the engine does: batch lines, then the final result block.

    ``acc=None`` leaves the result block out; ``finish=False`` stops mid-training (a crash);
    ``val_acc`` adds a validation block before "Finish training"; ``losses[e]`` / ``lrs[e]`` set the
    running-mean loss and the printed lr of epoch e (0-based); without them they follow simple rules.
    """
    os.makedirs(folder, exist_ok=True)
    lines = ["Loading trainer: X", "Loading dataset: Y"]
    if not eval_only:
        for e in range(epochs):
            for b in range(batches):
                if only_last_batch and b + 1 < batches:
                    continue
                loss = losses[e] if losses else 2.0 - 0.1 * e
                lr = lrs[e] if lrs else 0.002 * (e + 1)
                if b + 1 == batches:
                    lr = lrs[e + 1] if lrs and e + 1 < len(lrs) else lr / 2
                lines.append(
                    f"epoch [{e + 1}/{epochs}] batch [{b + 1}/{batches}] time 0.101 (0.120) data 0.001 (0.010) "
                    f"loss {loss + 0.5:.4f} ({loss:.4f}) acc 50.0000 ({40.0 + e:.4f}) lr {lr:.4e} eta 0:00:12"
                )
            if val_acc is not None:
                lines += ["Evaluate on the *val* set", "=> result", "* total: 10", "* correct: 1",
                          f"* accuracy: {val_acc:.1f}%", f"* error: {100 - val_acc:.1f}%", "* macro_f1: 1.0%"]
        if not finish:
            lines.append("Traceback (most recent call last):")
        else:
            lines += ["Finish training", "Deploy the last-epoch model"]
    if acc is not None and (finish or eval_only):
        f1 = acc - 0.5 if f1 is None else f1
        lines += ["Evaluate on the *test* set", "=> result", "* total: 1,234", "* correct: 1,000",
                  f"* accuracy: {acc:.1f}%", f"* error: {100 - acc:.1f}%", f"* macro_f1: {f1:.1f}%", "Elapsed: 0:01:02"]
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def trained_dir(root, dataset, trainer, cfg, shots, variant, seed):
    """A few-shot run folder as scripts/<method>.sh names it."""
    return os.path.join(root, dataset, trainer, f"{cfg}_{shots}shots", variant, f"seed{seed}")


# accuracies per (trainer, shots, dataset): one value per seed 1..3; None = unfinished; absent seed = missing
FEWSHOT = {
    ("CoOp", "vit_b32_ep50", COOP_VARIANT, 1, "oxford_pets"): [80.1, 81.3, 79.9],
    ("CoOp", "vit_b32_ep50", COOP_VARIANT, 1, "eurosat"): [50.2, 55.7, 53.1],
    ("CoOp", "vit_b32", COOP_VARIANT, 16, "oxford_pets"): [87.0, 86.2, 88.1],
    ("CoOp", "vit_b32", COOP_VARIANT, 16, "eurosat"): [80.4, 82.6],
    ("DPT", "vit_b32_deep_ep60", DPT_VARIANT, 16, "oxford_pets"): [90.1, 89.5, 90.8],
    ("DPT", "vit_b32_deep", DPT_VARIANT, 16, "eurosat"): [88.3, None, 87.9],
    ("DPT", "vit_b32_deep_ep60", DPT_VARIANT, 1, "oxford_pets"): [84.4, 83.0, 85.2],
}
ZEROSHOT = {"oxford_pets": 85.8, "eurosat": 45.2}  # ZeroshotCLIP/vit_b32/<dataset>


def markdown_rows(text):
    """{(method, shots): {header: cell}} from the first github-format table in ``text``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(headers):
            break
        rows[(cells[0], cells[1])] = dict(zip(headers, cells))
    return rows


def cell_text(values, expected=3, ci95=False):
    """A table cell recomputed independently: mean +- population std (or 95% CI), seed count when short."""
    spread = statistics.pstdev(values)
    if ci95:
        spread = 1.96 * spread / math.sqrt(len(values))
    text = f"{statistics.fmean(values):.2f} +- {spread:.2f}"
    return text + (f" ({len(values)}/{expected})" if len(values) < expected else "")


def expected_size(n_panels, max_columns):
    """Pixels of a figure of n panels laid out at most max_columns wide, PANEL_SIZE inches each."""
    from dpt.reporting import plots  # matplotlib: only for the figure tests

    columns = min(n_panels, max_columns)
    rows = -(-n_panels // columns)
    return round(plots.PANEL_SIZE[0] * columns * plots.DPI), round(plots.PANEL_SIZE[1] * rows * plots.DPI)


def assert_png(path, size):
    """``path`` is a PNG of ``size`` pixels, not blank, with no temp file left beside it."""
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    leftovers = [n for n in os.listdir(os.path.dirname(path)) if ".tmp-" in n]
    assert leftovers == []


# ----- models composed from parts by the switch sets the goldens were written with ---------------


def compose_clip(
    clip_model,
    classnames: Sequence[str],
    template: str,
    *,
    learn_text: bool,
    n_ctx: int = 16,
    ctx_init: str = "",
    csc: bool = False,
    class_token_position: str = "end",
    image_conditioned: bool = False,
    vpt_layers: Sequence[int] = (),
    n_vpt_ctx: int = 0,
    cavpt_layers: Sequence[int] = (),
    n_cavpt: int = 0,
    n_key_tokens: int = 10,
    attn_dim: int = 32,
    shared_cavpt: bool = False,
    text_chunk_size: int = 256,
) -> PromptedCLIP:
    """PromptedCLIP with parts ``prompt_learner`` (CoOp / CoCoOp), ``visual_prompts`` and ``cavpt``."""
    text = None
    if image_conditioned:
        text = ConditionedPromptLearner(clip_model, classnames, n_ctx, ctx_init)
    elif learn_text:
        text = PromptLearner(clip_model, classnames, n_ctx, ctx_init, csc, class_token_position)
    vision: Dict[str, BlockPrompts] = {}
    width = clip_model.visual.conv1.weight.shape[0]
    if len(vpt_layers):
        vision["visual_prompts"] = VisualPrompts(vpt_layers, n_vpt_ctx, width)
    if len(cavpt_layers):
        text_dim = clip_model.text_projection.shape[1]
        vision["cavpt"] = ClassAwarePrompts(
            cavpt_layers, n_cavpt, text_dim, width, len(classnames), n_key_tokens, attn_dim, shared_cavpt
        )
    return PromptedCLIP(clip_model, classnames, template, text=text, vision=vision, text_chunk_size=text_chunk_size)


def vpt_part(blocks: Sequence[int], prompts: torch.Tensor) -> VisualPrompts:
    """A VPT-deep part for ``blocks`` whose ``ctx`` is ``prompts`` [len(blocks), n, W]."""
    part = VisualPrompts(blocks, prompts.shape[1], prompts.shape[2])
    with torch.no_grad():
        part.ctx.copy_(prompts)
    return part
