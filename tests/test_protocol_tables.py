"""dpt-results / dpt-plot on base-to-novel and cross-dataset output trees (logs in the engine's exact format).

Expected numbers are recomputed here with ``statistics``, never copied from the tools' output.
"""
from __future__ import annotations

import csv
import io
import os
import statistics

import pytest

from dpt.reporting import paper, plots, runs
from dpt.reporting.base2new import compare_b2n, harmonic_mean
from dpt.tools import plots as plot_cli
from dpt.tools import results
from helpers import COOP_VARIANT, assert_png, cell_text, expected_size, markdown_rows, trained_dir, write_log

# (trainer, cfg, dataset) -> (base accuracies per seed 1..3, new accuracies); None = unfinished
B2N = {
    ("CoOp", "vit_b32_ep200", "eurosat"): ([90.1, 88.3, 89.0], [60.2, 55.1, 58.0]),
    ("CoOp", "vit_b32_ep200", "dtd"): ([80.0, 81.0, 79.5], [50.0, 52.5]),
    ("DPT", "vit_b32_ep100", "eurosat"): ([92.0, 91.0, 93.5], [65.0, 66.2, 64.1]),
    ("DPT", "vit_b32_ep100", "dtd"): ([83.3, None, 82.1], [55.0, 54.0, 57.7]),
    # an official CoCoOp tree: <Trainer>/<cfg>/seed<S>, the cfg names its own epochs
    ("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "eurosat"): ([87.5, 87.2, 88.0], [60.0, 61.3, 59.9]),
}
ZEROSHOT_B2N = {"eurosat": (56.5, 64.1), "dtd": (53.2, 59.9)}


def b2n_dir(root, phase, dataset, trainer, cfg, seed=None, shots=16):
    path = os.path.join(root, "base2new", phase, dataset, f"shots_{shots}", trainer, cfg)
    return path if seed is None else os.path.join(path, f"seed{seed}")


@pytest.fixture
def b2n_root(tmp_path):
    root = str(tmp_path / "output")
    for (trainer, cfg, dataset), (base, new) in B2N.items():
        for seed, acc in enumerate(base, start=1):
            write_log(b2n_dir(root, "train_base", dataset, trainer, cfg, seed), acc, finish=acc is not None)
        for seed, acc in enumerate(new, start=1):
            write_log(b2n_dir(root, "test_new", dataset, trainer, cfg, seed), acc, eval_only=True)
    for dataset, (base, new) in ZEROSHOT_B2N.items():
        write_log(b2n_dir(root, "train_base", dataset, "ZeroshotCLIP", "vit_b32", shots=0), base, eval_only=True)
        write_log(b2n_dir(root, "test_new", dataset, "ZeroshotCLIP", "vit_b32", shots=0), new, eval_only=True)
    return root


def table_after(text, title):
    """The table printed below the line starting with ``title`` (blocks are separated by blank lines)."""
    return text[text.index(title):].split("\n\n")[1]


def b2n_rows(text):
    """{(dataset, method, shots): row} of the base-to-novel markdown table."""
    lines = [ln for ln in table_after(text, "Base-to-novel").splitlines() if ln.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(headers, (c.strip() for c in line.strip("|").split("|"))))
        rows[(cells["Dataset"], cells["Method"], cells["Shots"])] = cells
    return rows


def finished(values):
    return [v for v in values if v is not None]


def test_runs_of_the_cocoop_layout(b2n_root):
    collected = runs.collect_runs(b2n_root)
    kinds = {(r.kind, r.trainer, r.dataset, r.seed) for r in collected}
    assert ("b2n_base", "CoCoOp", "eurosat", 3) in kinds and ("b2n_new", "ZeroshotCLIP", "dtd", None) in kinds
    missing = [r for r in collected if r.status == "missing"]
    assert [(r.kind, r.trainer, r.dataset, r.seed) for r in missing] == [("b2n_new", "CoOp", "dtd", 3)]
    coop = next(r for r in collected if r.trainer == "CoOp" and r.kind == "b2n_base")
    assert (coop.group_id, coop.setting, coop.shots) == ("CoOp/vit_b32_ep200_16shots", "vit_b32", 16)


def test_base_to_novel_table_cells_hm_and_average(b2n_root, capsys):
    assert results.main([b2n_root, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    rows = b2n_rows(out)
    base, new = B2N[("DPT", "vit_b32_ep100", "eurosat")]
    dpt = rows[("eurosat", "DPT", "16")]
    assert (dpt["Base"], dpt["New"]) == (cell_text(base), cell_text(new))
    assert dpt["HM"] == f"{harmonic_mean(statistics.fmean(base), statistics.fmean(new)):.2f}"
    assert rows[("dtd", "DPT", "16")]["Base"] == cell_text(finished(B2N[("DPT", "vit_b32_ep100", "dtd")][0]))
    assert rows[("dtd", "CoOp", "16")]["New"].endswith("(2/3)")
    means = {d: [statistics.fmean(finished(v)) for v in B2N[("CoOp", "vit_b32_ep200", d)]] for d in ("eurosat", "dtd")}
    avg_base = statistics.fmean(m[0] for m in means.values())
    avg_new = statistics.fmean(m[1] for m in means.values())
    coop = rows[("Average", "CoOp", "16")]
    assert coop["Base"] == f"{avg_base:.2f}" and coop["New"] == f"{avg_new:.2f} (partial seeds)"
    assert coop["HM"] == f"{harmonic_mean(avg_base, avg_new):.2f}"  # the HM of the averages, as in CoCoOp's tables
    zs = rows[("eurosat", "ZeroshotCLIP", "0")]
    assert (zs["Base"], zs["New"], zs["HM"]) == ("56.50", "64.10", f"{harmonic_mean(56.5, 64.1):.2f}")
    cocoop = rows[("Average", "CoCoOp", "16")]
    assert (cocoop["Base"], cocoop["HM"]) == ("incomplete (1/2)", "-")
    assert rows[("dtd", "CoCoOp", "16")]["Base"] == "-"
    order = [key[1] for key in rows if key[0] == "eurosat"]
    assert order == ["ZeroshotCLIP", "CoOp", "CoCoOp", "DPT"]  # METHOD_ORDER
    assert "Few-shot test" not in out  # no few-shot runs: no empty table
    problems = out[out.index("Missing and unfinished runs"):]
    assert "| missing    | dtd       | CoOp/vit_b32_ep200_16shots" in problems and "unfinished" in problems


def test_base_to_novel_csv_columns(b2n_root, capsys):
    assert results.main([b2n_root, "--table", "b2n", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by_key = {(r["trainer"], r["dataset"]): r for r in rows}
    base, new = B2N[("DPT", "vit_b32_ep100", "eurosat")]
    dpt = by_key[("DPT", "eurosat")]
    assert (dpt["base"], dpt["new"]) == (f"{statistics.fmean(base):.2f}", f"{statistics.fmean(new):.2f}")
    assert dpt["base_spread"] == f"{statistics.pstdev(base):.2f}" and dpt["base_n"] == "3"
    assert dpt["hm"] == f"{harmonic_mean(statistics.fmean(base), statistics.fmean(new)):.2f}"
    assert (dpt["status"], by_key[("CoOp", "dtd")]["status"], by_key[("CoCoOp", "dtd")]["status"]) == (
        "complete", "partial", "missing")
    assert by_key[("CoCoOp", "Average")]["status"] == "incomplete" and by_key[("CoCoOp", "Average")]["hm"] == ""
    assert by_key[("ZeroshotCLIP", "dtd")]["n_expected"] == "1"
    assert results.main([b2n_root, "--format", "csv"]) == 0  # the long format holds the base and new cells
    long_rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["table"] for r in long_rows} == {"b2n_base", "b2n_new"}


def test_base_vs_new_plot(b2n_root, tmp_path, capsys):
    assert plot_cli.main([b2n_root, "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"Wrote {tmp_path / 'figs' / 'base_vs_new.png'}"  # no few-shot runs: no shots plot
    assert_png(str(tmp_path / "figs" / "base_vs_new.png"), expected_size(3, plots.MAX_COLUMNS))


def b2n_comparison_rows(text):
    """{(dataset, method): row} of the "ours vs published" base-to-novel markdown table (first source only)."""
    lines = [ln for ln in table_after(text, "Base-to-novel, ours vs published").splitlines() if ln.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(headers, (c.strip() for c in line.strip("|").split("|"))))
        rows.setdefault((cells["Dataset"], cells["Method"]), cells)
    return rows


def test_base_to_novel_compare_paper_puts_ours_beside_the_published(b2n_root, capsys):
    assert results.main([b2n_root, "--table", "b2n", "--format", "markdown", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    assert "Ours vs paper (accuracy" not in out  # --table b2n: only the base-to-novel comparison
    rows = b2n_comparison_rows(out)
    base, new = (statistics.fmean(v) for v in B2N[("DPT", "vit_b32_ep100", "eurosat")])
    dpt = rows[("eurosat", "DPT")]  # LoGoPrompt's run of the official DPT code: 93.07 / 28.61 / 43.76
    assert [dpt[k] for k in ("Paper Base", "Paper New", "Paper HM")] == ["93.07", "28.61", "43.76"]
    assert [dpt[k] for k in ("Ours Base", "Ours New", "Ours HM")] == [
        f"{base:.2f}", f"{new:.2f}", f"{harmonic_mean(base, new):.2f}"]
    assert [dpt[k] for k in ("diff Base", "diff New", "diff HM")] == [
        f"{base - 93.07:+.2f}", f"{new - 28.61:+.2f}", f"{harmonic_mean(base, new) - 43.76:+.2f}"]
    assert "LoGoPrompt" in dpt["Source"] and "not the DPT paper's numbers" in dpt["Note"]
    zs = rows[("eurosat", "ZeroshotCLIP")]  # CoCoOp Table 1's CLIP row, read against our shots-0 runs
    assert (zs["Paper HM"], zs["Ours Base"], zs["diff New"]) == ("60.03", "56.50", f"{64.1 - 64.05:+.2f}")
    assert "CoCoOp" in zs["Source"]
    assert (rows[("Average", "CoCoOp")]["Ours HM"], rows[("Average", "CoCoOp")]["Note"].split("; ")[0]) == (
        "", "incomplete")
    assert rows[("oxford_pets", "CoOp")]["Ours Base"] == "" and rows[("oxford_pets", "CoOp")]["Note"].startswith(
        "no result; ")
    assert not any(method in ("MaPLe", "IVLP", "PromptSRC", "KgCoOp", "VPT") for _, method in rows)  # no runs here
    assert "methods without runs here: IVLP, KgCoOp, MaPLe, PromptSRC, VPT." in out
    assert "HM of its Base 95.20 and New 17.22 is 29.16" in rows[("oxford_flowers", "DPT")]["Note"]


def test_base_to_novel_compare_paper_csv(b2n_root, capsys):
    assert results.main([b2n_root, "--table", "b2n", "--format", "csv", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("dataset,method,paper_base"):]
    listed = list(csv.DictReader(io.StringIO(block)))
    rows = {(r["dataset"], r["method"], r["source"]): r for r in listed}
    coop = rows[("dtd", "CoOp", "Zhou et al. CVPR 2022 (CoCoOp) Table 1")]
    base, new = (statistics.fmean(finished(v)) for v in B2N[("CoOp", "vit_b32_ep200", "dtd")])
    assert (coop["paper_base"], coop["ours_new"], coop["diff_hm"]) == (
        "79.44", f"{new:.2f}", f"{harmonic_mean(base, new) - 54.24:+.2f}")
    ivlp = [r for r in listed if (r["dataset"], r["method"]) == ("Average", "IVLP")]
    assert sorted(r["paper_hm"] for r in ivlp) == ["77.51", "77.56", "77.90"]  # one row per published setting
    assert {r["status"] for r in ivlp} == {"no runs"} and coop["status"] == "" and "Table 1" in coop["source"]


def test_published_base_to_novel_rows_are_consistent():
    """Each transcribed HM is the HM of its Base and New, except the two the source computed otherwise."""
    claims = [c for c in paper.load_claims() if c.table == "b2n"]
    assert all(c.source and c.relation == "=" and c.shots in (0, 16) for c in claims)
    published = compare_b2n(claims, None)
    # CoCoOp Table 1, the README averages, MaPLe / PromptSRC / IVLP per dataset, LoGoPrompt's DPT rows
    assert len(published) == 12 * 3 + 7 + 11 * 3 + 12
    assert all(None not in r.paper and r.ours == (None, None, None) and r.status == "no b2n runs"
               for r in published)
    off = {(r.dataset, r.method) for r in published if abs(harmonic_mean(*r.paper[:2]) - r.paper[2]) > 0.011}
    assert off == {("oxford_flowers", "DPT"), ("Average", "DPT")}
    dpt = {r.dataset: r.paper[2] for r in published if r.method == "DPT"}
    average = dpt.pop("Average")
    assert round(statistics.fmean(dpt.values()), 2) == average  # LoGoPrompt's Average HM: mean of the printed HMs


MAPLE_TABLE = "Khattak et al. CVPR 2023 (MaPLe) Table 3, arXiv 2210.03117"
MAPLE_README = "MaPLe README (Khattak et al. CVPR 2023), muzairkhattak/multimodal-prompt-learning"
PROMPTSRC_README = "PromptSRC README (Khattak et al. ICCV 2023), muzairkhattak/PromptSRC"
# source of per-dataset rows -> source of the Average its 11-dataset mean must reproduce (default: the same one)
AVERAGE_SOURCE = {MAPLE_TABLE: MAPLE_README,
                  "Khattak et al. ICCV 2023 (PromptSRC) Table 1, arXiv 2307.06948": PROMPTSRC_README,
                  "Khattak et al. ICCV 2023 (PromptSRC) supplementary per-dataset table, arXiv 2307.06948":
                      PROMPTSRC_README}


def test_published_per_dataset_rows_average_to_the_published_average():
    """The mean of each source's 11 per-dataset Base (New) is the published Average to its printed precision."""
    published = compare_b2n(paper.load_claims(), None)
    per_dataset = {}
    for r in published:
        if r.dataset != "Average":
            per_dataset.setdefault((r.method, r.source), []).append(r.paper)
    assert sorted(method for method, _ in per_dataset) == ["CoCoOp", "CoOp", "DPT", "IVLP", "MaPLe", "PromptSRC",
                                                           "ZeroshotCLIP"]
    for (method, source), triples in per_dataset.items():
        assert len(triples) == 11, (method, source)
        [average] = [r.paper for r in published
                     if (r.dataset, r.method, r.source) == ("Average", method, AVERAGE_SOURCE.get(source, source))]
        for i in (0, 1):  # Base, New
            assert abs(statistics.fmean(t[i] for t in triples) - average[i]) <= 0.005, (method, source, i)


def test_compare_paper_puts_maple_per_dataset_rows_beside_ours(b2n_root, capsys):
    base, new = [94.2, 93.9, 94.5], [70.1, 74.0, 72.6]  # a MaPLe run on one dataset: the Average stays incomplete
    cfg = "vit_b16_c2_ep5_batch4_2ctx"
    for seed, (b, n) in enumerate(zip(base, new), start=1):
        write_log(b2n_dir(b2n_root, "train_base", "eurosat", "MaPLe", cfg, seed), b)
        write_log(b2n_dir(b2n_root, "test_new", "eurosat", "MaPLe", cfg, seed), n, eval_only=True)
    assert results.main([b2n_root, "--table", "b2n", "--format", "markdown", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    rows = b2n_comparison_rows(out)
    maple = rows[("eurosat", "MaPLe")]
    assert [maple[k] for k in ("Paper Base", "Paper New", "Paper HM")] == ["94.07", "73.23", "82.35"]
    ours = (statistics.fmean(base), statistics.fmean(new))
    assert [maple[k] for k in ("Ours Base", "Ours New", "Ours HM")] == [
        f"{ours[0]:.2f}", f"{ours[1]:.2f}", f"{harmonic_mean(*ours):.2f}"]
    assert maple["diff HM"] == f"{harmonic_mean(*ours) - 82.35:+.2f}" and maple["Source"] == MAPLE_TABLE
    assert rows[("dtd", "MaPLe")]["Note"].startswith("no result; ")  # published, not run here
    average = rows[("Average", "MaPLe")]
    assert (average["Paper HM"], average["Ours Base"], average["Source"]) == ("78.55", "", MAPLE_README)
    assert average["Note"].startswith("incomplete")
    assert "methods without runs here: IVLP, KgCoOp, PromptSRC, VPT." in out


def test_b2n_paper_row_with_a_few_shot_metric_is_rejected(tmp_path):
    bad = tmp_path / "paper.csv"
    bad.write_text(",".join(paper.COLUMNS) + "\nb2n,dtd,CoOp,16,accuracy,=,1,src,\n")
    with pytest.raises(ValueError, match=r"paper.csv:2: metric 'accuracy' of a b2n row, expected one of base"):
        paper.load_claims(str(bad))


# ---- cross-dataset ------------------------------------------------------------------------------------------

# (source, target) -> accuracies of seeds 1..3 for CoOp
XD = {("imagenet", "eurosat"): [40.1, 42.0, 41.5], ("imagenet", "dtd"): [39.0, 38.2, 40.0],
      ("imagenet", "imagenet_a"): [30.0, 31.0, 29.0], ("eurosat", "dtd"): [20.0, 22.0, 21.0],
      ("eurosat", "image_folder"): [70.0, 75.0, 80.0]}
SOURCE = {"imagenet": [60.0, 61.0, 62.0], "eurosat": [85.0, 86.0, 87.0]}


@pytest.fixture
def xd_root(tmp_path):
    root = str(tmp_path / "output")
    cfgs = {"imagenet": "vit_b32_ep50", "eurosat": "vit_b32"}
    for source, accs in SOURCE.items():
        for seed, acc in enumerate(accs, start=1):
            write_log(trained_dir(root, source, "CoOp", cfgs[source], 16, COOP_VARIANT, seed), acc)
    for (source, target), accs in XD.items():
        top = ["evaluation"] if source == "imagenet" else ["xd", source]
        for seed, acc in enumerate(accs, start=1):
            folder = os.path.join(root, *top, "CoOp", f"{cfgs[source]}_16shots", COOP_VARIANT, target, f"seed{seed}")
            write_log(folder, acc, eval_only=True)
    write_log(os.path.join(root, "ZeroshotCLIP", "vit_b32", "dtd"), 44.0, eval_only=True)
    return root


def test_cross_dataset_tables_per_source(xd_root, capsys):
    assert results.main([xd_root, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    imagenet = markdown_rows(table_after(out, "Cross-dataset transfer (imagenet -> dtd, eurosat)"))
    assert imagenet[("CoOp", "16")]["imagenet"] == cell_text(SOURCE["imagenet"])
    assert imagenet[("CoOp", "16")]["dtd"] == cell_text(XD[("imagenet", "dtd")])
    expected = statistics.fmean([statistics.fmean(XD[("imagenet", t)]) for t in ("eurosat", "dtd")])
    assert imagenet[("CoOp", "16")]["Average (targets)"] == f"{expected:.2f}"
    assert imagenet[("ZeroshotCLIP", "0")]["dtd"] == "44.00"
    eurosat = markdown_rows(table_after(out, "Cross-dataset transfer (eurosat -> dtd, image_folder)"))
    assert eurosat[("CoOp", "16")]["eurosat"] == cell_text(SOURCE["eurosat"])
    assert eurosat[("CoOp", "16")]["image_folder"] == cell_text(XD[("eurosat", "image_folder")])
    dg = markdown_rows(table_after(out, "Domain generalisation"))  # ImageNet-A stays in the DG table only
    assert dg[("CoOp", "16")]["imagenet_a"] == cell_text(XD[("imagenet", "imagenet_a")])
    assert "imagenet_a" not in imagenet[("CoOp", "16")]
    assert results.main([xd_root, "--table", "xd", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["table"] for r in rows} == {"xd_eurosat", "xd_imagenet"}
    assert results.main([xd_root, "--table", "b2n"]) == 2
    assert "no b2n runs" in capsys.readouterr().err


def test_new_methods_take_their_place_in_the_few_shot_and_b2n_tables(tmp_path, capsys):
    """The scripts' layouts of KgCoOp, IVLP, MaPLe and PromptSRC: rows after CoCoOp, before the paper's methods."""
    root = str(tmp_path / "output")
    methods = {"DPT": ("vit_b32", 71.0), "PromptSRC": ("vit_b16_c2_ep20_batch4_4+4ctx", 74.0),
               "MaPLe": ("vit_b16_c2_ep5_batch4_2ctx", 73.0), "KgCoOp": ("vit_b16_ep100_ctxv1", 72.5),
               "IVLP": ("vit_b16_c2_ep5_batch4_2+2ctx", 72.0), "CoCoOp": ("vit_b16_c4_ep10_batch1_ctxv1", 70.0)}
    for trainer, (cfg, acc) in methods.items():
        write_log(trained_dir(root, "eurosat", trainer, cfg, 16, "ctxinit", 1), acc)
        write_log(b2n_dir(root, "train_base", "eurosat", trainer, cfg, 1), acc + 10)
        write_log(b2n_dir(root, "test_new", "eurosat", trainer, cfg, 1), acc - 10, eval_only=True)
    assert results.main([root, "--seeds", "1", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    order = ["CoCoOp", "KgCoOp", "IVLP", "MaPLe", "PromptSRC", "DPT"]
    few = table_after(out, "Few-shot")
    assert [ln.split("|")[1].strip() for ln in few.splitlines()[2:] if ln.startswith("|")][:6] == order
    rows = b2n_rows(out)
    assert [key[1] for key in rows if key[0] == "eurosat"] == order
    kgcoop = rows[("eurosat", "KgCoOp", "16")]
    assert (kgcoop["Base"], kgcoop["New"]) == ("82.50", "62.50")
