"""Linear-probe CLIP: lpclip's C search, the sklearn model as a torch classifier, the trainer end to end (run folder,
log.txt, checkpoint, cached features, --eval-only, ImageNet -> a class subset) and its one-line errors."""
from __future__ import annotations

import json
import random
import re
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from dpt.demo.synthetic import make_dataset
from dpt.engine.checkpoint import load_checkpoint
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from dpt.trainers.feature_cache import SelectorFeatureCache
from dpt.trainers.logistic_search import linear_weights, search_c, search_rows
from helpers import REPO, argv

GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
Data = Tuple[np.ndarray, np.ndarray]


def _problem(seed: int = 18) -> Tuple[Data, Data, Data]:
    """3 overlapping Gaussian classes in 6 dims: 4 train, 10 val and 50 test images per class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 6))

    def sample(n: int) -> Data:
        y = np.repeat(np.arange(3), n)
        return centers[y] * 0.6 + rng.normal(size=(3 * n, 6)), y

    return sample(4), sample(10), sample(50)


def lpclip_search(train: Data, val: Data, grid: Sequence[float], steps: int) -> Tuple[float, List[str]]:
    """CoOp's lpclip/linear_probe.py search, transcribed: refit both ends each step, C values in linear scale."""
    def accuracy(c: float) -> float:
        model = LogisticRegression(solver="lbfgs", max_iter=1000, C=c).fit(*train)
        return float(np.mean(model.predict(val[0]) == val[1]))

    accuracies = [accuracy(c) for c in grid]
    peak = grid[int(np.argmax(accuracies))]
    left, right, chosen, path = peak / 10, peak * 10, peak, []
    for _ in range(steps):
        if accuracy(left) < accuracy(right):
            chosen, path = right, path + ["right"]
            left, right = 0.5 * (np.log10(right) + np.log10(left)), np.log10(right)
        else:
            chosen, path = left, path + ["left"]
            left, right = np.log10(left), 0.5 * (np.log10(right) + np.log10(left))
        left, right = 10**left, 10**right
    return chosen, path


def test_search_picks_lpclips_c_with_fewer_fits(monkeypatch) -> None:
    train, val, test = _problem()
    expected_c, path = lpclip_search(train, val, GRID, steps=8)
    assert {"left", "right"} <= set(path)  # this problem walks both ways

    fits = []
    fit = LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, y: fits.append(self.C) or fit(self, x, y))
    result = search_c(train, val, GRID, steps=8, max_iter=1000)
    assert result.c == pytest.approx(expected_c, rel=1e-12)
    assert len(fits) < len(GRID) + 2 * 8  # a C fitted before is reused (lpclip refits: 23 fits)
    reference = LogisticRegression(solver="lbfgs", max_iter=1000, C=expected_c).fit(*train)
    assert np.array_equal(result.classifier.predict(test[0]), reference.predict(test[0]))
    assert result.val_accuracy == pytest.approx(100 * np.mean(reference.predict(val[0]) == val[1]))


@pytest.mark.parametrize("n_cls", [2, 3])
def test_linear_weights_reproduce_sklearn(n_cls: int) -> None:
    train, _, test = _problem()
    keep = train[1] < n_cls
    model = LogisticRegression(solver="lbfgs", max_iter=1000, C=1.0).fit(train[0][keep], train[1][keep])
    weight, bias = linear_weights(model, n_cls)
    assert weight.shape == (n_cls, 6) and bias.shape == (n_cls,)
    logits = torch.as_tensor(test[0], dtype=torch.float32) @ weight.t() + bias  # [N, n_cls]
    assert np.array_equal(logits.argmax(dim=1).numpy(), model.predict(test[0]))
    probs = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(probs, model.predict_proba(test[0]), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not 0..3"):
        linear_weights(model, 4)


def test_search_rows_cap_each_class_without_touching_the_global_rng() -> None:
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 6)
    state = random.getstate()
    rows = search_rows(labels, per_class=4, seed=1)
    assert random.getstate() == state
    assert [int((labels[rows] == c).sum()) for c in range(3)] == [4, 3, 4]
    assert rows == search_rows(labels, per_class=4, seed=1) != search_rows(labels, per_class=4, seed=2)
    assert search_rows(labels, per_class=10, seed=1) == list(range(19))


def test_complete_feature_table_reads_no_image(tmp_path) -> None:
    path = str(tmp_path / "clip_features.pt")
    batches = [{"index": torch.tensor([0, 1]), "img": torch.randn(2, 5)}, {"index": torch.tensor([2]), "img": torch.randn(1, 5)}]
    first = SelectorFeatureCache(3, path).fill(batches, lambda image: 2 * image)
    assert torch.equal(first, 2 * torch.cat([b["img"] for b in batches]))

    class NoImages:
        def __iter__(self):
            raise AssertionError("a complete table must not read images")

    assert torch.equal(SelectorFeatureCache(3, path).fill(NoImages(), lambda image: image), first)


def _probe_argv(root, out, clip_path, *opts, dataset="eurosat", extra=()):
    args = argv("LinearProbeCLIP", root, out, clip_path, *opts, epochs=1, extra=extra)
    args[args.index("--dataset-config-file") + 1] = str(REPO / f"configs/datasets/{dataset}.yaml")
    return args


