"""Faults: kill -9 and resume, concurrent cache writers, non-finite losses, untrusted pickles, bad output folders."""
from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dpt.config.merge import setup_cfg
from dpt.data.build import build_dataset
from dpt.demo.synthetic import make_dataset
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import latest_checkpoint, load_checkpoint, remove_stale_temporaries
from dpt.engine.trainer import TrainerX
from dpt.modeling.backbones.loader import load_clip
from dpt.reporting.logparse import parse_metric
from dpt.train import build_parser, main
from dpt.demo.synthetic import make_dataset
from helpers import REPO, argv, compose_clip, make_data_cfg

VLP_MODELS = ["image_encoder.transformer.ctx_learner", "prompt_learner"]


def _final_accuracy(text: str) -> float:
    """The last ``* accuracy: x%`` after "Finish training" (parse_test_res's rule)."""
    tail = text.split("Finish training", 1)[1]
    return float(re.findall(r"\* accuracy: ([\d.]+)%", tail)[-1])


def _same_weights(dir_a: Path, dir_b: Path, epoch: int, names=tuple(VLP_MODELS)) -> bool:
    for name in names:
        a = load_checkpoint(str(dir_a / name / f"model.pth.tar-{epoch}"))["state_dict"]
        b = load_checkpoint(str(dir_b / name / f"model.pth.tar-{epoch}"))["state_dict"]
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            return False
    return True


# ----------------------------------------------------------------------------- 1. interruption
def _kill_and_resume(command, kill_at: str):
    """Run ``command(full)`` through, run ``command(cut)`` until a line starts with ``kill_at``, kill -9 it, rerun
    the same command; returns (uninterrupted stdout, resumed stdout)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    uninterrupted = subprocess.Popen(command("full"), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
    victim = subprocess.Popen(command("cut"), cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    seen = []
    for line in victim.stdout:
        seen.append(line)
        if line.startswith(kill_at):
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "".join(seen[-5:])
    full_out, _ = uninterrupted.communicate()
    assert uninterrupted.returncode == 0
    rerun = subprocess.run(command("cut"), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, check=True)
    return full_out, rerun.stdout


def test_kill_9_mid_epoch_then_same_command_resumes_exactly(eurosat_root, tiny_clip_path, tmp_path):
    def command(name: str):
        return [sys.executable, str(REPO / "train.py"), *argv("CoOp", eurosat_root, tmp_path / name, tiny_clip_path,
                                                            "TRAIN.CHECKPOINT_FREQ", "1", epochs=3)]

    # mid-epoch 2, after the epoch-1 checkpoints
    full_out, resumed = _kill_and_resume(command, "epoch [2/3] batch [1/")
    resumed_from = int(re.search(r"Previous epoch: (\d+)", resumed).group(1))
    assert resumed_from in (1, 2) and "train from scratch" not in resumed
    assert _final_accuracy(resumed) == _final_accuracy(full_out)
    assert _same_weights(tmp_path / "full", tmp_path / "cut", 3, names=("prompt_learner",))


def test_kill_9_keeps_the_best_val_score_and_its_epoch(eurosat_root, tiny_clip_path, tmp_path):
    """TEST.FINAL_MODEL best_val: a resumed run compares later epochs with the best score saved before the kill."""
    def command(name: str):
        return [sys.executable, str(REPO / "train.py"), *argv(
            "CoOp", eurosat_root, tmp_path / name, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1",
            "TEST.FINAL_MODEL", "best_val", "OPTIM.LR", "0.02", epochs=5)]

    full_out, resumed = _kill_and_resume(command, "epoch [4/5] batch [1/")  # after the epoch-3 checkpoints
    assert "Previous epoch: 3" in resumed
    best = re.compile(r"Best val accuracy ([\d.]+)% at epoch (\d+)")
    assert best.findall(resumed) == best.findall(full_out) and best.findall(full_out)
    chosen = re.compile(r"Loading weights to prompt_learner .*\(epoch = (\d+)\)")
    assert chosen.findall(resumed) == chosen.findall(full_out)
    assert _final_accuracy(resumed) == _final_accuracy(full_out)
    state = load_checkpoint(str(tmp_path / "cut/prompt_learner/model.pth.tar-5"))["best_val"]
    assert state["epoch"] + 1 == int(best.findall(full_out)[0][1])


_SAVE_LOOP = """
import sys, torch
from dpt.engine.checkpoint import save_checkpoint
state = {"state_dict": {"w": torch.arange(65536, dtype=torch.float32)}, "optimizer": None}
for step in range(10 ** 9):
    save_checkpoint({**state, "epoch": step % 4 + 1}, sys.argv[1])
