"""How a part's parameter names in the official code map to ours: a table a trainer declares, read both ways.

Why: runs of the official code keep each learnable part in a folder named after its registered Dassl model
(docs/reference.md 4.4), and some name their tensors differently from us (DPT's CAVPT generator, the deep-prompt
methods' whole-model checkpoints). Each trainer declares, per part folder, an ``OfficialNames`` table
(``TrainerBase.official_names``); checkpoint reading (``weights.py``) and ``dpt-convert`` apply it, and know no
method. Keys a table does not mention are ours already and pass unchanged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch

State = Dict[str, torch.Tensor]
BLOCK = "{j}"  # the block index in a name template


@dataclass(frozen=True)
class Rename:
    """One official name and ours. ``{j}`` marks a block index, with official j = our j + ``shift``. A name that
    ends with "." is a prefix (the rest of the key follows unchanged); any other name is the whole key."""

    official: str
    ours: str
    shift: int = 0

    def apply(self, key: str, to_ours: bool) -> Optional[str]:
        """``key`` renamed in that direction, or None when this rule does not match it."""
        source, target = (self.official, self.ours) if to_ours else (self.ours, self.official)
        match = _template_pattern(source).match(key)
        if not match:
            return None
        rest = key[match.end():]
        if BLOCK not in source:
            return target + rest
        j = int(match.group(1)) + (-self.shift if to_ours else self.shift)
        return target.replace(BLOCK, str(j)) + rest


@dataclass(frozen=True)
class Stacked:
    """The official code stacks one tensor per block into ``official`` [blocks, ...]; ours are ``ours`` per
    block (a template with ``{j}``, blocks numbered from 0)."""

    official: str
    ours: str


@dataclass(frozen=True)
class OfficialNames:
    """The official names of one part folder.

    Args:
        renames: name rules, tried in order; the first that matches renames a key.
        stacked: tensors stacked over blocks in the official file.
        official_only: regular expression of official keys with no counterpart here (dropped on reading: the
            frozen CLIP of whole-model checkpoints, modules a method never uses), unless a rename matches first.
        ours_only: regular expression of our keys with no official counterpart (dropped when writing).
    """

    renames: Tuple[Rename, ...] = ()
    stacked: Tuple[Stacked, ...] = ()
    official_only: str = ""
    ours_only: str = ""

    def to_ours(self, state: Mapping[str, torch.Tensor]) -> State:
        """Official keys -> ours."""
        out: State = {}
        for key, value in state.items():
            stack = next((s for s in self.stacked if s.official == key), None)
            if stack is not None:
                out.update({stack.ours.replace(BLOCK, str(j)): block for j, block in enumerate(value)})
                continue
            renamed = self._rename(key, to_ours=True)
            if renamed is None and self.official_only and re.match(self.official_only, key):
                continue
            out[renamed or key] = value
        return out

    def to_official(self, state: Mapping[str, torch.Tensor]) -> State:
        """Our keys -> the official code's; refuses stacked blocks that are not numbered 0..n-1."""
        out: State = {}
        blocks: Dict[str, Dict[int, torch.Tensor]] = {}
        for key, value in state.items():
            stack = next(((s, m) for s in self.stacked if (m := _template_pattern(s.ours).match(key))), None)
            if stack is not None:
                blocks.setdefault(stack[0].official, {})[int(stack[1].group(1))] = value
            elif not (self.ours_only and re.match(self.ours_only, key)):
                out[self._rename(key, to_ours=False) or key] = value
        for name, tensors in blocks.items():
            if sorted(tensors) != list(range(len(tensors))):
                raise ValueError(f"{name} of the official layout stacks blocks 0..{len(tensors) - 1}, but the "
                                 f"checkpoint has blocks {sorted(tensors)}")
            out[name] = torch.stack([tensors[j] for j in range(len(tensors))])
        return out

    def _rename(self, key: str, to_ours: bool) -> Optional[str]:
        return next((new for rule in self.renames if (new := rule.apply(key, to_ours)) is not None), None)


def _template_pattern(template: str) -> "re.Pattern[str]":
    """``a.{j}.b.`` -> ``^a\\.(\\d+)\\.b\\.`` (a prefix); a template not ending in "." matches the whole key."""
    escaped = re.escape(template).replace(re.escape(BLOCK), r"(\d+)")
    return re.compile("^" + escaped + ("" if template.endswith(".") else "$"))


def states_to_official(names: Mapping[str, OfficialNames],
                       states: Mapping[str, Mapping[str, torch.Tensor]]) -> Dict[str, State]:
    """Every part's state under the official names of its table in ``names`` (parts without one unchanged)."""
    return {part: names[part].to_official(state) if part in names else dict(state) for part, state in states.items()}