def test_probe_run_writes_dassl_outputs_and_reloads(eurosat_root, tiny_clip_path, tmp_path) -> None:
    run = tmp_path / "run"
    assert main(_probe_argv(eurosat_root, run, tiny_clip_path)) == 0
    log = (run / "log.txt").read_text()
    assert re.search(r"^C search, val accuracy per C: 1e\+06: [\d.]+%", log, re.M)
    assert log.count("C search step") == 8 and "Selected C = " in log
    accuracy = parse_metric(str(run / "log.txt"))  # "* accuracy:" after "Finish training"
    assert accuracy is not None
    ckpt = load_checkpoint(str(run / "classifier" / "model.pth.tar-1"))
    assert ckpt["epoch"] == 1 and ckpt["meta"]["trainer"] == "LinearProbeCLIP"
    assert ckpt["meta"]["classnames"] == ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road"]
    assert (run / "classifier" / "checkpoint").read_text().strip() == "model.pth.tar-1"

    # the logged accuracy is the saved classifier's on the cached test features
    caches = sorted((eurosat_root / "eurosat" / "image_cache").glob("clip_features_EuroSAT_*.pt"))
    assert [p.name.split("_")[3] for p in caches] == sorted(["test", "train", "val"])
    test_features = torch.load(next(p for p in caches if "_test_" in p.name), weights_only=True)  # [16, E]
    predictions = (test_features @ ckpt["state_dict"]["weight"].t() + ckpt["state_dict"]["bias"]).argmax(dim=1)
    split = json.loads((eurosat_root / "eurosat" / "split_zhou_EuroSAT.json").read_text())
    labels = torch.tensor([label for _, label, _ in split["test"]])  # the test split's order
    assert round(100.0 * float((predictions == labels).float().mean()), 1) == accuracy

    ev = tmp_path / "eval"
    assert main(_probe_argv(eurosat_root, ev, tiny_clip_path, extra=["--eval-only", "--model-dir", str(run),
                                                                     "--load-epoch", "1"])) == 0
    assert parse_metric(str(ev / "log.txt"), end_signal="=> result") == accuracy
    assert 'Loading weights to classifier from "' in (ev / "log.txt").read_text()

    assert main(_probe_argv(eurosat_root, run, tiny_clip_path)) == 0  # finished: resumes, no second fit
    again = sorted(run.glob("log.txt-*"))[-1].read_text()
    assert "Previous epoch: 1" in again and "C search" not in again and parse_metric(str(run / "log.txt")) == accuracy


def test_imagenet_probe_evaluates_on_a_class_subset_by_name(tiny_clip_path, tmp_path) -> None:
    root = tmp_path / "data"
    make_dataset(root, "ImageNet", n_classes=4, n_train=3, n_test=6, learnable=True, seed=1)
    make_dataset(root, "ImageNetA", n_classes=2, n_test=3, learnable=True, seed=2)
    run = tmp_path / "run"
    assert main(_probe_argv(root, run, tiny_clip_path, dataset="imagenet")) == 0
    # ImageNet's val is its test set: the C search keeps min(shots, 4) images per class of it
    assert "Linear probe: 12 train and 16 val features" in (run / "log.txt").read_text()
    ev = tmp_path / "eval_a"
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]
    assert main(_probe_argv(root, ev, tiny_clip_path, "DATASET.NUM_SHOTS", "-1", dataset="imagenet_a",
                            extra=extra)) == 0
    assert re.search(r"^\* total: 6$", (ev / "log.txt").read_text(), re.M)
    assert parse_metric(str(ev / "log.txt"), end_signal="=> result") is not None


@pytest.mark.parametrize("opts, dataset, message", [
    (("OPTIM.MAX_EPOCH", "3"), "eurosat", "'OPTIM.MAX_EPOCH': LinearProbeCLIP expects 1 (the probe is fitted once)"),
    (("TRAINER.LINEAR_PROBE.C_GRID", "(1.0, -1.0)"), "eurosat", "'TRAINER.LINEAR_PROBE.C_GRID'"),
    (("TRAINER.LINEAR_PROBE.SEARCH_STEPS", "-1"), "eurosat", "'TRAINER.LINEAR_PROBE.SEARCH_STEPS'"),
    ((), "imagenet_a", "searches C on the val split, but dataset ImageNetA has none"),
])
def test_bad_input_is_one_line_error(opts, dataset, message, tiny_clip_path, tmp_path, capsys) -> None:
    root = tmp_path / "data"
    make_dataset(root, "EuroSAT", n_classes=3, n_train=2, n_val=1, n_test=1, learnable=True)
    make_dataset(root, "ImageNetA", n_classes=2, n_test=2, learnable=True)
    args = _probe_argv(root, tmp_path / "out", tiny_clip_path, *opts, "DATASET.NUM_SHOTS", "-1", dataset=dataset)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out" / "classifier").exists()


def test_probe_of_other_classes_is_refused_by_name(eurosat_root, tiny_clip_path, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_probe_argv(eurosat_root, run, tiny_clip_path)) == 0
    capsys.readouterr()  # the fit's progress bars
    other = tmp_path / "other"
    make_dataset(other, "ImageNetA", n_classes=2, n_test=2, learnable=True)
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]
    assert main(_probe_argv(other, tmp_path / "ev", tiny_clip_path, "DATASET.NUM_SHOTS", "-1", dataset="imagenet_a",
                            extra=extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are not among the 4 classes the probe was fitted on" in err[0]


def test_class_without_training_image_is_one_line_error(tiny_clip_path, tmp_path, capsys) -> None:
    root = tmp_path / "data"
    make_dataset(root, "EuroSAT", n_classes=3, n_train=2, n_val=1, n_test=1, learnable=True)
    split_path = root / "eurosat" / "split_zhou_EuroSAT.json"
    split = json.loads(split_path.read_text())
    split["train"] = [entry for entry in split["train"] if entry[1] != 1]  # class 1 keeps val/test images only
    split_path.write_text(json.dumps(split))
    assert main(_probe_argv(root, tmp_path / "out", tiny_clip_path, "DATASET.NUM_SHOTS", "-1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset EuroSAT has no training image of class(es) [1]" in err[0]