"""


def test_kill_9_during_checkpoint_saves_never_leaves_a_broken_file(tmp_path):
    model_dir = tmp_path / "prompt_learner"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(model_dir)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not (model_dir / "checkpoint").exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        names = [n for n in os.listdir(model_dir) if re.fullmatch(r"model\.pth\.tar-\d", n)]
        assert names
        for name in names:  # every checkpoint file, overwritten or not, loads completely
            ckpt = load_checkpoint(str(model_dir / name))
            assert torch.equal(ckpt["state_dict"]["w"], torch.arange(65536, dtype=torch.float32))
            assert name == f"model.pth.tar-{ckpt['epoch']}"
        assert load_checkpoint(latest_checkpoint(str(model_dir)))["epoch"] in range(1, 5)
    (model_dir / ".model.pth.tar-2.k3j_x9q2.tmp").write_bytes(b"partial")  # as a kill between write and rename leaves
    removed = remove_stale_temporaries(str(tmp_path))
    assert str(model_dir / ".model.pth.tar-2.k3j_x9q2.tmp") in removed
    assert not [n for n in os.listdir(model_dir) if ".tmp" in n]


def test_next_start_of_a_run_removes_its_stale_temporaries(eurosat_root, tiny_clip_path, tmp_path):
    out = tmp_path / "run"
    assert main(argv("CoOp", eurosat_root, out, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1", epochs=1)) == 0
    leftovers = [out / "prompt_learner" / ".model.pth.tar-2.a1b2c3d4.tmp",
                 out / "prompt_learner" / ".checkpoint.x_9.tmp", out / ".config.yaml.zz17.tmp"]
    for path in leftovers:
        path.write_bytes(b"half-written")
    (out / ".notes.txt.ab12.tmp").write_text("not ours")
    assert main(argv("CoOp", eurosat_root, out, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1", epochs=2)) == 0
    log = sorted(out.glob("log.txt-*"))[-1].read_text()
    listed = ", ".join(sorted(str(p) for p in leftovers))
    assert f"Note: removed 3 temporary file(s) an interrupted save left: {listed}" in log
    assert not any(p.exists() for p in leftovers) and (out / ".notes.txt.ab12.tmp").exists()
    assert "Previous epoch: 1" in log and load_checkpoint(str(out / "prompt_learner" / "model.pth.tar-2"))["epoch"] == 2


def test_save_interrupted_between_models_resumes_all_from_one_epoch(eurosat_root, tiny_clip_path, tmp_path, capsys):
    full, cut = tmp_path / "full", tmp_path / "cut"
    opts = ("TRAIN.CHECKPOINT_FREQ", "1")
    assert main(argv("VLP", eurosat_root, full, tiny_clip_path, *opts, epochs=3)) == 0
    shutil.copytree(full, cut)
    first, second = VLP_MODELS  # saved in registration order: killed after the first model's epoch-3 save
    os.remove(cut / second / "model.pth.tar-3")
    (cut / second / "checkpoint").write_text("model.pth.tar-2\n")
    assert latest_checkpoint(str(cut / first)).endswith("model.pth.tar-3")
    capsys.readouterr()
    assert main(argv("VLP", eurosat_root, cut, tiny_clip_path, *opts, epochs=3)) == 0
    out = capsys.readouterr().out
    assert "resuming every model from model.pth.tar-2" in out and "Previous epoch: 2" in out
    assert _final_accuracy(out) == parse_metric(str(full / "log.txt"))
    assert _same_weights(full, cut, 3)


def test_failed_checkpoint_write_mid_run_keeps_previous_and_resumes(eurosat_root, tiny_clip_path, tmp_path,
                                                                    monkeypatch, capsys):
    """Disk full while saving epoch 2: a one-line error, epoch 1 stays loadable and a rerun resumes from it."""
    out = tmp_path / "run"
    real_save = torch.save

    def disk_full_at_epoch_2(obj, path, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_epoch_2)
    # a failure during the work: exit 1
    assert main(argv("CoOp", eurosat_root, out, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1", epochs=3)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in err[-1] and err[-1].startswith("error:")
    monkeypatch.undo()
    assert sorted(os.listdir(out / "prompt_learner")) == ["checkpoint", "model.pth.tar-1"]
    assert load_checkpoint(latest_checkpoint(str(out / "prompt_learner")))["epoch"] == 1
    assert main(argv("CoOp", eurosat_root, out, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1", epochs=3)) == 0
    assert "Previous epoch: 1" in sorted(out.glob("log.txt-*"))[-1].read_text()


# ----------------------------------------------------------------------------- 2. concurrency
def _build_in_parallel(root: str, barrier, results, extra_draws: int = 0) -> None:
    cfg = make_data_cfg(root, "DescribableTextures", num_shots=2, seed=7)
    barrier.wait()
    random.seed(7)  # as train.py seeds before building the dataset
    for _ in range(extra_draws):  # as if this run had drawn a fallback split first
        random.random()
    dataset = build_dataset(cfg)
    results.put(([d.key() for d in dataset.train_x], [d.key() for d in dataset.val]))


def _race(ctx, root, extra_draws):
    """Build the dataset in one process per entry of ``extra_draws`` at once; all must succeed on one subset."""
    barrier, results = ctx.Barrier(len(extra_draws)), ctx.Queue()
    procs = [ctx.Process(target=_build_in_parallel, args=(str(root), barrier, results, n)) for n in extra_draws]
    for p in procs:
        p.start()
    outputs = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)
    assert all(o == outputs[0] for o in outputs)
    return outputs


def test_parallel_runs_create_identical_valid_split_and_fewshot_caches(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        root = tmp_path / f"r{round_}"
        info = make_dataset(root, "DescribableTextures", n_classes=3, n_train=5, n_val=2, n_test=3, seed=round_,
                            with_split=False)  # the fallback split file is created concurrently too
        outputs = _race(ctx, root, extra_draws=(0, 0, 0, 0))
        dataset_dir = Path(info["dataset_dir"])
        cache = json.loads((dataset_dir / "split_fewshot" / "shot_2-seed_7.json").read_text())
        split = json.loads((dataset_dir / "split_zhou_DescribableTextures.json").read_text())
        assert len(cache["train"]) == 6 and len(split["train"]) + len(split["val"]) + len(split["test"]) == 30
        image_dir = info["image_dir"]
        assert [os.path.join(image_dir, e[0]) for e in cache["train"]] == [k[0] for k in outputs[0][0]]
        assert os.listdir(dataset_dir / "split_fewshot") == ["shot_2-seed_7.json"]  # no temporary leftovers
        assert not [n for n in os.listdir(dataset_dir) if n.endswith(".tmp")]


def test_parallel_runs_replace_a_stale_fewshot_cache_once(tmp_path):
    """Runs racing on a stale cache (made from other split lists) all end on the one subset that replaced it."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        root = tmp_path / f"r{round_}"
        info = make_dataset(root, "DescribableTextures", n_classes=3, n_train=5, n_val=2, n_test=3, seed=round_)
        folder = Path(info["dataset_dir"]) / "split_fewshot"
        folder.mkdir()
        stale = {"train": [], "val": [], "source": {"sampler": 1, "shots": 2, "seed": 7, "train_sha256": "0" * 64,
                                                     "val_sha256": "0" * 64}}
        (folder / "shot_2-seed_7.json").write_text(json.dumps(stale))
        outputs = _race(ctx, root, extra_draws=(0, 1, 2, 3))
        cache = json.loads((folder / "shot_2-seed_7.json").read_text())
        assert cache["source"]["train_sha256"] != "0" * 64
        assert [os.path.join(info["image_dir"], e[0]) for e in cache["train"]] == [k[0] for k in outputs[0][0]]
        assert os.listdir(folder) == ["shot_2-seed_7.json"]  # no claim or temporary left


