"""Running one command line through the registry, and the batch and one-shot runners built on it."""

from __future__ import annotations

import asyncio
import signal
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterable, AsyncIterator, Callable, Iterable, TextIO

from pegasus_shell.commands import lookup
from pegasus_shell.commands.spec import Command, Needs
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import (
    EXIT_OK,
    CommandInterrupted,
    ExitShell,
    ShellError,
    UnreachableError,
    UsageError,
    to_shell_error,
)
from pegasus_shell.escape import split_line
from pegasus_shell.render import Renderer


@dataclass
class Outcome:
    line: str
    command: Command | None = None
    data: Any = None
    error: ShellError | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.error is None else self.error.exit_code


async def run_line(ctx: ShellContext, line: str) -> Outcome | None:
    """Parse and execute one line. None for a blank line or a comment. Raises ExitShell for exit/quit."""
    command: Command | None = None
    try:
        tokens = split_line(line).tokens
        if not tokens:
            return None
        if tokens[0].quoted:
            raise UsageError(f"a command name cannot be quoted: {tokens[0].text!r}")
        command = lookup(tokens[0].text)
        args = command.parse(tokens[1:])
        if command.needs is Needs.TABLE:
            ctx.require_table(command.name)
        if command.needs is not Needs.NOTHING:
            await ctx.connected()
        data = await command.execute(ctx, args)
        return Outcome(line, command, data)
    except ExitShell:
        raise
    except (asyncio.CancelledError, BrokenPipeError):
        raise
    except Exception as exc:  # every failure becomes one clear line
        return Outcome(line, command, error=to_shell_error(exc))


_default_interrupt: list[Callable[[], None]] = []


def set_default_interrupt(handler: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
    """What SIGINT does outside a command (the whole run is cancelled); installed now and after each command.

    prompt-toolkit takes SIGINT over while it prompts, so every command installs its own handler and puts
    this one back afterwards.
    """
    _default_interrupt[:] = [handler]
    loop.add_signal_handler(signal.SIGINT, handler)


async def run_cancellable(coro: Any) -> Any:
    """Run ``coro`` so that Ctrl-C (SIGINT) cancels it, raising :class:`CommandInterrupted`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        installed = False
    try:
        return await task
    except asyncio.CancelledError:
        if interrupted:
            raise CommandInterrupted("interrupted") from None
        raise
    finally:
        if installed:
            if _default_interrupt:
                loop.add_signal_handler(signal.SIGINT, _default_interrupt[0])
            else:
                loop.remove_signal_handler(signal.SIGINT)


def show(renderer: Renderer, outcome: Outcome) -> None:
    name = outcome.command.name if outcome.command else None
    if outcome.error is None:
        renderer.result(name, outcome.line, outcome.data)
    else:
        renderer.error(name, outcome.line, outcome.error)


async def _aiter(lines: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line


async def stream_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines of a (possibly slow, possibly never-ending) stream, read by a daemon thread so that the loop,
    and Ctrl-C, stay responsive while it waits."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="stdin-reader", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def run_lines(ctx: ShellContext, renderer: Renderer, lines: Iterable[str] | AsyncIterable[str], *,
                    echo: bool, continue_on_error: bool) -> int:
    """The batch and one-shot runner: each line echoed, run and shown; stops at the first failure unless told.

    Returns the exit code: that of the first failed command, or 0.
    """
    first_failure = EXIT_OK
    async for raw in _aiter(lines):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if echo:
            renderer.echo(line.strip())
        try:
            outcome = await run_cancellable(run_line(ctx, line))
        except ExitShell:
            break
        except CommandInterrupted as exc:
            renderer.error(None, line, exc)
            return exc.exit_code
        if outcome is None:
            continue
        show(renderer, outcome)
        if outcome.error is not None:
            first_failure = first_failure or outcome.exit_code
            if not continue_on_error or isinstance(outcome.error, UnreachableError):
                return outcome.exit_code
    return first_failure
