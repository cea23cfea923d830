"""Attention maps of trained runs: last-block CLS-to-patch attention overlaid on the input images.

``dpt-attention --images A.jpg B.jpg --runs RUN_DIR [RUN_DIR ...] [--zero-shot] --out grid.png`` rebuilds
each run's trainer from ``RUN_DIR/config.yaml`` (eval only, no training), loads its weights and runs the
images through the run's test transform and the same ``PromptedCLIP.forward(..., return_attention=True)``
that training uses. The grid has one row per image and the columns original, then one overlay per model,
titled by trainer name. Why: the paper's Fig. 6 compares where zero-shot CLIP, VPT and DPT look.

The figure layout is fixed in pixels (``PANEL_PX`` square panels under a ``TITLE_PX`` band of column
titles), so a grid of R images and M models is ``(M + 1) * PANEL_PX`` x ``TITLE_PX + R * PANEL_PX`` pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from dpt.api import build_config, build_trainer
from dpt.inference.run_files import run_config_value
from dpt.data.images import read_image
from dpt.data.transforms import build_transform, split_at_to_tensor
from dpt.engine.checkpoint import latest_checkpoint
from dpt.errors import ArgumentParser, cli_main
from dpt.registry import precision_key
from dpt.reporting.plots import DPI, save_atomic
from dpt.trainers.base import PromptTrainer

PANEL_PX = 200
TITLE_PX = 40
OVERLAY_ALPHA = 0.5
COLORMAP = "jet"
ZERO_SHOT_TRAINER = "ZeroshotCLIP"


@dataclass
class ModelColumn:
    """One grid column: its title, the display images [R] (H, W, 3) uint8 and attention maps [R] (H, W) in [0, 1]."""

    title: str
    images: List[np.ndarray]
    maps: List[np.ndarray]


def run_config_path(run_dir: str) -> str:
    """``RUN_DIR/config.yaml``, or FileNotFoundError naming the folder."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"run folder {run_dir} has no config.yaml (expected a folder written by train.py)")
    return path


def load_run_cfg(run_dir: str, root: str = "", backbone: str = "", prec: str = "", trainer: str = ""):
    """The run's resolved config with optional DATASET.ROOT / MODEL.BACKBONE.NAME / precision (the trainer's
    precision key) / TRAINER.NAME overrides, frozen."""
    opts = [precision_key(trainer or run_config_value(run_dir, "TRAINER.NAME") or ""), prec] if prec else []
    return build_config([run_config_path(run_dir)], opts, root=root, backbone=backbone, trainer=trainer)


def default_epoch(trainer, run_dir: str) -> Optional[int]:
    """The epoch of the latest checkpoint of the run's first registered model (None: model-best)."""
    name = trainer.get_model_names()[0]
    path = latest_checkpoint(os.path.join(run_dir, name))
    if path is None:
        raise FileNotFoundError(f"run folder {run_dir} has no checkpoint for {name} (expected {name}/checkpoint)")
    suffix = os.path.basename(path).rpartition("-")[2]
    return int(suffix) if suffix.isdigit() else None


def build_eval_trainer(cfg, run_dir: Optional[str], epoch: Optional[int]):
    """Build the trainer of ``cfg`` and load the run's weights (none for a zero-shot column).

    ``dpt.build_trainer`` seeds as train.py does first, so a few-shot subset that is not cached is sampled as in
    training.
    """
    dataset_dir = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
    try:
        trainer = build_trainer(cfg)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"cannot build {cfg.TRAINER.NAME} for dataset {cfg.DATASET.NAME} under DATASET.ROOT {dataset_dir} "
            f"(the class names come from the dataset; pass --root): {err}"
        ) from err
    if not isinstance(trainer, PromptTrainer):
        raise ValueError(f"trainer {cfg.TRAINER.NAME} has no prompted CLIP to draw attention from (a linear probe "
                         f"sees CLIP's own image features: use --zero-shot)")
    if run_dir is not None and trainer.get_model_names():
        trainer.load_model(run_dir, epoch if epoch is not None else default_epoch(trainer, run_dir))
    trainer.model.eval()
    return trainer


