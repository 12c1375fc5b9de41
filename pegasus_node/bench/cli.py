"""``pegasus-bench``: throughput and latency of a pegasus-py cluster, or of the bare RPC transport.

    pegasus-bench --meta 127.0.0.1:34601 --table temp --workload set --ops 100000 --concurrency 50 --value-size 100
    pegasus-bench --meta 127.0.0.1:34601 --table temp --workload get --ops 100000 --concurrency 50 --value-size 100
    pegasus-bench ceiling --ops 100000 --concurrency 50 --value-size 100 [--target HOST:PORT] [--json]
    pegasus-bench compare --meta 127.0.0.1:34601 --table temp --ops 20000 --concurrency 64 --value-size 100 [--rounds 3]
    pegasus-bench failover --onebox ./onebox-data --table temp [--restart]

KV workloads run C concurrent loops on the Twisted client, N operations in all (key layout: see
:mod:`pegasus_node.bench.workloads`). ``get`` and ``scan`` first write the N records they will read
(untimed) unless ``--no-preload`` is given, in which case they read what an earlier ``set`` run with the
same ``--ops``, ``--hash-keys`` and ``--value-size`` wrote. ``mixed`` reads (``--read-ratio``) and writes the
same key space. ``ceiling`` runs the same loops as msgpack ``echo`` calls over the same RpcClientPool, to an
in-process echo server on 127.0.0.1 (or ``--target``, a node that serves an ``echo`` method): the transport's
ceiling on this machine.

Output: a summary (throughput, errors by code, p50/p99/p999/p9999 latency) or, with ``--json``, one JSON
document (keys: :mod:`pegasus_node.bench.report`). A progress line goes to stderr every second, except with
``--json``. Exit codes: 0 ok, 1 some operation failed or the run could not start, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from pegasus_node.bench.report import format_json, format_progress, format_text, report_document
from pegasus_node.bench.runner import BenchStalled, LoopProgress, ProgressCallback, run_loops, stall_limit
from pegasus_node.bench.workloads import (
    ECHO_METHOD,
    KV_WORKLOADS,
    KeySpace,
    echo_handler,
    echo_op,
    kv_operation,
    make_value,
    set_op,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_KV_VALUE_SIZE = 1 << 20  # the client's default max_value_bytes
MAX_ECHO_VALUE_SIZE = 15 << 20  # under the transport's 16 MiB frame limit


class UsageError(Exception):
    pass


class BenchError(Exception):
    """The run could not be carried out (no such table, cluster unreachable, preload failed)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _number(convert: type, minimum: float, *, strict: bool) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, which must be > ``minimum`` (``strict``) or >= it."""
    noun = "an integer" if convert is int else "a number"
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {bound}")
        return value

    return parse


_positive_int = _number(int, 1, strict=False)
_non_negative_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0, strict=True)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def _add_loop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", type=_positive_int, default=10_000, help="operations in all (default 10000)")
    parser.add_argument("--concurrency", type=_positive_int, default=10, help="concurrent loops (default 10)")
    parser.add_argument("--value-size", type=_non_negative_int, default=100, help="value bytes (default 100)")
    parser.add_argument("--timeout", type=_positive_float, default=5.0, help="per-operation deadline, s")
    parser.add_argument("--json", action="store_true", help="print one JSON document, no progress line")


def build_kv_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pegasus-bench",
        description="Benchmark a pegasus-py table (or run `pegasus-bench ceiling -h` for the transport).",
    )
    parser.add_argument("--meta", required=True, help="meta servers, host:port[,host:port...]")
    parser.add_argument("--table", required=True, help="an existing table")
    parser.add_argument("--workload", choices=KV_WORKLOADS, default="set")
    _add_loop_options(parser)
    parser.add_argument("--hash-keys", type=_positive_int, default=1000, help="distinct hash keys (default 1000)")
    parser.add_argument("--read-ratio", type=_ratio, default=0.5, help="mixed: share of reads (default 0.5)")
    parser.add_argument("--scan-batch", type=_positive_int, default=100, help="scan: records per batch")
    parser.add_argument("--no-preload", action="store_true", help="get/scan: read what a set run wrote")
    parser.add_argument("--follower-read", action="store_true",
                        help="send the reads to secondaries as follower reads (linearizable)")
    parser.add_argument("--backup-request-delay-ms", type=_non_negative_int, default=0, metavar="MS",
                        help="send a read the primary has not answered in MS ms to a secondary too (0: off)")
    return parser


def build_ceiling_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pegasus-bench ceiling",
        description="msgpack echo calls over the RPC transport: its ceiling on this machine.",
    )
    _add_loop_options(parser)
    parser.add_argument("--target", help="host:port of a node serving `echo` (default: an in-process server)")
    return parser


def build_compare_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pegasus-bench compare",
        description="The echo ceiling, set and get back to back, several rounds: throughput as ratios to the ceiling.",
    )
    parser.add_argument("--meta", required=True, help="meta servers, host:port[,host:port...]")
    parser.add_argument("--table", required=True, help="an existing table")
    _add_loop_options(parser)
    parser.add_argument("--hash-keys", type=_positive_int, default=1000, help="distinct hash keys (default 1000)")
    parser.add_argument("--rounds", type=_positive_int, default=3, help="rounds of ceiling, set, get (default 3)")
    return parser


def build_failover_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pegasus-bench failover",
        description="Write unavailability after kill -9 of the primary of partition 0 (or of the leading meta "
                    "server), on a onebox.",
    )
    parser.add_argument("--kill", choices=("primary", "meta-leader"), default="primary",
                        help="what to kill: the primary of partition 0 (default) or the leading meta server")
    parser.add_argument("--onebox", required=True, help="the onebox's data directory (holds onebox.json)")
    parser.add_argument("--table", required=True)
    parser.add_argument("--writers-per-partition", type=_positive_int, default=2)
    parser.add_argument("--warmup", type=_positive_float, default=2.0, help="seconds of writes before the kill")
    parser.add_argument("--max-wait", type=_positive_float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--timeout", type=_positive_float, default=1.0, help="per-write deadline, s")
    parser.add_argument("--restart", action="store_true", help="start the killed server again afterwards")
    parser.add_argument("--json", action="store_true")
    return parser


def parse_args(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """``("kv" | "ceiling" | "compare" | "failover", options)``; raises UsageError."""
    if argv and argv[0] == "failover":
        args = build_failover_parser().parse_args(argv[1:])
        if not (Path(args.onebox) / "onebox.json").exists():
            raise UsageError(f"--onebox: no onebox.json in {args.onebox}")
        return "failover", args
    if argv and argv[0] == "compare":
        args = build_compare_parser().parse_args(argv[1:])
        if args.value_size > MAX_KV_VALUE_SIZE:
            raise UsageError(f"--value-size must be <= {MAX_KV_VALUE_SIZE} (the client's value limit)")
        return "compare", args
    if argv and argv[0] == "ceiling":
        args = build_ceiling_parser().parse_args(argv[1:])
        if args.value_size > MAX_ECHO_VALUE_SIZE:
            raise UsageError(f"--value-size must be <= {MAX_ECHO_VALUE_SIZE} for ceiling")
        if args.target is not None:
            from pegasus_node.twisted_rpc import parse_address
            from pegasus_node.errors import PegasusError

            try:
                parse_address(args.target)
            except PegasusError as e:
                raise UsageError(f"--target: {e.message}") from None
        return "ceiling", args
    args = build_kv_parser().parse_args(argv)
    if args.value_size > MAX_KV_VALUE_SIZE:
        raise UsageError(f"--value-size must be <= {MAX_KV_VALUE_SIZE} (the client's value limit)")
    from pegasus_node.client.errors import PegasusClientError
    from pegasus_node.client.validation import parse_meta_list

    try:
        parse_meta_list(args.meta)
    except PegasusClientError as e:
        raise UsageError(f"--meta: {e.message}") from None
    return "kv", args


async def run_kv(reactor: Any, args: argparse.Namespace, on_progress: ProgressCallback | None = None) -> dict:
    from pegasus_node.client import Client

    client = Client(args.meta, reactor=reactor, timeout=args.timeout)
    try:
        table = await client.open_table(args.table, follower_read=args.follower_read,
                                        backup_request_delay_ms=args.backup_request_delay_ms)
        keys = KeySpace(args.hash_keys)
        value = make_value(args.value_size)
        preloaded = 0
        if args.workload in ("get", "scan") and not args.no_preload:
            preload = await run_loops(set_op(table, keys, value), args.ops, args.concurrency, clock=reactor,
                                      give_up_after=stall_limit(args.timeout))
            if preload.progress.error_count:
                label, message = next(iter(preload.first_errors.items()))
                raise BenchError(f"preload failed: {preload.progress.error_count} errors, first {label}: {message}")
            preloaded = args.ops
        op = kv_operation(args.workload, table, keys, value, read_ratio=args.read_ratio, scan_batch=args.scan_batch)
        result = await run_loops(op, args.ops, args.concurrency, clock=reactor, on_progress=on_progress,
                                 give_up_after=stall_limit(args.timeout))
    finally:
        await client.close()
    return report_document(
        mode="kv",
        workload=args.workload,
        target=",".join(client.meta_servers),
        table=args.table,
        ops=args.ops,
        value_size=args.value_size,
        hash_keys=args.hash_keys,
        result=result,
        preloaded=preloaded,
        follower_read=args.follower_read,
        backup_request_delay_ms=args.backup_request_delay_ms,
        backup_requests=table.stats.backup_requests,
    )


async def run_ceiling(reactor: Any, args: argparse.Namespace, on_progress: ProgressCallback | None = None) -> dict:
    from pegasus_node.twisted_rpc import RpcClientPool, RpcServer

    server = None
    address = args.target
    if address is None:
        server = RpcServer("bench-echo", reactor=reactor)
        server.register(ECHO_METHOD, echo_handler)
        port = server.listen(0, "127.0.0.1")
        address = f"127.0.0.1:{port.getHost().port}"
    pool = RpcClientPool(reactor)
    try:
        op = echo_op(pool, address, make_value(args.value_size), args.timeout)
        result = await run_loops(op, args.ops, args.concurrency, clock=reactor, on_progress=on_progress,
                                 give_up_after=stall_limit(args.timeout))
    finally:
        await pool.close()
        if server is not None:
            await server.stop()
    return report_document(
        mode="ceiling",
        workload="echo",
        target=address,
        table=None,
        ops=args.ops,
        value_size=args.value_size,
        hash_keys=None,
        result=result,
    )


class _ProgressLine:
    """Overwrites one stderr line on a terminal; prints plain lines otherwise."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self.printed = False

    def __call__(self, progress: LoopProgress) -> None:
        line = format_progress(progress.done, progress.total_ops, progress.ops_per_second, progress.error_count)
        self._stream.write(f"\r{line}\033[K" if self._tty else f"{line}\n")
        self._stream.flush()
        self.printed = True

    def finish(self) -> None:
        if self.printed and self._tty:
            self._stream.write("\n")
            self._stream.flush()


