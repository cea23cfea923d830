"""The engine names no method (docs/design.md "Layout", docs/design.md "Layout"): every trainer fact lives in its trainer class.

Parsed with ast like tests/test_layering.py: no module under dpt/engine/ holds a registered trainer name (as a
string or an identifier) or a string starting with "TRAINER."; dpt/compat/ and dpt/config/merge.py hold no
trainer name. Precision keys are asked of the trainer class (``dpt.registry.precision_key``).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import pytest

from dpt.registry import TRAINER_REGISTRY, precision_key

PACKAGE = Path(__file__).resolve().parents[1] / "dpt"


def _docstrings(tree: ast.AST) -> set:
    """ids of docstring nodes (they explain; they may name the official code's methods)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def offences(path: Path, trainer_names: set, config_keys: bool) -> List[str]:
    """``file:line: what`` for each trainer name (string or identifier) and, with config_keys, "TRAINER." string."""
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in trainer_names:
                found.append(f"{path.name}:{node.lineno}: trainer name {node.value!r}")
            elif config_keys and node.value.startswith("TRAINER."):
                found.append(f"{path.name}:{node.lineno}: config key {node.value!r}")
        elif isinstance(node, ast.Name) and node.id in trainer_names:
            found.append(f"{path.name}:{node.lineno}: trainer {node.id}")
        elif isinstance(node, ast.alias) and (node.asname or node.name).split(".")[-1] in trainer_names:
            found.append(f"{path.name}:{node.lineno}: imports {node.name}")
    return found


def _files(*parts: str) -> List[Path]:
    target = PACKAGE.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("where, config_keys", [
    (("engine",), True),
    (("compat",), False),
    (("config", "merge.py"), False),
])
def test_shared_code_names_no_trainer(where, config_keys) -> None:
    names = set(TRAINER_REGISTRY.names())
    assert {"CoOp", "CoCoOp", "DPT"} <= names
    found = [o for path in _files(*where) for o in offences(path, names, config_keys)]
    assert found == []


def test_the_checker_sees_names_keys_and_imports(tmp_path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('"""DPT in a docstring is fine."""\nfrom dpt.trainers.dpt import DPT\n'
                      'KEY = "TRAINER.COOP.PREC"\nif name == "CoCoOp":\n    pass\n')
    assert offences(source, {"DPT", "CoCoOp"}, config_keys=True) == [
        "bad.py:2: imports DPT", "bad.py:3: config key 'TRAINER.COOP.PREC'", "bad.py:4: trainer name 'CoCoOp'",
    ]
    assert offences(source, {"DPT", "CoCoOp"}, config_keys=False) == ["bad.py:2: imports DPT",
                                                                     "bad.py:4: trainer name 'CoCoOp'"]


def test_precision_key_is_the_trainer_classes() -> None:
    keys = {name: precision_key(name) for name in TRAINER_REGISTRY.names()}
    own = {"CoCoOp": "TRAINER.COCOOP.PREC", "IVLP": "TRAINER.IVLP.PREC", "MaPLe": "TRAINER.MAPLE.PREC",
           "PromptSRC": "TRAINER.PROMPTSRC.PREC"}  # as the official code reads them
    assert {name: keys.pop(name) for name in own} == own
    assert set(keys.values()) == {"TRAINER.COOP.PREC"}
