"""``pegasus-node onebox``: a meta server and N replica servers as separate processes on 127.0.0.1.

With ``--metas M --zookeeper HOSTS`` it runs M meta servers sharing their state in ZooKeeper, one of them
elected leader (meta/leadership.py); a ZooKeeper server is not started: name a running one.

Like Pegasus's ``start_onebox``. It writes ``DIR/onebox.json`` describing every process (role, address,
pid, log file and the exact command that starts that process again alone), so that a person or a test can
``kill -9`` one process and restart just that one. A second start on the same DIR reuses the same ports,
because replica servers are known to the meta server by address, and so recovers everything.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from twisted.internet import defer, task
from twisted.logger import Logger

from pegasus_node.client.meta_session import MetaSession
from pegasus_node.errors import ErrorCode, PegasusError

log = Logger(namespace="pegasus.onebox")

DEFAULT_META_PORT = 34601
DEFAULT_REPLICA_PORT = 34801
READY_TIMEOUT_SECONDS = 60.0


@dataclass
class BoxProcess:
    name: str
    role: str
    address: str
    pid: int
    log: str
    stdout: str
    command: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def read_manifest(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "onebox.json").read_text())
    except (OSError, ValueError):
        return None


def meta_names(count: int) -> list[str]:
    return ["meta"] if count == 1 else [f"meta{i}" for i in range(1, count + 1)]


def choose_ports(args, data_dir: Path) -> tuple[list[int], list[int]]:
    """Meta and replica ports: free ones, the ones asked for, or those of the previous run in DATA_DIR."""
    names = meta_names(args.metas)
    previous = read_manifest(data_dir)
    if args.free_ports and previous is None:  # the ports asked for explicitly still win
        metas = [args.meta_port + i for i in range(len(names))] if args.meta_port else [free_port() for _ in names]
        replicas = ([args.replica_port + i for i in range(args.replicas)] if args.replica_port
                    else [free_port() for _ in range(args.replicas)])
        return metas, replicas
    old = {} if previous is None else {p["name"]: int(p["address"].rsplit(":", 1)[1]) for p in previous["processes"]}
    if args.meta_port is None and all(name in old for name in names):
        meta_ports = [old[name] for name in names]
    else:
        first = args.meta_port or old.get(names[0]) or DEFAULT_META_PORT
        meta_ports = [first + i for i in range(len(names))]
    old_replicas = [old[f"replica{i}"] for i in range(1, args.replicas + 1) if f"replica{i}" in old]
    if args.replica_port is None and len(old_replicas) == args.replicas:
        replica_ports = old_replicas
    else:
        first = args.replica_port or (old_replicas[0] if old_replicas else DEFAULT_REPLICA_PORT)
        replica_ports = [first + i for i in range(args.replicas)]
    return meta_ports, replica_ports


def node_command(role: str, port: int, data_dir: Path, args, meta_list: str) -> list[str]:
    # -P: "-m" would put the current directory first on sys.path, so a node started from a directory that holds
    # another pegasus_node (a checkout of another version) would run that code, not the onebox's own.
    command = [sys.executable, "-P", "-m", "pegasus_node.cli", role, "--data-dir", str(data_dir), "--port", str(port)]
    if role == "replica":
        command += ["--meta", meta_list]
    elif args.metas > 1:
        first_port = meta_list.split(",")[0].rsplit(":", 1)[1]
        command += ["--meta-list", meta_list, "--state-store", "zookeeper", "--zookeeper", args.zookeeper,
                    "--cluster-root", args.cluster_root or f"/pegasus/onebox-{first_port}"]
    if args.config:
        command += ["--config", str(Path(args.config).resolve())]
    for flag, value in (("--lease", args.lease), ("--grace", args.grace), ("--beacon-interval", args.beacon_interval)):
        if value is not None:
            command += [flag, str(value)]
    if args.no_fsync:
        command.append("--no-fsync")
    return command


class Onebox:
    def __init__(self, args, data_dir: Path) -> None:
        from twisted.internet import reactor

        from pegasus_node.twisted_rpc import RpcClientPool

        self.args = args
        self.data_dir = data_dir
        self.children: dict[str, subprocess.Popen] = {}
        self.processes: list[BoxProcess] = []
        self.reactor = reactor
        self.pool = RpcClientPool()
        self.meta_address = ""
        self.meta = None

    def spawn_all(self) -> None:
        meta_ports, replica_ports = choose_ports(self.args, self.data_dir)
        busy = [p for p in [*meta_ports, *replica_ports] if port_in_use(p)]
        if busy:
            raise PegasusError(
                ErrorCode.ERR_BUSY,
                f"port(s) {', '.join(map(str, busy))} are in use on 127.0.0.1: is another onebox running? "
                "Stop it, or use --free-ports / --meta-port / --replica-port",
            )
        self.meta_address = ",".join(f"127.0.0.1:{port}" for port in meta_ports)
        self.meta = MetaSession(self.meta_address, pool=self.pool, clock=self.reactor, timeout=5.0)
        specs = [(name, "meta", port) for name, port in zip(meta_names(self.args.metas), meta_ports)] + [
            (f"replica{i}", "replica", port) for i, port in enumerate(replica_ports, start=1)
        ]
        for name, role, port in specs:
            node_dir = self.data_dir / name
            node_dir.mkdir(parents=True, exist_ok=True)
            command = node_command(role, port, node_dir, self.args, self.meta_address)
            stdout_path = node_dir / f"{role}.out"
            with open(stdout_path, "ab") as out:
                child = subprocess.Popen(command + ["--exit-with-parent", str(os.getpid())], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.children[name] = child
            self.processes.append(BoxProcess(name, role, f"127.0.0.1:{port}", child.pid, str(node_dir / f"{role}.log"),
                                             str(stdout_path), command))
        self.write_manifest()

    def write_manifest(self) -> None:
        manifest = {"meta": self.meta_address, "onebox_pid": os.getpid(),
                    "processes": [asdict(p) for p in self.processes]}
        tmp = self.data_dir / "onebox.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, self.data_dir / "onebox.json")

    def check_children(self) -> None:
        for process in self.processes:
            child = self.children[process.name]
            if child.poll() is not None:
                tail = Path(process.stdout).read_text(errors="replace").strip().splitlines()[-5:]
                raise PegasusError(
                    ErrorCode.ERR_UNKNOWN,
                    f"{process.name} exited with code {child.returncode} before the onebox was ready; "
                    f"its output ({process.stdout}) ends with: " + " | ".join(tail),
                )

    def _meta_call(self, method: str, body: dict, timeout: float) -> defer.Deferred:
        """To the leading meta server, whichever it is."""
        return defer.ensureDeferred(self.meta.call(method, body, timeout=timeout))

    @defer.inlineCallbacks
    def wait_ready(self, reactor):
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        replica_count = sum(1 for p in self.processes if p.role == "replica")
        while True:
            self.check_children()
            try:
                nodes = (yield self._meta_call("meta.list_nodes", {}, 2.0))["nodes"]
                if sum(1 for n in nodes if n["status"] == "alive") >= replica_count:
                    break
            except PegasusError:
                pass
            if time.monotonic() > deadline:
                raise PegasusError(ErrorCode.ERR_TIMEOUT, f"the cluster was not ready within {READY_TIMEOUT_SECONDS:.0f} s; "
                                   f"see the logs under {self.data_dir}")
            yield task.deferLater(reactor, 0.2, lambda: None)
        apps = (yield self._meta_call("meta.list_apps", {"status": "all"}, 5.0))["apps"]
        if not apps:
            replicas = self.args.app_replicas or min(3, replica_count)
            yield self._meta_call("meta.create_app",
                                 {"name": self.args.app, "partition_count": self.args.partitions,
                                  "replica_count": replicas}, 10.0)
            print(f"created table {self.args.app} with {self.args.partitions} partitions", flush=True)
        yield self.wait_tables_served(reactor, deadline)

    @defer.inlineCallbacks
    def wait_tables_served(self, reactor, deadline: float):
        """Wait until every partition of every table is served by the primary its configuration names."""
        while True:
            self.check_children()
            apps = (yield self._meta_call("meta.list_apps", {}, 5.0))["apps"]
            expected: dict[str, set] = {}
            for app in apps:
                config = yield self._meta_call("meta.query_config", {"app_name": app["name"]}, 5.0)
                for part in config["partitions"]:
                    expected.setdefault(part["primary"], set()).add(tuple(part["gpid"]))
            serving = True
            for address, gpids in expected.items():
                try:
                    status = yield self.pool.call(address, "replica.status", {}, 2.0)
                except PegasusError:
                    serving = False
                    break
                primaries = {tuple(r["gpid"]) for r in status["replicas"] if r["status"] == "PRIMARY"}
                if not gpids <= primaries or not status["lease_valid"]:
                    serving = False
                    break
            if serving:
                return
            if time.monotonic() > deadline:
                raise PegasusError(ErrorCode.ERR_TIMEOUT, "the tables' partitions were not all served within "
                                   f"{READY_TIMEOUT_SECONDS:.0f} s; see the logs under {self.data_dir}")
            yield task.deferLater(reactor, 0.2, lambda: None)

    def watch_children(self) -> None:
        """Reap children that exit (a person may kill -9 one to test failover) and say so once."""
        for process in self.processes:
            child = self.children[process.name]
            if child.returncode is None and child.poll() is not None:
                print(f"{process.name} (pid {child.pid}) exited with code {child.returncode}; restart it alone with "
                      f"the command in {self.data_dir / 'onebox.json'}", flush=True)

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                print(f"{name} did not stop within {timeout:.0f} s; killed it", file=sys.stderr, flush=True)


def run_onebox(args) -> int:
    from twisted.internet import reactor

    from pegasus_node.processes import start_logging

    if args.replicas < 1:
        print("error: --replicas must be at least 1", file=sys.stderr)
        return 2
    if args.metas < 1 or (args.metas > 1 and not args.zookeeper):
        print("error: --metas must be at least 1, and several meta servers need --zookeeper HOST:PORT (they share "
              "their state and elect a leader there)", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    start_logging(data_dir / "onebox.log")
    box = Onebox(args, data_dir)
    outcome = {"code": 0}

    @defer.inlineCallbacks
    def start():
        try:
            box.spawn_all()
            yield box.wait_ready(reactor)
        except PegasusError as exc:
            print(f"error: {exc.message}", file=sys.stderr, flush=True)
            outcome["code"] = 1
            reactor.stop()
            return
        print(f"onebox ready: meta={box.meta_address}", flush=True)
        task.LoopingCall(box.watch_children).start(1.0, now=False)
        print(f"processes and restart commands: {data_dir / 'onebox.json'}; Ctrl-C stops them all", flush=True)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", box.stop_all)
    reactor.run()
    return outcome["code"]
