"""Engine pieces: lr schedule (docs/reference.md 5 worked examples), evaluator metrics, checkpoints, log tee."""
import math
import os
import random
import sys

import pytest
import torch

from dpt.engine.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dpt.engine.evaluator import Classification, macro_f1
from dpt.engine.logger import close_logger, setup_logger
from dpt.engine.optim import OptimSpec, build_lr_scheduler, build_optimizer


def _lrs(spec, epochs):
    """The lr seen during each epoch when stepping once per epoch, as the trainer does."""
    param = torch.nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], spec)
    sched = build_lr_scheduler(optim, spec)
    lrs = []
    for _ in range(epochs):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    return lrs


def test_constant_warmup_cosine_reference_examples():
    spec = OptimSpec(lr=0.01, max_epoch=60, warmup_epoch=10, warmup_type="constant", warmup_cons_lr=1e-5)
    lrs = _lrs(spec, 60)
    assert lrs[:10] == [1e-5] * 10
    assert lrs[10] == pytest.approx(1.0e-2)
    assert lrs[30] == pytest.approx(7.5e-3)
    assert lrs[59] == pytest.approx(8.07e-4, abs=1e-6)

    text = OptimSpec(lr=0.002, max_epoch=60, warmup_epoch=1, warmup_type="constant", warmup_cons_lr=1e-5)
    lrs = _lrs(text, 60)
    assert lrs[0] == 1e-5 and lrs[1] == pytest.approx(2.0e-3) and lrs[59] == pytest.approx(5.5e-6, abs=1e-7)

    coop = OptimSpec(lr=0.002, max_epoch=200, warmup_epoch=1, warmup_type="constant", warmup_cons_lr=1e-5)
    assert _lrs(coop, 200)[199] == pytest.approx(4.9e-7, abs=1e-8)


def test_linear_warmup_and_plain_cosine():
    spec = OptimSpec(lr=0.1, max_epoch=20, warmup_epoch=4, warmup_type="linear", warmup_min_lr=1e-5)
    lrs = _lrs(spec, 20)
    assert lrs[:4] == pytest.approx([1e-5, 0.025, 0.05, 0.075])
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 20)) / 2)
    plain = _lrs(OptimSpec(lr=0.1, max_epoch=10), 10)
    assert plain == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(10)])


def test_resumed_scheduler_follows_the_schedule():
    spec = OptimSpec(lr=0.01, max_epoch=30, warmup_epoch=5, warmup_type="constant")
    full = _lrs(spec, 30)
    param = torch.nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], spec)
    sched = build_lr_scheduler(optim, spec)
    for _ in range(12):
        optim.step()
        sched.step()
    state = {"optimizer": optim.state_dict(), "scheduler": sched.state_dict()}
    optim2 = build_optimizer([torch.nn.Parameter(torch.zeros(1))], spec)
    sched2 = build_lr_scheduler(optim2, spec)
    optim2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    resumed = []
    for _ in range(12, 30):
        resumed.append(optim2.param_groups[0]["lr"])
        optim2.step()
        sched2.step()
    assert resumed == pytest.approx(full[12:])


def test_unknown_optimizer_and_scheduler():
    with pytest.raises(ValueError, match="OPTIM.NAME"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimSpec(name="lion"))
    with pytest.raises(ValueError, match="OPTIM.LR_SCHEDULER"):
        _lrs(OptimSpec(lr_scheduler="poly"), 1)


def _independent_macro_f1(y_true, y_pred):
    scores = []
    for c in sorted(set(y_true)):
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        prec_den = sum(p == c for p in y_pred)
        rec_den = sum(t == c for t in y_true)
        precision = tp / prec_den if prec_den else 0.0
        recall = tp / rec_den if rec_den else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def test_macro_f1_matches_precision_recall_definition():
    rng = random.Random(0)
    y_true = [rng.randrange(5) for _ in range(200)]
    y_pred = [t if rng.random() < 0.6 else rng.randrange(7) for t in y_true]
    ours = macro_f1(torch.tensor(y_true), torch.tensor(y_pred))
    assert ours == pytest.approx(_independent_macro_f1(y_true, y_pred))


def test_evaluator_prints_dassl_block(capsys, tmp_path):
    ev = Classification({0: "cat", 1: "dog"}, per_class=True, cmat_path=str(tmp_path / "cmat.pt"))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    ev.process(logits, torch.tensor([0, 0, 0, 1]))
    results = ev.evaluate()
    out = capsys.readouterr().out.splitlines()
    assert out[:6] == ["=> result", "* total: 4", "* correct: 3", "* accuracy: 75.0%", "* error: 25.0%", "* macro_f1: 73.3%"]
    assert results["accuracy"] == 75.0
    assert "* class: 0 (cat)\ttotal: 3\tcorrect: 2\tacc: 66.7%" in out
    assert torch.load(tmp_path / "cmat.pt").tolist() == [[2, 1], [0, 1]]


def test_checkpoint_atomic_roundtrip_and_pointer(tmp_path):
    model_dir = tmp_path / "prompt_learner"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, str(model_dir))
    save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "epoch": 4}, str(model_dir))
    assert sorted(os.listdir(model_dir)) == ["checkpoint", "model.pth.tar-3", "model.pth.tar-4"]
    assert latest_checkpoint(str(model_dir)).endswith("model.pth.tar-4")
    assert load_checkpoint(latest_checkpoint(str(model_dir)))["state_dict"]["w"].tolist() == [0.0, 0.0]


def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    model_dir = tmp_path / "m"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 1}, str(model_dir))

    def disk_full(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "epoch": 2}, str(model_dir))
    monkeypatch.undo()
    assert sorted(os.listdir(model_dir)) == ["checkpoint", "model.pth.tar-1"]
    assert load_checkpoint(latest_checkpoint(str(model_dir)))["epoch"] == 1


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "epoch": 1}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="cannot load checkpoint .*model.pth.tar-1"):
        load_checkpoint(str(path))


def test_rng_state_roundtrip_through_weights_only(tmp_path):
    random.seed(1)
    torch.manual_seed(1)
    state = rng_state()
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    expected = (random.random(), torch.rand(2).tolist())
    set_rng_state(torch.load(path, weights_only=True))
    assert (random.random(), torch.rand(2).tolist()) == expected


def test_log_tee_never_overwrites(tmp_path):
    first = setup_logger(str(tmp_path))
    print("hello")
    close_logger()
    second = setup_logger(str(tmp_path))
    print("again")
    close_logger()
    assert first.endswith("log.txt") and second != first and os.path.basename(second).startswith("log.txt-")
    assert open(first).read() == "hello\n" and open(second).read() == "again\n"
    assert not isinstance(sys.stdout, type(None))
