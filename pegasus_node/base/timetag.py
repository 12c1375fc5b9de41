"""Timetags, as Pegasus stores them with every value, so duplication can resolve conflicts.

A timetag is one unsigned 64-bit number: 56 bits of ``timestamp_us``, 7 bits of ``cluster_id`` and one
delete flag. Comparing timetags as integers is last-writer-wins with the cluster id breaking ties.
"""

from __future__ import annotations

from typing import NamedTuple


class Timetag(NamedTuple):
    timestamp_us: int
    cluster_id: int
    deleted: bool


def make_timetag(timestamp_us: int, cluster_id: int, deleted: bool = False) -> int:
    if not 0 <= cluster_id < 128:
        raise ValueError(f"cluster_id must be in [0, 127], got {cluster_id}")
    return ((timestamp_us & ((1 << 56) - 1)) << 8) | (cluster_id << 1) | int(deleted)


def split_timetag(timetag: int) -> Timetag:
    return Timetag(timetag >> 8, (timetag >> 1) & 0x7F, bool(timetag & 1))
