"""Completion and key handling of the REPL, driven through prompt-toolkit's pipe input and DummyOutput."""

from __future__ import annotations

import asyncio
import io

import pytest
import pytest_twisted
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console
from twisted.internet.defer import Deferred

from pegasus_shell.config import ClustersConfig
from pegasus_shell.context import CompletionCache, ShellContext, Target
from pegasus_shell.render import Renderer
from pegasus_shell.repl.completer import ShellCompleter, usage_hint
from pegasus_shell.repl.session import make_session, run_repl

CLUSTERS = ClustersConfig(clusters={"onebox": ["127.0.0.1:34601"], "bjsrv-account": ["10.0.0.1:34601"]},
                          cluster_ids={"onebox": 1}, default_cluster="onebox")


def make_ctx() -> ShellContext:
    ctx = ShellContext(CLUSTERS, Target(meta_list=("127.0.0.1:1",)))
    ctx.cache = CompletionCache(tables=["temp", "t1", "my table"], nodes=["127.0.0.1:34801", "127.0.0.1:34802"])
    return ctx


def complete(text: str) -> list[str]:
    completer = ShellCompleter(make_ctx())
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("us", ["use"]),
        ("cluster", ["cluster-info", "cluster_info"]),
        ("use ", ["temp", "t1", '"my table"']),
        ("use t", ["temp", "t1"]),
        ("drop te", ["temp"]),
        ("partitions ", ["temp", "t1", '"my table"']),
        ("create t1 --p", ["--partitions", "--partition_count"]),
        ("ls --d", ["--detail", "--detailed", "--drop"]),
        ("remote-command -n 127.0.0.1:3480", ["127.0.0.1:34801", "127.0.0.1:34802"]),
        ("server-info -t r", ["replica-server"]),
        ("cc ", ["bjsrv-account", "onebox"]),
        ("help cre", ["create"]),
        ("meta-level set l", ["lively"]),
        ("check_and_set hk -t int_eq", ["int_equal"]),
        ("get hk ", []),
        ("nosuchcommand ", []),
    ],
)
def test_completion(text, expected):
    assert complete(text) == expected


def test_flags_already_given_are_not_offered_again():
    assert "--detail" not in complete("ls -d --")
    assert "--drop" in complete("ls -d --")


def test_flag_value_position_completes_values_not_positionals():
    # after "-p" comes a number: no table names
    assert complete("create -p ") == []
    # after "-n NODE" the next word is the COMMAND positional: nothing to offer
    assert complete("remote-command -n 127.0.0.1:34801 ") == []


def test_the_toolbar_shows_the_usage_of_the_command_being_typed():
    assert usage_hint("set a") == "usage: set HASH_KEY SORT_KEY VALUE [TTL]  —  write one value"
    assert usage_hint("app") .startswith("usage: partitions [TABLE]")
    assert usage_hint("multi") == "commands: multi-del multi-get multi-set multi_del multi_get multi_set"
    assert 'unknown command "zzz"' in usage_hint("zzz")
    assert "Ctrl-D exits" in usage_hint("")


def run(coro) -> Deferred:
    return Deferred.fromFuture(asyncio.ensure_future(coro))


async def type_keys(session, inp, steps: list[tuple[str, str]]) -> str:
    """Send each chunk of keys and wait until the buffer shows the expected text (completion runs in the
    background, so a Tab's result appears a moment after the key); the last chunk should accept the line.
    Each step is (keys, expected buffer text); an expected text ending in "|menu" also waits for the menu."""
    task = asyncio.ensure_future(session.prompt_async())
    buffer = session.default_buffer
    for keys, expected in steps:
        menu = expected.endswith("|menu")
        expected = expected.removesuffix("|menu")
        inp.send_text(keys)
        for _ in range(200):
            if task.done() or (buffer.text == expected and (not menu or buffer.complete_state is not None)):
                break
            await asyncio.sleep(0.01)
        if not task.done():
            assert session.default_buffer.text == expected
    return await asyncio.wait_for(task, 5)


@pytest_twisted.ensureDeferred
async def test_tab_completes_a_command_and_a_table_in_the_prompt():
    ctx = make_ctx()
    with create_pipe_input() as inp:
        session = make_session(ctx, no_color=True, history=InMemoryHistory(), input=inp, output=DummyOutput())
        line = await run(type_keys(session, inp, [("us\t", "use"), (" te\t", "use temp"), ("\r", "")]))
    assert line == "use temp"


@pytest_twisted.ensureDeferred
async def test_tab_cycles_through_several_matches():
    ctx = make_ctx()
    with create_pipe_input() as inp:
        session = make_session(ctx, no_color=True, history=InMemoryHistory(), input=inp, output=DummyOutput())
        # first Tab: the menu opens (no common part to insert), then each Tab selects the next match
        steps = [("use t\t", "use t|menu"), ("\t", "use temp"), ("\t", "use t1"), ("\r", "")]
        line = await run(type_keys(session, inp, steps))
    assert line == "use t1"


@pytest_twisted.ensureDeferred
async def test_tab_completes_a_flag_and_its_value():
    ctx = make_ctx()
    with create_pipe_input() as inp:
        session = make_session(ctx, no_color=True, history=InMemoryHistory(), input=inp, output=DummyOutput())
        steps = [("server-info --ty\t", "server-info --type"), (" m\t", "server-info --type meta-server"),
                 ("\r", "")]
        line = await run(type_keys(session, inp, steps))
    assert line == "server-info --type meta-server"


def repl_renderer() -> tuple[Renderer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    console = lambda f: Console(file=f, width=120, no_color=True, color_system=None)  # noqa: E731
    return Renderer(console(out), console(err)), out, err


@pytest_twisted.ensureDeferred
async def test_ctrl_c_cancels_the_line_and_ctrl_d_exits(tmp_path):
    ctx = make_ctx()
    renderer, out, err = repl_renderer()
    history = FileHistory(str(tmp_path / "history"))
    with create_pipe_input() as inp:
        # a line abandoned with Ctrl-C must not run; the next line runs; Ctrl-D on an empty line leaves
        inp.send_text("use nosuch\x03help get\r\x04")
        code = await run(run_repl(ctx, renderer, no_color=True, history=history, input=inp, output=DummyOutput()))
    assert code == 0
    assert "usage: get HASH_KEY SORT_KEY" in out.getvalue()
    assert err.getvalue() == ""  # "use nosuch" never ran (it would have failed to connect)
    assert "help get" in (tmp_path / "history").read_text()
    assert "use nosuch" not in (tmp_path / "history").read_text()


@pytest_twisted.ensureDeferred
async def test_errors_do_not_end_the_repl_and_exit_does():
    ctx = make_ctx()
    renderer, out, err = repl_renderer()
    with create_pipe_input() as inp:
        inp.send_text("get a b\rbogus\rls -x\rexit\rhelp\r")
        code = await run(run_repl(ctx, renderer, no_color=True, history=InMemoryHistory(), input=inp,
                                  output=DummyOutput()))
    assert code == 0
    assert err.getvalue().splitlines() == [
        'error: get: no table in use; run "use TABLE" first',
        'error: unknown command "bogus" ("help" lists the commands)',
        "error: ls: unknown flag -x; usage: ls [-d] [--drop]",
    ]
    assert "[Cluster and tables]" not in out.getvalue()  # "help" came after "exit"
