"""How a command is declared: its name, aliases, arguments and flags, and the function that runs it.

One declaration drives parsing, completion, the usage line, ``help`` and the REPL's bottom toolbar.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pegasus_shell.errors import UsageError
from pegasus_shell.escape import Token, display

if TYPE_CHECKING:
    from pegasus_shell.context import ShellContext


class Kind(enum.Enum):
    """What an argument holds; it decides conversion and completion."""

    TEXT = "text"  # a UTF-8 word
    BYTES = "bytes"  # a key or value: any bytes (quoted and escaped as the Pegasus shell does)
    HASH_KEY = "hash_key"  # bytes that must not be empty
    INT = "int"
    NON_NEGATIVE = "non_negative"  # an int >= 0
    POSITIVE = "positive"  # an int >= 1
    TABLE = "table"  # a table name (completed from the cluster)
    NODE = "node"  # a node address (completed from the cluster)
    CLUSTER = "cluster"  # a cluster name from clusters.ini
    COMMAND = "command"  # a shell command name (for `help`)


class Needs(enum.Enum):
    NOTHING = "nothing"
    CLUSTER = "cluster"  # a connection to the meta servers
    TABLE = "table"  # a connection and a table in use


@dataclass(frozen=True)
class Arg:
    name: str  # shown in usage, upper case: HASH_KEY
    kind: Kind = Kind.TEXT
    optional: bool = False
    repeat: bool = False  # takes every remaining positional word
    choices: tuple[str, ...] = ()
    help: str = ""

    def usage(self) -> str:
        core = self.name + ("..." if self.repeat else "")
        if self.choices and len(self.choices) <= 4:
            core = "|".join(self.choices)
        return f"[{core}]" if self.optional else core


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # every spelling: ("-p", "--partitions", "--partition_count")
    dest: str
    kind: Kind | None = None  # None: a switch that takes no value
    default: Any = None
    metavar: str = ""
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def takes_value(self) -> bool:
        return self.kind is not None

    def usage(self) -> str:
        value = f" {self.metavar or self.dest.upper()}" if self.takes_value else ""
        return f"[{self.names[0]}{value}]"


Executor = Callable[["ShellContext", "ParsedArgs"], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    execute: Executor
    aliases: tuple[str, ...] = ()
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()
    needs: Needs = Needs.NOTHING
    group: str = "shell"  # for `help`: "cluster", "data" or "shell"
    details: str = ""  # extra lines for `help CMD`

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def usage(self) -> str:
        parts = [self.name, *(a.usage() for a in self.args), *(f.usage() for f in self.flags)]
        return " ".join(parts)

    def flag_by_name(self, name: str) -> Flag | None:
        for flag in self.flags:
            if name in flag.names:
                return flag
        return None

    def parse(self, tokens: list[Token]) -> "ParsedArgs":
        return parse_tokens(self, tokens)


@dataclass
class ParsedArgs:
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _convert(kind: Kind, token: Token, what: str, choices: tuple[str, ...] = ()) -> Any:
    if kind is Kind.BYTES:
        return token.value
    if kind is Kind.HASH_KEY:
        if not token.value:
            raise UsageError(f"{what} must not be empty")
        return token.value
    if kind in (Kind.INT, Kind.NON_NEGATIVE, Kind.POSITIVE):
        try:
            number = int(token.text)
        except ValueError:
            raise UsageError(f"{what} must be an integer, not {token.text!r}") from None
        if kind is Kind.NON_NEGATIVE and number < 0:
            raise UsageError(f"{what} must be >= 0, not {number}")
        if kind is Kind.POSITIVE and number < 1:
            raise UsageError(f"{what} must be >= 1, not {number}")
        return number
    text = token.text
    if choices and text not in choices:
        raise UsageError(f"{what} must be one of {', '.join(choices)}; got {text!r}")
    return text


def parse_tokens(command: Command, tokens: list[Token]) -> ParsedArgs:
    """Bind the words after the command name to its flags and positional arguments.

    Flags may appear anywhere (``--name=value`` or ``--name value``); ``--`` ends the flags.
    """
    values: dict[str, Any] = {f.dest: f.default for f in command.flags}
    positional: list[Token] = []
    i = 0
    flags_done = False
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not flags_done and not token.quoted and token.value == b"--":
            flags_done = True
            continue
        if flags_done or not token.is_flag():
            positional.append(token)
            continue
        name, eq, inline = token.text.partition("=")
        flag = command.flag_by_name(name)
        if flag is None:
            raise UsageError(f"{command.name}: unknown flag {name}; usage: {command.usage()}")
        if not flag.takes_value:
            if eq:
                raise UsageError(f"{command.name}: flag {name} takes no value")
            values[flag.dest] = True
            continue
        if eq:
            value_token = Token(inline.encode("utf-8"))
        elif i < len(tokens):
            value_token = tokens[i]
            i += 1
        else:
            raise UsageError(f"{command.name}: flag {name} needs a value; usage: {command.usage()}")
        values[flag.dest] = _convert(flag.kind, value_token, f"{command.name} {name}", flag.choices)

    for arg in command.args:
        if arg.repeat:
            if not positional and not arg.optional:
                raise UsageError(f"{command.name}: missing {arg.name}; usage: {command.usage()}")
            values[arg.name.lower()] = [_convert(arg.kind, t, f"{command.name}: {arg.name}", arg.choices)
                                         for t in positional]
            positional = []
        elif positional:
            values[arg.name.lower()] = _convert(arg.kind, positional.pop(0), f"{command.name}: {arg.name}",
                                                arg.choices)
        elif arg.optional:
            values[arg.name.lower()] = None
        else:
            raise UsageError(f"{command.name}: missing {arg.name}; usage: {command.usage()}")
    if positional:
        extra = " ".join(display(t.value) for t in positional[:3])
        raise UsageError(f"{command.name}: unexpected argument {extra}; usage: {command.usage()}")
    return ParsedArgs(values)
