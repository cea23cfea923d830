"""Figures: accuracy vs shots per dataset (like the paper's Fig. 4), base vs new accuracy of base-to-novel runs,
and the training curves of one run.

``dpt-plot`` (dpt/tools/plots.py) writes them. Figures use the Agg canvas directly (no pyplot global state)
and are written atomically (``dpt.cache.atomic``), so a reader never sees half a PNG.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dpt.cache.atomic import write_with

from dpt.reporting.base2new import AVERAGE, B2NTable, build_b2n_table
from dpt.reporting.logparse import EpochCurve, mean_and_spread, parse_training_curves
from dpt.reporting.runs import collect_runs
from dpt.reporting.tables import Table, build_tables

DPI = 100
# Size of one subplot in inches: an n-panel figure is PANEL_SIZE * (columns, rows) * DPI pixels.
PANEL_SIZE = (4.0, 3.2)
MAX_COLUMNS = 4
SHOT_TICKS = (1, 2, 4, 8, 16)


def _new_figure(n_panels: int, max_columns: int) -> Tuple[Figure, List]:
    columns = min(max_columns, n_panels)
    rows = math.ceil(n_panels / columns)
    fig = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(n_panels)]
    return fig, axes


def save_atomic(fig: Figure, path: str) -> str:
    """Write ``fig`` as PNG to ``path`` through a temporary file in the same folder; returns ``path``."""
    return write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _series(table: Table) -> Tuple[Dict[str, Dict[str, List[Tuple[int, float]]]], Dict[str, Dict[str, float]]]:
    """Trained rows as {label: {panel: [(shots, mean)]}}, zero-shot rows as {label: {panel: mean}}.

    Panels are the table's columns plus "Average".
    """
    lines: Dict[str, Dict[str, List[Tuple[int, float]]]] = {}
    flat: Dict[str, Dict[str, float]] = {}
    for row in table.rows:
        label = table.labels[row]
        values = {}
        for column in table.columns:
            cell = table.cells.get((row, column))
            if cell is not None and cell.usable:
                values[column] = mean_and_spread(cell.values)[0]
        average = table.average(row)[0]
        if average is not None:
            values["Average"] = average
        if row.shots == 0:
            flat.setdefault(label, {}).update(values)
            continue
        for panel, value in values.items():
            lines.setdefault(label, {}).setdefault(panel, []).append((row.shots, value))
    return lines, flat


def plot_accuracy_vs_shots(table: Table, out_path: str, metric: str = "accuracy") -> str:
    """One panel per dataset plus "Average": a line per method over shots (log2 axis), zero-shot as a dashed line.

    Figure size: ``PANEL_SIZE`` per panel, at most ``MAX_COLUMNS`` panels per row, ``DPI`` dots per inch.
    Raises ValueError when the table holds no value at all.
    """
    lines, flat = _series(table)
    if not lines and not flat:
        raise ValueError(f"no finished runs to plot into {out_path}")
    panels = [*table.columns, "Average"]
    labels = list(dict.fromkeys(table.labels[r] for r in table.rows))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    fig, axes = _new_figure(len(panels), MAX_COLUMNS)
    for ax, panel in zip(axes, panels):
        for label, by_panel in lines.items():
            points = sorted(by_panel.get(panel, []))
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], marker="o", color=colours[label], label=label)
        for label, by_panel in flat.items():
            if panel in by_panel:
                ax.axhline(by_panel[panel], linestyle="--", color=colours[label], label=label)
                ax.plot([SHOT_TICKS[0]], [by_panel[panel]], marker="*", markersize=12, color=colours[label])
        ax.set_xscale("log", base=2)
        ax.set_xticks(SHOT_TICKS, [str(s) for s in SHOT_TICKS])
        ax.set_xlim(0.8, 20)
        ax.set_title(panel)
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize="small")
    return save_atomic(fig, out_path)


def plot_base_vs_new(table: B2NTable, out_path: str, metric: str = "accuracy") -> str:
    """One panel per dataset plus "Average": a point per method at (base, new) mean accuracy, with the diagonal.

    Points above the diagonal generalise better to the new classes than they fit the base ones. Figure size as
    ``plot_accuracy_vs_shots``. Raises ValueError when no method has both values anywhere.
    """
    panels = [*table.datasets, AVERAGE]
    points = {p: [(table.labels[r], *table.means(r, p)) for r in table.rows] for p in panels}
    points = {p: [(label, b, n) for label, b, n in found if None not in (b, n)] for p, found in points.items()}
    if not any(points.values()):
        raise ValueError(f"no method has both a base and a new result to plot into {out_path}")
    labels = list(dict.fromkeys(table.labels[r] for r in table.rows))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    fig, axes = _new_figure(len(panels), MAX_COLUMNS)
    for ax, panel in zip(axes, panels):
        values = [v for _, b, n in points[panel] for v in (b, n)]
        low, high = (min(values) - 5, max(values) + 5) if values else (0, 100)
        ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
        for label, base, new in points[panel]:
            ax.plot([base], [new], marker="o", linestyle="", color=colours[label], label=label)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(panel)
        ax.set_xlabel(f"base {metric} (%)")
        ax.set_ylabel(f"new {metric} (%)")
        ax.grid(True, alpha=0.3)
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    axes[-1].legend(handles.values(), handles.keys(), fontsize="small")
    return save_atomic(fig, out_path)


def plot_training_curves(curves: Sequence[EpochCurve], out_path: str, title: str = "") -> str:
    """One panel per logged meter (loss, acc, ...) plus lr, against the epoch; raises ValueError on no epochs."""
    if not curves:
        raise ValueError(f"no training batch lines to plot into {out_path}")
    meters = list(dict.fromkeys(name for c in curves for name in c.meters))
    fig, axes = _new_figure(len(meters) + 1, len(meters) + 1)
    epochs = [c.epoch for c in curves]
    for ax, name in zip(axes, meters):
        ax.plot(epochs, [c.meters.get(name, math.nan) for c in curves], marker=".")
        ax.set_ylabel(f"{name} (epoch running mean)")
    lrs = [c.lr for c in curves]
    axes[-1].plot(epochs, lrs, marker=".")
    if all(lr > 0 for lr in lrs if not math.isnan(lr)) and any(not math.isnan(lr) for lr in lrs):
        axes[-1].set_yscale("log")
    axes[-1].set_ylabel("lr during the epoch")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="small")
    return save_atomic(fig, out_path)


def write_shot_plot(root: str, out_dir: str, seeds: Sequence[int] = (1, 2, 3), metric: str = "accuracy",
                    select: Sequence[str] = ()) -> str:
    """``out_dir/accuracy_vs_shots.png`` for the output tree ``root`` (same grouping as dpt-results)."""
    fewshot, _ = build_tables(collect_runs(root, seeds, select), metric)
    return plot_accuracy_vs_shots(fewshot, os.path.join(out_dir, "accuracy_vs_shots.png"), metric)


def write_b2n_plot(root: str, out_dir: str, seeds: Sequence[int] = (1, 2, 3), metric: str = "accuracy",
                   select: Sequence[str] = ()) -> Optional[str]:
    """``out_dir/base_vs_new.png`` for the base-to-novel runs of ``root``; None when it holds none."""
    table = build_b2n_table(collect_runs(root, seeds, select), metric)
    return None if table is None else plot_base_vs_new(table, os.path.join(out_dir, "base_vs_new.png"), metric)


def write_run_plot(run_dir: str, out_dir: str) -> str:
    """``out_dir/training_curves.png`` from ``run_dir/log.txt`` (or ``run_dir`` itself when it is a log file)."""
    log = run_dir if os.path.isfile(run_dir) else os.path.join(run_dir, "log.txt")
    if not os.path.isfile(log):
        raise FileNotFoundError(f"{log}: expected a run's log.txt, found none")
    return plot_training_curves(parse_training_curves(log), os.path.join(out_dir, "training_curves.png"), title=log)
