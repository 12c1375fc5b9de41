"""Partition health as Pegasus counts it (``ls -d``, ``app -d``)."""

from __future__ import annotations

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"  # serving, but fewer replicas than the table wants
WRITE_UNHEALTHY = "write_unhealthy"  # too few replicas to accept writes
READ_UNHEALTHY = "read_unhealthy"  # no primary: neither reads nor writes


def partition_health(partition: dict, replica_count: int) -> str:
    if not partition.get("primary"):
        return READ_UNHEALTHY
    replicas = 1 + len(partition.get("secondaries") or [])
    if replicas >= replica_count:
        return HEALTHY
    if replicas < min(2, replica_count):
        return WRITE_UNHEALTHY
    return UNHEALTHY


def health_summary(partitions: list[dict], replica_count: int) -> dict[str, int]:
    """Counts as Pegasus reports them: read-unhealthy partitions are also write-unhealthy and unhealthy."""
    states = [partition_health(p, replica_count) for p in partitions]
    return {
        "fully_healthy": states.count(HEALTHY),
        "unhealthy": len(states) - states.count(HEALTHY),
        "write_unhealthy": states.count(WRITE_UNHEALTHY) + states.count(READ_UNHEALTHY),
        "read_unhealthy": states.count(READ_UNHEALTHY),
    }
