"""Runs and checkpoints of the official code: Dassl-written files load without running their pickles, official
names map to ours and back (dpt-convert), layouts are checked, dpt-interpret reads both kinds of run.

Official-layout runs are written here the way Dassl writes them (docs/reference.md 4.4): per part
``<part>/model.pth.tar-N`` = torch.save of {state_dict (official names, fp16), epoch, optimizer state, scheduler
state with the warm-up scheduler's pickled successor, val_result} plus the ``checkpoint`` pointer. The official
names are spelled out below by hand (DPT.py's CAVPT, as tests/test_official_golden.py step 3), independently
of the trainers' ``official_names`` tables, so a wrong table fails here.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler

from dpt.compat import restricted_pickle
from dpt.compat.weights import read_weights
from dpt.config.merge import setup_cfg
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import load_checkpoint
from dpt.modeling.backbones.loader import load_clip
from dpt.reporting.logparse import parse_metric
from dpt.tools import convert, interpret
from dpt.train import build_parser, main
from helpers import argv as trainer_argv, save_torchscript_state

TEXT, VISUAL, CAVPT = "prompt_learner", "image_encoder.transformer.ctx_learner", "image_encoder.transformer.extractor"
DPT_PARTS = (VISUAL, CAVPT, TEXT)
State = Dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- Dassl-like writer
class _Marker:
    path = ""  # set by the ``dassl_module`` fixture; creating it proves that unpickling ran code


class WarmupSuccessor(CosineAnnealingLR):
    """The warm-up scheduler's successor, defined under ``dassl.optim.lr_scheduler``; unpickling it runs code."""

    def __setstate__(self, state):
        Path(_Marker.path).touch()
        self.__dict__.update(state)


class ConstantWarmupScheduler(LRScheduler):
    """Like Dassl's: holds its successor as an attribute, so ``state_dict()`` pickles the successor object."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr):
        self.successor, self.warmup_epoch, self.cons_lr = successor, warmup_epoch, cons_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


@pytest.fixture
def dassl_module(tmp_path, monkeypatch):
    """``dassl.optim.lr_scheduler`` importable while the test runs; returns the marker path."""
    module = types.ModuleType("dassl.optim.lr_scheduler")
    for cls in (WarmupSuccessor, ConstantWarmupScheduler):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    for name in ("dassl", "dassl.optim"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    _Marker.path = str(tmp_path / "unpickled_code_ran")
    return Path(_Marker.path)


def dassl_checkpoint(state: State, epoch: int, **extra) -> dict:
    """What Dassl's save_checkpoint stores for one part trained with SGD + constant warm-up + cosine."""
    params = [nn.Parameter(v.detach().float().clone()) for v in state.values() if v.is_floating_point()]
    optim = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    sched = ConstantWarmupScheduler(optim, WarmupSuccessor(optim, T_max=10), warmup_epoch=1, cons_lr=1e-5)
    for p in params:
        p.grad = torch.ones_like(p)
    optim.step()
    sched.step()
    return {"state_dict": OrderedDict(state), "epoch": epoch, "optimizer": optim.state_dict(),
            "scheduler": sched.state_dict(), "val_result": None, **extra}


def write_dassl_run(folder: Path, parts: Dict[str, State], epoch: int) -> Path:
    for part, state in parts.items():
        (folder / part).mkdir(parents=True)
        torch.save(dassl_checkpoint(state, epoch), folder / part / f"model.pth.tar-{epoch}")
        (folder / part / "checkpoint").write_text(f"model.pth.tar-{epoch}\n")
    return folder


def official_extractor(ours: State) -> State:
    """Our CAVPT state dict under DPT.py's names (classfiers sic; key tokens stacked into ctx [layers, n, W])."""
    names = {"meta_net": "meta_nets.{j}", "q_proj": "attns.{j}.qmlp", "k_proj": "attns.{j}.kmlp",
             "v_proj": "attns.{j}.vmlp", "norm": "lns.{j}", "classifier": "classfiers.{j}", "token_norm": "lns2.{j}"}
    out, tokens = {}, {}
    for key, value in ours.items():
        j, module, leaf = re.fullmatch(r"layers\.(\d+)\.(\w+?)(?:\.(weight|bias))?", key).groups()
        if module == "key_tokens":
            tokens[int(j)] = value
        else:
            out[f"{names[module].format(j=j)}.{leaf}"] = value
    out["ctx"] = torch.stack([tokens[j] for j in sorted(tokens)])
    return out


