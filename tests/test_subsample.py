"""DATASET.SUBSAMPLE_CLASSES base/new on every dataset and trainer, its guard in train.py (docs/reference.md 9.2)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from dpt.config.merge import setup_cfg
from dpt.data import DataManager, build_dataset
from dpt.demo.synthetic import SYNTHETIC_DATASETS, make_dataset
from dpt.engine.build import build_trainer
from dpt.train import build_parser, main
from helpers import CONFIG, REPO, make_data_cfg

TRAINERS = ("CoOp", "DPT", "VLP", "VPT", "ZeroshotCLIP")


def keys(items):
    return [(d.impath, d.label, d.classname) for d in items]


@pytest.mark.parametrize("name", SYNTHETIC_DATASETS)
def test_base_and_new_partition_the_sorted_labels_and_relabel(tmp_path, name):
    """CoCoOp's rule: labels sorted, base = first ceil(n/2), new = the rest, each relabelled 0..m-1 in order."""
    make_dataset(tmp_path, name, n_classes=5, n_train=2, n_val=1, n_test=1, seed=2)
    build = {s: build_dataset(make_data_cfg(tmp_path, name, opts={"DATASET.SUBSAMPLE_CLASSES": s}))
             for s in ("all", "base", "new")}
    n = build["all"].num_classes
    m = math.ceil(n / 2)
    assert (n, build["base"].num_classes, build["new"].num_classes) == (5, 3, 2)
    assert build["base"].classnames == build["all"].classnames[:m]
    assert build["new"].classnames == build["all"].classnames[m:]
    for split in ("train_x", "val", "test"):
        every = getattr(build["all"], split)
        assert keys(getattr(build["base"], split)) == [(p, y, c) for p, y, c in keys(every) if y < m]
        assert keys(getattr(build["new"], split)) == [(p, y - m, c) for p, y, c in keys(every) if y >= m]
    assert (build["all"].subsampled_from, build["base"].subsampled_from, build["new"].subsampled_from) == (0, 5, 5)


def test_fewshot_cache_is_sampled_on_all_classes_and_shared(tmp_path):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=5, n_train=4, n_val=2, n_test=1, seed=3)
    base = build_dataset(make_data_cfg(tmp_path, "DescribableTextures", num_shots=2,
                                       opts={"DATASET.SUBSAMPLE_CLASSES": "base"}))
    cache = Path(info["dataset_dir"]) / "split_fewshot" / "shot_2-seed_1.json"
    cached = json.loads(cache.read_text())
    assert sorted({label for _, label, _ in cached["train"]}) == [0, 1, 2, 3, 4]  # sampled before the subset
    assert len(cached["train"]) == 10 and len(cached["val"]) == 10
    every = build_dataset(make_data_cfg(tmp_path, "DescribableTextures", num_shots=2))  # loads that cache
    assert keys(base.train_x) == [k for k in keys(every.train_x) if k[1] < 3]
    assert len(base.train_x) == 6


def test_summary_shows_subsampled_classes_and_sizes(tmp_path, capsys):
    make_dataset(tmp_path, "EuroSAT", n_classes=5, n_train=2, n_val=1, n_test=3)
    DataManager(make_data_cfg(tmp_path, "EuroSAT", opts={"DATASET.SUBSAMPLE_CLASSES": "new"}))
    out = capsys.readouterr().out
    assert "SUBSAMPLE NEW CLASSES!" in out
    lines = {line.split("  ")[0]: line.split()[-1] for line in out.splitlines() if line.startswith(("#", "Sub"))}
    assert (lines["# classes"], lines["# train_x"], lines["# val"], lines["# test"]) == ("2", "4", "2", "6")
    assert "Subsample  new classes of 5" in out


def _trainer(trainer, root, clip_path, subsample, *opts):
    argv = ["--root", str(root), "--output-dir", str(root / "out"), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO / "configs/datasets/eurosat.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{CONFIG[trainer]}.yaml"),
            "MODEL.BACKBONE.NAME", str(clip_path), "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.CACHE_TEST", "False", "DATASET.SUBSAMPLE_CLASSES", subsample,
            *opts]
    return build_trainer(setup_cfg(build_parser().parse_args(argv)))


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_dataset(root, "EuroSAT", n_classes=5, n_train=2, n_val=1, n_test=1, seed=4)
    return root


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_trainer_builds_on_the_subsampled_classes(trainer, five_classes, tiny_clip_path):
    every = _trainer(trainer, five_classes, tiny_clip_path, "all")
    for subsample, rows in (("base", slice(0, 3)), ("new", slice(3, 5))):
        t = _trainer(trainer, five_classes, tiny_clip_path, subsample)
        assert t.classnames == every.classnames[rows] and t.num_classes == len(t.classnames)
        # the zero-shot text features (ZeroshotCLIP's classifier, VPT's text side, DPT's selector) are those
        # of the subsampled class names
        torch.testing.assert_close(t.model.zs_text_features, every.model.zs_text_features[rows])
        if t.model.prompt_learner is not None:
            assert t.model.prompt_learner.n_cls == len(t.classnames)


def test_dpt_caps_cavpt_length_and_sizes_classifiers_on_the_subset(five_classes, tiny_clip_path, capsys):
    t = _trainer("DPT", five_classes, tiny_clip_path, "new", "TRAINER.SELECTED_COVPT.CPN", "10")
    assert "CAVPT length 10 capped at the number of classes 2" in capsys.readouterr().out
    assert t.model.cavpt.n_select == 2
    classifiers = [m.classifier.out_features for m in t.model.cavpt.modules() if hasattr(m, "classifier")]
    assert classifiers and set(classifiers) == {2}
    image = torch.randn(3, 3, 32, 32)
    out = t.model(image)
    assert out.logits.shape == (3, 2) and out.topk_indices.shape == (3, 2)


def test_new_classes_need_a_model_trained_on_base(five_classes, tiny_clip_path, tmp_path, capsys):
    def run(*extra, trainer="CoOp", subsample="new"):
        argv = ["--root", str(five_classes), "--output-dir", str(tmp_path / "o"), "--seed", "1", "--trainer", trainer,
                "--dataset-config-file", str(REPO / "configs/datasets/eurosat.yaml"),
                "--config-file", str(REPO / f"configs/trainers/{CONFIG[trainer]}.yaml"), *extra,
                "MODEL.BACKBONE.NAME", str(tiny_clip_path), "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
                "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", "DATASET.SUBSAMPLE_CLASSES", subsample]
        code = main(argv)
        return code, capsys.readouterr().err.strip().splitlines()

    code, err = run()
    assert code == 2 and len(err) == 1 and "DATASET.SUBSAMPLE_CLASSES new is for evaluation only" in err[0]
    assert not (tmp_path / "o").exists()  # refused before anything is written
    code, err = run("--eval-only")
    assert code == 2 and len(err) == 1 and "needs a model trained on the base classes" in err[0]
    assert run("--eval-only", trainer="ZeroshotCLIP")[0] == 0  # zero-shot CLIP has nothing to train
    code, _ = run(subsample="all")
    assert code == 0
    code, err = run("--eval-only", "--model-dir", str(tmp_path / "o"), "--load-epoch", "1")
    assert code == 2 and len(err) == 1
    assert f"--model-dir {tmp_path / 'o'} was trained with DATASET.SUBSAMPLE_CLASSES all" in err[0]
    assert os.path.isfile(tmp_path / "o" / "prompt_learner" / "model.pth.tar-1")
