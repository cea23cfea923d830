"""Two gloo ranks with averaged prompt gradients learn the same prompts as one process on the global batch."""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dpt.config import get_cfg_default
from dpt.config.merge import merge_from_file
from dpt.engine import distributed
from dpt.engine.checkpoint import load_checkpoint
from dpt.engine.trainer_base import TrainerBase
from dpt.modeling.backbones.loader import load_clip
from dpt.demo.synthetic import make_dataset
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.promptsrc import PromptSRC
from helpers import CONFIG, REPO, argv, compose_clip, needs_open_clip
from yacs.config import CfgNode

GLOBAL_BATCH, STEPS = 8, 3


def _train(clip_path: str, rank: int, world: int, steps: int = STEPS) -> torch.Tensor:
    """``steps`` SGD steps of VLP-style prompts on this rank's share of a fixed global batch -> flat params."""
    clip_model = load_clip(clip_path, precision="fp32")
    torch.manual_seed(0)
    model = compose_clip(clip_model, ["cat", "dog", "sea lion"], "a photo of a {}.", learn_text=True, n_ctx=4,
                         vpt_layers=range(12), n_vpt_ctx=2)
    model.freeze_clip()
    learnable = [model.prompt_learner, model.visual_prompts]
    optim = torch.optim.SGD([p for m in learnable for p in m.parameters()], lr=0.5, momentum=0.9)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(GLOBAL_BATCH) % 3
    share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    for _ in range(steps):
        loss = F.cross_entropy(model(images[share]).logits, labels[share])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_gradients(learnable)
        optim.step()
    return torch.cat([p.detach().reshape(-1) for m in learnable for p in m.parameters()])


