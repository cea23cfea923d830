"""The preflight: every problem of a run reported together, one line each, before any file is written."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dpt.config import get_cfg_default
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.weights_shape import BackboneShape, backbone_shape
from dpt.preflight import (
    PreflightError,
    dataset_check,
    device_problems,
    model_dir_problems,
    output_problems,
    preflight,
    weights_problems,
)
from dpt.demo.synthetic import make_dataset
from dpt.train import main
from helpers import argv


def dataset_check_at(root: str, name: str):
    """``dataset_check`` of a default config pointed at dataset ``name`` under ``root``."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME = root, name
    return dataset_check(cfg)


def test_all_problems_at_once_and_no_run_folder(tmp_path, monkeypatch, capsys):
    """Missing dataset folder, missing CLIP weights and an empty --model-dir: three lines, one round trip."""
    monkeypatch.setenv("DPT_CLIP_CACHE", str(tmp_path / "clip"))
    (tmp_path / "data").mkdir()
    (tmp_path / "trained").mkdir()
    out = tmp_path / "out"
    extra = ["--eval-only", "--model-dir", str(tmp_path / "trained"), "--load-epoch", "50"]
    assert main(argv("CoOp", tmp_path / "data", out, "ViT-B/32", extra=extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert f"dataset EuroSAT: folder not found: {tmp_path / 'data' / 'eurosat'}" in err[0]
    assert f"CLIP weights for 'ViT-B/32' not found at {tmp_path / 'clip' / 'ViT-B-32.pt'}" in err[1]
    assert err[2] == (f"error: --model-dir {tmp_path / 'trained'}: no model folder holds model.pth.tar-50 "
                      f"(--load-epoch 50); found no model folders")
    assert not out.exists()  # no log.txt, no config.yaml


def test_bad_trainer_and_output_folder_are_reported_together(tmp_path, tiny_clip_path, capsys):
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=2, n_train=2, n_val=1, n_test=1)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    args = argv("CoOp", tmp_path / "data", blocker / "out", tiny_clip_path)
    args[args.index("--trainer") + 1] = "CoOP"
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown trainer 'CoOP'" in err[0] and "did you mean 'CoOp'" in err[0]
    assert err[1] == f"error: cannot write the output folder {blocker / 'out'}: {blocker} is a file, not a folder"


def test_dataset_check_names_what_is_missing(tmp_path):
    assert dataset_check_at(str(tmp_path), "").problems == [
        "DATASET.NAME is empty; pass --dataset-config-file configs/datasets/<dataset>.yaml"]
    assert "unknown dataset 'EuroSat'" in dataset_check_at(str(tmp_path), "EuroSat").problems[0]
    assert dataset_check_at("", "EuroSAT").problems[0].startswith("DATASET.ROOT is empty")
    info = make_dataset(tmp_path, "ImageNet", n_classes=2, n_train=1, n_test=1)
    os.remove(os.path.join(info["dataset_dir"], "classnames.txt"))
    check = dataset_check_at(str(tmp_path), "ImageNet")
    assert check.folder == info["dataset_dir"]
    assert check.problems == [f"dataset ImageNet: missing {info['dataset_dir']}/classnames.txt; expected "
                              f"images/train/<wnid>/, images/val/ and classnames.txt (see README)"]
    info = make_dataset(tmp_path, "FGVCAircraft", n_classes=2)
    os.remove(os.path.join(info["dataset_dir"], "images_variant_val.txt"))
    assert "images_variant_val.txt" in dataset_check_at(str(tmp_path), "FGVCAircraft").problems[0]
    info = make_dataset(tmp_path, "EuroSAT", n_classes=2)
    split_path = Path(info["dataset_dir"]) / "split_zhou_EuroSAT.json"
    split_path.write_text(split_path.read_text()[:40])
    assert f"{split_path}: corrupt split file" in dataset_check_at(str(tmp_path), "EuroSAT").problems[0]
    os.rename(info["image_dir"], info["image_dir"] + "_moved")
    assert dataset_check_at(str(tmp_path), "EuroSAT").problems == [
        f"dataset EuroSAT: missing {info['image_dir']}; expected 2750/<Class>/ and split_zhou_EuroSAT.json (see README)"]


def test_dataset_check_runs_a_fallback_without_writing_or_drawing(tmp_path):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=3, n_val=1, n_test=1, with_split=False)
    random.seed(5)
    check = dataset_check_at(str(tmp_path), "DescribableTextures")
    assert random.random() == (random.seed(5), random.random())[1]  # the RNG state is untouched
    assert check.problems == [] and "split_zhou_DescribableTextures.json is missing" in check.notes[0]
    assert sorted(os.listdir(info["dataset_dir"])) == ["images"]  # no split file, no few-shot folder
    info = make_dataset(tmp_path, "OxfordPets", n_classes=2, with_split=False)
    os.remove(os.path.join(info["dataset_dir"], "annotations", "test.txt"))
    assert "the fallback needs" in dataset_check_at(str(tmp_path), "OxfordPets").problems[0]


