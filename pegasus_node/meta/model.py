"""The meta server's data: tables (apps) and partition configurations, as persisted and as sent on the wire."""

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


@dataclass
class PartitionConfig:
    app_id: int
    pidx: int
    ballot: int = 0
    primary: str = ""
    secondaries: list[str] = field(default_factory=list)
    learners: list[str] = field(default_factory=list)
    # Reported by replicas through beacons; kept in memory only.
    last_committed_decree: int = 0

    @property
    def gpid(self) -> tuple[int, int]:
        return (self.app_id, self.pidx)

    def members(self) -> list[str]:
        return ([self.primary] if self.primary else []) + list(self.secondaries)

    def to_dict(self) -> dict:
        return {
            "gpid": [self.app_id, self.pidx],
            "ballot": self.ballot,
            "primary": self.primary,
            "secondaries": list(self.secondaries),
            "learners": list(self.learners),
            "last_committed_decree": self.last_committed_decree,
        }

    def to_state(self) -> dict:
        data = self.to_dict()
        del data["last_committed_decree"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PartitionConfig":
        app_id, pidx = data["gpid"]
        return cls(
            app_id=app_id,
            pidx=pidx,
            ballot=data["ballot"],
            primary=data["primary"],
            secondaries=list(data["secondaries"]),
            learners=list(data.get("learners", [])),
            last_committed_decree=data.get("last_committed_decree", 0),
        )
