"""Log parsing, parse_test_res-style summaries, result tables, the paper CSV and its comparison.

Synthetic output trees with log.txt files in the engine's exact format (docs/reference.md 4.2, 4.3, 6);
expected numbers are recomputed here with ``statistics``, never copied from the tools' output.
"""
import csv
import io
import math
import os
import statistics

import pytest

from dpt.reporting import logparse, paper, runs, tables
from dpt.tools import logparse as logparse_cli
from dpt.tools import results
from helpers import COOP_VARIANT, DPT_VARIANT, FEWSHOT, ZEROSHOT, cell_text, markdown_rows, trained_dir, write_log

DATASETS = ("oxford_pets", "eurosat")


def finished(key):
    return [a for a in FEWSHOT[key] if a is not None]


# ----- logparse ---------------------------------------------------------------------------------


def test_final_result_counts_only_after_finish_training(tmp_path):
    path = write_log(str(tmp_path / "run"), 81.0, f1=80.5, val_acc=12.0)
    result = logparse.parse_final_result(path)
    assert result.finished
    assert result.metrics == {"accuracy": 81.0, "error": 19.0, "macro_f1": 80.5}


def test_last_match_after_signal_wins(tmp_path):
    path = write_log(str(tmp_path / "run"), 81.0)
    with open(path, "a") as fh:
        fh.write("=> result\n* accuracy: 82.5%\n")
    assert logparse.parse_metric(path) == 82.5
    assert logparse.parse_final_result(path).metrics["accuracy"] == 82.5


def test_crashed_training_with_validation_results_is_unfinished(tmp_path):
    path = write_log(str(tmp_path / "run"), None, finish=False, val_acc=30.0)
    result = logparse.parse_final_result(path)
    assert not result.finished and result.reason == "training did not finish"
    assert logparse.parse_metric(path) is None


def test_eval_only_log_uses_result_block(tmp_path):
    path = write_log(str(tmp_path / "zs"), 63.4, eval_only=True)
    assert logparse.parse_final_result(path).metrics["accuracy"] == 63.4
    assert logparse.parse_metric(path) is None  # parse_test_res default signal is "Finish training"
    assert logparse.parse_metric(path, end_signal=logparse.END_SIGNAL_TEST) == 63.4
    assert logparse.parse_metric(path, "macro_f1", logparse.END_SIGNAL_TEST) == 62.9


def test_training_curves_running_means_and_lr_in_effect(tmp_path):
    losses, lrs = [1.5, 1.2, 0.9], [1e-5, 2e-3, 1.5e-3]
    path = write_log(str(tmp_path / "run"), 70.0, epochs=3, batches=2, losses=losses, lrs=lrs)
    curves = logparse.parse_training_curves(path)
    assert [c.epoch for c in curves] == [1, 2, 3] and all(c.max_epoch == 3 for c in curves)
    assert [c.meters["loss"] for c in curves] == losses
    assert [c.meters["acc"] for c in curves] == [40.0, 41.0, 42.0]
    assert set(curves[0].meters) == {"loss", "acc"}
    assert [c.lr for c in curves] == lrs


def test_training_curves_when_only_last_batch_is_printed(tmp_path):
    lrs = [1e-5, 2e-3, 1.5e-3]
    path = write_log(str(tmp_path / "run"), 70.0, epochs=3, batches=5, lrs=lrs, only_last_batch=True)
    curves = logparse.parse_training_curves(path)
    assert math.isnan(curves[0].lr)
    assert [c.lr for c in curves[1:]] == lrs[1:]


