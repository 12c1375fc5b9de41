"""The meta server's data: tables (apps), as persisted and as sent on the wire.

Partition configurations are the replication core's ``PartitionConfiguration`` (one type for the meta
server, the replica servers and the guardian)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

AS_AVAILABLE = "AS_AVAILABLE"
AS_DROPPED = "AS_DROPPED"

# Pegasus accepts letters, digits, '_', '.' and ':' in table names; we keep to the portable subset.
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


@dataclass
class AppInfo:
    app_id: int
    name: str
    partition_count: int
    replica_count: int
    status: str = AS_AVAILABLE
    create_time: float = 0.0
    drop_time: float = 0.0
    expire_time: float = 0.0
    envs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AppInfo":
        return cls(**data)
