"""Keeping primaries and replicas spread over the live replica servers (meta level ``lively``), pure.

Moves are gentle and safe by construction:
- A primary moves in two configuration changes: first it is downgraded to a secondary (no primary), then
  the guardian promotes the secondary that leads the fewest partitions, but only after every alive
  secondary has reported the new ballot, so the old primary has provably stopped serving.
- A replica moves by copy-then-trim: a learner is added on the least loaded server; once the primary has it
  upgraded, the partition has one member too many and the guardian removes the secondary on the most
  loaded server.
A move is proposed only when the spread (most loaded minus least loaded) is at least 2, so moves never
oscillate.
"""

from __future__ import annotations

from typing import Iterable

from pegasus_node.replication.config import PartitionConfiguration


def primary_load(configs: Iterable[PartitionConfiguration], alive: Iterable[str]) -> dict[str, int]:
    load = {node: 0 for node in alive}
    for config in configs:
        if config.primary:
            load[config.primary] = load.get(config.primary, 0) + 1
    return load


def replica_load(configs: Iterable[PartitionConfiguration], alive: Iterable[str]) -> dict[str, int]:
    load = {node: 0 for node in alive}
    for config in configs:
        for node in config.members:
            load[node] = load.get(node, 0) + 1
    return load


def propose_balance(configs: Iterable[PartitionConfiguration],
                    alive: Iterable[str]) -> tuple[PartitionConfiguration, dict, str] | None:
    """One balancing move: (configuration, field changes for ballot + 1, reason), or None if balanced."""
    configs = sorted(configs, key=lambda c: c.gpid)
    alive = sorted(alive)
    if len(alive) < 2:
        return None
    return _move_primary(configs, alive) or _copy_replica(configs, alive)


def _move_primary(configs: list[PartitionConfiguration], alive: list[str]):
    load = primary_load(configs, alive)
    high, low = max(load[n] for n in alive), min(load[n] for n in alive)
    if high - low < 2:
        return None
    for config in configs:
        if config.primary in alive and load[config.primary] == high:
            if any(s in alive and load[s] <= high - 2 for s in config.secondaries):
                changes = {"primary": "", "secondaries": config.secondaries + (config.primary,)}
                return config, changes, f"balance: move primary off {config.primary} (leads {high})"
    return None


def _copy_replica(configs: list[PartitionConfiguration], alive: list[str]):
    load = replica_load(configs, alive)
    high, low = max(load[n] for n in alive), min(load[n] for n in alive)
    if high - low < 2:
        return None
    targets = [n for n in alive if load[n] == low]
    for config in configs:
        for source in config.secondaries:
            if load.get(source) != high:
                continue
            for target in targets:
                if target not in config.everyone:
                    return config, {"learners": (target,)}, f"balance: copy {config.gpid} from {source} to {target}"
    return None
