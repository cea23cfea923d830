"""Classification evaluator with Dassl's printed result block (docs/reference.md 4.3)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional

import torch

from dpt.cache.atomic import save_torch_atomic


def macro_f1(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Macro F1 in [0, 1] over the labels present in ``y_true`` (Dassl: sklearn with labels=unique(y_true))."""
    scores = []
    for c in torch.unique(y_true).tolist():
        tp = int(((y_pred == c) & (y_true == c)).sum())
        fp = int(((y_pred == c) & (y_true != c)).sum())
        fn = int(((y_pred != c) & (y_true == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


class Classification:
    """Accumulates predictions; ``evaluate`` prints the result block and returns the metrics.

    Args:
        lab2cname: label -> class name, for the per-class block.
        per_class: print per-class accuracy (TEST.PER_CLASS_RESULT).
        cmat_path: where to save the confusion matrix (TEST.COMPUTE_CMAT), or None.
    """

    def __init__(self, lab2cname: Dict[int, str], per_class: bool = False, cmat_path: Optional[str] = None) -> None:
        self.lab2cname = lab2cname
        self.per_class = per_class
        self.cmat_path = cmat_path
        self.reset()

    def reset(self) -> None:
        self._preds: List[torch.Tensor] = []
        self._labels: List[torch.Tensor] = []

    def process(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """logits [B, n_cls], labels [B] int64."""
        self._preds.append(logits.argmax(dim=1).cpu())
        self._labels.append(labels.cpu())

    def evaluate(self) -> "OrderedDict[str, float]":
        y_pred = torch.cat(self._preds) if self._preds else torch.zeros(0, dtype=torch.long)
        y_true = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.long)
        total = y_true.numel()
        correct = int((y_pred == y_true).sum())
        acc = 100.0 * correct / max(total, 1)
        f1 = 100.0 * macro_f1(y_true, y_pred)
        results = OrderedDict(accuracy=acc, error_rate=100.0 - acc, macro_f1=f1)
        print(
            "=> result\n"
            f"* total: {total:,}\n"
            f"* correct: {correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {100.0 - acc:.1f}%\n"
            f"* macro_f1: {f1:.1f}%"
        )
        if self.per_class:
            self._print_per_class(y_true, y_pred, results)
        if self.cmat_path:
            self._save_cmat(y_true, y_pred)
        return results

    def _print_per_class(self, y_true: torch.Tensor, y_pred: torch.Tensor, results: dict) -> None:
        print("=> per-class result")
        accs = []
        for label in sorted(set(y_true.tolist())):
            mask = y_true == label
            n = int(mask.sum())
            c = int((y_pred[mask] == label).sum())
            acc = 100.0 * c / n
            accs.append(acc)
            print(f"* class: {label} ({self.lab2cname.get(label, '')})\ttotal: {n:,}\tcorrect: {c:,}\tacc: {acc:.1f}%")
        mean = sum(accs) / len(accs) if accs else 0.0
        print(f"* average: {mean:.1f}%")
        results["perclass_accuracy"] = mean

    def _save_cmat(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        n = max(len(self.lab2cname), int(y_true.max()) + 1 if y_true.numel() else 0)
        cmat = torch.zeros(n, n, dtype=torch.long)
        cmat.index_put_((y_true, y_pred), torch.ones_like(y_true), accumulate=True)
        save_torch_atomic(cmat, self.cmat_path)
        print(f"Confusion matrix is saved to {self.cmat_path}")
