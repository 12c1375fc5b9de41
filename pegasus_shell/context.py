"""The state one shell session carries between commands: where it is connected and which table is in use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pegasus_shell.config import ClustersConfig
from pegasus_shell.errors import ShellError, UnreachableError


class ProgressTask(Protocol):
    def update(self, completed: float, total: float | None = None, description: str | None = None) -> None: ...


class ProgressFactory(Protocol):
    def __call__(self, description: str, total: float | None) -> Any: ...  # a context manager -> ProgressTask


@dataclass(frozen=True)
class Target:
    """Which cluster to talk to: a name from clusters.ini, an explicit meta list, or ``auto``.

    ``auto`` (no -c and no -m) means the default cluster when it answers, else an embedded onebox.
    """

    name: str | None = None
    meta_list: tuple[str, ...] = ()

    @property
    def auto(self) -> bool:
        return self.name is None and not self.meta_list


@dataclass
class CompletionCache:
    """What the REPL completes from the cluster, refreshed by commands that read it anyway."""

    tables: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


@dataclass
class ShellContext:
    clusters: ClustersConfig
    target: Target
    json: bool = False
    no_color: bool = False
    table: str | None = None
    cluster_name: str | None = None  # set once connected
    connection: Any = None  # pegasus_shell.connection.ClusterConnection
    onebox: Any = None  # pegasus_shell.onebox.EmbeddedOnebox we started (stopped on exit)
    cache: CompletionCache = field(default_factory=CompletionCache)
    notice: Callable[[str], None] = print  # one-line messages for people (stderr)
    progress: ProgressFactory | None = None

    async def connected(self) -> Any:
        """The connection to the target cluster, made (and, for ``auto``, chosen) on first use."""
        if self.connection is None:
            from pegasus_shell.connection import connect_target

            self.connection, self.cluster_name, onebox = await connect_target(self)
            if onebox is not None:
                self.onebox = onebox
        return self.connection

    def require_table(self, command: str) -> str:
        if self.table is None:
            raise ShellError(f'{command}: no table in use; run "use TABLE" first', "ERR_NO_TABLE_IN_USE")
        return self.table

    async def switch_target(self, target: Target) -> None:
        """Connect to another cluster (``cc``): the table in use is forgotten."""
        old = self.connection
        previous = (self.target, self.cluster_name, self.table, self.cache)
        self.target, self.connection, self.table, self.cache = target, None, None, CompletionCache()
        try:
            await self.connected()
        except UnreachableError:
            self.target, self.cluster_name, self.table, self.cache = previous
            self.connection = old
            raise
        if old is not None:
            await old.close()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
        if self.onebox is not None:
            await self.onebox.stop()
            self.onebox = None
