"""Node settings from a Pegasus-style ini file, overridden by command-line flags.

Section and key names follow Pegasus's config.ini where Pegasus has an equivalent (``[meta_server]
server_list``, ``[replication] fd_beacon_interval_seconds``, ``fd_lease_seconds``, ``fd_grace_seconds``,
``[pegasus.server]``), so an operator's habits carry over. Unknown keys are ignored; a value of the wrong
type is a clear error naming the section and key.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pegasus_node.errors import PegasusError, ErrorCode


class ConfigError(PegasusError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_INVALID_PARAMETERS, message)


@dataclass(frozen=True)
class NodeConfig:
    # [network]
    listen_host: str = "127.0.0.1"
    # The address other nodes and clients use to reach this one; defaults to listen_host:port.
    public_host: str = ""
    # [meta_server]
    meta_servers: tuple[str, ...] = ("127.0.0.1:34601",)
    meta_port: int = 34601
    state_store: str = "file"  # "file" or "zookeeper"
    zookeeper_hosts: str = ""
    # A dead leading meta server is replaced once its ZooKeeper session expires, this long after it was last
    # heard from. Not longer than fd_lease_seconds, so that primaries' leases usually outlast the election (4 s
    # is also the least a ZooKeeper server with its default tickTime of 2 s grants).
    zookeeper_session_timeout_seconds: float = 4.0
    cluster_root: str = "/pegasus/onebox"
    hold_seconds_for_dropped_app: int = 7 * 24 * 3600
    meta_level: str = "steady"
    # [replication]
    replica_port: int = 34801
    beacon_interval_seconds: float = 1.0
    lease_seconds: float = 4.0
    grace_seconds: float = 5.0
    fsync: bool = True
    wal_segment_max_bytes: int = 64 * 1024 * 1024
    # The server's shared log starts a new segment (and drops the old ones) past this size.
    shared_log_rotate_bytes: int = 32 * 1024 * 1024
    # The primary's prepare window: mutations prepared but not committed. A smaller window folds more
    # concurrent client writes into each mutation (fewer messages and fsyncs per write).
    max_inflight_mutations: int = 4
    # While mutations are in flight, the next one waits for this many queued writes (or for the pipeline to
    # drain): bigger mutations under load. At 64 clients 4 gave about 10% more writes/s than 1 (BENCHMARKS.md).
    min_batch_when_busy: int = 4
    prepare_timeout_seconds: float = 3.0
    checkpoint_interval_seconds: float = 60.0
    checkpoint_min_mutations: int = 10_000
    # A replica directory no longer assigned to this server is deleted after this long (garbage.py).
    gc_unassigned_replica_seconds: float = 24 * 3600.0
    # Duplication (seed 002) ships this cluster's writes to other clusters. [replication] duplication_enabled
    duplication_enabled: bool = True
    # [pegasus.server]
    max_value_bytes: int = 1024 * 1024
    cluster_id: int = 1
    # This cluster's name in [pegasus.clusters] and [duplication-group] (needed to duplicate).
    cluster_name: str = ""
    # [pegasus.clusters] name = meta list: the clusters a duplication may ship to.
    remote_clusters: dict = field(default_factory=dict)
    # A write that reaches the remote cluster later than this after it was written counts as lagging.
    dup_lagging_write_threshold_ms: int = 10_000
    # [duplication-group] name = cluster_id, the same on every cluster of a duplication: the cluster ids that
    # break ties between equal timestamps (last writer wins).
    duplication_group: dict = field(default_factory=dict)
    # [core]
    data_dir: str = "./data"
    max_frame_bytes: int = 16 * 1024 * 1024
    fail_points: str = ""  # "name=action;name=action", parsed by the fail-point registry
    extra: dict = field(default_factory=dict)

    def validate(self) -> "NodeConfig":
        if self.beacon_interval_seconds <= 0:
            raise ConfigError("[replication] fd_beacon_interval_seconds must be > 0")
        if not self.beacon_interval_seconds < self.lease_seconds < self.grace_seconds:
            raise ConfigError(
                "[replication] needs fd_beacon_interval_seconds < fd_lease_seconds < fd_grace_seconds "
                f"(got {self.beacon_interval_seconds}, {self.lease_seconds}, {self.grace_seconds}): an old "
                "primary must stop serving before the meta server may appoint a new one"
            )
        if self.shared_log_rotate_bytes < 1 << 20:
            raise ConfigError("[replication] shared_log_rotate_bytes must be at least 1048576")
        if self.gc_unassigned_replica_seconds < 0:
            raise ConfigError("[replication] gc_unassigned_replica_seconds must be >= 0")
        if self.state_store not in ("file", "zookeeper"):
            raise ConfigError(f"[meta_server] state_store must be 'file' or 'zookeeper', not {self.state_store!r}")
        if self.state_store == "zookeeper" and not self.zookeeper_hosts:
            raise ConfigError("[zookeeper] hosts_list is required when [meta_server] state_store = zookeeper")
        if self.zookeeper_session_timeout_seconds <= 0:
            raise ConfigError("[zookeeper] session_timeout_seconds must be > 0")
        if not 0 <= self.cluster_id < 128:
            raise ConfigError("[pegasus.server] cluster_id must be in [0, 127]")
        for name, cluster_id in self.duplication_group.items():
            if not 0 <= cluster_id < 128:
                raise ConfigError(f"[duplication-group] {name} must be a cluster id in [0, 127]")
        own = self.duplication_group.get(self.cluster_name)
        if own is not None and own != self.cluster_id:
            raise ConfigError(f"[duplication-group] names cluster {self.cluster_name} {own}, but [pegasus.server] "
                              f"cluster_id is {self.cluster_id}: they must agree")
        return self


# (section, key) -> field name. Several spellings may map to one field.
_INI_KEYS: dict[tuple[str, str], str] = {
    ("network", "listen_host"): "listen_host",
    ("network", "public_host"): "public_host",
    ("meta_server", "server_list"): "meta_servers",
    ("meta_server", "port"): "meta_port",
    ("meta_server", "state_store"): "state_store",
    ("meta_server", "cluster_root"): "cluster_root",
    ("meta_server", "hold_seconds_for_dropped_app"): "hold_seconds_for_dropped_app",
    ("meta_server", "meta_function_level_on_start"): "meta_level",
    ("zookeeper", "hosts_list"): "zookeeper_hosts",
    ("zookeeper", "session_timeout_seconds"): "zookeeper_session_timeout_seconds",
    ("replication", "port"): "replica_port",
    ("replication", "fd_beacon_interval_seconds"): "beacon_interval_seconds",
    ("replication", "fd_lease_seconds"): "lease_seconds",
    ("replication", "fd_grace_seconds"): "grace_seconds",
    ("replication", "fsync"): "fsync",
    ("replication", "wal_segment_max_bytes"): "wal_segment_max_bytes",
    ("replication", "shared_log_rotate_bytes"): "shared_log_rotate_bytes",
    ("replication", "max_inflight_mutations"): "max_inflight_mutations",
    ("replication", "min_batch_when_busy"): "min_batch_when_busy",
    ("replication", "prepare_timeout_seconds"): "prepare_timeout_seconds",
    ("replication", "checkpoint_interval_seconds"): "checkpoint_interval_seconds",
    ("replication", "checkpoint_min_mutations"): "checkpoint_min_mutations",
    ("replication", "gc_unassigned_replica_seconds"): "gc_unassigned_replica_seconds",
    ("pegasus.server", "max_value_bytes"): "max_value_bytes",
    ("pegasus.server", "cluster_id"): "cluster_id",
    ("pegasus.server", "cluster_name"): "cluster_name",
    ("pegasus.server", "dup_lagging_write_threshold_ms"): "dup_lagging_write_threshold_ms",
    ("replication", "duplication_enabled"): "duplication_enabled",
    ("core", "data_dir"): "data_dir",
    ("core", "max_frame_bytes"): "max_frame_bytes",
    ("core", "fail_points"): "fail_points",
}

_FIELD_TYPES = {f.name: f.type for f in fields(NodeConfig)}

# Sections read whole, as name -> value: section -> (field, conversion of each value).
_DICT_SECTIONS = {
    "pegasus.clusters": ("remote_clusters", str.strip),
    "duplication-group": ("duplication_group", int),
}


def _section_dict(parser: configparser.ConfigParser, section: str, convert, path) -> dict:
    found = {}
    for key, raw in parser.items(section):
        try:
            found[key] = convert(raw)
        except ValueError:
            raise ConfigError(f"{path} [{section}] {key}: cannot read {raw!r}") from None
    return found


def _convert(name: str, raw: str, where: str):
    kind = _FIELD_TYPES[name]
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw.strip()
    except ValueError:
        raise ConfigError(f"{where}: cannot read {raw!r} as {kind}") from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> NodeConfig:
    """Read an ini file (optional), then apply ``overrides`` (flags; None values are skipped)."""
    values: dict = {}
    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except configparser.Error as exc:
            raise ConfigError(f"config file {path} is not a valid ini file: {exc}") from None
        for section in parser.sections():
            if section in _DICT_SECTIONS:
                name, convert = _DICT_SECTIONS[section]
                values[name] = _section_dict(parser, section, convert, path)
                continue
            for key, raw in parser.items(section):
                name = _INI_KEYS.get((section, key))
                if name is not None:
                    values[name] = _convert(name, raw, f"{path} [{section}] {key}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return replace(NodeConfig(), **values).validate()