def test_weights_and_output_and_model_dir_checks(tmp_path, tiny_clip_path, monkeypatch):
    assert weights_problems("")[0].startswith("MODEL.BACKBONE.NAME is empty")
    assert weights_problems(str(tiny_clip_path)) == []
    assert "neither a known CLIP model" in weights_problems(str(tmp_path / "nope.pt"))[0]
    assert output_problems(str(tmp_path / "new" / "deeper")) == [] and not (tmp_path / "new").exists()
    assert output_problems(str(tmp_path / "new" / "log.txt")) == []
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert output_problems(str(tmp_path / "out")) == [
        f"cannot write the output folder {tmp_path / 'out'}: no write permission on {tmp_path}"]
    monkeypatch.undo()
    assert model_dir_problems(str(tmp_path / "none"), 5) == [f"--model-dir {tmp_path / 'none'}: folder not found"]
    (tmp_path / "run" / "prompt_learner").mkdir(parents=True)
    assert "no model folder holds model-best.pth.tar (--load-epoch not given, so the best model); found " \
           "prompt_learner/" in model_dir_problems(str(tmp_path / "run"), None)[0]
    (tmp_path / "run" / "prompt_learner" / "model.pth.tar-5").write_bytes(b"")
    assert model_dir_problems(str(tmp_path / "run"), 5) == [] and model_dir_problems("", 5) == []


def test_device_problems_on_a_gpu_machine(monkeypatch):
    cfg = get_cfg_default()
    assert device_problems(cfg) == []  # CPU: nothing to check (fp16 already runs as fp32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    cfg.TRAINER.COOP.PREC = "bf16"
    cfg.TRAINER.NAME = "CoCoOp"  # the trainer's own precision key is checked: TRAINER.COCOOP.PREC
    assert device_problems(cfg) == [
        "LOCAL_RANK 1 has no GPU: 1 visible (CUDA_VISIBLE_DEVICES=3); start at most 1 processes per node",
    ]
    cfg.TRAINER.NAME = "DPT"
    assert device_problems(cfg) == [
        "LOCAL_RANK 1 has no GPU: 1 visible (CUDA_VISIBLE_DEVICES=3); start at most 1 processes per node",
        "config key 'TRAINER.COOP.PREC' is bf16, which Tesla V100 does not support; use amp or fp16",
    ]
    cfg.USE_CUDA = False
    assert device_problems(cfg) == []


def test_preflight_raises_one_error_listing_every_problem(tmp_path):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    with pytest.raises(PreflightError) as info:
        preflight(cfg)
    problems = info.value.problems
    assert len(problems) == 3 and problems[0].startswith("unknown trainer ''; valid: CoCoOp, CoOp, DPT")
    assert problems[1:] == [
        "DATASET.NAME is empty; pass --dataset-config-file configs/datasets/<dataset>.yaml",
        "MODEL.BACKBONE.NAME is empty; set it in the config file or pass --backbone (e.g. ViT-B/32)",
    ]
    assert str(info.value) == "\n".join(problems)


def test_a_reader_without_a_dataset_folder_is_left_to_check_itself(monkeypatch):
    """E.g. a dataset reading a CSV that names its own files: nothing to look for beyond its registration."""
    from dpt.data.dataset_base import DatasetBase
    from dpt.registry import DATASET_REGISTRY

    DATASET_REGISTRY.names()  # fill the registry before adding to it
    monkeypatch.setitem(DATASET_REGISTRY._entries, "MyCSV", type("MyCSV", (DatasetBase,), {}))
    check = dataset_check_at("/nowhere", "MyCSV")
    assert (check.folder, check.problems, check.notes) == ("", [], [])


def test_config_errors_that_need_the_weights_are_found_from_its_shapes(tmp_path, tiny_clip_path, monkeypatch,
                                                                      capsys):
    """INPUT.SIZE and normalisation vs the weights, BOTTOMLIMIT beyond the ViT's blocks and a negative length: all
    in the preflight, with the other problems, before a run folder or a model exists."""
    built = []
    monkeypatch.setattr(clip.model, "build_model", lambda *a, **k: built.append(1))  # no CLIP may be built
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=2, n_train=2, n_val=1, n_test=1)
    opts = ("INPUT.SIZE", "(224, 224)", "INPUT.PIXEL_MEAN", "[0.5, 0.5, 0.5]",
            "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "13", "TRAINER.VPT.N_CTX", "-1")
    assert main(argv("DPT", tmp_path / "data", blocker / "out", tiny_clip_path, *opts)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: config key 'TRAINER.VPT.N_CTX': expected a length >= 0, got -1",
        f"error: config key 'INPUT.SIZE' is (224, 224) but {tiny_clip_path} expects (32, 32)",
        "error: config key 'TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT': expected a layer in 1..12, got 13",
        f"error: cannot write the output folder {blocker / 'out'}: {blocker} is a file, not a folder",
    ]
    assert built == []
    opts = ("INPUT.PIXEL_STD", "[0.5, 0.5, 0.5]", "TRAINER.DPT.CAVPT_DIRECTION", "bottom_up",
            "TRAINER.DPT.TOPLIMIT", "0")
    assert main(argv("DPT", tmp_path / "data", tmp_path / "out", tiny_clip_path, *opts)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"error: config key 'INPUT.PIXEL_STD' is [0.5, 0.5, 0.5] but "
                                               f"{tiny_clip_path} expects [0.26862954, 0.26130258, 0.27577711]")
    assert err[1] == "error: config key 'TRAINER.DPT.TOPLIMIT': expected a layer in 1..12, got 0"
    assert built == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fixture", ["tiny_clip_path", "tiny_clip_jit_path"])
def test_backbone_shape_is_read_from_the_file(fixture, request, tmp_path):
    path = Path(request.getfixturevalue(fixture))  # a torch.save state dict, OpenAI's TorchScript format
    assert backbone_shape(path) == BackboneShape((32, 32), 12)
    save_file({k: v.contiguous() for k, v in torch.load(request.getfixturevalue("tiny_clip_path")).items()},
              str(tmp_path / "tiny.safetensors"))
    assert backbone_shape(tmp_path / "tiny.safetensors") == BackboneShape((32, 32), 12)
    (tmp_path / "other.pt").write_bytes(b"")
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an OpenAI-format CLIP state dict"):
        backbone_shape(tmp_path / "other.pt")
