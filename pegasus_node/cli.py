"""``pegasus-node``: run a meta server, a replica server, or a whole onebox cluster on this machine."""

from __future__ import annotations

import argparse
import sys

from pegasus_node import __version__


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a Pegasus-style ini file; flags override it")
    parser.add_argument("--data-dir", help="where this node keeps its data and log")
    parser.add_argument("--listen", dest="listen_host", help="the interface to listen on (default 127.0.0.1)")
    parser.add_argument("--public-host", help="the host name other nodes and clients use to reach this node")
    parser.add_argument("--beacon-interval", type=float, dest="beacon_interval_seconds")
    parser.add_argument("--lease", type=float, dest="lease_seconds", help="seconds; must be < --grace")
    parser.add_argument("--grace", type=float, dest="grace_seconds", help="seconds; must be > --lease")
    parser.add_argument("--no-fsync", dest="fsync", action="store_const", const=False,
                        help="do not fsync the WAL (unsafe: for throwaway clusters only)")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pegasus-node", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pegasus-node {__version__}")
    sub = parser.add_subparsers(dest="role", required=True, metavar="{meta,replica,onebox}")

    meta = sub.add_parser("meta", help="run a meta server (the configuration manager)")
    _add_common(meta)
    meta.add_argument("--port", type=int, dest="meta_port", help="RPC and HTTP port (default 34601)")
    meta.add_argument("--meta-list", help="all meta servers of the cluster, comma separated")
    meta.add_argument("--state-store", choices=("file", "zookeeper"),
                      help="file (one meta server) or zookeeper (several, one leader elected)")
    meta.add_argument("--zookeeper", dest="zookeeper_hosts", metavar="HOST:PORT[,...]",
                      help="the ZooKeeper ensemble, for --state-store zookeeper")
    meta.add_argument("--cluster-root", help="this cluster's znode in ZooKeeper (default /pegasus/onebox)")
    meta.add_argument("--meta-level", choices=("freezed", "steady", "lively"))

    replica = sub.add_parser("replica", help="run a replica server")
    _add_common(replica)
    replica.add_argument("--port", type=int, dest="replica_port", help="RPC and HTTP port (default 34801)")
    replica.add_argument("--meta", dest="meta_list", help="meta server list HOST:PORT[,HOST:PORT...]")

    onebox = sub.add_parser("onebox", help="a meta server and N replica servers as processes on 127.0.0.1")
    onebox.add_argument("--data-dir", required=True)
    onebox.add_argument("--replicas", type=int, default=3, help="number of replica servers (default 3)")
    onebox.add_argument("--metas", type=int, default=1,
                        help="number of meta servers (default 1); more than one needs --zookeeper")
    onebox.add_argument("--zookeeper", metavar="HOST:PORT[,...]",
                        help="a running ZooKeeper, where several meta servers keep their state and elect a leader")
    onebox.add_argument("--cluster-root", help="the cluster's znode (default /pegasus/onebox-FIRST_META_PORT)")
    onebox.add_argument("--meta-port", type=int, help="default 34601, or the port of the previous run")
    onebox.add_argument("--replica-port", type=int, help="first replica port (default 34801, or the previous run's)")
    onebox.add_argument("--free-ports", action="store_true", help="pick free ports instead of the defaults")
    onebox.add_argument("--app", default="temp", help="table created when none exists (default temp)")
    onebox.add_argument("--partitions", type=int, default=8, help="its partition count (default 8)")
    onebox.add_argument("--app-replicas", type=int, help="its replica count (default: min(3, --replicas))")
    onebox.add_argument("--config", help="ini file passed to every node")
    onebox.add_argument("--lease", type=float)
    onebox.add_argument("--grace", type=float)
    onebox.add_argument("--beacon-interval", type=float)
    onebox.add_argument("--no-fsync", action="store_true", help="unsafe: do not fsync the WAL")
    return parser


def _node_overrides(args: argparse.Namespace) -> dict:
    overrides = {key: getattr(args, key, None) for key in (
        "data_dir", "listen_host", "public_host", "beacon_interval_seconds", "lease_seconds", "grace_seconds",
        "fsync", "meta_port", "replica_port", "state_store", "meta_level", "zookeeper_hosts", "cluster_root")}
    meta_list = getattr(args, "meta_list", None)
    if meta_list:
        overrides["meta_servers"] = tuple(m.strip() for m in meta_list.split(",") if m.strip())
    return overrides


def main(argv: list[str] | None = None) -> int:
    from pegasus_node.base.reactor import install_reactor

    install_reactor()
    args = build_parser().parse_args(argv)
    from pegasus_node.config import NodeConfig, load_config
    from pegasus_node.errors import PegasusError

    try:
        if args.role == "onebox":
            from pegasus_node.onebox import run_onebox

            return run_onebox(args)
        config = load_config(args.config, _node_overrides(args))
        from pegasus_node.processes import run_node

        port = config.meta_port if args.role == "meta" else config.replica_port
        if args.role == "meta" and config.meta_servers == NodeConfig.meta_servers:
            from dataclasses import replace

            # Neither the ini nor --meta-list named the meta servers: this one alone, at its own address.
            config = replace(config, meta_servers=(f"{config.public_host or config.listen_host}:{port}",))
        return run_node(args.role, config, port, exit_with_parent=args.exit_with_parent)
    except PegasusError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
