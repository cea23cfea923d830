"""``dpt-plot OUTPUT_ROOT --out DIR`` | ``dpt-plot --run RUN_DIR --out DIR``: the figures of dpt.reporting.plots.

An output tree gives ``accuracy_vs_shots.png`` (few-shot runs) and ``base_vs_new.png`` (base-to-novel runs);
one run gives ``training_curves.png``.
"""
from __future__ import annotations

import argparse
import sys

from dpt.errors import ArgumentParser, cli_main
from dpt.reporting.plots import write_b2n_plot, write_run_plot, write_shot_plot


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="dpt-plot",
        description="Accuracy-vs-shots and base-vs-new plots of an output tree, or the training curves of one run."
    )
    parser.add_argument("output_root", nargs="?", help="output tree (as for dpt-results)")
    parser.add_argument("--run", metavar="RUN_DIR", help="plot the training curves of this run instead")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files")
    parser.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy", help="value to plot")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="expected seeds (default 1 2 3)")
    parser.add_argument("--select", nargs="+", default=[], metavar="GLOB",
                        help="keep only runs whose Trainer/<cfg>_<N>shots/<variant> (ZeroshotCLIP/<cfg>) matches")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Write the figures and print their paths."""
    if (args.output_root is None) == (args.run is None):
        raise ValueError("give exactly one of OUTPUT_ROOT or --run RUN_DIR")
    if args.run is not None:
        paths = [write_run_plot(args.run, args.out)]
    else:
        plot_args = (args.output_root, args.out, args.seeds, args.metric, args.select)
        paths = [p for p in [write_b2n_plot(*plot_args)] if p]
        try:
            paths.insert(0, write_shot_plot(*plot_args))
        except ValueError:
            if not paths:  # neither few-shot nor base-to-novel results
                raise
    print("\n".join(f"Wrote {path}" for path in paths))


if __name__ == "__main__":
    sys.exit(main())
