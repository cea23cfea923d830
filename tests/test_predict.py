"""Use a trained model: dpt.load_run / dpt.load_classifier, dpt-export and dpt-predict (dpt/inference/).

Every trainer is trained (or evaluated, zero-shot) once per module on a tiny CLIP; the classifier rebuilt from the
run folder must predict what the run's own evaluation predicts, image for image, and an export must give the
run folder's probabilities in a fresh process with the dataset folder gone.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

import dpt
from dpt.demo.tiny_clip import make_tiny_clip, tiny_clip_state_dict
from dpt.inference.export import FORMAT_VERSION, read_export, write_export
from dpt.inference.run import run_config
from dpt.modeling.templates import CUSTOM_TEMPLATES
from dpt.registry import TRAINER_REGISTRY
from dpt.reporting.logparse import parse_metric
from dpt.tools import convert, export, predict
from dpt.train import main as train_main
from dpt.demo.synthetic import make_dataset
from helpers import CONFIG, FITTED, LEARNED, argv

REPO = Path(__file__).resolve().parents[1]
TRAINERS = sorted(CONFIG)  # every trainer test_trainers.py runs
TRAINED = set(LEARNED) | set(FITTED)  # the others (zero-shot) have an eval-only run
OPEN_VOCABULARY = [t for t in TRAINERS if TRAINER_REGISTRY.get(t).open_vocabulary]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict_data")
    make_dataset(root, "EuroSAT", n_classes=4, n_train=8, n_val=2, n_test=4, learnable=True, seed=3)
    return root


@pytest.fixture(scope="module")
def runs(root, tiny_clip_path, tmp_path_factory) -> Dict[str, Path]:
    """One short run per trainer (zero-shot: an eval-only run, which has no config.yaml)."""
    out = tmp_path_factory.mktemp("predict_runs")
    folders = {}
    for trainer in TRAINERS:
        extra = [] if trainer in TRAINED else ["--eval-only"]
        lr = ("OPTIM.LR", "0.01") if trainer in ("VPT", "VLP", "DPT") else ()
        assert train_main(argv(trainer, root, out / trainer, tiny_clip_path, *lr, epochs=1, extra=extra)) == 0
        folders[trainer] = out / trainer
    return folders


def split_paths(run: Path) -> List[str]:
    """The image paths of the run's test split, in label-file order."""
    trainer = dpt.load_run(str(run), device="cpu")
    return [item.impath for item in trainer.dm.dataset.test]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_prediction_equals_eval_only_image_for_image(trainer, runs):
    """load_run + test() is --eval-only's path; its evaluator keeps the per-image top-1 in loader order."""
    evaluated = dpt.load_run(str(runs[trainer]), device="cpu")
    accuracy = evaluated.test()
    eval_top1 = torch.cat(evaluated.evaluator._preds)
    labels = torch.tensor([item.label for item in evaluated.dm.dataset.test])
    classifier = dpt.load_classifier(runs[trainer], device="cpu")
    prediction = classifier.predict([item.impath for item in evaluated.dm.dataset.test], top_k=2)
    assert torch.equal(prediction.top_k[:, 0], eval_top1)
    logged = parse_metric(str(runs[trainer] / "log.txt"), end_signal="Finish training" if trainer in TRAINED
                          else "=> result")
    assert accuracy == logged == pytest.approx(100.0 * float((prediction.top_k[:, 0] == labels).float().mean()),
                                               abs=0.05)
    assert classifier.classnames == list(evaluated.classnames)
    assert prediction.classes[0] == [classifier.classnames[i] for i in prediction.top_k[0].tolist()]
    assert torch.allclose(prediction.probs.sum(dim=1), torch.ones(len(labels)))


