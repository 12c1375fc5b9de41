"""Running one node (a meta server or a replica server) as a process: logging, listening, shutdown.

A process prints three kinds of lines on stdout, for people and for the onebox: where its log is, that it
is ready (with its address), and that it stopped. Everything else goes to its log file through
``twisted.logger``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from pegasus_node.config import NodeConfig
from pegasus_node.errors import PegasusError

log = Logger(namespace="pegasus.process")


def start_logging(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "a", encoding="utf-8", buffering=1)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(handle)], redirectStandardIO=False)
    print(f"log: {log_path}", flush=True)


def watch_parent(reactor, parent_pid: int) -> None:
    """Stop when the onebox process ``parent_pid`` is gone, so that a killed onebox leaves no orphans.

    A node the onebox started sees it go when it is re-parented (its pid may be reused by then). A node started
    again by someone else (``pegasus-bench failover --restart``) is not its child: it watches the pid itself.
    """
    from twisted.internet import task

    from pegasus_node.base.pids import pid_alive

    started_by_it = os.getppid() == parent_pid

    def check() -> None:
        if (os.getppid() != parent_pid) if started_by_it else not pid_alive(parent_pid):
            log.warn("onebox process {pid} is gone; stopping", pid=parent_pid)
            reactor.stop()

    task.LoopingCall(check).start(1.0, now=False)


def public_address(config: NodeConfig, port: int) -> str:
    return f"{config.public_host or config.listen_host}:{port}"


def run_node(role: str, config: NodeConfig, port: int, *, exit_with_parent: int | None = None) -> int:
    """Build the node, listen, and run the reactor until SIGINT/SIGTERM. Returns the exit code."""
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from pegasus_node.twisted_rpc import RpcServer

    from pegasus_node.bench.workloads import ECHO_METHOD, echo_handler
    from pegasus_node.fail_points import FailPointRegistry

    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    start_logging(data_dir / f"{role}.log")
    fail_points = FailPointRegistry(config.fail_points)
    server = RpcServer(role, max_frame_bytes=config.max_frame_bytes, fail_points=fail_points)
    try:
        listening = server.listen(port, interface=config.listen_host)
    except CannotListenError as exc:
        print(f"error: cannot listen on {config.listen_host}:{port}: {exc.socketError}; "
              "is another node using that port? choose another with --port", file=sys.stderr, flush=True)
        return 1
    address = public_address(config, listening.getHost().port)
    try:
        node = _build(role, config, address, fail_points)
    except PegasusError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        listening.stopListening()
        return 1
    node.register(server)
    # The transport's ceiling: `pegasus-bench ceiling --target ADDR` measures the bare RPC path to this node.
    server.register(ECHO_METHOD, echo_handler)
    node.remote_commands.register("fail-point", fail_points.remote_command,
                                  "fail-point list | set NAME ACTION | clear [NAME|all]")
    server.add_http_json("/failpoints", fail_points.http)
    try:
        node.start()
    except PegasusError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        listening.stopListening()
        return 1
    if exit_with_parent:
        watch_parent(reactor, exit_with_parent)
    reactor.addSystemEventTrigger("before", "shutdown", node.stop)
    log.info("{role} server ready at {address} (pid {pid})", role=role, address=address, pid=os.getpid())
    print(f"ready: role={role} address={address} pid={os.getpid()}", flush=True)
    reactor.run()
    print(f"stopped: role={role} address={address}", flush=True)
    return 0


def _build(role: str, config: NodeConfig, address: str, fail_points):
    if role == "meta":
        from twisted.internet import reactor

        from pegasus_node.meta.service import build_meta_service

        return build_meta_service(config, address, reactor)
    from pegasus_node.replica.server import ReplicaServer

    return ReplicaServer(config, address=address, fail_points=fail_points)
