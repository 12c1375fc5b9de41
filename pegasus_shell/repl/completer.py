"""Completion of commands, flags, table names, cluster names and node addresses, from the registry."""

from __future__ import annotations

from typing import Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from pegasus_shell.commands import ALL_NAMES, PRIMARY
from pegasus_shell.commands.spec import Arg, Command, Kind
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import UsageError
from pegasus_shell.escape import Token, display, split_line


def _positional_index(command: Command, tokens: list[Token]) -> int:
    """How many positional words precede the word being completed (flag values do not count)."""
    count, skip = 0, False
    for token in tokens:
        if skip:
            skip = False
            continue
        if token.is_flag():
            flag = command.flag_by_name(token.value.decode("utf-8", "replace").partition("=")[0])
            skip = flag is not None and flag.takes_value and b"=" not in token.value
            continue
        count += 1
    return count


class ShellCompleter(Completer):
    def __init__(self, ctx: ShellContext) -> None:
        self.ctx = ctx

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        try:
            split = split_line(text, partial=True)
        except UsageError:
            return
        tokens = split.tokens
        starting_new_word = split.trailing_space or not tokens
        if not tokens or (len(tokens) == 1 and not starting_new_word):
            yield from self._commands(tokens[0].value.decode("utf-8", "replace") if tokens else "")
            return
        command = ALL_NAMES.get(tokens[0].value.decode("utf-8", "replace"))
        if command is None:
            return
        done = tokens[1:] if starting_new_word else tokens[1:-1]
        current = "" if starting_new_word else text[tokens[-1].start:]
        previous = done[-1] if done else None
        if previous is not None and previous.is_flag():
            flag = command.flag_by_name(previous.value.decode("utf-8", "replace"))
            if flag is not None and flag.takes_value:
                yield from self._values(flag.kind, flag.choices, current)
                return
        if current.startswith("-"):
            yield from self._flags(command, done, current)
            return
        index = _positional_index(command, done)
        arg = self._arg_at(command, index)
        if arg is not None:
            yield from self._values(arg.kind, arg.choices, current)

    @staticmethod
    def _arg_at(command: Command, index: int) -> Arg | None:
        if index < len(command.args):
            return command.args[index]
        if command.args and command.args[-1].repeat:
            return command.args[-1]
        return None

    def _commands(self, prefix: str) -> Iterable[Completion]:
        for name in sorted(ALL_NAMES):
            if name.startswith(prefix):
                command = ALL_NAMES[name]
                meta = command.summary if name == command.name else f"= {command.name}"
                yield Completion(name, start_position=-len(prefix), display_meta=meta)

    def _flags(self, command: Command, done: list[Token], prefix: str) -> Iterable[Completion]:
        used = {t.value.decode("utf-8", "replace").partition("=")[0] for t in done if t.is_flag()}
        for flag in command.flags:
            if used.intersection(flag.names):
                continue
            for name in flag.names:
                if name.startswith(prefix) and (name.startswith("--") or prefix in ("", "-") or len(prefix) <= 2):
                    yield Completion(name, start_position=-len(prefix), display_meta=flag.help or flag.dest)

    def _candidates(self, kind: Kind | None, choices: tuple[str, ...]) -> list[str]:
        if choices:
            return list(choices)
        if kind is Kind.TABLE:
            return list(self.ctx.cache.tables)
        if kind is Kind.NODE:
            metas = list(self.ctx.connection.meta_servers) if self.ctx.connection is not None else []
            return sorted(set(self.ctx.cache.nodes) | set(metas))
        if kind is Kind.CLUSTER:
            return sorted(self.ctx.clusters.clusters)
        if kind is Kind.COMMAND:
            return sorted(PRIMARY)
        return []

    def _values(self, kind: Kind | None, choices: tuple[str, ...], prefix: str) -> Iterable[Completion]:
        bare = prefix.lstrip("\"'")
        for candidate in self._candidates(kind, choices):
            if candidate.startswith(bare):
                yield Completion(display(candidate), start_position=-len(prefix))


def usage_hint(line: str) -> str:
    """The bottom toolbar's text: the usage of the command being typed."""
    try:
        tokens = split_line(line, partial=True).tokens
    except UsageError:
        tokens = []
    if not tokens:
        return 'Tab completes · "help" lists the commands · Ctrl-C cancels the line · Ctrl-D exits'
    name = tokens[0].value.decode("utf-8", "replace")
    command = ALL_NAMES.get(name)
    if command is None:
        matches = [n for n in sorted(ALL_NAMES) if n.startswith(name)]
        if matches:
            return "commands: " + " ".join(matches[:12])
        return f'unknown command "{name}" ("help" lists the commands)'
    return f"usage: {command.usage()}  —  {command.summary}"


__all__ = ["ShellCompleter", "usage_hint"]
