"""The one CLI contract (dpt/errors.py) over every console script of setup.py and every ``python -m`` tool."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from dpt.errors import ArgumentParser, cli_main

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPTS = re.findall(r'"(dpt-[a-z-]+)=([\w.]+):main"', (REPO / "setup.py").read_text())
MODULE_TOOLS = ["dpt.tools.launch", "dpt.tools.logparse", "dpt.tools.jobs"]


def test_console_scripts_are_found_and_live_in_tools():
    assert len(CONSOLE_SCRIPTS) >= 9  # setup.py lists them as "dpt-x=module:main"
    assert all(module == "dpt.train" or module.startswith("dpt.tools.") for _, module in CONSOLE_SCRIPTS)


@pytest.mark.parametrize("module", sorted({m for _, m in CONSOLE_SCRIPTS} | set(MODULE_TOOLS)))
def test_bad_argument_is_one_error_line_and_exit_2(module, capsys):
    main = importlib.import_module(module).main
    assert main(["--no-such-flag"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and captured.out == ""


def _parser():
    parser = ArgumentParser(prog="t")
    parser.add_argument("what")
    return parser


@cli_main(_parser)
def _tool(args):
    if args.what == "bad":
        raise FileNotFoundError("data.json: not found")
    if args.what == "full":
        raise OSError(28, "No space left on device")
    if args.what == "nan":
        raise FloatingPointError("loss is nan\nat epoch 2")
    return 3 if args.what == "three" else None


@pytest.mark.parametrize("what, status, err", [
    ("bad", 2, ["error: data.json: not found"]),
    ("full", 1, ["error: [Errno 28] No space left on device"]),
    ("nan", 1, ["error: loss is nan", "error: at epoch 2"]),
    ("three", 3, []),
    ("fine", 0, []),
])
def test_input_errors_exit_2_work_failures_exit_1(what, status, err, capsys, monkeypatch):
    monkeypatch.delenv("DPT_DEBUG", raising=False)
    assert _tool([what]) == status
    assert capsys.readouterr().err.splitlines() == err


def test_debug_mode_reraises(monkeypatch):
    monkeypatch.setenv("DPT_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="data.json"):
        _tool(["bad"])
