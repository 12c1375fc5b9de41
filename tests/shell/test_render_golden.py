"""Golden tests of the human output: fixed data rendered exactly as pinned in tests/shell/golden/.

Set UPDATE_GOLDEN=1 to rewrite the files after an intended change (and review the diff).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from rich.console import Console

from pegasus_shell.commands import PRIMARY
from pegasus_shell.commands.shell_cmds import describe
from pegasus_shell.errors import ShellError
from pegasus_shell.render import HUMAN, Renderer
from tests.shell.fixtures_data import RESULTS

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def renderer(json_mode: bool = False) -> tuple[Renderer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    console = lambda f: Console(file=f, width=120, no_color=True, color_system=None, highlight=False)  # noqa: E731
    return Renderer(console(out), console(err), json_mode), out, err


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("command", sorted(RESULTS))
def test_human_output_is_pinned(command):
    r, out, err = renderer()
    r.result(command, command, RESULTS[command])
    assert err.getvalue() == ""
    check_golden(command, out.getvalue())


def test_every_command_has_a_human_rendering():
    assert set(PRIMARY) - {"exit"} <= set(HUMAN)


def test_help_listing_and_one_command_are_pinned():
    r, out, _ = renderer()
    r.result("help", "help", {"commands": [describe(c) for c in PRIMARY.values()]})
    r.result("help", "help set", {"command": describe(PRIMARY["set"])})
    check_golden("help", out.getvalue())


def test_no_line_ends_in_blanks():
    r, out, _ = renderer()
    for command, data in RESULTS.items():
        r.result(command, command, data)
    assert all(line == line.rstrip() for line in out.getvalue().splitlines())


def test_an_error_is_one_line_on_stderr_and_partial_data_is_shown_first():
    r, out, err = renderer()
    r.error("server-info", "server-info", ShellError("server-info: failed on 1 of 2 nodes", data=RESULTS["server-info"]))
    assert err.getvalue() == "error: server-info: failed on 1 of 2 nodes\n"
    assert "127.0.0.1:34801  replica" in out.getvalue()


def test_batch_echo():
    r, out, _ = renderer()
    r.echo("get a b")
    assert out.getvalue() == ">>> get a b\n"
