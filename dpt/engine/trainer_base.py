"""TrainerBase: the registered (model, optimiser, scheduler) triples and what is done to all of them at once.

Why a class of its own (as Dassl's ``TrainerBase``): stepping, saving, resuming and loading every learnable
part is independent of how batches are produced; ``TrainerX`` (trainer.py) adds the data, the loop and
evaluation on top.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import nn

from dpt.compat.names import OfficialNames, states_to_official
from dpt.compat.weights import Weights, check_layout, layout_text, load_into, read_weights
from dpt.engine.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    same_epoch_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from dpt.engine.distributed import all_reduce_gradients, gather_objects, is_main_process, rank, world_size
from dpt.engine.optim import OptimSpec, build_lr_scheduler, build_optimizer
from dpt.engine.precision import autocast


class TrainerBase:
    """Named learnable parts, each with its optimiser and per-epoch scheduler (Dassl's registration order).

    Subclasses set ``cfg``, ``device``, ``precision``, ``scaler`` (a GradScaler or None), ``epoch``,
    ``max_epoch``, ``batch_idx`` and ``num_batches`` before the methods below use them.
    """

    def __init__(self) -> None:
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, Any]" = OrderedDict()
        # identity of the loaded backbone (clip_loader.backbone_id), set by the trainer that loads it
        self.backbone_id: Optional[str] = None
        # TEST.FINAL_MODEL best_val: the best validation accuracy so far and its 0-based epoch (saved and resumed)
        self.best_result = -float("inf")
        self.best_epoch: Optional[int] = None

    def optim_spec(self, **overrides) -> OptimSpec:
        """cfg.OPTIM as an OptimSpec, with per-group overrides (e.g. lr=0.002, warmup_epoch=1)."""
        return OptimSpec.from_cfg(self.cfg.OPTIM).with_overrides(**overrides)

    def register_model(
        self,
        name: str,
        model: nn.Module,
        optim: Optional[torch.optim.Optimizer] = None,
        sched: Any = None,
    ) -> None:
        """Register a learnable part; its name is the checkpoint folder (Dassl layout)."""
        if name in self._models:
            raise KeyError(f"model {name!r} is already registered")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def register_learnable(self, name: str, model: nn.Module, spec: OptimSpec) -> None:
        """Register ``model`` with an optimiser and per-epoch scheduler built from ``spec``."""
        optim = build_optimizer(model.parameters(), spec)
        self.register_model(name, model, optim, build_lr_scheduler(optim, spec))

    def get_model_names(self, names: Optional[Iterable[str]] = None) -> List[str]:
        if names is None:
            return list(self._models)
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            if n not in self._models:
                raise KeyError(f"unknown model {n!r}; registered: {', '.join(self._models)}")
        return names

    # ----------------------------------------------------------------- state
    def set_model_mode(self, mode: str = "train", names: Optional[Iterable[str]] = None) -> None:
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def update_lr(self, names: Optional[Iterable[str]] = None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def get_current_lr(self, names: Optional[Iterable[str]] = None) -> float:
        """The first registered optimiser's group-0 lr (the one Dassl prints)."""
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                return self._optims[name].param_groups[0]["lr"]
        return 0.0

    def checkpoint_meta(self) -> Dict[str, Any]:
        """Facts stored with every checkpoint and checked on load (trainer name, backbone, prompt layout).

        Prompts learned on one backbone mean nothing on another, so the backbone's identity is recorded; a
        checkpoint without it (written before it was recorded, or by another code base) is not checked on it.
        """
        meta: Dict[str, Any] = {"trainer": self.cfg.TRAINER.NAME}
        if self.backbone_id is not None:
            meta["backbone"] = self.backbone_id
        return meta

    def checkpoint_states(self, epoch: int, val_result: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
        """What ``save_model`` writes after ``epoch`` (0-based), per registered model: weights, optimiser,
        scheduler, scaler, the best validation result so far, and the RNG states of every rank (``rng`` is rank
        0's, ``rng_ranks`` all of them under torchrun). A collective under torchrun: every rank calls it. The
        tensors are the live ones; copy them to keep a snapshot."""
        rng_ranks = gather_objects(rng_state())
        best = {"result": self.best_result, "epoch": self.best_epoch} if self.best_epoch is not None else None
        states = {}
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                "state_dict": self._models[name].state_dict(),
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
                "best_val": best,
                "meta": self.checkpoint_meta(),
                "rng": rng_ranks[0],
            }
            if len(rng_ranks) > 1:
                state["rng_ranks"] = rng_ranks
            if self.scaler is not None:
                state["scaler"] = self.scaler.state_dict()
            states[name] = state
        return states

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: Optional[float] = None,
                   states: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
        """Save every registered model (rank 0 writes; without ``states`` every rank must call it, as the RNG
        states are gathered); ``states`` (from ``checkpoint_states``) instead of the current ones when given."""
        states = states or self.checkpoint_states(epoch, val_result)
        if not is_main_process():
            return
        for name, state in states.items():
            save_checkpoint(state, os.path.join(directory, name), is_best=is_best)

    def _check_meta(self, stored: Dict[str, Any], path: str) -> None:
        for key, expected in self.checkpoint_meta().items():
            if key in stored and stored[key] != expected:
                raise ValueError(
                    f"checkpoint {path} was written with {key} = {stored[key]!r}, "
                    f"but this run has {key} = {expected!r}"
                )

    def resume_model_if_exist(self, directory: str) -> int:
        """Restore models, optimisers, schedulers and RNG states from ``directory``; return the start epoch."""
        names = self.get_model_names()
        paths = [latest_checkpoint(os.path.join(directory, n)) for n in names]
        if not names or any(p is None for p in paths):
            print("No checkpoint found, train from scratch")
            return 0
        paths = same_epoch_checkpoints(directory, names, paths)
        ckpts = {name: load_checkpoint(path) for name, path in zip(names, paths)}
        self._check_layout(directory, {n: c["state_dict"] for n, c in ckpts.items()})
        start_epoch = 0
        for name, path in zip(names, paths):
            print(f"Loading checkpoint from {path}")
            ckpt = ckpts[name]
            self._check_meta(ckpt.get("meta") or {}, path)
            load_into(self._models[name], ckpt["state_dict"], (), path, name)
            if self._optims[name] is not None and ckpt.get("optimizer") is not None:
                self._optims[name].load_state_dict(ckpt["optimizer"])
            if self._scheds[name] is not None and ckpt.get("scheduler") is not None:
                self._scheds[name].load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and "scaler" in ckpt:
                self.scaler.load_state_dict(ckpt["scaler"])
            start_epoch = ckpt["epoch"]
            print(f"Previous epoch: {start_epoch}")
        last = ckpts[names[-1]]  # what every part of one save holds alike: RNG states, the best val result
        self._restore_rng(last, paths[-1])
        if last.get("best_val") is not None:
            self.best_result, self.best_epoch = last["best_val"]["result"], last["best_val"]["epoch"]
        return start_epoch

    @staticmethod
    def _restore_rng(ckpt: Dict[str, Any], path: str) -> None:
        """This rank's saved RNG states; rank 0's (with a note) when the checkpoint has none for this world size."""
        ranks = ckpt.get("rng_ranks") or ([ckpt["rng"]] if "rng" in ckpt else [])
        if len(ranks) == world_size():
            set_rng_state(ranks[rank()])
        elif ranks:
            print(f"Note: {path} holds the RNG states of {len(ranks)} process(es), this run has {world_size()}: "
                  f"every process continues from rank 0's, so the run does not continue exactly")
            set_rng_state(ranks[0])

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        """State-dict keys of model ``name`` that depend on the class names and are not loaded."""
        return []

    # Parts a foreign (official) run may hold as empty tensors although this trainer does not register them.
    empty_foreign_parts: Tuple[str, ...] = ()
    # Part folder -> how the official code names that part's tensors (parts not listed: the same names as ours).
    official_names: Mapping[str, OfficialNames] = {}
    # Fact of ``describe_checkpoint`` -> this trainer's message when a checkpoint's value differs (``check_layout``).
    layout_messages: Mapping[str, str] = {}

    @classmethod
    def describe_checkpoint(cls, states: Mapping[str, Mapping[str, torch.Tensor]]) -> Dict[str, Any]:
        """Config facts read from the shapes of the parts' state dicts (part -> state): {config key: value}.

        Compared between a checkpoint and this run's model before loading; the trainer knows its parts' shapes.
        """
        return {}

    @classmethod
    def official_states(cls, states: Mapping[str, Mapping[str, torch.Tensor]], meta: Mapping[str, Any],
                        config_value: Callable[[str], Optional[str]]) -> Dict[str, Dict[str, torch.Tensor]]:
        """The parts' states (ours) under the official code's folders and names (``dpt-convert --to official``).

        ``meta``: our checkpoints' meta; ``config_value(key)``: a value of the run's config. A trainer whose run
        the official code cannot build refuses here in one line.
        """
        return states_to_official(cls.official_names, states)

    def _check_layout(self, where: str, states: Mapping[str, Mapping[str, torch.Tensor]]) -> Dict[str, Any]:
        """The checkpoint's facts, refused in one line when they differ from this run's; returns them."""
        found = self.describe_checkpoint(states)
        own = self.describe_checkpoint({n: self._models[n].state_dict() for n in states})
        check_layout(where, found, own, self.layout_messages)
        return found

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load weights for evaluation: ``model-best.pth.tar`` or ``model.pth.tar-<epoch>`` per registered model.

        Our runs and runs of the official code (Dassl-written, ``weights.py``; names by ``official_names``) load;
        a run of another method or layout is refused in one line.
        """
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"--model-dir {directory} is not a folder")
        names, fname = self.get_model_names(), checkpoint_name(epoch)
        weights: Dict[str, Weights] = {}
        for name in names:
            path = os.path.join(directory, name, fname)
            if not os.path.isfile(path):
                raise FileNotFoundError(f'model not found at "{path}" (expected {fname} for {name})')
            weights[name] = read_weights(path, self.official_names.get(name))
            self._check_meta(weights[name].meta, path)
        self._check_parts(directory, fname)
        found = self._check_layout(directory, {n: w.state_dict for n, w in weights.items()})
        if any(w.foreign for w in weights.values()):
            print(f"Dassl-written checkpoints (official names translated, fp32): {layout_text(found)}")
        for name, loaded in weights.items():
            path = os.path.join(directory, name, fname)
            load_into(self._models[name], loaded.state_dict, self.keys_to_skip_on_load(name), path, name)
            print(f'Loading weights to {name} from "{path}" (epoch = {loaded.epoch})')

    def _check_parts(self, directory: str, fname: str) -> None:
        """Every folder of ``directory`` holding ``fname`` must be a registered part (else: another method's run),
        or one of ``empty_foreign_parts`` holding only empty tensors."""
        names = self.get_model_names()
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry, fname)
            if entry in names or not os.path.isfile(path):
                continue
            if entry in self.empty_foreign_parts and all(
                t.numel() == 0 for t in read_weights(path, self.official_names.get(entry)).state_dict.values()
            ):
                continue
            raise ValueError(
                f"{directory} holds {entry}/{fname}, which trainer {self.cfg.TRAINER.NAME} does not learn "
                f"(its parts: {', '.join(names) or 'none'}): a run of another method; pass its --trainer"
            )

    # ----------------------------------------------------------------- optimisation
    def autocast(self):
        return autocast(self.precision, self.device)

    def model_backward_and_update(self, loss: torch.Tensor, names: Optional[Iterable[str]] = None) -> None:
        """zero_grad -> finite check -> backward (loss-scaled for fp16) -> step every optimiser."""
        names = self.get_model_names(names)
        optims = [self._optims[n] for n in names if self._optims[n] is not None]
        for optim in optims:
            optim.zero_grad(set_to_none=True)
        if not torch.isfinite(loss).all():
            raise FloatingPointError(
                f"loss is {loss.item()} at epoch {self.epoch + 1}/{self.max_epoch}, "
                f"batch {self.batch_idx + 1}/{self.num_batches}"
            )
        if self.scaler is None:
            loss.backward()
            all_reduce_gradients(self._models[n] for n in names)
            for optim in optims:
                optim.step()
        else:
            self.scaler.scale(loss).backward()
            all_reduce_gradients(self._models[n] for n in names)
            for optim in optims:
                self.scaler.step(optim)
            self.scaler.update()
