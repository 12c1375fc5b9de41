"""Initial placement of a new table's partitions over the live replica servers, spread evenly."""

from __future__ import annotations


def choose_replicas(alive: list[str], replica_count: int, load: dict[str, list[int]]) -> list[str]:
    """Pick ``replica_count`` distinct servers: the primary first, the least loaded ones.

    ``load`` maps an address to ``[primary count, replica count]`` and is updated in place, so calling this
    once per partition spreads primaries and replicas evenly.
    """
    for address in alive:
        load.setdefault(address, [0, 0])
    primary = min(alive, key=lambda a: (load[a][0], load[a][1], a))
    others = sorted((a for a in alive if a != primary), key=lambda a: (load[a][1], load[a][0], a))
    members = [primary] + others[: replica_count - 1]
    load[primary][0] += 1
    for address in members:
        load[address][1] += 1
    return members
