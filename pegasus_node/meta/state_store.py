"""Where the meta server keeps its whole state, behind one small interface.

The interface is a tree of paths holding bytes, the shape of ZooKeeper, so that the ZooKeeper store (the
highly available one, as Pegasus uses: zookeeper_store.py) is a second implementation of the same calls.
Every write is durable when the call returns: the meta server persists a change before it announces it.
"""

from __future__ import annotations

import base64
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path

from pegasus_node.errors import ErrorCode, PegasusError


class StateStoreError(PegasusError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_DISK_IO, message)


class StateStore(ABC):
    """A durable tree of ``path -> bytes``. Paths are absolute, '/'-separated, without a trailing '/'."""

    @abstractmethod
    def get(self, path: str) -> bytes | None: ...

    @abstractmethod
    def children(self, path: str) -> list[str]:
        """Names (not paths) of the direct children of ``path``, sorted."""

    @abstractmethod
    def apply(self, puts: dict[str, bytes], deletes: list[str] = ()) -> None:
        """Write several paths and delete subtrees atomically and durably."""

    def put(self, path: str, value: bytes) -> None:
        self.apply({path: value})

    def delete(self, path: str) -> None:
        self.apply({}, [path])

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:
        pass


class FileStateStore(StateStore):
    """The whole tree in one JSON file, replaced atomically (temp file, fsync, rename, fsync the folder).

    Meta state is small (tables and partition configurations), so rewriting the file on each change is
    simpler and safer than a log, and a person can read the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tree: dict[str, bytes] = {}
        if self.path.exists():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._tree = {key: base64.b64decode(value) for key, value in raw["nodes"].items()}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StateStoreError(
                    f"meta state file {self.path} is unreadable ({exc}); restore it from a backup, or move it "
                    "away to start an empty cluster"
                ) from None

    def describe(self) -> str:
        return f"file:{self.path}"

    def get(self, path: str) -> bytes | None:
        return self._tree.get(path)

    def children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {key[len(prefix) :].split("/", 1)[0] for key in self._tree if key.startswith(prefix)}
        return sorted(names)

    def apply(self, puts: dict[str, bytes], deletes: list[str] = ()) -> None:
        tree = dict(self._tree)
        for path in deletes:
            prefix = path.rstrip("/") + "/"
            for key in [k for k in tree if k == path or k.startswith(prefix)]:
                del tree[key]
        tree.update(puts)
        self._write(tree)
        self._tree = tree

    def _write(self, tree: dict[str, bytes]) -> None:
        payload = json.dumps(
            {"version": 1, "nodes": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(tree.items())}},
            indent=1,
        ).encode("utf-8")
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateStoreError(
                f"cannot persist meta state to {self.path}: {exc.strerror}; the change was not made "
                "(free disk space or fix permissions, then retry)"
            ) from None
