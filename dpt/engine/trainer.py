"""TrainerX: Dassl's data -> model -> loop -> evaluation flow (docs/reference.md 4).

A trainer subclass implements ``build_model`` (build its modules and ``register_model`` each learnable part
with an optimiser and scheduler) and ``forward_backward``; everything else lives here and in ``TrainerBase``
(stepping, saving, resuming and loading the registered parts).
"""
from __future__ import annotations

import copy
import datetime
import os
import time
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from dpt.config.access import get_key
from dpt.data.data_manager import DataManager
from dpt.engine.distributed import (
    broadcast_parameters,
    distributed_loader,
    gather_objects,
    is_main_process,
    world_size,
)
from dpt.engine.evaluator import Classification
from dpt.engine.nonfinite import first_nonfinite_module
from dpt.engine.precision import check_precision, grad_scaler
from dpt.engine.trainer_base import TrainerBase


class _Meter:
    """Current value and running mean."""

    def __init__(self) -> None:
        self.val = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float) -> None:
        self.val = float(val)
        self.sum += self.val
        self.count += 1

    @property
    def avg(self) -> float:
        return self.sum / max(self.count, 1)


class TrainerX(TrainerBase):
    """Single-source supervised trainer with Dassl's method names and semantics.

    Reads: OUTPUT_DIR, RESUME, USE_CUDA, OPTIM.*, TRAIN.*, TEST.*, the precision key (``precision_key``),
    DATASET/DATALOADER (via the DataManager).
    """

    # Config key of this trainer's precision (fp16 / fp32 / amp / bf16), declared by each trainer class; config
    # merge, preflight and tools read it through ``dpt.registry.precision_key``.
    precision_key: str = ""

    def __init__(self, cfg, *, classnames: Optional[Sequence[str]] = None) -> None:
        """Build data, model and evaluator from ``cfg``.

        Args:
            classnames: class names in label order; when given no dataset is read and no loader is built (a
                model rebuilt for prediction, dpt/inference/), so ``build_model`` sees these names instead.
        """
        super().__init__()
        self.cfg = cfg
        self.check_cfg(cfg)
        use_cuda = torch.cuda.is_available() and cfg.USE_CUDA
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun: one GPU per process
        self.device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        if not self.precision_key:
            raise TypeError(f"trainer {type(self).__name__} declares no precision_key (the config key of its precision)")
        self.precision = get_key(cfg, self.precision_key)
        check_precision(self.precision, self.device, self.precision_key)
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        if classnames is None:
            self.build_data_loader()
        else:
            self.use_classnames(classnames)
        if world_size() > 1 and self.train_loader_x is not None:
            self.train_loader_x = distributed_loader(self.train_loader_x, cfg.SEED)
        self.build_model()
        broadcast_parameters(self._models.values())
        self.scaler = grad_scaler(self.precision, self.device)
        print(f"Loading evaluator: {cfg.TEST.EVALUATOR}")
        cmat = os.path.join(self.output_dir, "cmat.pt") if cfg.TEST.COMPUTE_CMAT else None
        self.evaluator = Classification(self.lab2cname, cfg.TEST.PER_CLASS_RESULT, cmat)
        self._writer = None
        self.eval_split = cfg.TEST.SPLIT
        # Set by train.py under a launcher (dpt/launch/preemption.py): keep a copy of each finished epoch's checkpoint.
        self.keep_last_epoch = False
        self._last_epoch: Optional[Tuple[int, Dict[str, Any]]] = None

    # ----------------------------------------------------------------- construction
    def check_cfg(self, cfg) -> None:
        """Trainer-specific config checks (raise ValueError naming the key)."""

    def build_data_loader(self) -> None:
        dm = DataManager(self.cfg)
        self.dm = dm
        self.train_loader_x = dm.train_loader_x
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.lab2cname = dm.lab2cname
        self.classnames = dm.classnames

    def use_classnames(self, classnames: Sequence[str]) -> None:
        """No dataset: the label space is ``classnames`` (label i = classnames[i]) and there are no loaders."""
        if not classnames:
            raise ValueError("expected at least one class name, got none")
        self.dm = None
        self.train_loader_x = self.val_loader = self.test_loader = None
        self.classnames = list(classnames)
        self.num_classes = len(self.classnames)
        self.lab2cname = dict(enumerate(self.classnames))

    def build_model(self) -> None:
        raise NotImplementedError

    def locate_nonfinite(self, batch: Dict[str, Any]) -> str:
        """Re-run ``batch``'s forward with hooks; name the first module whose output is NaN/inf.

        Under ``no_grad`` the re-run's backward fails before any optimiser could step.
        """
        image = batch.get("img")
        if isinstance(image, torch.Tensor) and not torch.isfinite(image).all():
            return "the input images already hold non-finite values"
        return first_nonfinite_module(self.diagnosed_modules(), lambda: self.forward_backward(batch))

    def diagnosed_modules(self) -> List[Tuple[str, nn.Module]]:
        """(name, module) pairs searched for the first non-finite output: the registered models' by default."""
        return [item for name, m in self._models.items() for item in m.named_modules(prefix=name)]

    def parse_batch_train(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        return batch["img"].to(self.device, non_blocking=non_blocking), batch["label"].to(self.device, non_blocking=non_blocking)

    parse_batch_test = parse_batch_train

    def forward_backward(self, batch: Dict[str, Any]) -> Dict[str, float]:
        raise NotImplementedError

    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # Whether the classifier is built from any list of class names (prompt methods), so a trained model can be
    # rebuilt over new classes; False where the weights are tied to the training classes (the linear probe).
    open_vocabulary = False

    def image_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_cls] of preprocessed images [B, 3, H, W] outside the evaluation loop (no split, no
        dataset index): what ``model_inference`` computes, without per-split caches. Call ``before_test`` first."""
        return self.model_inference(image)

    # ----------------------------------------------------------------- loop
    def train(self) -> None:
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self) -> None:
        directory = self.cfg.RESUME or self.output_dir
        self.start_epoch = self.resume_model_if_exist(directory)
        if not is_main_process():
            self._time_start = time.time()
            return
        from torch.utils.tensorboard import SummaryWriter

        log_dir = os.path.join(self.output_dir, "tensorboard")
        os.makedirs(log_dir, exist_ok=True)
        print(f"Initialize tensorboard (log_dir={log_dir})")
        self._writer = SummaryWriter(log_dir=log_dir)
        self._time_start = time.time()

    def write_scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        if isinstance(self.train_loader_x.sampler, DistributedSampler):
            self.train_loader_x.sampler.set_epoch(self.epoch)
        meters: "OrderedDict[str, _Meter]" = OrderedDict()
        batch_time, data_time = _Meter(), _Meter()
        self.num_batches = len(self.train_loader_x)
        print_freq = self.cfg.TRAIN.PRINT_FREQ
        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            data_time.update(time.time() - end)
            try:
                summary = self.forward_backward(batch)
            except FloatingPointError as err:
                raise FloatingPointError(f"{err}; {self.locate_nonfinite(batch)}") from err
            if self.batch_idx + 1 == self.num_batches:
                self.update_lr()
            batch_time.update(time.time() - end)
            for key, value in summary.items():
                meters.setdefault(key, _Meter()).update(value)
            step = self.epoch * self.num_batches + self.batch_idx
            if (self.batch_idx + 1) % print_freq == 0 or self.num_batches < print_freq:
                remaining = self.num_batches - self.batch_idx - 1 + (self.max_epoch - self.epoch - 1) * self.num_batches
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * remaining)))
                parts = [
                    f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                    f"batch [{self.batch_idx + 1}/{self.num_batches}]",
                    f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                    f"data {data_time.val:.3f} ({data_time.avg:.3f})",
                    *(f"{k} {m.val:.4f} ({m.avg:.4f})" for k, m in meters.items()),
                    f"lr {self.get_current_lr():.4e}",
                    f"eta {eta}",
                ]
                print(" ".join(parts))
            for key, meter in meters.items():
                self.write_scalar(f"train/{key}", meter.avg, step)
            self.write_scalar("train/lr", self.get_current_lr(), step)
            end = time.time()

    def after_epoch(self) -> None:
        last = self.epoch + 1 == self.max_epoch
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            result = gather_objects(self.test(split="val"))[0]  # rank 0's: every rank takes the same branch
            if result > self.best_result:
                self.best_result, self.best_epoch = result, self.epoch
                self.save_model(self.epoch, self.output_dir, is_best=True, val_result=result)
        if (freq > 0 and (self.epoch + 1) % freq == 0) or last:
            self.save_model(self.epoch, self.output_dir)
        if self.keep_last_epoch:
            states = self.checkpoint_states(self.epoch)  # every rank: the RNG states are gathered
            if is_main_process():
                self._last_epoch = (self.epoch, copy.deepcopy(states))

    def save_last_epoch(self) -> Optional[int]:
        """Write the kept checkpoint of the last finished epoch (``keep_last_epoch``); returns its 1-based
        number, or None when no epoch finished in this process."""
        if self._last_epoch is None:
            return None
        epoch, states = self._last_epoch
        self.save_model(epoch, self.output_dir, states=states)
        return epoch + 1

    def after_train(self) -> None:
        if self.scaler is not None:  # fp16 / amp on GPU
            print(self.scaler.summary())
        print("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                if self.best_epoch is not None:
                    print(f"Best val accuracy {self.best_result:.2f}% at epoch {self.best_epoch + 1}")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()
        elapsed = str(datetime.timedelta(seconds=int(time.time() - self._time_start)))
        print(f"Elapsed: {elapsed}")
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ----------------------------------------------------------------- evaluation
    def before_test(self) -> None:
        """Hook: compute what stays fixed during one evaluation (e.g. learned text features)."""

    def after_test(self) -> None:
        """Hook: drop what ``before_test`` cached."""

    def eval_loader(self, split: str) -> Iterable[Dict[str, Any]]:
        """Batches ({"img", "label"}) to evaluate ``split`` ("val" or "test") on: its image loader by default."""
        return self.val_loader if split == "val" else self.test_loader

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default TEST.SPLIT) and print Dassl's result block; returns the accuracy."""
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        split = "val" if split == "val" and self.val_loader is not None else "test"
        loader = self.eval_loader(split)
        self.eval_split = split
        print(f"Evaluate on the *{split}* set")
        self.before_test()
        try:
            for batch in tqdm(loader, desc=f"eval {split}", leave=False):
                image, label = self.parse_batch_test(batch)
                with self.autocast():
                    logits = self.model_inference(image)
                self.evaluator.process(logits.float(), label)
        finally:
            self.after_test()
        results = self.evaluator.evaluate()
        for key, value in results.items():
            self.write_scalar(f"{split}/{key}", value, min(self.epoch, self.max_epoch - 1))
        return next(iter(results.values()))

