"""Naive vs fast training step and evaluation of the prompt trainers on a ViT-B/32-shaped CLIP (fp32, CPU).

Why: the speed claims of the project (EOT cut of the text context, chunked text encoding with bounded
memory, learned text features once per evaluation, cached selector image features, decoded-image
caches) must be measured against a plain reference that computes the same function, in one run on
one machine. Each (trainer, classes, path) runs in its own subprocess so that ``ru_maxrss`` is that
path's peak memory.

The naive path is what the official code does: the learned text is encoded at the full 77 tokens by
every forward (training step and every evaluation batch), the selector's zero-shot image features are
recomputed for every batch, and every image is read and decoded from its JPEG file. Its text is
encoded in one pass up to 256 classes and in 64-prompt recomputed chunks above, only so that 1000
classes fit in memory (same values). Each worker first warms up the kernels on a small untimed
forward/backward.

CoCoOp's text is per image, so its naive path is the official per-image loop (each image's n_cls prompts
at 77 tokens, one text-encoder call per image) and its fast path the chunked, EOT-cut image x class prompts
of ``PromptedCLIP``; it trains with batch 1 (its configs) and has no text to compute once per evaluation.

Evaluation seconds per 1,000 images: naive = batch time x 1000 / B (the text is inside every batch);
fast = (text once) x 1000 / N_test + warm-cache batch time x 1000 / B, with N_test the real test size
(ImageNet 50,000, Oxford Pets 3,669). Both terms are measured; "cold" is the first evaluation that fills
the selector cache.

Usage: ``python benchmarks/bench.py [--quick] [--backbone open_clip:ARCH]``; the last line is
``speedup train=<x> eval=<y> maxdiff=<z>`` for the first DPT row (the largest class count). ``--backbone
open_clip:ViT-B-16`` times random weights of that open_clip architecture (nothing is downloaded), loaded
through the same ``open_clip:ARCH:FILE`` path as real weights, at its image size and depth.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

TRAINERS = {  # trainer -> PromptedCLIP switches for a ViT of n blocks (configs/trainers/<T>/vit_b32.yaml)
    "ZeroshotCLIP": lambda n: dict(learn_text=False),
    "CoOp": lambda n: dict(learn_text=True, n_ctx=16),
    "CoCoOp": lambda n: dict(learn_text=True, n_ctx=4, image_conditioned=True, text_chunk_size=1024),  # *_c4_ep10_batch1
    "VPT": lambda n: dict(learn_text=False, vpt_layers=range(n), n_vpt_ctx=10),
    "VLP": lambda n: dict(learn_text=True, n_ctx=16, vpt_layers=range(n), n_vpt_ctx=10),
    "DPT": lambda n: dict(learn_text=True, n_ctx=16, vpt_layers=range(n - 1), n_vpt_ctx=10, cavpt_layers=[n - 1],
                          n_cavpt=10),
}
GUIDED = ("VLP", "DPT")  # guidance loss of the first PRETRAIN.C epochs (the costlier step)
TRAIN_BATCH = {"CoCoOp": 1}  # the configs' train batch where it is not the benchmark's batch
TEST_SIZE = {1000: 50_000, 37: 3_669}  # ImageNet val, Oxford Pets test
TEMPLATE = "a photo of a {}."
CLIP_ARGS = (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)  # ViT-B/32: embed, res, layers, width, patch, ...


# ---------------------------------------------------------------------------------------------- worker
def _transforms(size: int):
    from dpt.config import get_cfg_default
    from dpt.data.transforms import build_transform, split_at_to_tensor

    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = [0.48145466, 0.4578275, 0.40821073]
    cfg.INPUT.PIXEL_STD = [0.26862954, 0.26130258, 0.27577711]
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    train, test = build_transform(cfg, is_train=True), build_transform(cfg, is_train=False)
    return train, test, split_at_to_tensor(test)


def _loss(trainer: str, out, label: torch.Tensor) -> torch.Tensor:
    """The trainer's first-epoch loss (REFERENCE 7.5/7.6 with BETA 1, ALPHA 0.3)."""
    from dpt.trainers.dpt import cavpt_loss

    loss = F.cross_entropy(out.logits, label)
    if trainer in GUIDED:
        loss = loss + F.cross_entropy(out.logits_zs_image, label) + F.cross_entropy(out.logits_zs_text, label)
    if out.layer_logits and bool((out.topk_indices == label[:, None]).any()):
        loss = loss + 0.3 * cavpt_loss(out.layer_logits, out.topk_indices, label)
    return loss