@torch.no_grad()
def attention_column(trainer, images: Sequence[Image.Image], title: str) -> ModelColumn:
    """Run the images through the trainer's test transform and model; maps upsampled to the crop size."""
    tfm = build_transform(trainer.cfg, is_train=False)
    crop, to_tensor = split_at_to_tensor(tfm)
    crops = [crop(img) for img in images]
    batch = torch.stack([to_tensor(c) for c in crops]).to(trainer.device)  # [R, 3, H, W]
    with trainer.autocast():
        attention = trainer.model(batch, return_attention=True).attention  # [R, n_patches]
    n_patches = attention.shape[1]
    grid = int(round(n_patches ** 0.5))
    if grid * grid != n_patches:
        raise ValueError(f"{title}: attention over {n_patches} patches is not a square patch grid")
    height, width = batch.shape[-2:]
    maps = attention.float().reshape(-1, 1, grid, grid)  # [R, 1, grid, grid]
    maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[:, 0]  # [R, H, W]
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    maps = (maps - low) / (high - low).clamp_min(1e-12)
    return ModelColumn(title, [np.asarray(c) for c in crops], list(maps.cpu().numpy()))


def render_grid(names: Sequence[str], columns: Sequence[ModelColumn], out_path: str) -> str:
    """Write the PNG grid (rows = images; columns = original, then one overlay per model) atomically."""
    n_cols, n_rows = len(columns) + 1, len(names)
    width_px, height_px = n_cols * PANEL_PX, TITLE_PX + n_rows * PANEL_PX
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    cmap = colormaps[COLORMAP]
    titles = ["original"] + [c.title for c in columns]
    for col, title in enumerate(titles):
        fig.text((col + 0.5) / n_cols, 1 - TITLE_PX / 2 / height_px, title, ha="center", va="center", fontsize=11)
    for row, name in enumerate(names):
        bottom = 1 - (TITLE_PX + (row + 1) * PANEL_PX) / height_px
        for col in range(n_cols):
            ax = fig.add_axes((col / n_cols, bottom, 1 / n_cols, PANEL_PX / height_px))
            ax.set_axis_off()
            if col == 0:
                ax.imshow(columns[0].images[row], interpolation="bilinear", aspect="auto")
                ax.text(0.02, 0.02, name, transform=ax.transAxes, fontsize=7, color="white",
                        bbox=dict(facecolor="black", alpha=0.6, pad=1, linewidth=0))
                continue
            column = columns[col - 1]
            heat = (cmap(column.maps[row])[..., :3] * 255).astype(np.float32)  # [H, W, 3]
            blend = (1 - OVERLAY_ALPHA) * column.images[row].astype(np.float32) + OVERLAY_ALPHA * heat
            ax.imshow(blend.clip(0, 255).astype(np.uint8), interpolation="bilinear", aspect="auto")
    return save_atomic(fig, out_path)


def attention_grid(images: Sequence[str], runs: Sequence[str], out_path: str, zero_shot: bool = False,
                   epoch: Optional[int] = None, root: str = "", backbone: str = "", prec: str = "") -> str:
    """Build every column (zero-shot first when asked, then the runs in order) and write the grid."""
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"image not found: {missing[0]}")
    pictures = [read_image(p) for p in images]
    configs = [(run, load_run_cfg(run, root, backbone, prec)) for run in runs]
    if zero_shot:
        configs.insert(0, (None, load_run_cfg(runs[0], root, backbone, prec, trainer=ZERO_SHOT_TRAINER)))
    columns = []
    for run, cfg in configs:
        trainer = build_eval_trainer(cfg, run, epoch)
        columns.append(attention_column(trainer, pictures, cfg.TRAINER.NAME))
    return render_grid([os.path.basename(p) for p in images], columns, out_path)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="dpt-attention", description="Grid of last-block CLS-to-patch attention maps of trained runs."
    )
    parser.add_argument("--images", nargs="+", required=True, metavar="IMG", help="image files (one grid row each)")
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR",
                        help="run folders written by train.py (config.yaml + checkpoints), one column each")
    parser.add_argument("--zero-shot", action="store_true",
                        help="add a ZeroshotCLIP column built from the first run's config")
    parser.add_argument("--out", required=True, metavar="PNG", help="output PNG path")
    parser.add_argument("--epoch", type=int, help="checkpoint epoch to load (default: each run's latest)")
    parser.add_argument("--root", default="", help="override DATASET.ROOT (the runs' datasets, for class names)")
    parser.add_argument("--backbone", default="",
                        help="override MODEL.BACKBONE.NAME (CLIP name, file or open_clip:ARCH:PRETRAINED)")
    parser.add_argument("--prec", default="", choices=("", "fp16", "fp32", "amp", "bf16"),
                        help="override TRAINER.COOP.PREC (e.g. fp32 to view fp16 GPU runs on a CPU)")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Write the attention grid and print its path."""
    path = attention_grid(args.images, args.runs, args.out, args.zero_shot, args.epoch,
                          args.root, args.backbone, args.prec)
    print(f"Wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
