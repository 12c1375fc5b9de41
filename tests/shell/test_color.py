"""Colour on a terminal, none with --no-color or NO_COLOR (https://no-color.org), in output and in the prompt."""

from __future__ import annotations

import io

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import ColorDepth, DummyOutput

from pegasus_shell.config import ClustersConfig
from pegasus_shell.context import ShellContext, Target
from pegasus_shell.errors import ShellError
from pegasus_shell.render import Renderer, make_consoles
from pegasus_shell.repl.session import make_session


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def error_text(no_color: bool) -> str:
    out, err = Terminal(), Terminal()
    renderer = Renderer(*make_consoles(no_color, out, err))
    renderer.error("get", "get a b", ShellError("boom"))
    renderer.result("partitions", "partitions", {
        "table": "t", "app_id": 1, "partition_count": 1, "replica_count": 3,
        "partitions": [{"pidx": 0, "ballot": 1, "primary": "", "secondaries": [], "learners": [],
                        "last_committed_decree": 0, "health": "read_unhealthy"}],
        "summary": {"fully_healthy": 0, "unhealthy": 1, "write_unhealthy": 1, "read_unhealthy": 1}})
    return err.getvalue() + out.getvalue()


def test_a_terminal_gets_colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in error_text(no_color=False)


def test_no_color_flag_removes_it(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = error_text(no_color=True)
    assert "\x1b[" not in text and "error: boom" in text


def test_no_color_environment_removes_it(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    text = error_text(no_color=False)
    assert "\x1b[" not in text and "read_unhealthy" in text


@pytest.mark.parametrize("env, flag, depth", [(None, False, None), ("1", False, ColorDepth.DEPTH_1_BIT),
                                              (None, True, ColorDepth.DEPTH_1_BIT)])
def test_the_prompt_honours_no_color(monkeypatch, env, flag, depth):
    if env is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", env)
    ctx = ShellContext(ClustersConfig(), Target())
    with create_pipe_input() as inp:
        session = make_session(ctx, no_color=flag, history=InMemoryHistory(), input=inp, output=DummyOutput())
        assert session.color_depth == depth