def _cocoop_per_image_loop(model, image: torch.Tensor):
    """The official CoCoOp forward: per image, all n_cls prompts [SOS, ctx + shift, class, ., EOT] at 77 tokens."""
    from dpt.modeling.prompted_clip import PromptedCLIPOutput
    from dpt.modeling.text_encoder import TextEncoder

    learner = model.prompt_learner
    encoder = TextEncoder(model.clip_model, truncate=False, chunk_size=learner.n_cls)  # one image per call
    features = F.normalize(model.vision(image).features, dim=-1)  # [B, E]
    logits = []
    for feature, shift in zip(features, learner.meta_net(features)):
        ctx = (learner.ctx + shift).unsqueeze(0).expand(learner.n_cls, -1, -1)  # [n_cls, n_ctx, D]
        prompts = torch.cat([learner.token_prefix, ctx, learner.token_suffix], dim=1)  # [n_cls, 77, D]
        text = F.normalize(encoder(prompts, learner.tokenized_prompts), dim=-1)  # [n_cls, E]
        logits.append(model.logit_scale * feature @ text.t())
    return PromptedCLIPOutput(torch.stack(logits), None, None, [], None, None)


def _warm_up(model, size: int) -> None:
    """One small forward/backward through the text and vision towers (first-call kernel set-up, untimed)."""
    if model.prompt_learner is not None:
        tokens = model.prompt_learner.tokenized_prompts[:8]  # [8, 77]
        embeds = model.clip_model.token_embedding(tokens).requires_grad_(True)
        model.text_encoder(embeds, tokens).sum().backward()
    image = torch.randn(2, 3, size, size, requires_grad=True)
    model.vision(image).features.sum().backward()
    with torch.no_grad():
        model.vision(image)


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time one (trainer, classes, path) and return seconds, peak RSS and the logits it produced."""
    from PIL import Image

    from dpt.data.datum import Datum
    from dpt.data.image_cache import PackedImages, load_test_cache
    from dpt.data.images import read_image
    from dpt.modeling.clip_loader import load_clip
    from dpt.modeling.prompted_clip import PromptedCLIP
    from dpt.modeling.text_encoder import TextEncoder
    from dpt.trainers.feature_cache import SelectorFeatureCache

    naive, trainer, n_cls, batch = spec["path"] == "naive", spec["trainer"], spec["classes"], spec["batch"]
    clip_model = load_clip(spec["clip"], precision="fp32")
    classnames = [f"class name {i}" for i in range(n_cls)]
    torch.manual_seed(0)
    model = PromptedCLIP(clip_model, classnames, TEMPLATE, **TRAINERS[trainer](spec["layers"]))
    model.freeze_clip()
    conditioned = model.image_conditioned
    if naive and not conditioned:
        model.text_encoder = TextEncoder(clip_model, truncate=False, chunk_size=n_cls if n_cls <= 256 else 64)
    forward = (lambda image, **_: _cocoop_per_image_loop(model, image)) if naive and conditioned else model
    _warm_up(model, spec["size"])
    tfm_train, tfm_test, (test_prefix, test_suffix) = _transforms(spec["size"])
    items = [Datum(p, i % n_cls) for i, p in enumerate(spec["images"][:batch])]
    train_items = items[: TRAIN_BATCH.get(trainer, batch)]
    label = torch.tensor([d.label for d in train_items])
    packed = None if naive else PackedImages(items)  # decoded once (untimed set-up, as the loader's cache)
    mapped = None if naive else load_test_cache(items, test_prefix, spec["cache_dir"], "bench", "test")

    def train_images() -> torch.Tensor:
        random.seed(1)
        torch.manual_seed(1)
        if naive:
            return torch.stack([tfm_train(read_image(d.impath)) for d in train_items])
        return torch.stack([tfm_train(Image.fromarray(packed[i])) for i in range(len(train_items))])

    def test_images() -> torch.Tensor:
        if naive:
            return torch.stack([tfm_test(read_image(d.impath)) for d in items])
        return torch.stack([test_suffix(np.asarray(mapped[i])) for i in range(len(items))])

    result: Dict[str, Any] = {}
    logits: Dict[str, torch.Tensor] = {}
    model.eval()
    with torch.no_grad():
        if naive:
            times = []
            for _ in range(spec["eval_batches"]):
                start = time.perf_counter()
                out = forward(test_images())
                times.append(time.perf_counter() - start)
            logits["eval"] = out.logits
            result["eval_batch"] = sum(times) / len(times)
        else:
            start = time.perf_counter()
            text = None if conditioned else model.encode_learned_text()  # CoCoOp: text depends on each image
            result["eval_text"] = time.perf_counter() - start
            cache = SelectorFeatureCache(batch)
            for phase in ("cold", "warm"):
                times = []
                for _ in range(spec["eval_batches"]):
                    start = time.perf_counter()
                    image = test_images()
                    zs = None
                    if model.cavpt is not None:
                        zs = cache.lookup(torch.arange(batch), image, model.zero_shot_image_features)  # [B, E]
                    out = model(image, text_features=text, zs_image_features=zs)
                    times.append(time.perf_counter() - start)
                result[f"eval_batch_{phase}"] = sum(times) / len(times)
            logits["eval"] = out.logits

    params = [p for p in model.parameters() if p.requires_grad]
    if params:
        model.train()
        optim = torch.optim.SGD(params, lr=0.002, momentum=0.9)
        times = []
        for step in range(spec["warmup"] + spec["steps"]):
            start = time.perf_counter()
            out = forward(train_images(), need_guidance=trainer in GUIDED)
            loss = _loss(trainer, out, label)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if step >= spec["warmup"]:
                times.append(time.perf_counter() - start)
            if step == 0:
                logits["train"] = out.logits.detach()
        result["train_step"] = sum(times) / len(times)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.save(logits, spec["logits"])
    return result


# ---------------------------------------------------------------------------------------------- parent
def _write_backbone(folder: str, backbone: str) -> Dict[str, Any]:
    """Random weights saved to a file: ViT-B/32-shaped OpenAI CLIP, or the open_clip architecture named
    ``open_clip:ARCH`` -> the name ``load_clip`` reads, image size and number of vision blocks."""
    torch.manual_seed(0)
    clip_path = os.path.join(folder, "random_clip.pt")
    if backbone == "ViT-B/32":
        from dpt.modeling.clip_import import clip

        torch.save(clip.model.CLIP(*CLIP_ARGS).state_dict(), clip_path)
        return {"clip": clip_path, "size": 224, "layers": 12}
    from dpt.modeling.open_clip_loader import OPEN_CLIP_PREFIX, build_open_clip, open_clip_arch, unsupported_reason

    arch = open_clip_arch(backbone[len(OPEN_CLIP_PREFIX):])
    reason = unsupported_reason(arch.name, arch.config)
    if reason or not isinstance(arch.config["vision_cfg"].get("layers", 12), int):
        raise SystemExit(f"--backbone {backbone}: needs a CLIP-style open_clip ViT ({reason or 'a ResNet'})")
    model = build_open_clip(arch.config)
    torch.save(model.state_dict(), clip_path)
    name, layers = f"{OPEN_CLIP_PREFIX}{arch.name}:{clip_path}", len(model.visual.transformer.resblocks)
    return {"clip": name, "size": model.visual.image_size[0], "layers": layers}


def _write_inputs(folder: str, n_images: int, backbone: str) -> Dict[str, Any]:
    """Random backbone weights (``_write_backbone``) and JPEGs of ImageNet-like sizes."""
    from PIL import Image

    inputs = _write_backbone(folder, backbone)
    rng = np.random.default_rng(0)
    images = []
    for i in range(n_images):
        height, width = (375, 500) if i % 2 else (333, 500)
        pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)  # smooth-ish content
        path = os.path.join(folder, f"img_{i:03d}.jpg")
        Image.fromarray(pixels).resize((width, height), Image.BICUBIC).save(path, quality=90)
        images.append(path)
    return {**inputs, "images": images}


def _run(spec: Dict[str, Any], folder: str) -> Dict[str, Any]:
    spec_path = os.path.join(folder, f"spec_{spec['trainer']}_{spec['classes']}_{spec['path']}.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", spec_path], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec_path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _per_1000(seconds_per_batch: float, batch: int) -> float:
    return seconds_per_batch * 1000 / batch


def _parse_row(row: str) -> Tuple[str, int]:
    trainer, _, classes = row.partition(":")
    if trainer not in TRAINERS or not classes.isdigit() or int(classes) < 1:
        raise SystemExit(f"--only {row!r}: expected TRAINER:CLASSES with TRAINER in {', '.join(TRAINERS)}")
    return trainer, int(classes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="DPT only, 100 and 37 classes, batch 16 (< 3 min)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 32, quick 16)")
    parser.add_argument("--only", nargs="+", default=None, metavar="TRAINER:CLASSES",
                        help="run only these rows, e.g. DPT:1000 (the default run's headline row)")
    parser.add_argument("--backbone", default="ViT-B/32", metavar="ViT-B/32|open_clip:ARCH",
                        help="random weights of OpenAI's ViT-B/32 shape (default) or of an open_clip architecture")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        with open(args.worker) as handle:
            print(json.dumps(worker(json.load(handle))))
        return 0
    from tabulate import tabulate

    batch = args.batch or (16 if args.quick else 32)
    if args.quick:
        configs = [("DPT", 100), ("DPT", 37)]
    else:
        configs = [("DPT", 1000), ("DPT", 37), ("VLP", 37), ("CoOp", 37), ("CoCoOp", 37), ("VPT", 37),
                   ("ZeroshotCLIP", 37)]
    if args.only:
        configs = [_parse_row(row) for row in args.only]
    if args.backbone != "ViT-B/32" and not args.backbone.startswith("open_clip:"):
        raise SystemExit(f"--backbone {args.backbone!r}: expected ViT-B/32 or open_clip:ARCH")
    rows, headline = [], None
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="dpt_bench_") as folder:
        inputs = _write_inputs(folder, batch, args.backbone)
        for trainer, n_cls in configs:
            runs, logits = {}, {}
            for path in ("naive", "fast"):
                spec = dict(
                    inputs, path=path, trainer=trainer, classes=n_cls, batch=batch,
                    cache_dir=os.path.join(folder, "cache"), logits=os.path.join(folder, f"logits_{path}.pt"),
                    warmup=0 if n_cls > 100 else 1, steps=1, eval_batches=1,
                )
                runs[path] = _run(spec, folder)
                logits[path] = torch.load(spec["logits"])
            naive, fast = runs["naive"], runs["fast"]
            maxdiff = max((logits["naive"][k] - logits["fast"][k]).abs().max().item() for k in logits["naive"])
            n_test = TEST_SIZE.get(n_cls, 50 * n_cls)
            eval_naive = _per_1000(naive["eval_batch"], batch)
            eval_fast = fast["eval_text"] * 1000 / n_test + _per_1000(fast["eval_batch_warm"], batch)
            eval_cold = fast["eval_text"] * 1000 / n_test + _per_1000(fast["eval_batch_cold"], batch)
            train_naive, train_fast = naive.get("train_step"), fast.get("train_step")
            rows.append([
                trainer, n_cls,
                f"{train_naive:.2f}" if train_naive else "-", f"{train_fast:.2f}" if train_fast else "-",
                f"{train_fast / train_naive:.2f}x" if train_naive else "-",
                f"{eval_naive:.1f}", f"{eval_fast:.1f}", f"{eval_cold:.1f}", f"{eval_fast / eval_naive:.3f}x",
                f"{naive['peak_mb']:.0f}", f"{fast['peak_mb']:.0f}", f"{maxdiff:.1e}",
            ])
            if headline is None or (trainer == "DPT" and headline[0] != "DPT"):
                train_speedup = f"{train_naive / train_fast:.2f}" if train_naive else "n/a"
                headline = (trainer, train_speedup, eval_naive / eval_fast, maxdiff)
            print(f"done {trainer} {n_cls} classes ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    headers = [
        "trainer", "classes", "train naive s/step", "train fast s/step", "fast/naive",
        "eval naive s/1k img", "eval fast s/1k img", "eval fast cold", "fast/naive",
        "naive peak MB", "fast peak MB", "max |dlogit|",
    ]
    mode = "quick" if args.quick else "default" if not args.only else "rows " + " ".join(args.only)
    shape = "ViT-B/32-shaped" if args.backbone == "ViT-B/32" else args.backbone
    print(f"{shape} random CLIP, {inputs['size']} px, batch {batch}, fp32, {torch.get_num_threads()} threads "
          f"({mode} run, {time.time() - started:.0f} s)")
    print(tabulate(rows, headers=headers, tablefmt="github"))
    if any(trainer in TRAIN_BATCH for trainer, _ in configs):
        print("train s/step at the configs' batch for " + ", ".join(f"{t} ({b})" for t, b in TRAIN_BATCH.items()))
    print(f"speedup train={headline[1]} eval={headline[2]:.1f} maxdiff={headline[3]:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
