"""Prediction throughput (dpt-predict's path) against the evaluation loop's, on a ViT-B/32-shaped random CLIP.

Why: ``Classifier.predict_files`` must cost what evaluating a split costs per image, and a one-image call must
not run the text encoder again. Both paths read the same JPEG files (DATALOADER.CACHE_TEST off, the default), at
the same batch size, decoding workers and precision; the evaluation is ``trainer.test()`` of a trainer built
on a synthetic 37-class dataset (Oxford Pets' class count) with its text features computed beforehand (see
``text_once``), the prediction a ``Classifier`` built from that trainer's learned state.
DPT's evaluation is timed cold (a fresh selector-feature cache per repeat), as prediction sees new images. Each
path runs ``--repeats`` times, which one goes first alternating; the best throughput of each is reported, and the
median over repeats of the ratio of the two back-to-back passes (robust to a machine whose load drifts); on a
shared CPU the images per CPU-second of this process (``time.process_time``) compare the work each path does.

Usage: ``python benchmarks/predict_bench.py [--trainers CoOp DPT] [--per-class 4] [--device cpu] [--workers 0]``;
one row per trainer: ``<trainer> eval <x> img/s predict <y> img/s ratio <y/x> one-image <ms> ms``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from typing import List

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dpt.config import get_cfg_default  # noqa: E402
from dpt.config.merge import merge_from_file  # noqa: E402
from dpt.demo.synthetic import make_dataset  # noqa: E402
from dpt.engine.build import build_trainer  # noqa: E402
from dpt.inference.classifier import Classifier  # noqa: E402
from dpt.inference.export import learned_state  # noqa: E402
from dpt.modeling.backbones.clip_import import clip  # noqa: E402

CLIP_ARGS = (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)  # ViT-B/32, as benchmarks/bench.py
CONFIGS = {"CoOp": "CoOp/vit_b32", "VPT": "VPT/vit_b32", "VLP": "VLP/vit_b32", "DPT": "DPT/vit_b32",
           "ZeroshotCLIP": "CoOp/vit_b32"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(trainer: str, root: str, clip_path: str, cache_dir: str, args: argparse.Namespace):
    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(REPO, "configs/datasets/oxford_pets.yaml"))
    merge_from_file(cfg, os.path.join(REPO, f"configs/trainers/{CONFIGS[trainer]}.yaml"))
    cfg.TRAINER.NAME = trainer
    cfg.DATASET.ROOT = root
    cfg.MODEL.BACKBONE.NAME = clip_path
    cfg.TRAINER.COOP.PREC = args.prec
    cfg.USE_CUDA = args.device == "cuda"
    cfg.DATALOADER.NUM_WORKERS = args.workers
    cfg.DATALOADER.TEST.BATCH_SIZE = args.batch_size
    cfg.DATALOADER.CACHE_DIR = cache_dir
    cfg.OUTPUT_DIR = cache_dir
    cfg.freeze()
    with contextlib.redirect_stdout(io.StringIO()):
        return build_trainer(cfg)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def text_once(trainer) -> None:
    """Compute the evaluation's once-per-evaluation features now and keep them through ``test()``.

    Why: at N=37 images the 37 class prompts cost a third of the images' compute, at Oxford Pets' 3,669 test
    images under 1%; the classifier computed them when it was built. The per-batch loop is what is compared.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.before_test()
    trainer.before_test = trainer.after_test = lambda: None


def evaluate(trainer) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.test()


def predict(classifier: Classifier, paths: List[str], workers: int) -> None:
    results = list(classifier.predict_files(paths, num_workers=workers))
    assert all(result.probs is not None for result in results)


def bench(trainer_name: str, root: str, clip_path: str, work: str, args: argparse.Namespace) -> str:
    eval_ips: List[float] = []
    predict_ips: List[float] = []
    one_image_ms: List[float] = []
    eval_cpu: List[float] = []  # images per CPU-second of this process: less sensitive to other load
    predict_cpu: List[float] = []
    for repeat in range(args.repeats):
        trainer = build(trainer_name, root, clip_path, os.path.join(work, f"{trainer_name}-{repeat}"), args)
        paths = [item.impath for item in trainer.dm.dataset.test]
        text_once(trainer)
        classifier = Classifier(trainer.cfg, trainer.classnames, learned_state(trainer))  # its own model, no data
        timed = [("eval", lambda: evaluate(trainer)), ("predict", lambda: predict(classifier, paths, args.workers))]
        for name, run in timed[::-1] if repeat % 2 else timed:  # alternate which path runs first
            sync(args.device)
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            sync(args.device)
            (eval_ips if name == "eval" else predict_ips).append(len(paths) / (time.perf_counter() - start))
            (eval_cpu if name == "eval" else predict_cpu).append(len(paths) / (time.process_time() - start_cpu))
        start = time.perf_counter()
        classifier.predict(paths[:1])
        sync(args.device)
        one_image_ms.append(1000 * (time.perf_counter() - start))
    best_eval, best_predict = max(eval_ips), max(predict_ips)
    paired = statistics.median(p / e for p, e in zip(predict_ips, eval_ips))
    return (f"{trainer_name} eval {best_eval:.1f} img/s predict {best_predict:.1f} img/s "
            f"ratio {best_predict / best_eval:.3f} (median of paired repeats {paired:.3f}) "
            f"per CPU-second eval {max(eval_cpu):.2f} predict {max(predict_cpu):.2f} ratio "
            f"{max(predict_cpu) / max(eval_cpu):.3f} one-image {min(one_image_ms):.0f} ms "
            f"(N={len(paths)}, batch {args.batch_size}, workers {args.workers}, threads {torch.get_num_threads()}, "
            f"{args.prec}, {args.device})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trainers", nargs="+", default=["CoOp", "DPT"], choices=sorted(CONFIGS))
    parser.add_argument("--per-class", type=int, default=4, help="test images per class (37 classes)")
    parser.add_argument("--batch-size", type=int, default=100, help="DATALOADER.TEST.BATCH_SIZE (CoOp's 100)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--prec", default="fp32", help="TRAINER.COOP.PREC (fp16 needs --device cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); 1 makes "
                        "the per-CPU-second numbers exact on a loaded machine (no spinning threads)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        clip_path = os.path.join(work, "vit_b32_random.pt")
        torch.save(clip.model.CLIP(*CLIP_ARGS).state_dict(), clip_path)
        root = os.path.join(work, "data")
        make_dataset(root, "OxfordPets", n_classes=37, n_train=1, n_val=1, n_test=args.per_class, size=(500, 375))
        for trainer in args.trainers:
            print(bench(trainer, root, clip_path, work, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
