"""The interactive REPL: prompt-toolkit's ``prompt_async`` on the asyncio loop that Twisted runs on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import Style

from pegasus_shell import __version__
from pegasus_shell.config import xdg_dir
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import EXIT_OK, CommandInterrupted, ExitShell
from pegasus_shell.render import Renderer
from pegasus_shell.repl.completer import ShellCompleter, usage_hint
from pegasus_shell.runner import run_cancellable, run_line, show

# Commands after which the table and node names offered by completion may have changed.
_REFRESHING = {"create", "drop", "recall", "cc", "use", "nodes", "ls"}

STYLE = Style.from_dict({
    "cluster": "ansicyan bold",
    "table": "ansigreen bold",
    "bottom-toolbar": "noreverse",
})


def history_path() -> Path:
    return xdg_dir("STATE") / "pegasus" / "history"


def open_history(path: Path | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()  # a read-only home must not stop the shell
    return FileHistory(str(path))


def prompt_text(ctx: ShellContext) -> FormattedText:
    parts: list[tuple[str, str]] = [("class:cluster", ctx.cluster_name or "(not connected)")]
    if ctx.table:
        parts.append(("class:table", f"/{ctx.table}"))
    parts.append(("", ">>> "))
    return FormattedText(parts)


async def refresh_completions(ctx: ShellContext) -> None:
    """Table and node names for completion; a failure here only means fewer completions."""
    if ctx.connection is None:
        return
    try:
        ctx.cache.tables = sorted(a["name"] for a in await ctx.connection.list_apps("available"))
        ctx.cache.nodes = [n["address"] for n in await ctx.connection.list_nodes()]
    except Exception:  # completion data is best effort; commands report real errors
        pass


def _toolbar() -> str:
    return usage_hint(get_app().current_buffer.document.text_before_cursor)


def make_session(ctx: ShellContext, *, no_color: bool, history: History, input: Any = None,
                 output: Any = None) -> PromptSession:
    return PromptSession(
        message=lambda: prompt_text(ctx),
        completer=ShellCompleter(ctx),
        complete_while_typing=False,
        history=history,
        bottom_toolbar=_toolbar,
        style=STYLE,
        color_depth=ColorDepth.DEPTH_1_BIT if no_color or os.environ.get("NO_COLOR") else None,
        include_default_pygments_style=False,
        input=input,
        output=output,
    )


def banner(ctx: ShellContext) -> list[str]:
    lines = [f'pegasus-shell {__version__}. Type "help" for more information; Ctrl-D or "exit" leaves.']
    if ctx.connection is not None:
        lines.append(f"The cluster name is: {ctx.cluster_name}")
        lines.append(f"The cluster meta list is: {','.join(ctx.connection.meta_servers)}")
    return lines


async def run_repl(ctx: ShellContext, renderer: Renderer, *, no_color: bool, history: History,
                   input: Any = None, output: Any = None) -> int:
    session = make_session(ctx, no_color=no_color, history=history, input=input, output=output)
    for line in banner(ctx):
        renderer.out.print(line, markup=False, highlight=False)
    await refresh_completions(ctx)
    while True:
        try:
            line = await session.prompt_async()
        except KeyboardInterrupt:  # Ctrl-C: drop the line, keep the session
            continue
        except EOFError:  # Ctrl-D
            break
        try:
            outcome = await run_cancellable(run_line(ctx, line))
        except ExitShell:
            break
        except CommandInterrupted as exc:
            renderer.error(None, line, exc)
            continue
        if outcome is None:
            continue
        show(renderer, outcome)
        if outcome.command is not None and outcome.command.name in _REFRESHING:
            await refresh_completions(ctx)
    return EXIT_OK
