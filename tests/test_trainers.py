"""End-to-end runs of every trainer through train.py's main() on a tiny CLIP and a learnable synthetic set."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from dpt.demo.synthetic import make_dataset
from dpt.engine.checkpoint import load_checkpoint
from dpt.modeling.backbones.loader import load_clip
from dpt.registry import TRAINER_REGISTRY
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from helpers import CONFIG, FITTED, LEARNED, argv, epoch_losses


@pytest.mark.parametrize("trainer", sorted(LEARNED))
def test_training_lowers_loss_and_writes_dassl_outputs(trainer, eurosat_root, tiny_clip_path, tmp_path):
    out = tmp_path / trainer
    assert main(argv(trainer, eurosat_root, out, tiny_clip_path, "OPTIM.LR", "0.0005", epochs=6)) == 0
    log = out / "log.txt"
    losses = epoch_losses(log)
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert parse_metric(str(log)) is not None  # parse_test_res rule: "* accuracy:" after "Finish training"
    assert (out / "config.yaml").is_file() and any((out / "tensorboard").iterdir())
    for name in LEARNED[trainer]:
        assert (out / name / "checkpoint").read_text().strip() == "model.pth.tar-6"
        ckpt = load_checkpoint(str(out / name / "model.pth.tar-6"))
        assert ckpt["epoch"] == 6 and ckpt["meta"]["trainer"] == trainer


@pytest.mark.parametrize("trainer", sorted(LEARNED))
def test_only_prompts_train_and_clip_stays_bit_identical(trainer, eurosat_root, tiny_clip_path, tmp_path):
    from dpt.config.merge import setup_cfg
    from dpt.engine.build import build_trainer
    from dpt.train import build_parser

    cfg = setup_cfg(build_parser().parse_args(argv(trainer, eurosat_root, tmp_path, tiny_clip_path)))
    t = build_trainer(cfg)
    before = {k: v.clone() for k, v in t.model.clip_model.state_dict().items()}
    t.epoch, t.batch_idx, t.num_batches = 0, 0, 1
    t.forward_backward(next(iter(t.train_loader_x)))
    learnable = {id(p) for name in LEARNED[trainer] for p in t._models[name].parameters()}
    for name, p in t.model.named_parameters():
        if id(p) in learnable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name
    after = t.model.clip_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert set(t.get_model_names()) == set(LEARNED[trainer])


@pytest.mark.parametrize("trainer", ["ZeroshotCLIP", "ZeroshotCLIP2"])
def test_zero_shot_eval_only(trainer, eurosat_root, tiny_clip_path, tmp_path):
    out = tmp_path / trainer
    assert main(argv(trainer, eurosat_root, out, tiny_clip_path, extra=["--eval-only"])) == 0
    acc = parse_metric(str(out / "log.txt"), end_signal="=> result")
    assert 0.0 <= acc <= 100.0


@pytest.mark.parametrize("trainer", ["DPT", "PromptSRC"])  # PromptSRC: its prompt aggregate resumes too
def test_resume_after_interruption_matches_uninterrupted(trainer, eurosat_root, tiny_clip_path, tmp_path):
    opts = ("TRAIN.CHECKPOINT_FREQ", "1")
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(argv(trainer, eurosat_root, full, tiny_clip_path, *opts)) == 0
    assert main(argv(trainer, eurosat_root, cut, tiny_clip_path, *opts)) == 0
    for name in LEARNED[trainer]:  # roll the second run back to the end of epoch 2, as if killed in epoch 3
        for epoch in (3, 4):
            os.remove(cut / name / f"model.pth.tar-{epoch}")
        (cut / name / "checkpoint").write_text("model.pth.tar-2\n")
    assert main(argv(trainer, eurosat_root, cut, tiny_clip_path, *opts)) == 0
    resumed_log = sorted(cut.glob("log.txt-*"))[-1]
    assert "Previous epoch: 2" in resumed_log.read_text()
    assert parse_metric(str(resumed_log)) == parse_metric(str(full / "log.txt"))
    for name in LEARNED[trainer]:
        a = load_checkpoint(str(full / name / "model.pth.tar-4"))["state_dict"]
        b = load_checkpoint(str(cut / name / "model.pth.tar-4"))["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_eval_only_reloads_the_trained_model(eurosat_root, tiny_clip_path, tmp_path):
    run = tmp_path / "run"
    assert main(argv("VLP", eurosat_root, run, tiny_clip_path, epochs=2)) == 0
    ev = tmp_path / "eval"
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "2"]
    assert main(argv("VLP", eurosat_root, ev, tiny_clip_path, epochs=2, extra=extra)) == 0
    assert parse_metric(str(ev / "log.txt"), end_signal="=> result") == parse_metric(str(run / "log.txt"))
    assert 'Loading weights to prompt_learner from' in (ev / "log.txt").read_text()


def test_dpt_model_evaluates_on_another_class_count(tiny_clip_path, tmp_path):
    """ImageNet -> variants: the n_cls-dependent CAVPT classifiers and text buffers are not loaded."""
    big, small = tmp_path / "big", tmp_path / "small"
    make_dataset(big, "EuroSAT", n_classes=6, n_train=4, n_test=2, learnable=True, seed=1)
    make_dataset(small, "EuroSAT", n_classes=3, n_train=4, n_test=2, learnable=True, seed=2)
    run = tmp_path / "run"
    assert main(argv("DPT", big, run, tiny_clip_path, epochs=1)) == 0
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]
    assert main(argv("DPT", small, tmp_path / "ev", tiny_clip_path, epochs=1, extra=extra)) == 0
    assert "* accuracy:" in (tmp_path / "ev" / "log.txt").read_text()


def test_checkpoint_of_another_layout_is_refused(eurosat_root, tiny_clip_path, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(argv("DPT", eurosat_root, run, tiny_clip_path, epochs=1)) == 0
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]
    code = main(argv("DPT", eurosat_root, tmp_path / "ev", tiny_clip_path, "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "11",
                     epochs=1, extra=extra))
    err = capsys.readouterr().err
    assert code == 2 and "was written with vpt_layers = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" in err
    vlp_like = tmp_path / "vlp_like"
    shutil.copytree(run, vlp_like)
    code = main(argv("VPT", eurosat_root, tmp_path / "ev2", tiny_clip_path, epochs=1,
                     extra=["--eval-only", "--model-dir", str(vlp_like), "--load-epoch", "1"]))
    assert code == 2 and "trainer = 'DPT'" in capsys.readouterr().err


@pytest.mark.parametrize("opts,message", [
    (("INPUT.SIZE", "(224, 224)"), "INPUT.SIZE"),
    (("TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "13"), "expected a layer in 1..12"),
    (("TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "0"), "expected a layer in 1..12"),
    (("TRAINER.VPT.N_CTX", "-1"), "TRAINER.VPT.N_CTX"),
    (("TRAINER.SELECTED_COVPT.CPN", "-2"), "TRAINER.SELECTED_COVPT.CPN"),
])
def test_bad_input_is_one_line_error(opts, message, eurosat_root, tiny_clip_path, tmp_path, capsys):
    assert main(argv("DPT", eurosat_root, tmp_path, tiny_clip_path, *opts)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_kgcoop_negative_guidance_weight_is_one_line_error(eurosat_root, tiny_clip_path, tmp_path, capsys):
    assert main(argv("KgCoOp", eurosat_root, tmp_path, tiny_clip_path, "TRAINER.COOP.W", "-1.0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config key 'TRAINER.COOP.W': expected a guidance weight >= 0, got -1.0"]


@pytest.mark.parametrize("trainer,n_words,budget,remedy,opts", [
    ("CoOp", 60, "58 tokens (77 - 16 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or lower TRAINER.COOP.N_CTX (16)",
     ()),
    ("CoCoOp", 60, "58 tokens (77 - 16 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or lower TRAINER.COCOOP.N_CTX "
     "(16)", ("TRAINER.COCOOP.N_CTX", "16")),
    ("VPT", 72, "69 tokens (77 - 8 for SOS, EOT and the template 'a centered satellite photo of {}.')",
     "; shorten the class name where the dataset lists it (split or class-name file)", ()),
    # IVLP / PromptSRC count their text context in N_CTX_TEXT, MaPLe in N_CTX, KgCoOp in CoOp's node
    ("IVLP", 74, "72 tokens (77 - 2 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or lower "
     "TRAINER.IVLP.N_CTX_TEXT (2)", ("TRAINER.IVLP.CTX_INIT", "")),
    ("PromptSRC", 72, "70 tokens (77 - 4 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or lower "
     "TRAINER.PROMPTSRC.N_CTX_TEXT (4)", ("TRAINER.PROMPTSRC.CTX_INIT", "")),
    ("MaPLe", 74, "72 tokens (77 - 2 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or lower TRAINER.MAPLE.N_CTX "
     "(2)", ("TRAINER.MAPLE.CTX_INIT", "")),
    ("IVLP", 72, "70 tokens (77 - 2 context tokens - 5 for SOS, EOT and the template 'of a {}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or shorten "
     "TRAINER.IVLP.CTX_INIT", ()),
    ("KgCoOp", 72, "70 tokens (77 - 4 context tokens - 3 for SOS, EOT and the template '{}.')",
     "; shorten the class name where the dataset lists it (split or class-name file) or shorten "
     "TRAINER.COOP.CTX_INIT", ()),
])
def test_class_name_too_long_is_one_line_with_dataset_and_remedy(trainer, n_words, budget, remedy, opts,
                                                                 tiny_clip_path, tmp_path, capsys):
    info = make_dataset(tmp_path / "data", "EuroSAT", n_classes=2, n_train=4, n_val=4, n_test=2)
    long_name = " ".join(["field"] * n_words)
    split_path = os.path.join(info["dataset_dir"], "split_zhou_EuroSAT.json")
    split = {k: [[r, y, long_name if y == 1 else c] for r, y, c in info[k]] for k in ("train", "val", "test")}
    with open(split_path, "w") as f:
        json.dump(split, f)
    assert main(argv(trainer, tmp_path / "data", tmp_path / "out", tiny_clip_path, *opts, epochs=1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: dataset EuroSAT: class {long_name!r} ({n_words} tokens) does not fit CLIP's context: "
                   f"the budget for a class name is {budget}{remedy}"]


def test_unknown_trainer_lists_valid_ones(eurosat_root, tiny_clip_path, tmp_path, capsys):
    args = argv("DPT", eurosat_root, tmp_path, tiny_clip_path)
    args[args.index("--trainer") + 1] = "DTP"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown trainer 'DTP'" in err and "did you mean 'DPT'" in err
    assert all(name in err for name in TRAINER_REGISTRY.names())


def test_cpn_above_class_count_is_capped_and_said(eurosat_root, tiny_clip_path, tmp_path):
    assert main(argv("DPT", eurosat_root, tmp_path, tiny_clip_path, "TRAINER.SELECTED_COVPT.CPN", "10", epochs=1)) == 0
    assert "capped at the number of classes 4" in (tmp_path / "log.txt").read_text()


def test_missing_clip_weights_say_where_they_looked(eurosat_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DPT_CLIP_CACHE", str(tmp_path / "cache"))
    args = argv("CoOp", eurosat_root, tmp_path / "o", "ViT-B/32")
    assert main(args) == 2
    assert str(tmp_path / "cache") in capsys.readouterr().err


def test_loaded_clip_is_frozen_fp32(tiny_clip_path):
    model = load_clip(str(tiny_clip_path), precision="fp32")
    assert model.dtype == torch.float32


def test_every_registered_trainer_is_covered_here():
    """A new trainer must add its checkpoint folders to LEARNED or FITTED (or be zero-shot) and a config to CONFIG."""
    assert set(TRAINER_REGISTRY.names()) == set(CONFIG) == set(LEARNED) | set(FITTED) | {"ZeroshotCLIP", "ZeroshotCLIP2"}


@pytest.mark.parametrize("dataset, guidance, warmup", [("ImageNet", 10, 1), ("ImageNetV2", 30, 0), ("OxfordPets", 30, 0)])
def test_imagenet_schedule_is_the_dataset_classes(dataset: str, guidance: int, warmup: int) -> None:
    """VLP / DPT take TRAINER.DPT.IMAGENET_* only where the dataset class declares ``imagenet_schedule``."""
    from dpt.config import get_cfg_default

    trainer = TRAINER_REGISTRY.get("DPT").__new__(TRAINER_REGISTRY.get("DPT"))  # loss-side methods read only cfg
    trainer.cfg = get_cfg_default()
    trainer.cfg.merge_from_list(["DATASET.NAME", dataset, "PRETRAIN.C", 30, "OPTIM.WARMUP_EPOCH", 0])
    assert trainer.guidance_epochs() == guidance
    assert trainer.visual_spec().warmup_epoch == warmup