# ----------------------------------------------------------------------------- 3. numerics
@pytest.fixture
def coop_trainer(eurosat_root, tiny_clip_path, tmp_path):
    return build_trainer(setup_cfg(build_parser().parse_args(argv("CoOp", eurosat_root, tmp_path, tiny_clip_path))))


def test_nan_names_epoch_batch_and_first_module(coop_trainer):
    t = coop_trainer
    block = t.model.clip_model.visual.transformer.resblocks[3]
    with torch.no_grad():
        block.mlp.c_fc.weight[0, 0] = float("nan")
    ctx_before = t.model.prompt_learner.ctx.detach().clone()
    t.epoch = 0
    with pytest.raises(FloatingPointError) as info:
        t.run_epoch()
    message = str(info.value)
    assert "loss is nan at epoch 1/4, batch 1/2" in message
    assert re.search(r"first non-finite output from module \S*resblocks\.3\.mlp\.c_fc \(Linear\)", message)
    assert torch.equal(t.model.prompt_learner.ctx, ctx_before)  # neither the failing step nor the re-run stepped


def test_nan_images_are_named_as_the_cause(coop_trainer):
    batch = next(iter(coop_trainer.train_loader_x))
    batch["img"][0, 0, 0, 0] = float("inf")
    assert coop_trainer.locate_nonfinite(batch) == "the input images already hold non-finite values"


