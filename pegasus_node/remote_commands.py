"""Remote commands: named operator actions every node answers over RPC (``node.remote_command``).

Pegasus operators reach a node's internals with ``remote_command -t replica-server CMD ARGS``; this is the
same idea. Each server registers its own commands; fail points register theirs.
"""

from __future__ import annotations

from collections.abc import Callable

from pegasus_node.errors import ErrorCode, PegasusError

CommandFn = Callable[[list[str]], object]


class RemoteCommands:
    def __init__(self) -> None:
        self._commands: dict[str, tuple[CommandFn, str]] = {}
        self.register("help", self._help, "list the remote commands of this node")

    def register(self, name: str, fn: CommandFn, help_text: str) -> None:
        self._commands[name] = (fn, help_text)

    def run(self, name: str, args: list[str]) -> object:
        entry = self._commands.get(name)
        if entry is None:
            raise PegasusError(
                ErrorCode.ERR_HANDLER_NOT_FOUND,
                f"unknown remote command {name!r}; 'help' lists this node's commands",
            )
        return entry[0](list(args))

    def _help(self, args: list[str]) -> str:
        return "\n".join(f"{name}: {text}" for name, (_, text) in sorted(self._commands.items()))
