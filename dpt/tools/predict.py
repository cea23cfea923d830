"""``dpt-predict (RUN_DIR | FILE | --backbone NAME --zero-shot) IMAGES_OR_FOLDERS...``: classify image files.

One row per image (path, top-k classes and probabilities) as CSV (stdout, or ``--out preds.csv``) or JSON
(``--out preds.json``); folders are searched recursively for images, with a progress bar. An unreadable image
is one ``error:`` line on stderr and a row marked failed, every other image is still predicted, and the exit
status is 1. Bad input (a file that is not an export, another backbone, an empty folder, ...) is one line and
exit 2, before anything is written. The output file appears whole or not at all.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

from tqdm import tqdm

from dpt.cache.atomic import atomic_path
from dpt.errors import ArgumentParser, cli_main
from dpt.inference.classifier import Classifier, FileResult, load_classifier, parse_classnames, zero_shot_classifier

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = (".csv", ".json")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dpt-predict", description="Classify images with a trained run, an "
                                     "export file, or zero-shot CLIP.")
    parser.add_argument("inputs", nargs="+", help="RUN_DIR or export FILE (unless --zero-shot), then images and "
                        "folders")
    parser.add_argument("--zero-shot", action="store_true", help="zero-shot CLIP of --backbone over --classes")
    parser.add_argument("--backbone", help="CLIP name or weights file (--zero-shot; or the weights an export names)")
    parser.add_argument("--classes", help="class names: a file (one per line) or a comma-separated list; with a "
                        "trained model, classify over these names instead of its training classes")
    parser.add_argument("--template", default="a photo of a {}.", help="prompt template of --zero-shot")
    parser.add_argument("--top-k", type=int, default=5, help="classes per row (default 5)")
    parser.add_argument("--out", help="write rows to this .csv or .json file (default: CSV on stdout)")
    parser.add_argument("--batch-size", type=int, help="images per forward (default: the run's test batch size)")
    parser.add_argument("--workers", type=int, default=0, help="image-decoding processes (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    return parser


def image_files(inputs: Sequence[str]) -> Tuple[List[str], bool]:
    """Image paths of files and folders (searched recursively, sorted); whether any folder was given.

    A file is taken as given (an unreadable one becomes a failed row); a folder without images is an error.
    """
    paths, any_folder = [], False
    for item in inputs:
        if not os.path.isdir(item):
            paths.append(item)
            continue
        any_folder = True
        found = sorted(os.path.join(folder, name) for folder, _, names in os.walk(item) for name in names
                       if name.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise ValueError(f"folder {item} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        paths.extend(found)
    return paths, any_folder


def _classifier(args: argparse.Namespace, model: Optional[str]) -> Classifier:
    if args.zero_shot:
        if not args.backbone or not args.classes:
            raise ValueError("--zero-shot needs --backbone NAME and --classes FILE_OR_LIST")
        return zero_shot_classifier(args.backbone, parse_classnames(args.classes), device=args.device,
                                    template=args.template)
    classifier = load_classifier(model, device=args.device, backbone=args.backbone)
    return classifier.with_classes(parse_classnames(args.classes)) if args.classes else classifier


def _rows(results: Sequence[FileResult], classnames: Sequence[str], top_k: int) -> List[dict]:
    rows = []
    k = min(top_k, len(classnames))
    for result in results:
        row = {"path": result.path, "ok": result.probs is not None, "classes": [], "probs": [], "error": result.error}
        if result.probs is not None:
            values, indices = result.probs.topk(k)
            row["classes"] = [classnames[i] for i in indices.tolist()]
            row["probs"] = [round(v, 6) for v in values.tolist()]
        rows.append(row)
    return rows


def _csv(rows: Sequence[dict], top_k: int) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "ok", *(f"{kind}_{i + 1}" for i in range(top_k) for kind in ("class", "prob")), "error"])
    for row in rows:
        pairs = [value for pair in zip(row["classes"], row["probs"]) for value in pair]
        writer.writerow([row["path"], int(row["ok"]), *pairs, *[""] * (2 * top_k - len(pairs)), row["error"]])
    return text.getvalue()


def predict(args: argparse.Namespace) -> int:
    """Load, predict every image, write the rows; 1 when some image failed."""
    if args.top_k < 1:
        raise ValueError(f"--top-k: expected >= 1, got {args.top_k}")
    if args.out and os.path.splitext(args.out)[1].lower() not in OUTPUT_FORMATS:
        raise ValueError(f"--out {args.out}: expected a {' or '.join(OUTPUT_FORMATS)} file")
    model, inputs = (None, args.inputs) if args.zero_shot else (args.inputs[0], args.inputs[1:])
    if not inputs:
        raise ValueError("no images given: dpt-predict RUN_DIR_OR_FILE IMAGES_OR_FOLDERS...")
    paths, any_folder = image_files(inputs)
    with contextlib.redirect_stdout(sys.stderr):  # the model's build log
        classifier = _classifier(args, model)
    if args.batch_size:
        classifier.batch_size = args.batch_size
    results = []
    for result in classifier.predict_files(paths, num_workers=args.workers, progress=any_folder):
        if result.probs is None:
            tqdm.write(f"error: {result.error}", file=sys.stderr)  # on its own line, below the progress bar
        results.append(result)
    top_k = min(args.top_k, len(classifier.classnames))
    rows = _rows(results, classifier.classnames, top_k)
    if args.out is None:
        sys.stdout.write(_csv(rows, top_k))
    else:
        with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(rows, indent=1) + "\n" if args.out.lower().endswith(".json") else _csv(rows, top_k))
    failed = sum(not row["ok"] for row in rows)
    if failed:
        print(f"{failed} of {len(rows)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Predict every image; exit 1 when some could not be read (their rows say so)."""
    return predict(args)


if __name__ == "__main__":
    sys.exit(main())
