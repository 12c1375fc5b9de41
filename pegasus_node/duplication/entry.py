"""A duplication as the meta server keeps it, and the words for its states and fail modes (Pegasus's own)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from pegasus_node.errors import ErrorCode, PegasusError

DS_LOG, DS_PAUSE, DS_REMOVED = "DS_LOG", "DS_PAUSE", "DS_REMOVED"  # what an operator sets
DS_PREPARE = "DS_PREPARE"  # shown for a DS_LOG duplication while a full one still copies some partition's records
STATUSES = (DS_LOG, DS_PAUSE, DS_REMOVED)
# FAIL_SLOW retries a failed batch for ever; FAIL_SKIP skips it after SKIP_AFTER_FAILURES failures (writes are
# lost on the remote side, counted); FAIL_FAST stops the duplication of the partition at the first failure.
FAIL_SLOW, FAIL_SKIP, FAIL_FAST = "FAIL_SLOW", "FAIL_SKIP", "FAIL_FAST"
FAIL_MODES = (FAIL_SLOW, FAIL_SKIP, FAIL_FAST)
SKIP_AFTER_FAILURES = 3
# The storage ops a duplication ships: the idempotent ones (incr and check_and_set are not shipped).
SHIPPABLE_OPS = ("put", "del", "multi_put", "multi_del")


def fail_mode_arg(value: str) -> str:
    """``slow``, ``skip``, ``fast`` or the FAIL_* word, as Pegasus's set_dup_fail_mode takes them."""
    mode = value.strip().upper()
    mode = mode if mode.startswith("FAIL_") else f"FAIL_{mode}"
    if mode not in FAIL_MODES:
        raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                           f"fail mode must be slow, skip or fast (FAIL_SLOW, FAIL_SKIP, FAIL_FAST), not {value!r}")
    return mode


@dataclass(frozen=True)
class DuplicationEntry:
    dupid: int
    app_id: int
    remote: str  # the remote cluster's name, in [pegasus.clusters]
    status: str = DS_LOG
    fail_mode: str = FAIL_SLOW
    create_ts_ms: int = 0
    # partition index -> the decree up to which its writes reached the remote cluster
    confirmed: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "confirmed": {str(p): d for p, d in sorted(self.confirmed.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> "DuplicationEntry":
        confirmed = {int(p): int(d) for p, d in data.get("confirmed", {}).items()}
        return cls(int(data["dupid"]), int(data["app_id"]), str(data["remote"]), str(data["status"]),
                   str(data["fail_mode"]), int(data.get("create_ts_ms", 0)), confirmed)

    def encode(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "DuplicationEntry":
        return cls.from_dict(json.loads(raw))

    def with_confirmed(self, pidx: int, decree: int) -> "DuplicationEntry":
        return replace(self, confirmed={**self.confirmed, pidx: decree})
