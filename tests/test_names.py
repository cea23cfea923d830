"""The official-name tables (dpt/compat/names.py): renames with block shifts, stacked blocks, dropped keys."""
from __future__ import annotations

import pytest
import torch

from dpt.compat.names import OfficialNames, Rename, Stacked

TABLE = OfficialNames(
    renames=(Rename("blocks.{j}.VPT", "deep.prompts.{j}", shift=1), Rename("proj.", "couplings.0."),
             Rename("projections.{j}.", "couplings.{j}.", shift=-1)),
    stacked=(Stacked("ctx", "layers.{j}.key_tokens"),),
    official_only=r"frozen\.|scale$",
    ours_only=r"gpa\.",
)


def test_official_names_map_to_ours_and_back():
    official = {"blocks.3.VPT": torch.zeros(1), "proj.weight": torch.ones(1), "projections.0.bias": torch.ones(2),
                "ctx": torch.arange(6.0).reshape(3, 2), "mine": torch.ones(3), "frozen.conv1.weight": torch.ones(4),
                "scale": torch.ones(())}
    ours = TABLE.to_ours(official)
    assert sorted(ours) == ["couplings.0.weight", "couplings.1.bias", "deep.prompts.2", "layers.0.key_tokens",
                            "layers.1.key_tokens", "layers.2.key_tokens", "mine"]
    assert torch.equal(ours["layers.2.key_tokens"], torch.tensor([4.0, 5.0]))
    back = TABLE.to_official({**ours, "gpa.aggregate": torch.ones(5)})
    expected = {k: v for k, v in official.items() if not k.startswith(("frozen.", "scale"))}
    assert back.keys() == expected.keys() and all(torch.equal(back[k], v) for k, v in expected.items())
    assert "blocks.3.VPTx" in TABLE.to_ours({"blocks.3.VPTx": torch.ones(1)})  # a whole-key name is not a prefix


def test_stacked_blocks_must_be_numbered_from_zero():
    with pytest.raises(ValueError, match=r"ctx of the official layout stacks blocks 0..1, but the checkpoint has "
                                         r"blocks \[1, 2\]"):
        TABLE.to_official({"layers.1.key_tokens": torch.ones(2), "layers.2.key_tokens": torch.ones(2)})
