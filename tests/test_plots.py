"""Accuracy-vs-shots and training-curve figures: written atomically, PNG of the documented size, not blank."""
import os

import pytest

from dpt.reporting import plots, tables
from dpt.tools import plots as plot_cli
from dpt.tools import results
from helpers import COOP_VARIANT, assert_png, expected_size, trained_dir, write_log


def test_accuracy_vs_shots_cli(fewshot_root, tmp_path, capsys):
    out = tmp_path / "figs"
    assert plot_cli.main([fewshot_root, "--out", str(out)]) == 0
    path = str(out / "accuracy_vs_shots.png")
    assert capsys.readouterr().out.strip() == f"Wrote {path}"
    # oxford_pets, eurosat and Average: three panels in one row
    assert_png(path, expected_size(3, plots.MAX_COLUMNS))


def test_accuracy_vs_shots_wraps_panels(tmp_path):
    root = str(tmp_path / "output")
    datasets = tables.FEWSHOT_DATASETS[:5]
    for i, dataset in enumerate(datasets):
        for shots, base in ((1, 50.0), (4, 60.0), (16, 70.0)):
            for seed in (1, 2, 3):
                folder = trained_dir(root, dataset, "CoOp", "vit_b32", shots, COOP_VARIANT, seed)
                write_log(folder, base + i + seed / 10)
    path = plots.write_shot_plot(root, str(tmp_path / "figs"))
    assert_png(path, expected_size(len(datasets) + 1, plots.MAX_COLUMNS))


def test_results_cli_writes_plot(fewshot_root, tmp_path):
    out = tmp_path / "from_results"
    assert results.main([fewshot_root, "--plots", str(out)]) == 0
    assert_png(str(out / "accuracy_vs_shots.png"), expected_size(3, plots.MAX_COLUMNS))


def test_training_curves_cli(tmp_path, capsys):
    run = str(tmp_path / "run")
    losses, lrs = [2.0, 1.6, 1.3, 1.1, 1.0, 0.95], [1e-5, 2e-3, 1.9e-3, 1.6e-3, 1.2e-3, 8e-4]
    write_log(run, 75.0, epochs=6, batches=3, losses=losses, lrs=lrs)
    out = tmp_path / "figs"
    assert plot_cli.main(["--run", run, "--out", str(out)]) == 0
    path = str(out / "training_curves.png")
    assert capsys.readouterr().out.strip() == f"Wrote {path}"
    # loss, acc and lr panels side by side
    assert_png(path, expected_size(3, 3))


def test_plot_overwrite_is_atomic_replacement(fewshot_root, tmp_path):
    out = tmp_path / "figs"
    first = plots.write_shot_plot(fewshot_root, str(out))
    inode = os.stat(first).st_ino
    second = plots.write_shot_plot(fewshot_root, str(out))
    assert first == second and os.stat(second).st_ino != inode
    assert_png(second, expected_size(3, plots.MAX_COLUMNS))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x"], "give exactly one of OUTPUT_ROOT or --run"),
        (["some_root", "--run", "r", "--out", "x"], "give exactly one of OUTPUT_ROOT or --run"),
        (["--run", "{eval}", "--out", "x"], "no training batch lines"),
        (["--run", "{absent}", "--out", "x"], "expected a run's log.txt"),
    ],
)
def test_plot_cli_errors(tmp_path, capsys, argv, message):
    eval_run = str(tmp_path / "eval")
    write_log(eval_run, 60.0, eval_only=True)
    argv = [a.format(eval=eval_run, absent=str(tmp_path / "absent")) for a in argv]
    assert plot_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