def _run_on_reactor(job: Callable[[Any], Coroutine[Any, Any, dict]]) -> dict:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    outcome: dict[str, Any] = {}

    def start() -> None:
        d = Deferred.fromCoroutine(job(reactor))
        d.addCallbacks(lambda doc: outcome.update(doc=doc), lambda f: outcome.update(error=f.value))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if "doc" in outcome:
        return outcome["doc"]
    if "error" in outcome:
        raise outcome["error"]
    raise BenchError("interrupted")


def _error_line(error: BaseException) -> str:
    from pegasus_node.errors import PegasusError

    if isinstance(error, PegasusError):
        return f"{error.code.name}: {error.message}"
    if isinstance(error, (BenchError, BenchStalled)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        mode, args = parse_args(argv)
    except UsageError as e:
        print(f"pegasus-bench: error: {e} (see pegasus-bench --help)", file=sys.stderr)
        return EXIT_USAGE

    from pegasus_node.base.reactor import install_reactor

    install_reactor()
    progress = None if args.json else _ProgressLine(sys.stderr)
    from pegasus_node.bench.compare import format_compare, run_compare
    from pegasus_node.bench.failover import format_failover, run_failover

    runner = {"ceiling": run_ceiling, "kv": run_kv, "compare": run_compare, "failover": run_failover}[mode]
    try:
        doc = _run_on_reactor(lambda reactor: runner(reactor, args, progress))
    except Exception as e:  # one clear line, never a traceback
        if progress is not None:
            progress.finish()
        print(f"pegasus-bench: error: {_error_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    if progress is not None:
        progress.finish()
    if args.json:
        print(format_json(doc))
    else:
        formatter = {"compare": format_compare, "failover": format_failover}.get(mode, format_text)
        print(formatter(doc))
    return EXIT_FAILED if doc["error_count"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