def test_diverging_run_is_a_one_line_error(eurosat_root, tiny_clip_path, tmp_path, capsys):
    code = main(argv("CoOp", eurosat_root, tmp_path, tiny_clip_path, "OPTIM.LR", "1e30", "OPTIM.WARMUP_EPOCH", "0",
                     epochs=2))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1  # failed work, not bad input
    assert re.match(r"error: loss is (nan|inf) at epoch \d/2, batch \d/2; first non-finite output from module ", err[0])


def _bare_trainer(params_by_name, scaler):
    """A TrainerX holding only what model_backward_and_update reads (no data, no CLIP)."""
    t = TrainerX.__new__(TrainerX)
    t._models, t._optims, t._scheds = {}, {}, {}
    for name, param in params_by_name.items():
        t._models[name] = torch.nn.ParameterList([param])
        t._optims[name] = torch.optim.SGD([param], lr=0.5)
        t._scheds[name] = None
    t.scaler, t.epoch, t.max_epoch, t.batch_idx, t.num_batches = scaler, 0, 1, 0, 1
    return t


def test_one_grad_scaler_steps_every_optimiser_with_unscaled_grads():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(2))
    t = _bare_trainer({"visual": a, "text": b}, torch.amp.GradScaler("cpu", init_scale=1024.0))
    t.model_backward_and_update((a * torch.tensor([1.0, 2.0, 3.0])).sum() + (b * 4.0).sum())
    assert torch.equal(a.detach(), torch.tensor([0.5, 0.0, -0.5]))  # 1 - 0.5 * grad, grad unscaled
    assert torch.equal(b.detach(), torch.tensor([-2.0, -2.0]))
    assert t.scaler.get_scale() == 1024.0


def test_grad_overflow_skips_every_optimiser_and_backs_off():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(2))
    t = _bare_trainer({"visual": a, "text": b}, torch.amp.GradScaler("cpu", init_scale=2.0 ** 127))
    t.model_backward_and_update((a * 4.0).sum() + (b * 4.0).sum())  # 4 * 2**127 overflows fp32
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.zeros(2))
    assert t.scaler.get_scale() == 2.0 ** 126