def test_old_dassl_batch_line_format(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("epoch [1/4][2/3]\ttime 0.1 (0.2)\tdata 0.0 (0.0)\teta 0:00:01\t"
                    "loss 1.0 (1.25)\tacc 50.0 (55.0)\tlr 2.000000e-03\n")
    (curve,) = logparse.parse_training_curves(str(path))
    assert (curve.epoch, curve.max_epoch, curve.meters, curve.lr) == (1, 4, {"loss": 1.25, "acc": 55.0}, 2e-3)
    assert (curve.timing, curve.num_batches) == ({"time": 0.2, "data": 0.0}, 3)


def _seed_dirs(tmp_path, accs, **kwargs):
    directory = tmp_path / "exp"
    for seed, acc in enumerate(accs, start=1):
        write_log(str(directory / f"seed{seed}"), acc, **kwargs)
    return str(directory)


@pytest.mark.parametrize("ci95", [False, True])
def test_parse_test_res_summary_format(tmp_path, capsys, ci95):
    accs = [81.2, 79.9, 80.4]
    directory = _seed_dirs(tmp_path, accs)
    assert logparse_cli.main([directory] + (["--ci95"] if ci95 else [])) == 0
    spread = statistics.pstdev(accs) * (1.96 / math.sqrt(3) if ci95 else 1)
    expected = [f"Parsing files in {directory}"]
    for seed, acc in enumerate(accs, start=1):
        expected.append(f"file: {os.path.join(directory, f'seed{seed}', 'log.txt')}. accuracy: {acc:.2f}%. ")
    summary = f"* accuracy: {statistics.fmean(accs):.2f}% +- {spread:.2f}%"
    expected += ["===", f"Summary of directory: {directory}", summary, "==="]
    assert capsys.readouterr().out.split("\n")[:-1] == expected


def test_parse_test_res_test_log_keyword_and_multi_exp(tmp_path, capsys):
    directory = _seed_dirs(tmp_path, [60.0, 62.0], eval_only=True)
    assert logparse_cli.main([directory]) == 2  # no "Finish training" in eval-only logs
    assert "no '* accuracy:' line" in capsys.readouterr().err
    assert logparse_cli.main([directory, "--test-log", "--keyword", "macro_f1"]) == 0
    assert "* macro_f1: 60.50% +- 1.00%" in capsys.readouterr().out
    assert logparse_cli.main([str(tmp_path), "--test-log", "--multi-exp"]) == 0
    assert capsys.readouterr().out.split("\n")[-3:-1] == ["Average performance", "* accuracy: 61.00%"]


def test_parse_test_res_requires_log_in_every_folder(tmp_path, capsys):
    directory = _seed_dirs(tmp_path, [60.0])
    os.makedirs(os.path.join(directory, "seed2"))
    assert logparse_cli.main([directory]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seed2" in err and "log.txt" in err


# ----- results tables ---------------------------------------------------------------------------


def test_markdown_table_cells_and_averages(fewshot_root, capsys):
    assert results.main([fewshot_root, "--format", "markdown"]) == 0
    rows = markdown_rows(capsys.readouterr().out)
    coop16 = rows[("CoOp", "16")]
    pets = finished(("CoOp", "vit_b32", COOP_VARIANT, 16, "oxford_pets"))
    euro = finished(("CoOp", "vit_b32", COOP_VARIANT, 16, "eurosat"))
    assert coop16["oxford_pets"] == cell_text(pets)
    assert coop16["eurosat"] == cell_text(euro) and coop16["eurosat"].endswith("(2/3)")
    assert coop16["Average"] == f"{(statistics.fmean(pets) + statistics.fmean(euro)) / 2:.2f} (partial seeds)"
    coop1 = rows[("CoOp", "1")]
    means = [statistics.fmean(finished(("CoOp", "vit_b32_ep50", COOP_VARIANT, 1, d))) for d in DATASETS]
    assert coop1["Average"] == f"{sum(means) / 2:.2f}"
    # DPT's ep60 (oxford_pets) and default-epoch (eurosat) configs form one setting and one row
    dpt16 = rows[("DPT", "16")]
    assert dpt16["oxford_pets"] == cell_text(FEWSHOT[("DPT", "vit_b32_deep_ep60", DPT_VARIANT, 16, "oxford_pets")])
    assert dpt16["eurosat"] == cell_text([88.3, 87.9])
    assert rows[("DPT", "1")]["eurosat"] == "-" and rows[("DPT", "1")]["Average"] == "incomplete (1/2)"
    zs = rows[("ZeroshotCLIP", "0")]
    assert (zs["oxford_pets"], zs["eurosat"]) == ("85.80", "45.20")
    assert zs["Average"] == f"{(85.8 + 45.2) / 2:.2f}"
    assert list(rows)[0] == ("ZeroshotCLIP", "0") and list(coop16)[2:] == ["oxford_pets", "eurosat", "Average"]


def test_missing_and_unfinished_report(fewshot_root, capsys):
    results.main([fewshot_root, "--format", "markdown"])
    out = capsys.readouterr().out
    report = out[out.index("Missing and unfinished runs"):]
    lines = [ln for ln in report.splitlines() if ln.startswith("|")][2:]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    coop_seed3 = trained_dir(fewshot_root, "eurosat", "CoOp", "vit_b32", 16, COOP_VARIANT, 3)
    dpt_seed2 = trained_dir(fewshot_root, "eurosat", "DPT", "vit_b32_deep", 16, DPT_VARIANT, 2)
    statuses = {(c[0], c[1], c[2], c[3], c[4]): c[5] for c in cells}
    assert statuses[("missing", "eurosat", f"CoOp/vit_b32_16shots/{COOP_VARIANT}", "16", "3")].startswith(coop_seed3)
    unfinished = statuses[("unfinished", "eurosat", f"DPT/vit_b32_deep_16shots/{DPT_VARIANT}", "16", "2")]
    assert unfinished.startswith(dpt_seed2) and "training did not finish" in unfinished
    assert statuses[("missing", "eurosat", "DPT", "1", "-")] == "no run folder (fewshot table)"
    assert len(cells) == 3 and f"Missing and unfinished runs ({len(cells)})" in report


def test_csv_long_format(fewshot_root, capsys):
    assert results.main([fewshot_root, "--format", "csv", "--ci95"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    by_key = {(r["trainer"], r["shots"], r["dataset"]): r for r in rows}
    euro = finished(("CoOp", "vit_b32", COOP_VARIANT, 16, "eurosat"))
    cell = by_key[("CoOp", "16", "eurosat")]
    ci = 1.96 * statistics.pstdev(euro) / math.sqrt(2)
    assert (cell["mean"], cell["spread"], cell["spread_kind"]) == (f"{statistics.fmean(euro):.2f}", f"{ci:.2f}", "ci95")
    counts = (cell["n"], cell["n_expected"], cell["status"], cell["setting"])
    assert counts == ("2", "3", "partial", f"vit_b32/{COOP_VARIANT}")
    assert by_key[("DPT", "1", "eurosat")]["status"] == "missing"
    assert by_key[("DPT", "1", "Average")]["status"] == "incomplete"
    assert by_key[("ZeroshotCLIP", "0", "Average")]["mean"] == f"{(85.8 + 45.2) / 2:.2f}"
    assert "Missing and unfinished runs (3)" in captured.err


def test_metric_seeds_and_select(fewshot_root, capsys):
    argv = ["--format", "markdown", "--metric", "macro_f1", "--seeds", "1", "2", "--select", "CoOp/*"]
    assert results.main([fewshot_root, *argv]) == 0
    out = capsys.readouterr().out
    rows = markdown_rows(out)
    assert {m for m, _ in rows} == {"CoOp"}
    f1 = [a - 0.5 for a in FEWSHOT[("CoOp", "vit_b32", COOP_VARIANT, 16, "oxford_pets")][:2]]
    assert rows[("CoOp", "16")]["oxford_pets"] == cell_text(f1, expected=2)
    f1 = [a - 0.5 for a in FEWSHOT[("CoOp", "vit_b32", COOP_VARIANT, 16, "eurosat")]]
    assert rows[("CoOp", "16")]["eurosat"] == cell_text(f1, expected=2)
    assert "| ignored" in out and "seed not in --seeds" in out


def test_conflicting_configs_in_one_cell_are_not_merged(fewshot_root, capsys):
    write_log(trained_dir(fewshot_root, "eurosat", "DPT", "vit_b32_deep_ep60", 16, DPT_VARIANT, 1), 70.0)
    results.main([fewshot_root, "--format", "markdown"])
    out = capsys.readouterr().out
    assert markdown_rows(out)[("DPT", "16")]["eurosat"] == "conflict"
    assert "configs vit_b32_deep, vit_b32_deep_ep60 share a cell; use --select" in out


@pytest.mark.parametrize("make", [False, True])
def test_exit_code_without_runs(tmp_path, capsys, make):
    root = tmp_path / "nothing"
    if make:
        (root / "oxford_pets" / "CoOp").mkdir(parents=True)
    assert results.main([str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(root) in err


@pytest.fixture
def dg_root(tmp_path):
    root = str(tmp_path / "output")
    scores = {"CoOp": [60.1, 52.3, 30.5, 31.2, 55.0], "DPT": [62.0, 52.0, 31.9, 30.1, 57.4]}
    variants = {"CoOp": ("vit_b32_ep50", COOP_VARIANT), "DPT": ("vit_b32_deep_ep20", DPT_VARIANT)}
    for trainer, (cfg, variant) in variants.items():
        source, *targets = scores[trainer]
        for seed in (1, 2, 3):
            write_log(trained_dir(root, "imagenet", trainer, cfg, 16, variant, seed), source + seed / 10)
            for dataset, acc in zip(tables.DG_TARGETS, targets):
                folder = os.path.join(root, "evaluation", trainer, f"{cfg}_16shots", variant, dataset, f"seed{seed}")
                write_log(folder, acc + seed / 10, eval_only=True)
    for dataset, acc in zip(("imagenet",) + tables.DG_TARGETS, [55.0, 48.0, 40.0, 30.0, 60.0]):
        write_log(os.path.join(root, "ZeroshotCLIP", "vit_b32", dataset), acc, eval_only=True)
    return root, scores


def test_domain_generalisation_table(dg_root, capsys):
    root, scores = dg_root
    assert results.main([root, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    dg = markdown_rows(out[out.index("Domain generalisation"):])
    offsets = [0.1, 0.2, 0.3]
    for trainer, values in scores.items():
        row = dg[(trainer, "16")]
        for dataset, acc in zip(("imagenet",) + tables.DG_TARGETS, values):
            assert row[dataset] == cell_text([acc + o for o in offsets])
        assert row["Average (targets)"] == f"{statistics.fmean(values[1:]) + 0.2:.2f}"
    assert dg[("ZeroshotCLIP", "0")]["imagenet_r"] == "60.00"
    assert dg[("ZeroshotCLIP", "0")]["Average (targets)"] == f"{statistics.fmean([48.0, 40.0, 30.0, 60.0]):.2f}"
    assert "All expected runs finished." in out


# ----- paper claims -----------------------------------------------------------------------------


def test_packaged_paper_csv_holds_only_stated_claims():
    claims = paper.load_claims()
    per_dataset = [c for c in claims if c.table == "fewshot"]
    assert len(per_dataset) == 55 and all(c.value is None for c in per_dataset)
    assert {c.dataset for c in per_dataset} == set(tables.FEWSHOT_DATASETS)
    assert {c.method for c in per_dataset} == {"ZeroshotCLIP", "CoOp", "VPT", "VLP", "DPT"} < set(tables.METHOD_ORDER)
    headline = {(c.method, c.metric): (c.relation, c.value) for c in claims if c.table == "headline"}
    assert headline[("DPT", "gain_over_ZeroshotCLIP")] == ("=", 17.6)
    assert headline[("DPT", "gain_over_CoOp")] == ("=", 3.53)
    assert headline[("VPT", "gain_over_CoOp")] == ("~", 1.0)
    assert headline[("DPT", "gain_over_VLP")] == ("~", 1.0)
    third_party = [c for c in claims if c.source.startswith("LoGoPrompt")]  # docs/reference.md 10.6
    assert all(c.source.startswith("arXiv 2208.08340v4") for c in claims if c.table != "b2n" and c not in third_party)
    dg = {(c.method, c.dataset): c.value for c in third_party if c.table == "dg"}
    assert len(dg) == 25 and dg[("DPT", "imagenet_a")] == 9.10 and dg[("ZeroshotCLIP", "imagenet_r")] == 73.96


def test_compare_paper_headline_difference(fewshot_root, capsys):
    assert results.main([fewshot_root, "--format", "markdown", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("Ours vs paper"):]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")][2:]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 10:
            rows[(cells[0], cells[1], cells[2], cells[4])] = cells
    dpt_pets = statistics.fmean(FEWSHOT[("DPT", "vit_b32_deep_ep60", DPT_VARIANT, 16, "oxford_pets")])
    dpt = statistics.fmean([dpt_pets, statistics.fmean([88.3, 87.9])])
    zs = statistics.fmean(ZEROSHOT.values())
    coop = statistics.fmean([statistics.fmean(finished(("CoOp", "vit_b32", COOP_VARIANT, 16, d))) for d in DATASETS])
    row = rows[("headline", "Average", "DPT", "gain_over_ZeroshotCLIP")]
    assert row[5:8] == ["= 17.60", f"{dpt - zs:.2f}", f"{dpt - zs - 17.6:+.2f}"]
    row = rows[("headline", "Average", "DPT", "gain_over_CoOp")]
    assert row[6:8] == [f"{dpt - coop:.2f}", f"{dpt - coop - 3.53:+.2f}"]
    assert "over 2 datasets" in row[9]
    vlp = rows[("headline", "Average", "VLP", "gain_over_VPT")]
    assert vlp[6:9] == ["", "", "n/a"] and "no runs" in vlp[9]
    assert "55 row(s)" in section


def test_compare_paper_dg_checks_and_custom_csv(dg_root, tmp_path, capsys):
    root, scores = dg_root
    custom = tmp_path / "paper.csv"
    with open(paper.PAPER_CSV) as src:
        text = src.read()
    text = text.replace("fewshot,imagenet,DPT,16,accuracy,=,,", "fewshot,imagenet,DPT,16,accuracy,=,61.5,")
    custom.write_text(text)
    assert results.main([root, "--format", "csv", "--compare-paper", "--paper-csv", str(custom)]) == 0
    out = capsys.readouterr().out
    block = out[out.index("table,dataset,method,shots,metric,paper"):]
    rows = {(r["table"], r["dataset"], r["method"], r["metric"]): r for r in csv.DictReader(io.StringIO(block))}
    r = rows[("fewshot", "imagenet", "DPT", "accuracy")]
    assert (r["paper"], r["ours"], r["diff"]) == ("= 61.50", f"{62.2:.2f}", f"{62.2 - 61.5:+.2f}")
    # scores are [imagenet, imagenetv2, imagenet_sketch, imagenet_a, imagenet_r]; seed offsets cancel in gains
    r = rows[("dg", "imagenetv2", "DPT", "gain_over_CoOp")]
    assert (r["paper"], r["ours"], r["check"]) == ("> 0.00", f"{52.0 - 52.3:.2f}", "fails")
    r = rows[("dg", "imagenet_a", "DPT", "gain_over_CoOp")]
    assert (r["paper"], r["ours"], r["check"]) == ("< 0.00", f"{30.1 - 31.2:.2f}", "holds")
    r = rows[("dg", "imagenet_r", "DPT", "gain_over_CoOp")]
    assert (r["ours"], r["check"]) == (f"{57.4 - 55.0:.2f}", "holds")
    assert rows[("dg", "imagenetv2", "VPT", "gain_over_CoOp")]["check"] == "n/a"


def test_compare_paper_dg_accuracy_of_a_third_party(dg_root, capsys):
    """LoGoPrompt's Table 3 accuracies (ViT-B/16) are compared like any stated number, their note says whose."""
    root, scores = dg_root
    assert results.main([root, "--format", "csv", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("table,dataset,method,shots,metric,paper"):]
    rows = {(r["table"], r["dataset"], r["method"], r["metric"]): r for r in csv.DictReader(io.StringIO(block))}
    r = rows[("dg", "imagenet_a", "DPT", "accuracy")]
    ours = statistics.fmean(scores["DPT"][3] + seed / 10 for seed in (1, 2, 3))
    assert (r["paper"], r["ours"], r["diff"]) == ("= 9.10", f"{ours:.2f}", f"{ours - 9.10:+.2f}")
    assert "not the DPT paper's numbers" in r["note"]
    assert rows[("dg", "imagenet_r", "ZeroshotCLIP", "accuracy")]["ours"] == "60.00"


def test_paper_csv_validation(tmp_path, capsys):
    bad = tmp_path / "paper.csv"
    bad.write_text(",".join(paper.COLUMNS) + "\nheadline,Average,DPT,16,accuracy,>=,1,src,\n")
    with pytest.raises(ValueError, match=r"paper.csv:2: relation '>='"):
        paper.load_claims(str(bad))
    root = tmp_path / "out"
    write_log(str(root / "ZeroshotCLIP" / "vit_b32" / "dtd"), 40.0, eval_only=True)
    assert results.main([str(root), "--compare-paper", "--paper-csv", str(bad)]) == 2
    assert "relation '>='" in capsys.readouterr().err


def test_resumed_run_reads_the_newest_finished_log(tmp_path):
    """An interrupted run leaves log.txt unfinished; the resumed one writes log.txt-<timestamp> (Dassl)."""
    folder = trained_dir(tmp_path, "eurosat", "CoOp", "vit_b32", 16, COOP_VARIANT, 1)
    write_log(folder, acc=70.0, finish=False)
    write_log(folder, acc=81.3, name="log.txt-2026-11-27-01-00-00")
    collected = runs.collect_runs(str(tmp_path), seeds=[1])
    assert [(r.status, r.metrics["accuracy"]) for r in collected] == [("finished", 81.3)]
