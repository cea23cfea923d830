"""Run-group folder names (dpt/launch/run_names.py): what the run uses, always short enough, stable, and the
folders of the earlier rule still found; the scripts name their runs through it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dpt.launch.run_names import MAX_NAME, digest, group_name, legacy_group_name, main, run_folder, short_value
from dpt.reporting.runs import collect_runs

REPO = Path(__file__).resolve().parents[1]
COOP_PARTS = ["nctx=TRAINER.COOP.N_CTX", "csc=TRAINER.COOP.CSC", "ctp=TRAINER.COOP.CLASS_TOKEN_POSITION"]
COOP_SCRIPT = ["TRAINER.COOP.N_CTX", "16", "TRAINER.COOP.CSC", "False", "TRAINER.COOP.CLASS_TOKEN_POSITION", "end"]
# The issue's nine pairs, typed as a new user would.
NINE = ["MODEL.BACKBONE.NAME", "/path/to/weights.pt", "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.MAX_EPOCH", "2",
        "OPTIM.LR", "0.01", "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"]


def test_values_are_shortened_with_a_stable_digest():
    assert short_value("0.01") == "0.01" and short_value("(32, 32)") == "_32__32_"
    assert short_value("/path/to/weights.pt") == f"weights.pt_{digest('/path/to/weights.pt')}"
    assert short_value("/other/weights.pt") != short_value("/path/to/weights.pt")  # same file name, other file
    long = "a photo of a very very long handwritten context init"
    assert short_value(long) == short_value(long) and len(short_value(long)) <= 32 and digest(long) in short_value(long)


def test_the_variant_is_what_the_run_uses_and_the_name_always_fits():
    name = group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=NINE)
    assert name.startswith("nctx4_cscFalse_ctpmiddle_MODEL.BACKBONE.NAME-weights.pt_")
    assert "TRAINER.COOP.N_CTX" not in name and "path" not in name  # the variant shows it; no folder names
    assert len(name.encode()) <= MAX_NAME < 255
    assert name.endswith(f"_{digest(' '.join(NINE))}")  # the overrides that did not fit, by their digest
    assert name == group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=NINE)  # stable
    other = NINE[:-1] + ["front"]
    assert group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=other) != name
    huge = [x for i in range(30) for x in (f"TRAINER.DPT.KEY_{i}", "/a/very/long/path/to/some/file.pt")]
    assert len(group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=huge).encode()) <= MAX_NAME
    assert group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=["OPTIM.LR", "0.01"]) == \
        "nctx16_cscFalse_ctpend_OPTIM.LR-0.01"  # short overrides: the earlier rule's name
    tagged = group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=NINE, tag="mine")
    assert tagged == "nctx4_cscFalse_ctpmiddle_mine"


def test_yaml_values_and_the_whole_variant_parts(tmp_path):
    yaml = tmp_path / "cocoop.yaml"
    yaml.write_text('TRAINER:\n  COCOOP:\n    N_CTX: 4\n    CTX_INIT: ""\n')
    parts = ["ctxinit?TRAINER.COCOOP.CTX_INIT", "nctx=TRAINER.COCOOP.N_CTX"]
    assert group_name(parts, str(yaml)) == "nctx4"
    assert group_name(parts, str(yaml), user_opts=["TRAINER.COCOOP.N_CTX", "8"]) == "nctx8"
    assert group_name(parts, str(yaml), user_opts=["TRAINER.COCOOP.CTX_INIT", "a photo of a"]) == "ctxinit"
    assert group_name(["nctx=TRAINER.COOP.N_CTX:16", "lbfgs"], None) == "nctx16_lbfgs"  # default, literal


def test_a_folder_of_the_earlier_rule_is_still_found(tmp_path, capsys):
    opts = ["TRAINER.COOP.N_CTX", "4", "OPTIM.LR", "0.01"]
    old = legacy_group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=opts)
    assert old == "nctx16_cscFalse_ctpend_TRAINER.COOP.N_CTX-4_OPTIM.LR-0.01"
    new = tmp_path / "nctx4_cscFalse_ctpend_OPTIM.LR-0.01"
    assert run_folder(str(tmp_path), COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=opts) == str(new)
    (tmp_path / old).mkdir()
    assert run_folder(str(tmp_path), COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=opts) == str(tmp_path / old)
    new.mkdir()  # both exist: the new rule's wins
    assert run_folder(str(tmp_path), COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=opts) == str(new)
    assert main([str(tmp_path), "x=A.B", "--", "A.B"]) == 2
    assert capsys.readouterr().err.strip() == "error: overrides must be KEY VALUE pairs, got an odd list: A.B"


def test_scripts_name_the_issues_run_by_the_rule(tmp_path):
    """bash scripts/coop.sh oxford_pets 1 1 -- <nine pairs>: no "File name too long", the variant says 4 / middle."""
    env = {**os.environ, "PYTHON": sys.executable, "OUTPUT": "out", "RUN_STATUS": "1"}
    env.pop("TAG", None)
    done = subprocess.run(["bash", str(REPO / "scripts/coop.sh"), "oxford_pets", "1", "1", "--", *NINE], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = group_name(COOP_PARTS, str(REPO / "configs/trainers/CoOp/vit_b32_ep50.yaml"), COOP_SCRIPT, NINE)
    assert done.stdout.split() == ["new", f"out/oxford_pets/CoOp/vit_b32_ep50_1shots/{expected}/seed1"]
    assert expected.startswith("nctx4_cscFalse_ctpmiddle_")


def test_dpt_results_finds_runs_of_both_rules(tmp_path):
    """dpt-results walks the layout, so a group named by this rule and one by the earlier rule are both read."""
    new = group_name(COOP_PARTS, script_opts=COOP_SCRIPT, user_opts=NINE)
    old = legacy_group_name(COOP_PARTS, script_opts=COOP_SCRIPT,
                            user_opts=["OPTIM.LR", "0.01", "TRAINER.COOP.N_CTX", "4"])
    for name, accuracy in ((new, "50.0"), (old, "75.0")):
        seed = tmp_path / "eurosat/CoOp/vit_b32_16shots" / name / "seed1"
        seed.mkdir(parents=True)
        (seed / "log.txt").write_text(f"Finish training\n=> result\n* accuracy: {accuracy}%\n")
    runs = collect_runs(str(tmp_path), seeds=[1])
    assert sorted((r.variant, r.status, r.metrics["accuracy"]) for r in runs) == sorted(
        [(new, "finished", 50.0), (old, "finished", 75.0)])
    assert [r.variant for r in collect_runs(str(tmp_path), seeds=[1], select=["CoOp/*/nctx4_*"])] == [new]
