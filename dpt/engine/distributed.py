"""Multi-process data parallel training under torchrun (never a silent ``nn.DataParallel``).

Why: the learnable parts (prompts, CAVPT) are tiny while CLIP is frozen, so instead of wrapping the
whole model in DDP each rank runs the full forward on its share of the global batch and the
gradients of the registered learnable modules are averaged with one ``all_reduce`` per module after
backward. With equal per-rank batches and a mean loss, this equals one process on the global batch.
Logging and checkpoints belong to rank 0 (``is_main_process``).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, List, NamedTuple, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler


class DistEnv(NamedTuple):
    """rank / world_size / local_rank as torchrun exports them (RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int
    world_size: int
    local_rank: int


def dist_env() -> DistEnv:
    """Read torchrun's variables; a plain ``python train.py`` is rank 0 of 1."""
    values = {}
    for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        raw = os.environ.get(key, default)
        if not raw.isdigit():
            raise ValueError(f"environment variable {key}={raw!r}: expected a non-negative integer (set by torchrun)")
        values[key] = int(raw)
    if values["RANK"] >= values["WORLD_SIZE"]:
        raise ValueError(f"environment RANK={values['RANK']} is not below WORLD_SIZE={values['WORLD_SIZE']}")
    return DistEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def init_distributed(backend: str = "") -> DistEnv:
    """Join the process group when WORLD_SIZE > 1 (nccl with CUDA, else gloo); pins the local GPU."""
    env = dist_env()
    if env.world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
        print(f"Distributed: rank {env.rank} of {env.world_size} ({backend}, local rank {env.local_rank})")
    return env


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (or without a process group): the rank that logs and writes checkpoints."""
    return not dist.is_initialized() or dist.get_rank() == 0


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def gather_objects(obj: Any) -> List[Any]:
    """``obj`` of every rank, in rank order (a collective: every rank must call it); ``[obj]`` in one process."""
    if world_size() == 1:
        return [obj]
    gathered: List[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def train_sampler(data_source: Sequence, seed: int) -> Sampler:
    """Each rank's disjoint share of a shuffled epoch; call ``set_epoch(epoch)`` every epoch."""
    return DistributedSampler(data_source, num_replicas=world_size(), rank=dist.get_rank(), shuffle=True,
                              seed=max(seed, 0), drop_last=True)


def distributed_loader(loader: DataLoader, seed: int) -> DataLoader:
    """The train loader rebuilt for this rank: DistributedSampler and batch_size // world_size per rank,
    so the global batch stays DATALOADER.TRAIN_X.BATCH_SIZE (SEED seeds the shuffle)."""
    world = world_size()
    if loader.batch_size % world:
        raise ValueError(
            f"config key 'DATALOADER.TRAIN_X.BATCH_SIZE' is {loader.batch_size}: expected a multiple of the "
            f"{world} torchrun processes"
        )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size // world, sampler=train_sampler(loader.dataset, seed),
        num_workers=loader.num_workers, drop_last=loader.drop_last, pin_memory=loader.pin_memory,
        persistent_workers=loader.num_workers > 0,
    )


def all_reduce_gradients(modules: Iterable[nn.Module]) -> None:
    """Average the gradients of the learnable modules over ranks (flattened, one all_reduce per module).

    A parameter without a gradient on some rank (e.g. the CAVPT loss skipped there) counts as zero; one
    without a gradient on every rank keeps ``grad = None``, as in a single process.
    """
    if world_size() == 1:
        return
    for module in modules:
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            continue
        present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)  # [P]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [present.to(grads[0].dtype)])  # [sum numel + P]
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world_size()
        offset = 0
        for p, count in zip(params, flat[-len(params) :].tolist()):
            values = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if count == 0:
                p.grad = None
            elif p.grad is None:
                p.grad = values.clone()
            else:
                p.grad.copy_(values)


def broadcast_parameters(modules: Iterable[nn.Module]) -> None:
    """Give every rank rank 0's initial learnable parameters (an unseeded run draws them per process)."""
    if world_size() == 1:
        return
    for module in modules:
        for param in module.parameters():
            dist.broadcast(param.data, src=0)