def test_export_gives_the_run_folder_probabilities_in_a_fresh_process_without_the_dataset(runs, root, tmp_path):
    paths = split_paths(runs["CoOp"])
    images = tmp_path / "images"
    images.mkdir()
    copies = [str(images / f"{i}.jpg") for i in range(len(paths))]
    for path, copy in zip(paths, copies):
        shutil.copy(path, copy)
    expected = {}
    for trainer in TRAINERS:
        expected[trainer] = dpt.load_classifier(runs[trainer], device="cpu").predict(copies).probs
        assert export.main([str(runs[trainer]), "--out", str(tmp_path / f"{trainer}.safetensors")]) == 0
    script = ("import sys, torch, dpt\n"
              "folder, trainers, images = sys.argv[1], sys.argv[2].split(','), sys.argv[3:]\n"
              "load = lambda t: dpt.load_classifier(f'{folder}/{t}.safetensors', device='cpu')\n"
              "torch.save({t: load(t).predict(images).probs for t in trainers}, f'{folder}/probs.pt')\n")
    away = root.with_name(root.name + "_away")
    root.rename(away)
    try:
        subprocess.run([sys.executable, "-c", script, str(tmp_path), ",".join(TRAINERS), *copies], check=True,
                       cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        away.rename(root)
    probs = torch.load(tmp_path / "probs.pt")
    for trainer in TRAINERS:
        torch.testing.assert_close(probs[trainer], expected[trainer], rtol=0, atol=1e-6, msg=trainer)


def test_export_holds_the_learned_tensors_and_the_model_card(runs, tmp_path):
    out = tmp_path / "dpt.safetensors"
    assert export.main([str(runs["DPT"]), "--out", str(out)]) == 0
    assert out.read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length, then a JSON header (no pickle)
    exported = read_export(str(out))
    meta = exported.meta
    assert meta["trainer"] == "DPT" and meta["classnames"] == dpt.load_run(str(runs["DPT"])).classnames
    assert meta["templates"] == [CUSTOM_TEMPLATES["EuroSAT"]]
    assert meta["backbone"]["id"].startswith("sha256:") and meta["input"]["size"] == [32, 32]
    assert meta["card"]["test_accuracy"] == parse_metric(str(runs["DPT"] / "log.txt"))
    assert meta["card"]["dataset"] == "EuroSAT" and meta["card"]["shots"] == 4 and meta["card"]["seed"] == 1
    assert meta["card"]["checkpoint"] == "epoch 1"
    assert set(exported.state) == {"prompt_learner", "image_encoder.transformer.ctx_learner",
                                   "image_encoder.transformer.extractor"}
    assert "token_prefix" not in exported.state["prompt_learner"]  # rebuilt from the class names
    assert not any(key.endswith("classifier.weight") for key in exported.state["image_encoder.transformer.extractor"])
    trained = torch.load(runs["DPT"] / "prompt_learner" / "model.pth.tar-1", weights_only=True)["state_dict"]
    assert torch.equal(exported.state["prompt_learner"]["ctx"], trained["ctx"])
    assert not any(name.startswith("clip") for name in exported.state)  # CLIP is referenced, never copied


def test_official_layout_and_its_eval_only_run_export_like_the_run(runs, root, tiny_clip_path, tmp_path):
    """A run in the official layout (no config.yaml: the log's config block) and an eval-only run of it (its log
    names the --model-dir) export to the probabilities of our run."""
    official = tmp_path / "official"
    assert convert.main([str(runs["DPT"]), "--to", "official", str(official), "--dtype", "fp32"]) == 0
    (official / "config.yaml").unlink()
    evaluated = tmp_path / "eval_official"
    extra = ["--eval-only", "--model-dir", str(official), "--load-epoch", "1"]
    assert train_main(argv("DPT", root, evaluated, tiny_clip_path, "OPTIM.LR", "0.01", epochs=1, extra=extra)) == 0
    paths = split_paths(runs["DPT"])
    expected = dpt.load_classifier(runs["DPT"], device="cpu").predict(paths).probs
    for run in (official, evaluated):
        out = tmp_path / f"{run.name}.safetensors"
        assert export.main([str(run), "--out", str(out)]) == 0
        torch.testing.assert_close(dpt.load_classifier(out).predict(paths).probs, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("trainer", OPEN_VOCABULARY)
def test_with_classes_rebuilds_the_text_side_over_new_names(trainer, runs):
    """Reversed class names give the reversed columns; a subset gives its columns' logits."""
    classifier = dpt.load_classifier(runs[trainer], device="cpu")
    paths = split_paths(runs[trainer])
    batch = classifier.preprocess(paths)
    logits = classifier.logits(batch)
    reversed_names = classifier.with_classes(classifier.classnames[::-1])
    assert reversed_names.classnames == classifier.classnames[::-1]
    torch.testing.assert_close(reversed_names.logits(batch), logits.flip(1), rtol=1e-5, atol=1e-4)
    if trainer != "DPT":  # DPT's class-aware prompts depend on which classes compete
        subset = classifier.with_classes(classifier.classnames[:2])
        torch.testing.assert_close(subset.logits(batch), logits[:, :2], rtol=1e-5, atol=1e-4)


def test_linear_probe_takes_no_new_class_names(runs, tmp_path, capsys):
    classifier = dpt.load_classifier(runs["LinearProbeCLIP"], device="cpu")
    with pytest.raises(ValueError, match="LinearProbeCLIP cannot take new class names: its classifier is tied to "
                                         "the 4 classes"):
        classifier.with_classes(["a", "b"])
    image = split_paths(runs["LinearProbeCLIP"])[0]
    assert predict.main([str(runs["LinearProbeCLIP"]), image, "--classes", "a,b"]) == 2
    assert "error: LinearProbeCLIP cannot take new class names" in capsys.readouterr().err


def test_one_image_call_reuses_the_cached_text_features(runs, monkeypatch):
    classifier = dpt.load_classifier(runs["CoOp"], device="cpu")
    image = split_paths(runs["CoOp"])[0]
    first = classifier.predict([image]).probs
    calls = []
    model = classifier.trainer.model
    monkeypatch.setattr(model.text_encoder, "forward", lambda *a, **k: calls.append(1))
    assert torch.equal(classifier.predict([image]).probs, first) and calls == []


def test_predict_cli_reports_an_unreadable_image_and_predicts_the_others(runs, tmp_path, capsys):
    folder = tmp_path / "photos" / "sub"
    folder.mkdir(parents=True)
    good = split_paths(runs["CoOp"])[:2]
    for i, path in enumerate(good):
        shutil.copy(path, folder / f"good{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "preds.csv"
    assert predict.main([str(runs["CoOp"]), str(tmp_path / "photos"), "--top-k", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert sum(line.startswith("error: cannot read image") and "broken.jpg" in line for line in err.splitlines()) == 1
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["broken.jpg", "good0.jpg", "good1.jpg"]
    assert rows[0]["ok"] == "0" and rows[0]["class_1"] == "" and "cannot read image" in rows[0]["error"]
    expected = dpt.load_classifier(runs["CoOp"], device="cpu").predict([str(folder / "good0.jpg")], top_k=3)
    assert [rows[1][f"class_{k}"] for k in (1, 2, 3)] == expected.classes[0]
    assert float(rows[1]["prob_1"]) == pytest.approx(float(expected.top_k_probs[0, 0]), abs=1e-6)


def test_predict_cli_json_and_zero_shot_over_given_classes(runs, tiny_clip_path, tmp_path):
    """--zero-shot with the run's template and classes gives the ZeroshotCLIP run's probabilities."""
    run_classifier = dpt.load_classifier(runs["ZeroshotCLIP"], device="cpu")
    images = split_paths(runs["ZeroshotCLIP"])[:3]
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(run_classifier.classnames) + "\n")
    out = tmp_path / "preds.json"
    assert predict.main(["--zero-shot", "--backbone", str(tiny_clip_path), "--classes", str(classes), "--template",
                         CUSTOM_TEMPLATES["EuroSAT"], *images, "--top-k", "4", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    expected = run_classifier.predict(images, top_k=4)
    assert [r["path"] for r in rows] == images and all(r["ok"] for r in rows)
    assert [r["classes"] for r in rows] == expected.classes
    assert torch.allclose(torch.tensor([r["probs"] for r in rows]), expected.top_k_probs, atol=1e-6)


def _export(runs, tmp_path, meta_change=None, version=None) -> Path:
    out = tmp_path / "coop.safetensors"
    if not out.exists():
        assert export.main([str(runs["CoOp"]), "--out", str(out)]) == 0
    if meta_change is None and version is None:
        return out
    from safetensors.torch import save_file

    exported = read_export(str(out))
    changed = tmp_path / "changed.safetensors"
    if version is None:
        write_export(str(changed), {**exported.meta, **meta_change}, exported.state)
    else:
        tensors = {f"{p}/{k}": v for p, values in exported.state.items() for k, v in values.items()}
        save_file(tensors, str(changed), metadata={"format": "dpt-export", "format_version": str(version),
                                                   "dpt": json.dumps(exported.meta)})
    return changed


@pytest.mark.parametrize("case, message", [
    ("not_export", "is not a dpt-export file (expected a .safetensors file written by dpt-export)"),
    ("newer", f"is a dpt-export of format version {FORMAT_VERSION + 1}, newer than this dpt reads ({FORMAT_VERSION}); "
              f"upgrade dpt-clip"),
    ("other_backbone", "was trained on backbone sha256:"),
    ("missing_backbone", "its backbone weights file /nowhere/clip.pt is not found; pass --backbone (backbone=) the "
                         "CLIP weights file of sha256:"),
    ("empty_folder", "holds no image files (.jpg, .jpeg, .png"),
    ("bad_out", "expected a .csv or .json file"),
    ("zero_shot_without_classes", "--zero-shot needs --backbone NAME and --classes FILE_OR_LIST"),
    ("empty_classes", "--classes ',': no class names"),
])
def test_bad_input_is_one_line_and_writes_nothing(case, message, runs, tmp_path, capsys):
    image = split_paths(runs["CoOp"])[0]
    model, extra = _export(runs, tmp_path), []
    if case == "not_export":
        model = tmp_path / "notes.safetensors"
        model.write_text("hello")
    elif case == "newer":
        model = _export(runs, tmp_path, version=FORMAT_VERSION + 1)
    elif case == "other_backbone":
        other = tmp_path / "other_clip.pt"
        torch.save(tiny_clip_state_dict(make_tiny_clip(seed=7)), other)
        extra = ["--backbone", str(other)]
    elif case == "missing_backbone":
        meta = read_export(str(model)).meta
        model = _export(runs, tmp_path, {"backbone": {**meta["backbone"], "name": "/nowhere/clip.pt"}})
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        image = str(tmp_path / "empty")
    elif case == "zero_shot_without_classes":
        model, extra = "--zero-shot", ["--backbone", read_export(str(model)).meta["backbone"]["name"]]
    elif case == "empty_classes":
        extra = ["--classes", ","]
    out = tmp_path / ("preds.txt" if case == "bad_out" else "preds.json")
    capsys.readouterr()
    assert predict.main([str(model), image, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert export.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert capsys.readouterr().err.strip() == f"error: run folder not found: {tmp_path / 'nothing'}"
    assert not (tmp_path / "x.safetensors").exists()



def test_run_config_from_a_log_skips_keys_this_code_does_not_know(tmp_path):
    """An official run has no config.yaml; its log's config block may hold another code base's keys."""
    (tmp_path / "log.txt").write_text("\n".join([
        "***************", "** Arguments **", "***************", "trainer: CoOp", "************", "** Config **",
        "************", "DATASET:", "  NAME: OxfordPets", "  NUM_SHOTS: 16", "INPUT:", "  SIZE: (224, 224)",
        "  TRANSFORMS: ['random_resized_crop', 'random_flip', 'normalize']", "OPTIM:", "  LOOKAHEAD_K: 5",
        "TRAINER:", "  COOP:", "    CSC: True", "    N_CTX: 4", "  NAME: CoOp", "Loading trainer: CoOp"]) + "\n")
    cfg = run_config(str(tmp_path))
    assert (cfg.TRAINER.NAME, cfg.DATASET.NAME, cfg.DATASET.NUM_SHOTS) == ("CoOp", "OxfordPets", 16)
    assert tuple(cfg.INPUT.SIZE) == (224, 224) and cfg.TRAINER.COOP.CSC is True and cfg.TRAINER.COOP.N_CTX == 4
    assert list(cfg.INPUT.TRANSFORMS) == ["random_resized_crop", "random_flip", "normalize"]
    (tmp_path / "log.txt").write_text("nothing here\n")
    with pytest.raises(FileNotFoundError, match="neither config.yaml nor a log.txt with a"):
        run_config(str(tmp_path))


def test_predict_takes_one_image_a_list_or_a_tensor_batch(runs):
    classifier = dpt.load_classifier(runs["VPT"], device="cpu")
    classifier.batch_size = 3  # the list is read in batches of 3
    paths = split_paths(runs["VPT"])[:5]
    batch = classifier.preprocess(paths)
    from_paths = classifier.predict(paths).probs
    torch.testing.assert_close(from_paths, classifier.predict(batch).probs, rtol=0, atol=1e-6)
    from PIL import Image

    torch.testing.assert_close(classifier.predict(Image.open(paths[1])).probs, from_paths[1:2], rtol=0, atol=1e-6)
    torch.testing.assert_close(classifier.predict(Path(paths[2])).probs, from_paths[2:3], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="predict: no images given"):
        classifier.predict([])
