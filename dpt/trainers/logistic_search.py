"""L2 logistic regression with CoOp's lpclip search of the regularisation strength C (docs/reference.md 9.4).

Why: CLIP's appendix A3 protocol picks C on a validation split: a coarse grid, then a bisection in log10(C)
around the best grid value; scikit-learn's L-BFGS does the fits. The search is deterministic, so a fit is
reused whenever the bisection asks for a C it has already fitted (same classifiers as refitting, fewer fits).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression


@dataclass
class SearchResult:
    """The classifier of the last bisection step (lpclip's final one), its C and validation accuracy in %."""

    classifier: LogisticRegression
    c: float
    val_accuracy: float


class _Fits:
    """Fits (and validation accuracies) keyed by log10(C); every fit is L-BFGS with L2 penalty."""

    def __init__(self, train: Tuple[np.ndarray, np.ndarray], val: Tuple[np.ndarray, np.ndarray], max_iter: int):
        self.train, self.val, self.max_iter = train, val, max_iter
        self._done: Dict[float, Tuple[LogisticRegression, float]] = {}

    def __call__(self, log_c: float) -> Tuple[LogisticRegression, float]:
        if log_c not in self._done:
            # sklearn's default penalty is L2 in every version (l1_ratio 0 since 1.8)
            model = LogisticRegression(solver="lbfgs", max_iter=self.max_iter, C=10.0**log_c).fit(*self.train)
            accuracy = 100.0 * float(np.mean(model.predict(self.val[0]) == self.val[1]))
            self._done[log_c] = (model, accuracy)
        return self._done[log_c]


def search_c(
    train: Tuple[np.ndarray, np.ndarray],
    val: Tuple[np.ndarray, np.ndarray],
    grid: Sequence[float],
    steps: int,
    max_iter: int,
) -> SearchResult:
    """lpclip's search: best grid C (first on ties), then ``steps`` bisections of [C / 10, 10 C] in log10 C.

    Each step fits both ends; the better end (the left one on a tie) is the step's classifier and the
    interval shrinks to [end, midpoint]. Prints the validation accuracy of every C tried.

    Args:
        train, val: (features [N, E] float64, labels [N] int64) for fitting and for choosing C.
        grid: TRAINER.LINEAR_PROBE.C_GRID; steps: SEARCH_STEPS; max_iter: MAX_ITER.
    """
    fits = _Fits(train, val, max_iter)
    grid_logs = [math.log10(c) for c in grid]
    accuracies = [fits(log_c)[1] for log_c in grid_logs]
    print("C search, val accuracy per C: " + ", ".join(f"{c:g}: {a:.1f}%" for c, a in zip(grid, accuracies)))
    best = grid_logs[int(np.argmax(accuracies))]
    model, accuracy = fits(best)
    log_c, left, right = best, best - 1.0, best + 1.0
    for step in range(steps):
        (left_model, left_acc), (right_model, right_acc) = fits(left), fits(right)
        print(f"C search step {step + 1}/{steps}: C {10.0**left:.4g}: {left_acc:.1f}%, "
              f"C {10.0**right:.4g}: {right_acc:.1f}%")
        middle = 0.5 * (left + right)
        if left_acc < right_acc:
            model, accuracy, log_c, left = right_model, right_acc, right, middle
        else:
            model, accuracy, log_c, right = left_model, left_acc, left, middle
    return SearchResult(model, 10.0**log_c, accuracy)


def linear_weights(model: LogisticRegression, n_cls: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The fitted classifier as weight [n_cls, E] and bias [n_cls] (fp32) whose argmax is ``model.predict``.

    A binary sklearn model holds one row w (logit of class 1); rows [0, w] give the same argmax and the
    same probabilities under softmax. ``model.classes_`` must be 0..n_cls-1.
    """
    if list(model.classes_) != list(range(n_cls)):
        raise ValueError(f"linear probe: fitted classes {list(model.classes_)[:10]} are not 0..{n_cls - 1}")
    weight = torch.as_tensor(model.coef_, dtype=torch.float32)  # [n_cls, E] or [1, E]
    bias = torch.as_tensor(model.intercept_, dtype=torch.float32)  # [n_cls] or [1]
    if n_cls == 2:
        weight = torch.cat([torch.zeros_like(weight), weight])  # [2, E]
        bias = torch.cat([torch.zeros_like(bias), bias])  # [2]
    return weight, bias


def search_rows(labels: torch.Tensor, per_class: int, seed: int) -> List[int]:
    """Rows of at most ``per_class`` items per label (seeded ``random.Random``, global RNG untouched).

    Why: the 11 datasets' val splits already hold min(shots, 4) per class (Dassl's sampler), so nothing is
    dropped; ImageNet's val is its full test set, which lpclip also subsamples to that size for the C search.
    """
    rng = random.Random(seed)
    rows: List[int] = []
    for label in sorted(set(labels.tolist())):
        members = (labels == label).nonzero().flatten().tolist()
        rows += members if len(members) <= per_class else sorted(rng.sample(members, per_class))
    return rows
