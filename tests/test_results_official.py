"""dpt-results and dpt-plot on output trees of the official code next to ours: CoCoOp's layouts without a variant
level, the official DPT code's trainer name MyCoOp, and run folders of any name (the official DPT script writes
every run to ./output) identified by the arguments and config their Dassl log prints.
"""
import os
import statistics

from dpt.reporting import plots, runs, tables
from dpt.reporting.logged_run import logged_run
from dpt.tools import plots as plot_cli
from dpt.tools import results
from helpers import COOP_VARIANT, cell_text, markdown_rows, trained_dir, write_log


def dassl_header(trainer, dataset, cfg, shots, seed, opts=(), eval_only=False):
    """The top of a log.txt as Dassl's train.py prints it: sorted arguments, then the yacs config dump."""
    opts = list(opts) + ["DATASET.NUM_SHOTS", str(shots)]
    return [
        "***************", "** Arguments **", "***************",
        "backbone: ", f"config_file: ./configs/trainers/VPT/{cfg}.yaml",
        f"dataset_config_file: configs/datasets/{dataset}.yaml", f"eval_only: {eval_only}", "head: ",
        "load_epoch: None", "model_dir: ", "no_train: False", f"opts: {opts}", "output_dir: ./output",
        "resume: ", "root: ./datasets/EuroSAT", f"seed: {seed}", "source_domains: None", "target_domains: None",
        f"trainer: {trainer}", "transforms: None",
        "************", "** Config **", "************",
        "DATALOADER:", "  NUM_WORKERS: 2", "  TEST:", "    BATCH_SIZE: 50",
        "DATASET:", "  NAME: EuroSAT", f"  NUM_SHOTS: {shots}", "  ROOT: ./datasets/EuroSAT",
        "INPUT:", "  SIZE: (224, 224)", "MODEL:", "  BACKBONE:", "    NAME: ViT-B/32", "  INIT_WEIGHTS: ",
        "OUTPUT_DIR: ./output", f"SEED: {seed}", "TRAINER:", "  COOP:", "    CTX_INIT: ", "    N_CTX: 16",
        f"  NAME: {trainer}", "USE_CUDA: True", "Loading trainer: " + trainer,
    ]


def write_named_run(folder, acc, trainer="DPT", dataset="eurosat", cfg="vit_b32_deep", shots=1, seed=1,
                    name="log.txt", opts=("TRAINER.VPT.N_CTX", "10", "OPTIM.MAX_EPOCH", "60")):
    path = write_log(folder, acc, name=name)
    with open(path) as f:
        body = f.read()
    with open(path, "w") as f:
        f.write("\n".join(dassl_header(trainer, dataset, cfg, shots, seed, opts)) + "\n" + body)
    return path


DPT_ACCS = {1: 71.2, 2: 69.8}
MYCOOP_ACCS = {1: 55.5, 2: 57.1, 3: 56.0}
COOP_ACCS = [50.2, 55.7, 53.1]
COCOOP_ACCS = [60.3, 61.9, 59.4]
COCOOP_CFG = "vit_b16_c4_ep10_batch1_ctxv1"


def build_mixed_root(root):
    """Ours (CoOp), official CoCoOp (no variant level), official DPT named folders (DPT and MyCoOp)."""
    for seed, acc in enumerate(COOP_ACCS, start=1):
        write_log(trained_dir(root, "eurosat", "CoOp", "vit_b32_ep50", 1, COOP_VARIANT, seed), acc)
    for seed, acc in enumerate(COCOOP_ACCS, start=1):
        write_log(os.path.join(root, "eurosat", "CoCoOp", f"{COCOOP_CFG}_1shots", f"seed{seed}"), acc)
    for seed, acc in DPT_ACCS.items():
        write_named_run(os.path.join(root, f"dpt_eurosat_seed{seed}"), acc, seed=seed)
    # train_single.sh run again with --seed 3 into seed 1's folder: it only re-tested seed 1's checkpoint
    write_named_run(os.path.join(root, "dpt_eurosat_seed1"), 99.9, seed=3, name="log.txt-2023-01-02-03-04-05")
    for seed, acc in MYCOOP_ACCS.items():
        write_named_run(os.path.join(root, f"mycoop_s{seed}"), acc, trainer="MyCoOp", cfg="vit_b32_deep", seed=seed,
                        opts=("OPTIM.MAX_EPOCH", "60"))


def test_logged_run_reads_dassl_arguments_and_config(tmp_path):
    path = write_named_run(str(tmp_path / "run"), 70.0, seed=2)
    run = logged_run(path)
    assert run == logged_run(path) and (run.trainer, run.dataset, run.cfg, run.shots, run.seed) == \
        ("DPT", "eurosat", "vit_b32_deep", 1, 2)
    assert run.variant == "VPT.N_CTX=10" and not run.eval_only  # protocol keys (epochs, shots) are not a setting
    assert logged_run(write_log(str(tmp_path / "plain"), 70.0)) is None  # no arguments block: not identified