def official_parts(ours_run: Path, epoch: int, dtype=torch.float16) -> Dict[str, State]:
    """The parts of our run as the official DPT code names and stores them."""
    parts = {}
    for part in DPT_PARTS:
        state = load_checkpoint(str(ours_run / part / f"model.pth.tar-{epoch}"))["state_dict"]
        state = official_extractor(state) if part == CAVPT else dict(state)
        parts[part] = {k: v.to(dtype) for k, v in state.items()}
    return parts


# ----------------------------------------------------------------------------- runs
def argv(trainer, root, out, clip_path, *opts, extra=()):
    """helpers.argv's train.py arguments: one epoch at a higher lr, so one epoch moves the prompts."""
    return trainer_argv(trainer, root, out, clip_path, "OPTIM.LR", "0.05", *opts, epochs=1, extra=extra)


def eval_args(trainer, root, out, clip_path, model_dir, *opts):
    return argv(trainer, root, out, clip_path, *opts, extra=["--eval-only", "--model-dir", str(model_dir),
                                                            "--load-epoch", "1"])


@pytest.fixture(scope="module")
def dpt_run(eurosat_root, tiny_clip_path, tmp_path_factory) -> Path:
    """Our DPT run, one epoch (all three parts)."""
    out = tmp_path_factory.mktemp("ours") / "dpt"
    assert main(argv("DPT", eurosat_root, out, tiny_clip_path)) == 0
    return out


def build(trainer, root, clip_path, out, *opts):
    return build_trainer(setup_cfg(build_parser().parse_args(argv(trainer, root, out, clip_path, *opts))))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------- restricted unpickler