def _rank_main(rank: int, world: int, port: int, clip_path: str, out: str) -> None:
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    env = distributed.init_distributed("gloo")
    try:
        assert env.world_size == world and distributed.world_size() == world
        params = _train(clip_path, rank, world)
        torch.save(params, f"{out}/rank{rank}.pt")
        loader = distributed.distributed_loader(DataLoader(list(range(16)), batch_size=8, drop_last=True), seed=1)
        loader.sampler.set_epoch(0)
        torch.save([batch for batch in loader], f"{out}/batches{rank}.pt")
        assert distributed.is_main_process() == (rank == 0)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("backbone,atol", [  # open_clip's default init has larger activations than the tiny
    ("tiny_clip_path", 1e-5),                # OpenAI CLIP's, so float32 summation order shows a little more
    pytest.param("tiny_open_clip_name", 1e-4, marks=needs_open_clip),
])
def test_two_ranks_learn_the_same_prompts_as_one_process(backbone: str, atol: float, request, tmp_path: Path) -> None:
    clip_name = str(request.getfixturevalue(backbone))  # an OpenAI CLIP file, or open_clip through the adapter
    single = _train(clip_name, rank=0, world=1)
    mp.spawn(_rank_main, args=(2, _free_port(), clip_name, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(rank0, rank1)  # ranks stay in sync
    initial = _train(clip_name, rank=0, world=1, steps=0)
    assert (single - initial).abs().max() > 1e-3  # the prompts did move
    torch.testing.assert_close(rank0, single, rtol=1e-4, atol=atol)
    batches = [torch.load(tmp_path / f"batches{r}.pt") for r in range(2)]
    assert all(len(b) == 4 for rank in batches for b in rank)  # global batch 8 = 2 ranks x 4
    seen = [int(i) for rank in batches for b in rank for i in b]
    assert sorted(seen) == list(range(16))  # disjoint shares covering the epoch


TRAINERS = ("IVLP", "MaPLe", "PromptSRC", "KgCoOp", "VLP")  # VLP also through its own compose and guidance loss
CLASSES, TEMPLATE = ["cat", "dog", "sea lion"], "a photo of a {}."


def _trainer_step(trainer: str, clip_path: str) -> tuple:
    """(learnable parts, loss(images, labels)) of ``trainer``'s own prompted CLIP (its ``compose`` on its yaml,
    seeded) and its own loss at epoch 0 (PromptSRC: the four terms against its frozen template-ensemble targets)."""
    cfg = get_cfg_default()
    cfg.TRAINER.NAME, cfg.DATASET.NAME = trainer, "EuroSAT"
    merge_from_file(cfg, str(REPO / "configs" / "trainers" / f"{CONFIG[trainer]}.yaml"))
    trainer_class = TRAINER_REGISTRY.get(trainer)
    torch.manual_seed(0)
    model = trainer_class.compose(cfg, load_clip(clip_path, precision="fp32"), CLASSES, TEMPLATE)
    learnable = torch.nn.ModuleDict({"text": model.prompt_learner, **model.text_block_parts, **model.vision_parts})
    loss_trainer = trainer_class.loss_trainer(cfg, 0, model)
    if isinstance(loss_trainer, PromptSRC):
        loss_trainer.frozen_text_features = PromptSRC.template_ensemble(model, CLASSES)
        return learnable, lambda images, labels: loss_trainer.loss(loss_trainer.losses(images, labels))
    return learnable, lambda images, labels: loss_trainer.loss(
        model(images, need_guidance=loss_trainer.needs_guidance()), labels)


def _train_trainer(trainer: str, clip_path: str, rank: int, world: int) -> tuple:
    """``STEPS`` SGD steps of ``trainer`` on this rank's share of the fixed global batch -> (initial, trained)
    copies of every learnable parameter tensor, in ``parameters()`` order."""
    learnable, loss_fn = _trainer_step(trainer, clip_path)
    params = [p for p in learnable.parameters() if p.requires_grad]  # a part shared by two (MaPLe's): once
    initial = [p.detach().clone() for p in params]
    optim = torch.optim.SGD(params, lr=0.002, momentum=0.9)  # the configs' LR scale (gradients here are ~10-100)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(GLOBAL_BATCH) % len(CLASSES)
    share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    for _ in range(STEPS):
        loss = loss_fn(images[share], labels[share])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_gradients([learnable])
        optim.step()
    return initial, [p.detach().clone() for p in params]


def _trainers_rank_main(rank: int, world: int, port: int, clip_path: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.init_distributed("gloo")
    try:
        torch.save({t: _train_trainer(t, clip_path, rank, world)[1] for t in TRAINERS}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_train_each_trainer_as_one_process(tiny_clip_path: Path, tmp_path: Path) -> None:
    """IVLP, MaPLe, PromptSRC, KgCoOp, VLP: their own parts and losses, one spawn training them in turn."""
    mp.spawn(_trainers_rank_main, args=(2, _free_port(), str(tiny_clip_path), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for trainer in TRAINERS:
        initial, single = _train_trainer(trainer, str(tiny_clip_path), rank=0, world=1)
        assert len(rank0[trainer]) == len(single) > 0, trainer
        for i, (start, alone, first, second) in enumerate(zip(initial, single, rank0[trainer], rank1[trainer])):
            where = f"{trainer} learnable tensor {i}"
            assert torch.equal(first, second), where  # ranks stay in sync
            assert (alone - start).abs().max() > 1e-3, where  # every learnable tensor moved
            torch.testing.assert_close(first, alone, rtol=1e-4, atol=1e-5, msg=lambda m: f"{where}: {m}")


def test_env_is_read_and_checked(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.dist_env() == distributed.DistEnv(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 is not below WORLD_SIZE=2"):
        distributed.dist_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        distributed.dist_env()
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.dist_env().world_size == 1 and distributed.is_main_process()


def test_torchrun_two_processes_train_end_to_end(tmp_path, tiny_clip_path):
    """`torchrun --nproc_per_node 2 train.py ...` (gloo on CPU): one log and one set of checkpoints, from rank 0."""
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=4, n_train=8, n_val=2, n_test=4, learnable=True, seed=3)
    out = tmp_path / "run"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    train = str(Path(__file__).resolve().parents[1] / "train.py")
    cmd = torchrun + [train] + argv("VLP", tmp_path / "data", out, tiny_clip_path, epochs=2)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (out / "log.txt").read_text()
    assert log.count("Finish training") == 1 and "* accuracy:" in log
    assert sorted(p.name for p in out.glob("log.txt*")) == ["log.txt"]
    assert (out / "prompt_learner" / "model.pth.tar-2").is_file()
    # 16 images, global batch 8 = 4 per rank: 2 steps per epoch, as one process with batch 8
    assert "epoch [2/2] batch [2/2]" in log and "batch [3/" not in log


class _OnePart(TrainerBase):
    """The smallest trainer: one registered part, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = CfgNode({"TRAINER": CfgNode({"NAME": "OnePart"})})
        self.scaler = None
        self.register_model("prompt_learner", torch.nn.Linear(2, 2))


def _draws() -> list:
    return [torch.rand(3).tolist(), random.random(), float(np.random.rand())]


def _rng_rank_main(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed.init_distributed("gloo")
    try:
        trainer = _OnePart()
        for seed_fn in (torch.manual_seed, random.seed, np.random.seed):
            seed_fn(100 + rank)  # each rank its own stream, as an unseeded run or rank-dependent draws give
        trainer.save_model(0, out)
        expected = _draws()
        for seed_fn in (torch.manual_seed, random.seed, np.random.seed):
            seed_fn(7)
        dist.barrier()  # rank 0 has written
        assert trainer.resume_model_if_exist(out) == 1
        torch.save({"expected": expected, "resumed": _draws()}, f"{out}/draws{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_every_rank_saves_and_resumes_its_own_rng_state(tmp_path: Path) -> None:
    mp.spawn(_rng_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    draws = [torch.load(tmp_path / f"draws{r}.pt") for r in range(2)]
    assert all(d["resumed"] == d["expected"] for d in draws)
    assert draws[0]["expected"] != draws[1]["expected"]  # the ranks' streams differ, so both had to be saved
    ckpt = load_checkpoint(str(tmp_path / "prompt_learner" / "model.pth.tar-1"))
    assert len(ckpt["rng_ranks"]) == 2 and torch.equal(ckpt["rng"]["torch"], ckpt["rng_ranks"][0]["torch"])


def test_torchrun_kill_9_then_resume_learns_the_same_prompts(tmp_path, tiny_clip_path):
    """Two gloo processes killed mid-epoch 2, then the same command: bit-for-bit the uninterrupted prompts."""
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=4, n_train=16, n_val=2, n_test=4, learnable=True, seed=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(name: str):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", str(_free_port())]
        return torchrun + [str(Path(__file__).resolve().parents[1] / "train.py")] + argv(
            "VLP", tmp_path / "data", tmp_path / name, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1",
            "DATASET.NUM_SHOTS", "16", epochs=3)

    parts = ("prompt_learner", "image_encoder.transformer.ctx_learner")
    subprocess.run(command("full"), env=env, capture_output=True, timeout=300, check=True)
    victim = subprocess.Popen(command("cut"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointers = [tmp_path / "cut" / part / "checkpoint" for part in parts]
    while victim.poll() is None and not all(p.is_file() for p in pointers):  # the epoch-1 checkpoints
        time.sleep(0.01)
    ranks = Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()  # torchrun's workers
    for pid in [victim.pid, *map(int, ranks)]:
        os.kill(pid, signal.SIGKILL)
    victim.wait()
    resumed = subprocess.run(command("cut"), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_log = max((tmp_path / "cut").glob("log.txt-*")).read_text()  # a rerun logs beside the first log.txt
    assert re.search(r"Previous epoch: [12]\n", resumed_log)
    for part in parts:
        full = load_checkpoint(str(tmp_path / "full" / part / "model.pth.tar-3"))["state_dict"]
        cut = load_checkpoint(str(tmp_path / "cut" / part / "model.pth.tar-3"))["state_dict"]
        assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