def test_official_trees_next_to_ours_in_one_table(tmp_path, capsys):
    root = str(tmp_path / "output")
    build_mixed_root(root)
    assert results.main([root, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    rows = markdown_rows(out)
    order = list(rows)
    assert sorted(order) == [("CoCoOp", "1"), ("CoOp", "1"), ("CoOp (MyCoOp)", "1"), ("DPT", "1")]
    assert order.index(("CoOp (MyCoOp)", "1")) == order.index(("CoOp", "1")) + 1  # marked, right after ours
    assert rows[("CoOp", "1")]["eurosat"] == cell_text(COOP_ACCS)
    assert rows[("CoOp (MyCoOp)", "1")]["eurosat"] == cell_text(list(MYCOOP_ACCS.values()))
    assert rows[("CoCoOp", "1")]["eurosat"] == cell_text(COCOOP_ACCS)
    assert rows[("DPT", "1")]["eurosat"] == cell_text(list(DPT_ACCS.values()))  # the 99.9 re-test is not counted
    report = [ln for ln in out[out.index("Missing and unfinished runs"):].splitlines() if ln.startswith("|")][2:]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in report]
    assert cells == [["missing", "eurosat", "DPT/vit_b32_deep_1shots/VPT.N_CTX=10", "1", "3",
                      f"{root} (no run folder with seed 3)"]]
    found = {r.path: r for r in runs.collect_runs(root)}
    rerun = found[os.path.join(root, "dpt_eurosat_seed1")]
    assert rerun.metrics["accuracy"] == DPT_ACCS[1] and "log.txt-2023-01-02-03-04-05" in rerun.note
    cocoop = found[os.path.join(root, "eurosat", "CoCoOp", f"{COCOOP_CFG}_1shots", "seed2")]
    assert (cocoop.variant, cocoop.setting, cocoop.group_id) == ("", "vit_b16_c4_batch1_ctxv1",
                                                                 f"CoCoOp/{COCOOP_CFG}_1shots")


def test_select_and_plot_read_official_trees(tmp_path, capsys):
    root = str(tmp_path / "output")
    build_mixed_root(root)
    assert results.main([root, "--format", "markdown", "--select", "MyCoOp/*", "CoCoOp/*"]) == 0
    assert list(markdown_rows(capsys.readouterr().out)) == [("CoOp (MyCoOp)", "1"), ("CoCoOp", "1")]
    fewshot, _ = tables.build_tables(runs.collect_runs(root))
    lines, _ = plots._series(fewshot)
    assert lines["CoOp (MyCoOp)"]["eurosat"] == [(1, statistics.fmean(MYCOOP_ACCS.values()))]
    assert lines["CoCoOp"]["eurosat"] == [(1, statistics.fmean(COCOOP_ACCS))]
    assert plot_cli.main([root, "--out", str(tmp_path / "plots")]) == 0
    assert os.path.getsize(tmp_path / "plots" / "accuracy_vs_shots.png") > 0


def test_cocoop_evaluation_layout_without_variant(tmp_path, capsys):
    """scripts/cocoop/xd_*.sh: output/imagenet/<T>/<cfg>_16shots/seed<S> and
    output/evaluation/<T>/<cfg>_16shots/<dataset>/seed<S>."""
    root = str(tmp_path / "output")
    for seed in (1, 2, 3):
        write_log(os.path.join(root, "imagenet", "CoCoOp", f"{COCOOP_CFG}_16shots", f"seed{seed}"), 70.0 + seed)
        for i, dataset in enumerate(tables.DG_TARGETS):
            folder = os.path.join(root, "evaluation", "CoCoOp", f"{COCOOP_CFG}_16shots", dataset, f"seed{seed}")
            write_log(folder, 50.0 + i + seed, eval_only=True)
    assert results.main([root, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    dg = markdown_rows(out[out.index("Domain generalisation"):])[("CoCoOp", "16")]
    assert dg["imagenet"] == cell_text([71.0, 72.0, 73.0])
    assert dg["imagenet_sketch"] == cell_text([52.0, 53.0, 54.0])
    assert dg["Average (targets)"] == f"{statistics.fmean([51.5 + i for i in range(4)]) + 0.5:.2f}"
    assert "All expected runs finished." in out


def test_root_that_is_itself_a_run_and_repeated_seeds(tmp_path, capsys):
    """The official DPT script's ./output is one run; a copy of a run folder is ignored, not averaged twice."""
    output = str(tmp_path / "output")
    write_named_run(output, 64.0)
    assert results.main([output, "--format", "markdown", "--seeds", "1"]) == 0
    assert markdown_rows(capsys.readouterr().out)[("DPT", "1")]["eurosat"] == "64.00"
    root = str(tmp_path / "many")
    write_named_run(os.path.join(root, "a"), 64.0)
    write_named_run(os.path.join(root, "b_copy"), 64.0)
    found = sorted(runs.collect_runs(root, seeds=(1,)), key=lambda r: r.path)
    assert [r.status for r in found] == ["finished", "ignored"]
    assert found[1].note == f"same run as {os.path.join(root, 'a')}"
    found = sorted(runs.collect_runs(root, seeds=(2,)), key=lambda r: (r.status, r.path))  # seed 1 not expected
    assert [(r.status, r.seed) for r in found] == [("ignored", 1), ("ignored", 1), ("missing", 2)]