def test_dassl_checkpoint_with_pickled_schedulers_loads_without_running_them(dassl_module, tmp_path):
    ctx = torch.randn(4, 8).half()
    path = tmp_path / "model.pth.tar-7"
    torch.save(dassl_checkpoint({"ctx": ctx, "token_prefix": torch.zeros(3, 1, 8).half()}, 7), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # why a second reader is needed at all
    weights = read_weights(str(path))  # the dassl module stays importable: still nothing is built
    assert not dassl_module.exists()
    assert weights.foreign and weights.epoch == 7 and weights.meta == {}
    assert weights.state_dict["ctx"].dtype == torch.float32 and torch.equal(weights.state_dict["ctx"], ctx.float())
    torch.load(path, weights_only=False)  # control: ordinary unpickling runs the file's code
    assert dassl_module.exists()


class _Call:
    """Unpickling this calls ``func(*args)``: what a hostile checkpoint does."""

    def __init__(self, func, *args):
        self.call = (func, args)

    def __reduce__(self):
        return self.call


def _payload(attack: str, marker: Path):
    """An object whose unpickling creates ``marker`` (``evil_on_import`` creates it when imported)."""
    touch = f"open({str(marker)!r}, 'w').close()"
    if attack == "class global":
        import evil_on_import  # the pickle refers to its class, so unpickling imports the module

        marker.unlink()
        return evil_on_import.Thing
    return {
        "os.system": _Call(os.system, f"touch {marker}"),
        "subprocess": _Call(subprocess.call, ["touch", str(marker)]),
        "eval": _Call(eval, touch),
        "exec": _Call(exec, touch),
        "__import__": _Call(__import__, "evil_on_import"),
    }[attack]


@pytest.mark.parametrize("attack", ["os.system", "subprocess", "eval", "exec", "__import__", "class global"])
def test_hostile_pickles_in_a_checkpoint_never_run(attack, tmp_path, monkeypatch):
    marker, module_dir = tmp_path / "pwned", tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "evil_on_import.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(module_dir))
    good, bad = tmp_path / "good.pth.tar-1", tmp_path / "bad.pth.tar-1"
    ctx = torch.randn(2, 8)
    try:
        payload = _payload(attack, marker)
        torch.save({"state_dict": {"ctx": ctx}, "epoch": 1, "optimizer": payload, "scheduler": [payload]}, good)
        torch.save({"state_dict": payload, "epoch": 1}, bad)
        sys.modules.pop("evil_on_import", None)
        weights = read_weights(str(good))
        assert torch.equal(weights.state_dict["ctx"], ctx) and weights.foreign
        with pytest.raises(ValueError, match="is not a checkpoint: 'state_dict' is a pickled .* object \\(never run"):
            read_weights(str(bad))
        assert not marker.exists() and "evil_on_import" not in sys.modules
        torch.load(good, weights_only=False)  # control: the payload is real
        assert marker.exists()
    finally:
        sys.modules.pop("evil_on_import", None)


def test_placeholders_record_and_never_call():
    cls = restricted_pickle.resolve_global("posix", "system")
    made = cls("rm -rf /")
    made["k"] = 1
    made.append(2)
    made.__setstate__({"a": 3})
    assert made.args == ("rm -rf /",) and made.items == [("k", 1), 2] and made.state == {"a": 3}
    assert repr(made) == "<pickled posix.system, not loaded>"
    assert restricted_pickle.resolve_global("posix", "system") is cls  # one class per global
    assert restricted_pickle.resolve_global("torch", "float16") is torch.float16
    assert restricted_pickle.resolve_global("collections", "OrderedDict") is OrderedDict
    assert issubclass(restricted_pickle.resolve_global("torch", "load"), restricted_pickle.Placeholder)
    encode = restricted_pickle.resolve_global("_codecs", "encode")  # protocol-2 bytes
    assert encode("\xff", "latin1") == b"\xff"
    with pytest.raises(pickle.UnpicklingError, match="only latin1"):
        encode("x", "zlib_codec")  # no other codec module is looked up


@pytest.mark.parametrize("kind, message", [
    ("text", "is not a checkpoint: not a file written by torch.save"),
    ("torchscript", "is a TorchScript archive, not a checkpoint"),
    ("no tensors", "is not a checkpoint: 'state_dict' entry 'ctx' is a str, not a tensor"),
    ("list", "is not a checkpoint: expected a dict with 'state_dict' and 'epoch', found a list"),
    ("legacy", "a pre-1.6 torch file holding pickled objects"),
])
def test_files_that_are_not_checkpoints_are_one_line_errors(kind, message, tmp_path):
    path = tmp_path / "model.pth.tar-1"
    if kind == "text":
        path.write_text("epoch 1 accuracy 50%\n")
    elif kind == "torchscript":
        save_torchscript_state({"ctx": torch.ones(2)}, path)
    elif kind == "no tensors":
        torch.save({"state_dict": {"ctx": "not a tensor"}, "epoch": 1, "optimizer": torch.optim.SGD}, path)
    elif kind == "legacy":
        torch.save({"state_dict": {"ctx": torch.ones(2)}, "optimizer": torch.optim.SGD}, path,
                   _use_new_zipfile_serialization=False)
    else:
        torch.save([torch.ones(1)], path)
    with pytest.raises((ValueError, RuntimeError), match=re.escape(message)):
        read_weights(str(path))


# ----------------------------------------------------------------------------- official runs for evaluation
@pytest.fixture
def official_run(dpt_run, dassl_module, tmp_path) -> Path:
    """Our DPT run rewritten as the official DPT code writes it (fp16, official names, pickled schedulers)."""
    return write_dassl_run(tmp_path / "official", official_parts(dpt_run, 1), epoch=1)


def test_official_dpt_run_loads_with_names_mapped_and_fp16_cast(official_run, dpt_run, dassl_module, eurosat_root,
                                                                  tiny_clip_path, tmp_path, capsys):
    trainer = build("DPT", eurosat_root, tiny_clip_path, tmp_path / "t")
    trainer.load_model(str(official_run), epoch=1)
    out = capsys.readouterr().out
    assert "Dassl-written checkpoints (official names translated, fp32): TRAINER.COOP.N_CTX = 16" in out
    for part in DPT_PARTS:
        ours = load_checkpoint(str(dpt_run / part / "model.pth.tar-1"))["state_dict"]
        loaded = trainer._models[part].state_dict()
        skipped = set(trainer.keys_to_skip_on_load(part))  # class-dependent: token buffers, CAVPT classifiers
        assert skipped == ({"token_prefix", "token_suffix"} if part == TEXT else
                           {"layers.0.classifier.weight"} if part == CAVPT else set())
        for key, value in ours.items():
            assert key in skipped or torch.equal(loaded[key], value.half().float()), (part, key)
    assert not dassl_module.exists()


def test_eval_only_on_an_official_run_matches_our_run(dpt_run, dassl_module, eurosat_root, tiny_clip_path, tmp_path):
    """fp32 official files carry exactly our weights: the same test accuracy as evaluating our run."""
    official = write_dassl_run(tmp_path / "official32", official_parts(dpt_run, 1, torch.float32), epoch=1)
    assert main(eval_args("DPT", eurosat_root, tmp_path / "ev_ours", tiny_clip_path, dpt_run)) == 0
    assert main(eval_args("DPT", eurosat_root, tmp_path / "ev_official", tiny_clip_path, official)) == 0
    log = (tmp_path / "ev_official" / "log.txt").read_text()
    assert "Dassl-written checkpoints" in log and 'Loading weights to image_encoder.transformer.extractor' in log
    ours = parse_metric(str(tmp_path / "ev_ours" / "log.txt"), end_signal="=> result")
    assert parse_metric(str(tmp_path / "ev_official" / "log.txt"), end_signal="=> result") == ours
    assert not dassl_module.exists()


@pytest.mark.parametrize("opts, message", [
    (("TRAINER.VPT.N_CTX", "4"), "holds a model with TRAINER.VPT.N_CTX = 10, but this run's config has "
                                  "TRAINER.VPT.N_CTX = 4"),
    (("TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "11"),
     "holds a model with TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT = 12, but this run's config has "
     "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT = 11"),
    (("TRAINER.COOP.N_CTX", "8"), "holds a model with TRAINER.COOP.N_CTX = 16, but this run's config has "
                                   "TRAINER.COOP.N_CTX = 8"),
    (("TRAINER.DPT.N_KEY_TOKENS", "5"), "TRAINER.DPT.N_KEY_TOKENS = 10, but this run's config has "
                                         "TRAINER.DPT.N_KEY_TOKENS = 5"),
])
def test_official_run_of_another_layout_is_one_line(opts, message, official_run, eurosat_root, tiny_clip_path,
                                                    tmp_path, capsys):
    assert main(eval_args("DPT", eurosat_root, tmp_path / "ev", tiny_clip_path, official_run, *opts)) == 2
    assert message in one_error_line(capsys)


def test_official_run_of_another_method_is_one_line(official_run, dassl_module, eurosat_root, tiny_clip_path,
                                                    tmp_path, capsys):
    assert main(eval_args("VPT", eurosat_root, tmp_path / "ev", tiny_clip_path, official_run)) == 2
    line = one_error_line(capsys)
    assert f"holds {CAVPT}/model.pth.tar-1, which trainer VPT does not learn" in line
    cocoop = write_dassl_run(tmp_path / "cocoop", {TEXT: {
        "ctx": torch.zeros(16, 64).half(), "meta_net.linear1.weight": torch.zeros(2, 32).half(),
        "meta_net.linear1.bias": torch.zeros(2).half(), "meta_net.linear2.weight": torch.zeros(64, 2).half(),
        "meta_net.linear2.bias": torch.zeros(64).half()}}, epoch=1)
    assert main(eval_args("CoOp", eurosat_root, tmp_path / "ev2", tiny_clip_path, cocoop)) == 2
    assert "holds a model with CoCoOp meta-net = True, but this run's config has CoCoOp meta-net = False" in \
        one_error_line(capsys)
    assert not dassl_module.exists()


def test_official_bottomlimit_1_run_with_an_empty_visual_prompt_part(dassl_module, eurosat_root, tiny_clip_path,
                                                                    tmp_path):
    """BOTTOMLIMIT 1: CAVPT in every block; the official code still saves an empty ctx [0, 10, W] part."""
    ours = tmp_path / "ours"
    assert main(argv("DPT", eurosat_root, ours, tiny_clip_path, "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "1")) == 0
    assert not (ours / VISUAL).exists()
    parts = {TEXT: load_checkpoint(str(ours / TEXT / "model.pth.tar-1"))["state_dict"],
             CAVPT: official_extractor(load_checkpoint(str(ours / CAVPT / "model.pth.tar-1"))["state_dict"]),
             VISUAL: {"ctx": torch.zeros(0, 10, 64).half()}}
    official = write_dassl_run(tmp_path / "official", parts, epoch=1)
    assert main(eval_args("DPT", eurosat_root, tmp_path / "ev", tiny_clip_path, official,
                          "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", "1")) == 0
    assert parse_metric(str(tmp_path / "ev" / "log.txt"), end_signal="=> result") == \
        parse_metric(str(ours / "log.txt"))
    converted = tmp_path / "converted"
    assert convert.main([str(ours), "--to", "official", str(converted)]) == 0
    assert torch.load(converted / VISUAL / "model.pth.tar-1", weights_only=True)["state_dict"]["ctx"].shape == \
        (0, 10, 64)


def test_init_weights_from_coop_released_model(dassl_module, eurosat_root, tiny_clip_path, tmp_path, capsys):
    """CoOp's released models: prompt_learner/model.pth.tar-50 with fp16 ctx and token buffers, Dassl-written."""
    ctx = torch.randn(16, 64).half()
    released = write_dassl_run(tmp_path / "released", {TEXT: {
        "ctx": ctx, "token_prefix": torch.zeros(1000, 1, 64).half(),
        "token_suffix": torch.zeros(1000, 60, 64).half()}}, epoch=50)
    path = released / TEXT / "model.pth.tar-50"
    trainer = build("CoOp", eurosat_root, tiny_clip_path, tmp_path / "t", "MODEL.INIT_WEIGHTS", str(path))
    assert torch.equal(trainer.model.prompt_learner.ctx.detach(), ctx.float())
    assert f"Initialized prompt_learner from {path}" in capsys.readouterr().out
    args = argv("CoOp", eurosat_root, tmp_path / "t2", tiny_clip_path, "MODEL.INIT_WEIGHTS", str(path),
                "TRAINER.COOP.N_CTX", "4")
    assert main(args) == 2
    assert "holds a model with TRAINER.COOP.N_CTX = 16, but this run's config has TRAINER.COOP.N_CTX = 4" in \
        one_error_line(capsys)
    assert not dassl_module.exists()


def test_resuming_an_official_run_says_to_evaluate_or_convert(official_run, eurosat_root, tiny_clip_path, capsys):
    assert main(argv("DPT", eurosat_root, official_run, tiny_clip_path)) == 2  # OUTPUT_DIR = the official run
    line = one_error_line(capsys)
    assert "cannot load checkpoint" in line and "not resumed" in line


# ----------------------------------------------------------------------------- dpt-convert
OFFICIAL_EXTRACTOR_KEYS = {  # one CAVPT layer (BOTTOMLIMIT 12), as DPT.py's CAVPT.state_dict() names them
    "meta_nets.0.weight", "meta_nets.0.bias", "attns.0.kmlp.weight", "attns.0.qmlp.weight", "attns.0.vmlp.weight",
    "lns.0.weight", "lns.0.bias", "classfiers.0.weight", "lns2.0.weight", "lns2.0.bias", "ctx",
}


def test_convert_to_official_writes_dassl_layout_and_names(dpt_run, tmp_path, capsys):
    out = tmp_path / "official"
    assert convert.main([str(dpt_run), "--to", "official", str(out)]) == 0
    assert f"{CAVPT}: {out / CAVPT / 'model.pth.tar-1'}" in capsys.readouterr().out
    assert (out / "log.txt").is_file() and (out / "config.yaml").is_file()
    expected = official_parts(dpt_run, 1)
    for part in DPT_PARTS:
        assert (out / part / "checkpoint").read_text() == "model.pth.tar-1\n"
        ckpt = torch.load(out / part / "model.pth.tar-1", weights_only=True)  # Dassl's load_checkpoint can read it
        assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"} and ckpt["epoch"] == 1
        assert set(ckpt["state_dict"]) == set(expected[part])
        for key, value in expected[part].items():
            assert ckpt["state_dict"][key].dtype == torch.float16 and torch.equal(ckpt["state_dict"][key], value)
    assert set(torch.load(out / CAVPT / "model.pth.tar-1", weights_only=True)["state_dict"]) == OFFICIAL_EXTRACTOR_KEYS
    assert torch.load(out / CAVPT / "model.pth.tar-1")["state_dict"]["ctx"].shape == (1, 10, 64)


def test_convert_round_trip_official_fp32_then_ours_is_exact(dpt_run, dassl_module, eurosat_root, tiny_clip_path,
                                                             tmp_path, capsys):
    official, back = tmp_path / "official", tmp_path / "back"
    assert convert.main([str(dpt_run), "--to", "official", str(official), "--dtype", "fp32"]) == 0
    assert convert.main([str(official), "--to", "ours", str(back)]) == 0
    for part in DPT_PARTS:
        ours = load_checkpoint(str(dpt_run / part / "model.pth.tar-1"))["state_dict"]
        again = load_checkpoint(str(back / part / "model.pth.tar-1"))  # weights_only: ours again
        assert again["meta"]["converted_from"] == str(official)
        assert set(again["state_dict"]) == set(ours)
        assert all(torch.equal(again["state_dict"][k], v) for k, v in ours.items()), part
    dassl_written = write_dassl_run(tmp_path / "dassl", official_parts(dpt_run, 1), epoch=1)
    converted = tmp_path / "from_dassl"
    assert convert.main([str(dassl_written), "--to", "ours", str(converted)]) == 2  # no config names its trainer
    assert "pass --trainer NAME" in one_error_line(capsys)
    assert convert.main([str(dassl_written), "--to", "ours", str(converted), "--trainer", "DPT"]) == 0
    assert main(eval_args("DPT", eurosat_root, tmp_path / "ev", tiny_clip_path, converted)) == 0
    assert "Dassl-written" not in (tmp_path / "ev" / "log.txt").read_text()
    assert not dassl_module.exists()


def test_convert_bad_input_is_one_line_exit_2(dpt_run, tmp_path, capsys):
    assert convert.main([str(tmp_path / "nope"), "--to", "official", str(tmp_path / "o1")]) == 2
    assert "run folder not found" in one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert convert.main([str(tmp_path / "empty"), "--to", "official", str(tmp_path / "o2")]) == 2
    assert "cannot tell which trainer wrote" in one_error_line(capsys)
    assert convert.main([str(tmp_path / "empty"), "--to", "official", str(tmp_path / "o2"), "--trainer", "DPT"]) == 2
    assert "holds no part folder with checkpoints" in one_error_line(capsys)
    assert convert.main([str(dpt_run), "--to", "official", str(tmp_path / "o2"), "--trainer", "Nope"]) == 2
    assert "unknown trainer 'Nope'" in one_error_line(capsys)
    assert convert.main([str(dpt_run), "--to", "official", str(tmp_path / "empty")]) == 2
    assert "already exists" in one_error_line(capsys)
    assert convert.main([str(dpt_run), "--to", "official", str(tmp_path / "o3"), "--load-epoch", "9"]) == 2
    assert "model.pth.tar-9 is missing" in one_error_line(capsys)
    shared = tmp_path / "shared"
    shutil.copytree(dpt_run, shared)
    for part in DPT_PARTS:
        ckpt = load_checkpoint(str(shared / part / "model.pth.tar-1"))
        ckpt["meta"]["shared_cavpt"] = True
        torch.save(ckpt, shared / part / "model.pth.tar-1")
    assert convert.main([str(shared), "--to", "official", str(tmp_path / "o4")]) == 2
    assert "SHARED_CAVPT True) has no official layout" in one_error_line(capsys)
    os.remove(shared / TEXT / "checkpoint")
    assert convert.main([str(shared), "--to", "ours", str(tmp_path / "o5")]) == 2
    assert "prompt_learner/checkpoint is missing" in one_error_line(capsys)
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())  # nothing half-written


# ----------------------------------------------------------------------------- dpt-interpret
def _expected_nearest(ctx: torch.Tensor, embedding: torch.Tensor, k: int):
    """Brute force, one distance at a time (independent of torch.cdist/topk)."""
    from dpt.modeling.backbones.clip_import import clip

    rows = []
    for vector in ctx:
        distances = [(float(((vector - e) ** 2).sum().sqrt()), i) for i, e in enumerate(embedding)]
        best = sorted(distances)[:k]
        rows.append(([clip.clip._tokenizer.decoder[i] for _, i in best], [d for d, _ in best]))
    return rows


def test_interpret_words_and_norms_of_our_run_and_the_official_copy(dpt_run, official_run, dassl_module,
                                                                    tiny_clip_path, capsys):
    assert interpret.main([str(dpt_run), "--topk", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ctx = load_checkpoint(str(dpt_run / TEXT / "model.pth.tar-1"))["state_dict"]["ctx"]
    embedding = load_clip(str(tiny_clip_path)).token_embedding.weight.detach()
    for m, (words, distances) in enumerate(_expected_nearest(ctx[:2], embedding, 3), start=1):
        line = next(ln for ln in lines if ln.startswith(f"{m}: "))
        assert line.startswith(f"{m}: {words}")
        printed = [float(d) for d in re.findall(r"'(\d+\.\d{4})'", line)]
        assert printed == pytest.approx(distances, abs=1e-4)
    visual = load_checkpoint(str(dpt_run / VISUAL / "model.pth.tar-1"))["state_dict"]["ctx"]  # [11, 10, 64]
    block3 = next(ln for ln in lines if ln.startswith("block 3: "))
    assert float(block3.split()[3]) == pytest.approx(visual[2].norm(dim=-1).mean().item(), abs=1e-4)
    assert [float(v) for v in block3.split("|")[1].split()] == pytest.approx(visual[2].norm(dim=-1).tolist(), abs=1e-4)
    cavpt_line = lines[-1]
    keys = load_checkpoint(str(dpt_run / CAVPT / "model.pth.tar-1"))["state_dict"]["layers.0.key_tokens"]
    assert cavpt_line.startswith("block 12: mean") and len(cavpt_line.split("|")[1].split()) == 10
    assert float(cavpt_line.split()[3]) == pytest.approx(keys.norm(dim=-1).mean().item(), abs=1e-4)

    # the official copy (no config.yaml): backbone from the config its log.txt prints, blocks from the shapes
    shutil.copy(dpt_run / "log.txt", official_run / "log.txt")
    assert interpret.main([str(official_run), "--topk", "3"]) == 0
    official_lines = capsys.readouterr().out.splitlines()
    assert [ln.split("|")[0].split()[:2] for ln in official_lines if ln.startswith("block")] == \
        [ln.split("|")[0].split()[:2] for ln in lines if ln.startswith("block")]
    assert not dassl_module.exists()


def test_interpret_bad_input_is_one_line_exit_2(official_run, tmp_path, capsys):
    assert interpret.main([str(official_run)]) == 2  # no config.yaml, no log.txt
    assert "pass --trainer NAME" in one_error_line(capsys)
    assert interpret.main([str(official_run), "--trainer", "DPT"]) == 2
    assert "pass --backbone" in one_error_line(capsys)
    assert interpret.main([str(official_run), "--trainer", "LinearProbeCLIP"]) == 2
    assert "trainer LinearProbeCLIP learns no prompts to interpret" in one_error_line(capsys)
    assert interpret.main([str(tmp_path / "nope")]) == 2
    assert "run folder not found" in one_error_line(capsys)


# ----------------------------------------------------------------------------- deep-prompt methods (10.2-10.4)
def official_deep_prompt_names(trainer: str, ours: State) -> State:
    """Our registered deep-prompt module's state under the official CustomCLIP names (spelled out by hand), plus
    frozen-CLIP entries the official checkpoint also holds; PromptSRC's prompt aggregate has no official twin."""
    out: State = {}
    for key, value in ours.items():
        if m := re.fullmatch(r"deep_text\.prompts\.(\d+)", key):
            key = (f"prompt_learner.compound_prompts_text.{m[1]}" if trainer == "MaPLe"
                   else f"text_encoder.transformer.resblocks.{int(m[1]) + 1}.VPT_shallow")
        elif m := re.fullmatch(r"deep_vision\.prompts\.(\d+)", key):
            key = f"image_encoder.transformer.resblocks.{int(m[1]) + 1}.VPT_shallow"
        elif key == "deep_vision.first":
            key = "image_encoder.VPT"
        elif m := re.fullmatch(r"coupled\.couplings\.(\d+)\.(weight|bias)", key):
            key = ("prompt_learner.proj." if m[1] == "0"
                   else f"prompt_learner.compound_prompt_projections.{int(m[1]) - 1}.") + m[2]
        elif key == "gpa.aggregate":
            continue
        out[key] = value
    frozen = {"image_encoder.conv1.weight": torch.ones(2, 3), "text_encoder.positional_embedding": torch.ones(4),
              "logit_scale": torch.ones(()), "prompt_learner.ZS_image_encoder.proj": torch.ones(2)}
    return {**out, **frozen}


@pytest.mark.parametrize("trainer,model_name", [("MaPLe", "MultiModalPromptLearner"), ("IVLP", "VLPromptLearner"),
                                                ("PromptSRC", "VLPromptLearner")])
def test_official_deep_prompt_run_loads_under_its_dassl_model_name(trainer, model_name, dassl_module, eurosat_root,
                                                                   tiny_clip_path, tmp_path):
    source = build(trainer, eurosat_root, tiny_clip_path, tmp_path / "a")
    assert source.get_model_names() == [model_name]
    state = {k: (v + 0.01 * torch.randn_like(v)) if v.is_floating_point() else v
             for k, v in source._models[model_name].state_dict().items()}
    official = official_deep_prompt_names(trainer, state)
    write_dassl_run(tmp_path / "official", {model_name: {k: v.half() for k, v in official.items()}}, epoch=1)
    target = build(trainer, eurosat_root, tiny_clip_path, tmp_path / "b")
    target.load_model(str(tmp_path / "official"), epoch=1)
    loaded = dict(target._models[model_name].named_parameters())
    assert loaded and all(torch.equal(p, state[k].half().float()) for k, p in loaded.items())
    assert not dassl_module.exists()


def test_convert_official_kgcoop_run_to_ours_and_back(dassl_module, tmp_path, capsys):
    """KgCoOp's unused bias_vectors / meta_net.linear1 are dropped on reading; --to official writes CoOp's keys
    (the official KgCoOp load_model loads with strict=False)."""
    state = {"ctx": torch.randn(4, 64).half(), "bias_vectors": torch.randn(1, 512).half(),
             "token_prefix": torch.randn(3, 1, 64).half(), "token_suffix": torch.randn(3, 72, 64).half(),
             "meta_net.linear1.weight": torch.randn(512, 512).half(), "meta_net.linear1.bias": torch.randn(512).half()}
    official = write_dassl_run(tmp_path / "official_kgcoop", {"prompt_learner": state}, 100)
    assert convert.main([str(official), "--to", "ours", str(tmp_path / "ours"), "--trainer", "KgCoOp"]) == 0
    ours = load_checkpoint(str(tmp_path / "ours" / "prompt_learner" / "model.pth.tar-100"))["state_dict"]
    assert sorted(ours) == ["ctx", "token_prefix", "token_suffix"] and torch.equal(ours["ctx"], state["ctx"].float())
    assert convert.main([str(tmp_path / "ours"), "--to", "official", str(tmp_path / "back"), "--dtype", "fp16",
                         "--trainer", "KgCoOp"]) == 0
    back = torch.load(tmp_path / "back" / "prompt_learner" / "model.pth.tar-100", weights_only=True)["state_dict"]
    assert sorted(back) == ["ctx", "token_prefix", "token_suffix"] and torch.equal(back["ctx"], state["ctx"])
    assert not dassl_module.exists()


@pytest.mark.parametrize("trainer,model_name", [("MaPLe", "MultiModalPromptLearner"), ("IVLP", "VLPromptLearner"),
                                                ("PromptSRC", "VLPromptLearner")])
def test_convert_deep_prompt_runs_to_ours_and_back(trainer, model_name, dassl_module, eurosat_root, tiny_clip_path,
                                                   tmp_path, capsys):
    """IVLP / MaPLe / PromptSRC save their whole model under its Dassl name: --to ours keeps the learnable tensors
    under our names (the frozen CLIP is dropped), --to official writes them back under the official names."""
    state = build(trainer, eurosat_root, tiny_clip_path, tmp_path / "a")._models[model_name].state_dict()
    official = official_deep_prompt_names(trainer, state)  # + frozen-CLIP entries
    run = write_dassl_run(tmp_path / "official", {model_name: {k: v.half() for k, v in official.items()}}, 5)
    (run / "tensorboard").mkdir()  # a folder without checkpoints is not a part
    capsys.readouterr()
    assert convert.main([str(run), "--to", "ours", str(tmp_path / "ours"), "--trainer", trainer]) == 0
    written = tmp_path / "ours" / model_name / "model.pth.tar-5"
    assert capsys.readouterr().out.splitlines() == [f"{model_name}: {written}"]
    ours = load_checkpoint(str(written))["state_dict"]
    expected = {k: v for k, v in state.items() if k != "gpa.aggregate"}  # PromptSRC's aggregate: ours only
    assert ours.keys() == expected.keys() and all(torch.equal(ours[k], v.half().float()) for k, v in expected.items())
    assert convert.main([str(tmp_path / "ours"), "--to", "official", str(tmp_path / "back"), "--trainer", trainer]) == 0
    back = torch.load(tmp_path / "back" / model_name / "model.pth.tar-5", weights_only=True)["state_dict"]
    learnable = {k: v.half() for k, v in official.items()
                 if not k.startswith(("image_encoder.conv1", "text_encoder.positional", "logit_scale",
                                      "prompt_learner.ZS_image_encoder"))}
    assert back.keys() == learnable.keys() and all(torch.equal(back[k], v) for k, v in learnable.items())
    # dpt-interpret: the words of the layer-0 context, the norms of the deep prompts per block (block 1 = layer 0)
    capsys.readouterr()
    assert interpret.main([str(run), "--trainer", trainer, "--backbone", str(tiny_clip_path), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"{model_name}: prompt_learner.ctx: {state['prompt_learner.ctx'].shape[0]} context")
    for part, first_block, first in (("deep_text", 2, "deep_text.prompts.0"),
                                     ("deep_vision", 1, "deep_vision.first")):
        title = [i for i, line in enumerate(lines) if line.startswith(f"{model_name} {part}: L2 norm")]
        if first not in state:  # MaPLe's vision prompts are computed from the text side, not stored
            assert not title
            continue
        block = lines[title[0] + 1]
        assert block.startswith(f"block {first_block}: mean")
        norms = state[first].half().float().norm(dim=-1)
        assert [float(v) for v in block.split("|")[1].split()] == pytest.approx(norms.tolist(), abs=1e-4)
    assert not dassl_module.exists()
