"""Simulated clients: gets, sets and check-and-sets on a few keys, recorded as a history for the
linearizability checker.

A client routes by its cached configuration (asked from the meta server over the network), sends one
request at a time with a timeout, and refreshes the configuration after any failure. In some runs, a share
of the gets go to a secondary as follower reads, which must be just as linearizable. What enters the
history: every get that returned a value; every set or check-and-set that succeeded, or whose outcome is
unknown (a timeout, or ERR_TIMEOUT from a primary that stepped down). Writes refused before they were
prepared (ERR_INVALID_STATE, ERR_OBJECT_NOT_FOUND) definitely did not happen and are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pegasus_node.checker import UNKNOWN, Operation, kv_cas, kv_get, kv_set
from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.storage.operations import CheckType, cas_op, put_op

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation

META = "meta"
_NOTHING = object()


class SimClient:
    def __init__(self, sim: "Simulation", index: int) -> None:
        self.sim = sim
        self.world = sim.world
        self.address = f"client{index}"
        self.index = index
        self.routes: dict[tuple, str] = {}
        self.secondaries: dict[tuple, tuple[str, ...]] = {}
        self.counter = 0
        self.pending: dict | None = None
        self.seen: dict[tuple, bytes | None] = {}
        self.successes_after_heal = 0
        self.refreshes = 0
        self.stopped = False
        sim.network.register(self.address, self._on_packet)
        self.world.after(self.world.rng.uniform(0, 0.05), self.address, self._next)

    def _next(self) -> None:
        if self.stopped or self.pending is not None:
            return  # (a duplicated configuration answer may schedule a second _next)
        rng = self.world.rng
        key = rng.choice(self.sim.keys)
        gpid = self.sim.gpid_of(key)
        primary = self.routes.get(gpid, "")
        if not primary:
            self.world.after(0.02, self.address, self._refresh)  # no primary yet: do not spin on the meta
            return
        self.counter += 1
        request_id = (self.address, self.counter)
        value = f"{self.index}.{self.counter}".encode()
        roll = rng.random()
        deadline = self.world.now + self.sim.params.client_timeout
        target = primary
        if roll < 0.4:
            op, packet = kv_get(key), ("read", request_id, gpid, key)
            secondaries = self.secondaries.get(gpid)
            if self.sim.params.follower_reads and secondaries and rng.random() < self.sim.params.follower_reads:
                target = rng.choice(secondaries)
                packet = ("follower_read", request_id, gpid, key, deadline)
        elif roll < 0.75:
            op, packet = kv_set(key, value), ("write", request_id, gpid, [put_op(*key, value)], deadline)
        else:
            expected = self.seen.get(key)
            check = CheckType.CT_VALUE_NOT_EXIST if expected is None else CheckType.CT_VALUE_BYTES_EQUAL
            write = cas_op(key[0], key[1], check, expected or b"", key[1], value)
            op, packet = kv_cas(key, expected, value), ("write", request_id, gpid, [write], deadline)
        self.pending = {"id": request_id, "op": op, "call": self.world.now, "gpid": gpid}
        self.world.note(self.address, f"-> {target}: {packet[0] if op.kind == 'get' else op.kind} "
                                      f"{key[0].decode()} {value.decode()}")
        self.sim.network.send(self.address, target, packet, may_duplicate=False)
        self.world.after(self.sim.params.client_timeout, self.address, self._timeout, request_id)

    def _finish(self, ok: bool, output: object = _NOTHING) -> None:
        """End the pending request; ``output`` goes into the history unless it is _NOTHING."""
        pending, self.pending = self.pending, None
        if output is not _NOTHING:
            returned = None if output is UNKNOWN else self.world.now
            self.sim.history.append(Operation(self.index, pending["call"], returned, pending["op"], output))
        if ok and self.sim.healed:
            self.successes_after_heal += 1
        if not ok:
            self.routes.pop(pending["gpid"], None)
        self.world.after(self.world.rng.uniform(0.002, self.sim.params.think_time), self.address, self._next)

    def stop(self) -> None:
        """The run ends: a write still in flight may or may not take effect."""
        self.stopped = True
        if self.pending is not None and self.pending["op"].kind != "get":
            self.sim.history.append(Operation(self.index, self.pending["call"], None, self.pending["op"], UNKNOWN))
        self.pending = None

    def _timeout(self, request_id: tuple) -> None:
        if self.pending is None or self.pending["id"] != request_id:
            return
        is_read = self.pending["op"].kind == "get"
        self._finish(False, _NOTHING if is_read else UNKNOWN)

    def _refresh(self) -> None:
        """Ask the meta server for the configurations; try again if no answer comes."""
        self.refreshes += 1
        self.sim.network.send(self.address, META, ("query",))
        self.world.after(0.1, self.address, self._refresh_timeout, self.refreshes)

    def _refresh_timeout(self, attempt: int) -> None:
        if attempt == self.refreshes and self.pending is None:
            self._next()

    def _on_packet(self, src: str, payload: tuple) -> None:
        kind = payload[0]
        if kind == "configs":
            configs = [PartitionConfiguration.from_wire(c) for c in payload[1]]
            self.routes = {c.gpid: c.primary for c in configs}
            self.secondaries = {c.gpid: c.secondaries for c in configs}
            if self.pending is None:
                self.refreshes += 1  # the answer came: cancel the retry
                self.world.after(0.001, self.address, self._next)
            return
        _, request_id, error, _decree, results, value = payload
        if self.pending is None or self.pending["id"] != request_id:
            return  # a late or duplicated answer to a request we gave up on
        op = self.pending["op"]
        error = ErrorCode(error)
        self.world.note(self.address, f"<- {src}: {error.name} {value if op.kind == 'get' else results}")
        if error == ErrorCode.ERR_OK:
            if op.kind == "get":
                self.seen[op.key] = value
                self._finish(True, value)
            elif op.kind == "set":
                self.seen[op.key] = op.value
                self._finish(True, True)
            else:
                swapped = results[0]["set_succeed"]
                if swapped:
                    self.seen[op.key] = op.value
                self._finish(True, swapped)
        elif error == ErrorCode.ERR_TIMEOUT and op.kind != "get":
            self._finish(False, UNKNOWN)
        else:
            self._finish(False)  # definitely not done: refused before anything was written
