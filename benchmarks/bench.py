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
forward/backward. Models and training steps are the trainers' own: ``compose`` (``PromptTrainer.compose`` on
the trainer's config file + ``TRAINERS`` opts) builds the model inside the trainer, built as for prediction
without data (``TrainerX(cfg, classnames=...)``: CLIP loaded, parts registered with the optimisers and schedulers
of the config's OPTIM), and the timed step is the trainer's
``forward_backward(batch)`` at epoch 0 (parse, forward, loss, ``model_backward_and_update``: VLP / DPT with the
guidance loss of the first epochs, the costlier step; PromptSRC with its four terms). The naive path swaps the
model's text encoder for the 77-token one; for CoCoOp the trainer's model becomes the per-image loop
(``NaiveCoCoOp``). KgCoOp, IVLP, MaPLe and PromptSRC take their method keys and OPTIM from their ViT-B/16
configs; the CLIP and the precision are the benchmark's.

Evaluation seconds per 1,000 images: naive = batch time x 1000 / B (the text is inside every batch);
fast = (text once) x 1000 / N_test + warm-cache batch time x 1000 / B, with N_test the real test size
(ImageNet 50,000, Oxford Pets 3,669). Both terms are measured; "cold" is the first evaluation that fills
the selector cache.

On a GPU (``--device cuda``) every timed region ends with a device synchronise and "peak MB" is the
process's peak allocated GPU memory; ``--prec`` runs CLIP and the trainer in a precision of TRAINER.COOP.PREC
(set under each trainer's precision key: its autocast and loss scaler). ``benchmarks/gpu_check.py`` calls
``compare`` and ``run_worker`` from here.

Usage: ``python benchmarks/bench.py [--quick] [--device cuda] [--prec fp16] [--backbone open_clip:ARCH]``; the
last line is ``speedup train=<x> eval=<y> maxdiff=<z>`` for the first DPT row (the largest class count).
``--backbone open_clip:ViT-B-16`` times random weights of that open_clip architecture (nothing is downloaded),
loaded through the same ``open_clip:ARCH:FILE`` path as real weights, at its image size and depth.
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
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

TRAINERS = {  # trainer -> (its config file under configs/trainers/, opts for a ViT of n blocks)
    "ZeroshotCLIP": ("", lambda n: []),
    "CoOp": ("CoOp/vit_b32.yaml", lambda n: ["TRAINER.COOP.N_CTX", 16]),
    "CoCoOp": ("CoCoOp/vit_b32_c4_ep10_batch1.yaml", lambda n: ["TRAINER.COCOOP.N_CTX", 4, "TRAINER.COCOOP.CHUNK_SIZE", 1024]),
    "KgCoOp": ("KgCoOp/vit_b16_ep100_ctxv1.yaml", lambda n: ["TRAINER.COOP.W", 8.0]),  # the scripts' W
    "IVLP": ("IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml", lambda n: []),
    "MaPLe": ("MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", lambda n: []),
    "PromptSRC": ("PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml", lambda n: []),
    "VPT": ("VPT/vit_b32.yaml", lambda n: ["TRAINER.VPT.N_CTX", 10]),
    "VLP": ("VLP/vit_b32.yaml", lambda n: ["TRAINER.COOP.N_CTX", 16, "TRAINER.VPT.N_CTX", 10]),
    "DPT": ("DPT/vit_b32.yaml", lambda n: ["TRAINER.COOP.N_CTX", 16, "TRAINER.VPT.N_CTX", 10,
                                           "TRAINER.SELECTED_COVPT.CPN", 10, "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", n]),
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_BATCH = {"CoCoOp": 1}  # the configs' train batch where it is not the benchmark's batch
TEST_SIZE = {1000: 50_000, 37: 3_669}  # ImageNet val, Oxford Pets test
TEMPLATE = "a photo of a {}."
CLIP_ARGS = (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)  # ViT-B/32: embed, res, layers, width, patch, ...


# ---------------------------------------------------------------------------------------------- worker
def trainer_cfg(trainer: str, layers: int, precision: str = "fp32"):
    """The trainer's config (defaults, its configs/trainers file, the benchmark's opts and ``precision`` under the
    trainer's precision key: the ViT-B/16 configs say fp16, which the CPU runs cannot use), as train.py merges it."""
    from dpt.config import get_cfg_default
    from dpt.config.merge import merge_from_file, merge_from_list

    config_file, opts = TRAINERS[trainer]
    cfg = get_cfg_default()
    cfg.TRAINER.NAME = trainer
    cfg.DATASET.NAME = "OxfordPets"  # dataset-dependent recipe choices (ImageNet's schedule) stay off
    if config_file:
        merge_from_file(cfg, os.path.join(REPO, "configs", "trainers", config_file))
    merge_from_list(cfg, opts(layers) + [trainer_class(trainer).precision_key, precision])
    return cfg


def trainer_class(trainer: str):
    """The registered trainer class: built without data, it composes the model and runs the training step."""
    import dpt.trainers  # noqa: F401  (registers the trainers)
    from dpt.registry import TRAINER_REGISTRY

    return TRAINER_REGISTRY.get(trainer)


def compose(trainer: str, clip_model, classnames: List[str], layers: int):
    """The trainer's own prompted CLIP (``PromptTrainer.compose``), seeded as the benchmark always was."""
    torch.manual_seed(0)
    return trainer_class(trainer).compose(trainer_cfg(trainer, layers), clip_model, classnames, TEMPLATE)


def _transforms(resolution: int):
    from dpt.config import get_cfg_default
    from dpt.data.transforms import build_transform, split_at_to_tensor

    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (resolution, resolution)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = [0.48145466, 0.4578275, 0.40821073]
    cfg.INPUT.PIXEL_STD = [0.26862954, 0.26130258, 0.27577711]
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    train, test = build_transform(cfg, is_train=True), build_transform(cfg, is_train=False)
    return train, test, split_at_to_tensor(test)


class NaiveCoCoOp(torch.nn.Module):
    """The official CoCoOp forward around the composed model (the trainer's ``model`` on the naive path, so its
    training step runs it): per image, all n_cls prompts [SOS, ctx + shift, class, ., EOT] at 77 tokens."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, **_):
        from dpt.modeling.prompted_clip import PromptedCLIPOutput
        from dpt.modeling.text_encoder import TextEncoder

        model, learner = self.model, self.model.prompt_learner
        encoder = TextEncoder(model.clip_model, truncate=False, chunk_size=learner.n_cls)  # one image per call
        features = F.normalize(model.vision(image).features, dim=-1)  # [B, E]
        logits = []
        for feature, shift in zip(features, learner.meta_net(features)):
            ctx = (learner.ctx + shift).unsqueeze(0).expand(learner.n_cls, -1, -1)  # [n_cls, n_ctx, D]
            prompts = torch.cat([learner.token_prefix, ctx, learner.token_suffix], dim=1)  # [n_cls, 77, D]
            text = F.normalize(encoder(prompts, learner.tokenized_prompts), dim=-1)  # [n_cls, E]
            logits.append(model.logit_scale * feature @ text.t())
        return PromptedCLIPOutput(torch.stack(logits), None, None, [], None, None)


def _warm_up(model, resolution: int, autocast: Callable) -> None:
    """One small forward/backward through the text and vision towers (first-call kernel set-up, untimed)."""
    device = model.zs_text_features.device
    with autocast():
        if model.prompt_learner is not None:
            tokens = model.prompt_learner.tokenized_prompts[:8]  # [8, 77]
            embeds = model.clip_model.token_embedding(tokens).detach().requires_grad_(True)
            model.text_encoder(embeds, tokens).float().sum().backward()
        image = torch.randn(2, 3, resolution, resolution, device=device, requires_grad=True)
        model.vision(image).features.float().sum().backward()
        with torch.no_grad():
            model.vision(image)


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timed region ends when its kernels do."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    """Peak allocated GPU memory of this process, else its peak resident set size (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time one (trainer, classes, path) and return seconds, peak memory and the logits it produced.

    spec keys: clip, images, path (naive / fast), trainer, classes, batch, cache_dir, logits, warmup, steps,
    eval_batches; optional device ("cpu"), precision ("fp32", a TRAINER.COOP.PREC value), resolution (224),
    layers (12, the vision blocks).
    """
    from PIL import Image

    from dpt.data.datum import Datum
    from dpt.data.image_cache import PackedImages, load_test_cache
    from dpt.data.images import read_image
    from dpt.engine.precision import autocast
    from dpt.modeling.backbones.loader import image_preprocess, load_clip
    from dpt.modeling.text_encoder import TextEncoder
    from dpt.trainers.feature_cache import SelectorFeatureCache

    naive, trainer, n_cls, batch = spec["path"] == "naive", spec["trainer"], spec["classes"], spec["batch"]
    device, prec = torch.device(spec.get("device", "cpu")), spec.get("precision", "fp32")
    resolution = spec.get("resolution", 224)
    classnames = [f"class name {i}" for i in range(n_cls)]
    # the trainer as train.py builds it, without data (TrainerX(cfg, classnames=...)): CLIP loaded in the precision,
    # the model composed, its parts registered with their optimisers; at its first epoch (VLP / DPT: the guidance
    # loss, the costlier step). Built before the naive swap (PromptSRC's frozen template-ensemble text is set-up).
    cfg = trainer_cfg(trainer, spec.get("layers", 12), prec)
    expected = image_preprocess(load_clip(spec["clip"]))  # what build_clip checks INPUT against
    cfg.MODEL.BACKBONE.NAME, cfg.USE_CUDA = spec["clip"], device.type == "cuda"
    cfg.INPUT.SIZE, cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD = expected.size, expected.mean, expected.std
    cfg.DATASET.TEMPLATE = TEMPLATE
    torch.manual_seed(0)  # the prompts' initialisation, the same in both paths' processes (as ``compose``)
    prompt_trainer = trainer_class(trainer)(cfg, classnames=classnames)
    model = prompt_trainer.model
    clip_model = model.clip_model
    conditioned = model.prompt_learner is not None and model.prompt_learner.image_conditioned
    if naive and conditioned:
        prompt_trainer.model = NaiveCoCoOp(model)
    elif naive:
        model.text_encoder = TextEncoder(clip_model, truncate=False, chunk_size=n_cls if n_cls <= 256 else 64)
    forward = prompt_trainer.model
    _warm_up(model, resolution, lambda: autocast(prec, device))
    tfm_train, tfm_test, (test_prefix, test_suffix) = _transforms(resolution)
    items = [Datum(p, i % n_cls) for i, p in enumerate(spec["images"][:batch])]
    train_items = items[: TRAIN_BATCH.get(trainer, batch)]
    label = torch.tensor([d.label for d in train_items], device=device)
    packed = None if naive else PackedImages(items)  # decoded once (untimed set-up, as the loader's cache)
    mapped = None if naive else load_test_cache(items, test_prefix, spec["cache_dir"], "bench", "test")

    def train_images() -> torch.Tensor:
        random.seed(1)
        torch.manual_seed(1)
        if naive:
            return torch.stack([tfm_train(read_image(d.impath)) for d in train_items]).to(device)
        return torch.stack([tfm_train(Image.fromarray(packed[i])) for i in range(len(train_items))]).to(device)

    def test_images() -> torch.Tensor:
        if naive:
            return torch.stack([tfm_test(read_image(d.impath)) for d in items]).to(device)
        return torch.stack([test_suffix(np.asarray(mapped[i])) for i in range(len(items))]).to(device)

    def timed(fn: Callable[[], Any]) -> Tuple[Any, float]:
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        return out, time.perf_counter() - start

    result: Dict[str, Any] = {}
    logits: Dict[str, torch.Tensor] = {}
    model.eval()
    with torch.no_grad(), autocast(prec, device):
        if naive:
            times = []
            for _ in range(spec["eval_batches"]):
                out, seconds = timed(lambda: forward(test_images()))
                times.append(seconds)
            logits["eval"] = out.logits.float().cpu()
            result["eval_batch"] = sum(times) / len(times)
        else:
            # CoCoOp's text depends on each image: nothing to compute once per evaluation
            text, result["eval_text"] = timed(lambda: None if conditioned else model.encode_learned_text())
            cache = SelectorFeatureCache(batch)

            def fast_batch():
                image = test_images()
                zs = None
                if any(part.needs_zero_shot_image for part in model.vision_parts.values()):
                    zs = cache.lookup(torch.arange(batch), image, model.zero_shot_image_features)  # [B, E]
                return model(image, text_features=text, zs_image_features=zs)

            for phase in ("cold", "warm"):
                times = []
                for _ in range(spec["eval_batches"]):
                    out, seconds = timed(fast_batch)
                    times.append(seconds)
                result[f"eval_batch_{phase}"] = sum(times) / len(times)
            logits["eval"] = out.logits.float().cpu()

    if prompt_trainer.get_model_names():  # the trainer's own step: forward, loss, model_backward_and_update
        prompt_trainer.set_model_mode("train")

        def keep_logits(_module, _args, out) -> None:
            logits["train"] = out.logits.detach().float().cpu()

        first = forward.register_forward_hook(keep_logits)
        times = []
        for step in range(spec["warmup"] + spec["steps"]):
            _, seconds = timed(lambda: prompt_trainer.forward_backward({"img": train_images(), "label": label}))
            first.remove()  # the first step's logits are compared: both paths start from the same prompts
            if step >= spec["warmup"]:
                times.append(seconds)
        result["train_step"] = sum(times) / len(times)
    result["peak_mb"] = _peak_mb(device)
    torch.save(logits, spec["logits"])
    return result


# ---------------------------------------------------------------------------------------------- parent
def write_random_clip(path: str) -> str:
    """A random-weight ViT-B/32-shaped CLIP state dict (it costs exactly what the real one costs)."""
    from dpt.modeling.backbones.clip_import import clip

    torch.manual_seed(0)
    torch.save(clip.model.CLIP(*CLIP_ARGS).state_dict(), path)
    return path


def write_backbone(folder: str, backbone: str) -> Dict[str, Any]:
    """Random weights saved to a file: ViT-B/32-shaped OpenAI CLIP, or the open_clip architecture named
    ``open_clip:ARCH`` -> the name ``load_clip`` reads (``clip``), image size (``resolution``) and vision blocks."""
    if backbone == "ViT-B/32":
        return {"clip": write_random_clip(os.path.join(folder, "vit_b32_random.pt")), "resolution": 224, "layers": 12}
    from dpt.modeling.backbones.open_clip_loader import OPEN_CLIP_PREFIX, build_open_clip, open_clip_arch, unsupported_reason

    arch = open_clip_arch(backbone[len(OPEN_CLIP_PREFIX):])
    reason = unsupported_reason(arch.name, arch.config)
    if reason or not isinstance(arch.config["vision_cfg"].get("layers", 12), int):
        raise SystemExit(f"--backbone {backbone}: needs a CLIP-style open_clip ViT ({reason or 'a ResNet'})")
    torch.manual_seed(0)
    model = build_open_clip(arch.config)
    path = os.path.join(folder, "open_clip_random.pt")
    torch.save(model.state_dict(), path)
    return {"clip": f"{OPEN_CLIP_PREFIX}{arch.name}:{path}", "resolution": model.visual.image_size[0],
            "layers": len(model.visual.transformer.resblocks)}


def write_images(folder: str, n_images: int) -> List[str]:
    """JPEGs of ImageNet-like sizes (500x375 and 500x333, smooth random content)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for i in range(n_images):
        height, width = (375, 500) if i % 2 else (333, 500)
        pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)  # smooth-ish content
        path = os.path.join(folder, f"img_{i:03d}.jpg")
        Image.fromarray(pixels).resize((width, height), Image.BICUBIC).save(path, quality=90)
        images.append(path)
    return images


def run_worker(spec: Dict[str, Any], folder: str, timeout: Optional[float] = None) -> Dict[str, Any]:
    """``worker(spec)`` in a fresh process (its own peak memory); RuntimeError on failure or after ``timeout`` s."""
    name = f"{spec['trainer']}_{spec['classes']}_{spec['path']}_{spec.get('precision', 'fp32')}"
    spec_path = os.path.join(folder, f"spec_{name}.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle)
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", spec_path],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"worker {name} timed out after {err.timeout:.0f} s") from err
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _per_1000(seconds_per_batch: float, batch: int) -> float:
    return seconds_per_batch * 1000 / batch


def compare(trainer: str, n_cls: int, inputs: Dict[str, Any], folder: str, batch: int, warmup: Optional[int] = None,
            steps: int = 1, eval_batches: int = 1, deadline: Optional[float] = None) -> Dict[str, Any]:
    """Time the naive and the fast path of one (trainer, classes), each in its own process.

    Args:
        inputs: clip (state-dict path) and images (at least ``batch`` JPEGs); optionally device, precision and
            resolution for the workers.
        warmup, steps, eval_batches: untimed and timed training steps, timed evaluation batches
            (warmup default: 1, or 0 above 100 classes).
        deadline: ``time.monotonic()`` by which both workers must have finished (RuntimeError otherwise).
    Returns:
        seconds per training step (``train_naive`` / ``train_fast``, None without learnable parts), evaluation
        seconds per 1,000 images (``eval_naive``, ``eval_fast``, ``eval_cold``), ``peak_naive`` / ``peak_fast``
        MB and ``maxdiff``, the largest |logit difference| between the paths.
    """
    runs, logits = {}, {}
    for path in ("naive", "fast"):
        spec = dict(
            inputs, path=path, trainer=trainer, classes=n_cls, batch=batch,
            cache_dir=os.path.join(folder, "cache"), logits=os.path.join(folder, f"logits_{path}.pt"),
            warmup=(0 if n_cls > 100 else 1) if warmup is None else warmup, steps=steps, eval_batches=eval_batches,
        )
        timeout = None if deadline is None else max(deadline - time.monotonic(), 1.0)
        runs[path] = run_worker(spec, folder, timeout)
        logits[path] = torch.load(spec["logits"])
    naive, fast = runs["naive"], runs["fast"]
    n_test = TEST_SIZE.get(n_cls, 50 * n_cls)
    return {
        "trainer": trainer, "classes": n_cls,
        "train_naive": naive.get("train_step"), "train_fast": fast.get("train_step"),
        "eval_naive": _per_1000(naive["eval_batch"], batch),
        "eval_fast": fast["eval_text"] * 1000 / n_test + _per_1000(fast["eval_batch_warm"], batch),
        "eval_cold": fast["eval_text"] * 1000 / n_test + _per_1000(fast["eval_batch_cold"], batch),
        "peak_naive": naive["peak_mb"], "peak_fast": fast["peak_mb"],
        "maxdiff": max((logits["naive"][k] - logits["fast"][k]).abs().max().item() for k in logits["naive"]),
    }


HEADERS = [
    "trainer", "classes", "train naive s/step", "train fast s/step", "fast/naive",
    "eval naive s/1k img", "eval fast s/1k img", "eval fast cold", "fast/naive",
    "naive peak MB", "fast peak MB", "max |dlogit|",
]


def format_row(r: Dict[str, Any]) -> List[Any]:
    """One ``compare`` result as a table row under ``HEADERS``."""
    train_naive, train_fast = r["train_naive"], r["train_fast"]
    return [
        r["trainer"], r["classes"],
        f"{train_naive:.2f}" if train_naive else "-", f"{train_fast:.2f}" if train_fast else "-",
        f"{train_fast / train_naive:.2f}x" if train_naive else "-",
        f"{r['eval_naive']:.1f}", f"{r['eval_fast']:.1f}", f"{r['eval_cold']:.1f}",
        f"{r['eval_fast'] / r['eval_naive']:.3f}x",
        f"{r['peak_naive']:.0f}", f"{r['peak_fast']:.0f}", f"{r['maxdiff']:.1e}",
    ]


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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the workers run")
    parser.add_argument("--prec", choices=("fp32", "fp16", "amp", "bf16"), default="fp32",
                        help="CLIP weights and autocast as TRAINER.COOP.PREC (fp16: CUDA only)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        with open(args.worker) as handle:
            print(json.dumps(worker(json.load(handle))))
        return 0
    from tabulate import tabulate

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible (torch.cuda.is_available() is False)")
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
        inputs = {**write_backbone(folder, args.backbone), "images": write_images(folder, batch),
                  "device": args.device, "precision": args.prec}
        for trainer, n_cls in configs:
            r = compare(trainer, n_cls, inputs, folder, batch)
            rows.append(format_row(r))
            if headline is None or (trainer == "DPT" and headline[0] != "DPT"):
                train_speedup = f"{r['train_naive'] / r['train_fast']:.2f}" if r["train_naive"] else "n/a"
                headline = (trainer, train_speedup, r["eval_naive"] / r["eval_fast"], r["maxdiff"])
            print(f"done {trainer} {n_cls} classes ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    mode = "quick" if args.quick else "default" if not args.only else "rows " + " ".join(args.only)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    shape = "ViT-B/32-shaped" if args.backbone == "ViT-B/32" else args.backbone
    print(f"{shape} random CLIP, {inputs['resolution']} px, batch {batch}, {args.prec}, {where} ({mode} run, "
          f"{time.time() - started:.0f} s)")
    print(tabulate(rows, headers=HEADERS, tablefmt="github"))
    if any(trainer in TRAIN_BATCH for trainer, _ in configs):
        print("train s/step at the configs' batch for " + ", ".join(f"{t} ({b})" for t, b in TRAIN_BATCH.items()))
    print(f"speedup train={headline[1]} eval={headline[2]:.1f} maxdiff={headline[3]:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