def test_fp16_clip_keeps_learnable_prompts_fp32_for_the_scaler(tiny_clip_path):
    """GradScaler refuses fp16 gradients, so every learnable tensor must be an fp32 master copy."""
    clip_model = load_clip(str(tiny_clip_path), precision="fp16")
    model = compose_clip(clip_model, ["a", "b", "c"], "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=list(range(11)), n_vpt_ctx=2, cavpt_layers=[11], n_cavpt=2)
    model.freeze_clip()
    learnable = [p for p in model.parameters() if p.requires_grad]
    assert learnable and all(p.dtype == torch.float32 for p in learnable)
    assert clip_model.visual.conv1.weight.dtype == torch.float16


# ----------------------------------------------------------------------------- 4. untrusted files
class _Payload:
    """Unpickling this creates ``marker``: what a malicious cache or checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_pickle(marker: Path) -> bytes:
    data = pickle.dumps({"train": _Payload(marker)})
    control = marker.with_name(marker.name + ".control")
    pickle.loads(pickle.dumps(_Payload(control))).close()  # the payload is real: plain unpickling runs it
    assert control.exists()
    control.unlink()
    return data


def test_dassl_pkl_caches_are_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "pwned"
    info = make_dataset(tmp_path / "data", "EuroSAT", n_classes=2, n_train=3, seed=1)
    (Path(info["dataset_dir"]) / "split_fewshot").mkdir()
    (Path(info["dataset_dir"]) / "split_fewshot" / "shot_2-seed_1.pkl").write_bytes(_evil_pickle(marker))
    imagenet = make_dataset(tmp_path / "data", "ImageNet", n_classes=2, n_train=3, n_test=2, seed=2)
    (Path(imagenet["dataset_dir"]) / "preprocessed.pkl").write_bytes(_evil_pickle(marker))
    for name in ("EuroSAT", "ImageNet"):
        random.seed(1)
        assert len(build_dataset(make_data_cfg(tmp_path / "data", name, num_shots=2, seed=1)).train_x) == 4
    assert "ignoring Dassl pickle cache" in capsys.readouterr().out
    assert not marker.exists()


def test_malicious_checkpoint_is_refused_not_run(eurosat_root, tiny_clip_path, tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    (run / "prompt_learner").mkdir(parents=True)
    torch.save({"state_dict": _Payload(marker), "epoch": 1}, run / "prompt_learner" / "model.pth.tar-1")
    (run / "prompt_learner" / "checkpoint").write_text("model.pth.tar-1\n")
    assert main(argv("CoOp", eurosat_root, run, tiny_clip_path, epochs=1)) == 2  # auto-resume from OUTPUT_DIR
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err and "model.pth.tar-1" in err
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "1"]  # read with the restricted unpickler
    assert main(argv("CoOp", eurosat_root, tmp_path / "ev", tiny_clip_path, epochs=1, extra=extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'state_dict' is a pickled io.open object (never run)" in err[0]
    assert not marker.exists()


def test_malicious_clip_weights_are_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    zipped, legacy = tmp_path / "evil_zip.pt", tmp_path / "evil_legacy.pt"
    torch.save({"text_projection": _Payload(marker)}, zipped)
    torch.save({"text_projection": _Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    for path in (zipped, legacy):
        with pytest.raises(ValueError, match="not a readable CLIP checkpoint"):
            load_clip(str(path))
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """...or, in dpt/compat/weights.py alone, goes through the restricted unpickler (tests/test_foreign.py)."""
    calls = []
    for path in (REPO / "dpt").rglob("*.py"):
        text = path.read_text()
        assert "pickle.load" not in text and "allow_pickle=True" not in text, path
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.name, text[match.start(): end + 1]))
    restricted = [(name, call) for name, call in calls if "pickle_module=restricted_pickle" in call]
    assert [name for name, _ in restricted] == ["weights.py"], restricted
    assert calls and all("weights_only=True" in call for _, call in calls if (_, call) not in restricted), calls


# ----------------------------------------------------------------------------- 5. output folder
def test_unwritable_output_folder_is_a_one_line_error(eurosat_root, tiny_clip_path, tmp_path, capsys):
    """Tests run as root, where chmod does not block writes: the output folder lies under a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    assert main(argv("CoOp", eurosat_root, blocker / "out", tiny_clip_path, epochs=1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write the output folder {blocker / 'out'}: {blocker} is a file, not a folder"]


def test_model_dir_without_the_file_names_the_expected_path(eurosat_root, tiny_clip_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    extra = ["--eval-only", "--model-dir", str(tmp_path / "empty"), "--load-epoch", "5"]
    assert main(argv("CoOp", eurosat_root, tmp_path / "ev", tiny_clip_path, extra=extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --model-dir {tmp_path / 'empty'}: no model folder holds model.pth.tar-5 (--load-epoch 5); "
                   f"found no model folders"]  # the preflight, before any file is written
    assert not (tmp_path / "ev").exists()
    partial = tmp_path / "partial"  # one of VLP's two model folders holds the file: the trainer names the other
    (partial / "prompt_learner").mkdir(parents=True)
    (partial / "prompt_learner" / "model.pth.tar-5").write_bytes(b"")
    extra = ["--eval-only", "--model-dir", str(partial), "--load-epoch", "5"]
    assert main(argv("VLP", eurosat_root, tmp_path / "ev", tiny_clip_path, extra=extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = partial / "image_encoder.transformer.ctx_learner" / "model.pth.tar-5"
    assert len(err) == 1 and f'model not found at "{expected}"' in err[0]


def test_class_specific_context_on_another_class_count_is_one_line(eurosat_root, tiny_clip_path, tmp_path, capsys):
    """TRAINER.COOP.CSC True learned on 4 classes, then evaluated or resumed on the 2 base classes."""
    csc = ("TRAINER.COOP.CSC", "True")
    run = tmp_path / "run"
    assert main(argv("CoOp", eurosat_root, run, tiny_clip_path, *csc, epochs=1)) == 0
    capsys.readouterr()
    expected = (f"error: {run} holds a class-specific context (TRAINER.COOP.CSC True) learned for 4 classes, but this "
                f"run has 2 classes: such a context only applies to the classes it was trained on (train with "
                f"TRAINER.COOP.CSC False to transfer)")
    base = ("DATASET.SUBSAMPLE_CLASSES", "base")
    extra = ("--eval-only", "--model-dir", str(run), "--load-epoch", "1")
    assert main(argv("CoOp", eurosat_root, tmp_path / "ev", tiny_clip_path, *csc, *base, extra=extra)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [expected]
    assert main(argv("CoOp", eurosat_root, run, tiny_clip_path, *csc, *base, epochs=2)) == 2  # a resume
    assert capsys.readouterr().err.strip().splitlines() == [expected]
