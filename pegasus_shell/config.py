"""``clusters.ini``: the clusters the shell knows, in Pegasus's own sections.

::

    [pegasus.clusters]
    onebox = 127.0.0.1:34601          ; name = comma-separated meta server list

    [duplication-group]
    onebox = 1                        ; name = cluster id used by duplication

    [pegasus.shell]
    default_cluster = onebox          ; what a plain `pegasus-shell` connects to

The file is looked up in the current directory, then in ``$XDG_CONFIG_HOME/pegasus/`` (default
``~/.config/pegasus/``). The first one found is used.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path

from pegasus_shell.errors import UsageError

CLUSTERS_SECTION = "pegasus.clusters"
DUP_GROUP_SECTION = "duplication-group"
SHELL_SECTION = "pegasus.shell"
DEFAULT_CLUSTER_KEY = "default_cluster"


@dataclass(frozen=True)
class ClustersConfig:
    path: Path | None = None
    clusters: dict[str, list[str]] = field(default_factory=dict)  # name -> meta list
    cluster_ids: dict[str, int] = field(default_factory=dict)  # [duplication-group]
    default_cluster: str | None = None

    def meta_list(self, name: str) -> list[str]:
        try:
            return self.clusters[name]
        except KeyError:
            where = f" in {self.path}" if self.path else " (no clusters.ini found)"
            known = ", ".join(sorted(self.clusters)) or "none"
            raise UsageError(f"unknown cluster {name!r}{where}; known clusters: {known}") from None


def xdg_dir(kind: str) -> Path:
    """``$XDG_<KIND>_HOME`` or its default (config: ~/.config, data: ~/.local/share, state: ~/.local/state)."""
    defaults = {"CONFIG": ".config", "DATA": ".local/share", "STATE": ".local/state"}
    value = os.environ.get(f"XDG_{kind}_HOME")
    return Path(value) if value else Path.home() / defaults[kind]


def find_clusters_ini(cwd: Path | None = None) -> Path | None:
    for candidate in ((cwd or Path.cwd()) / "clusters.ini", xdg_dir("CONFIG") / "pegasus" / "clusters.ini"):
        if candidate.is_file():
            return candidate
    return None


def parse_meta_list(text: str) -> list[str]:
    """``"h1:p1, h2:p2"`` -> ``["h1:p1", "h2:p2"]``, checking each address."""
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise UsageError("the meta server list is empty")
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"bad meta server address {address!r}: expected HOST:PORT")
    return addresses


def load_clusters(path: Path | None) -> ClustersConfig:
    if path is None:
        return ClustersConfig()
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    parser.optionxform = str  # cluster names keep their case
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise UsageError(f"cannot read {path}: {first_line}") from None
    clusters: dict[str, list[str]] = {}
    if parser.has_section(CLUSTERS_SECTION):
        for name, value in parser.items(CLUSTERS_SECTION):
            try:
                clusters[name] = parse_meta_list(value)
            except UsageError as exc:
                raise UsageError(f"{path}: cluster {name!r}: {exc.message}") from None
    ids: dict[str, int] = {}
    if parser.has_section(DUP_GROUP_SECTION):
        for name, value in parser.items(DUP_GROUP_SECTION):
            if not value.strip().isdigit():
                raise UsageError(f"{path}: [{DUP_GROUP_SECTION}] {name} = {value!r} is not a cluster id")
            ids[name] = int(value)
    default = parser.get(SHELL_SECTION, DEFAULT_CLUSTER_KEY, fallback=None) or None
    if default is not None and default not in clusters:
        raise UsageError(f"{path}: default_cluster {default!r} is not in [{CLUSTERS_SECTION}]")
    return ClustersConfig(path, clusters, ids, default)
