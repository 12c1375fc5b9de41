"""``pegasus-shell``: the admin shell's entry point (REPL, batch file or stdin, one-shot commands).

    pegasus-shell [-c CLUSTER | -m META_LIST] [-f FILE|-] [-e CMD]... [--json]
                  [--on-error stop|continue] [--no-color] [--version]
    pegasus-shell [-c CLUSTER | -m META_LIST] monitor [--interval S] [--table T]

Exit codes: 0 ok, 1 a command failed, 2 usage error, 3 cannot reach the cluster, 130 interrupted
(and 141 when standard output is closed early, as with any command in a pipeline).
"""

from __future__ import annotations

# The asyncio reactor must be installed before anything imports twisted.internet.reactor.
from pegasus_node.base.reactor import install_reactor  # noqa: E402  (import order matters here)

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from pegasus_shell import __version__
from pegasus_shell.errors import EXIT_INTERRUPTED, EXIT_USAGE, ShellError, UsageError, to_shell_error

PROG = "pegasus-shell"
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line instead of argparse's usage dump
        raise UsageError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The pegasus-py admin shell: an interactive REPL, batch scripts "
                     "(-f FILE, -f - or a piped stdin) and one-shot commands (-e).",
                     epilog="Exit codes: 0 ok, 1 a command failed, 2 usage error, 3 cannot reach the cluster, "
                     "130 interrupted. clusters.ini is read from the current directory, then "
                     "$XDG_CONFIG_HOME/pegasus/.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-c", "--cluster", help="a cluster name from clusters.ini")
    where.add_argument("-m", "--meta", metavar="META_LIST", help="meta servers: HOST:PORT[,HOST:PORT...]")
    parser.add_argument("-f", "--file", metavar="FILE", help="run the commands in FILE ('-': standard input)")
    parser.add_argument("-e", "--execute", metavar="CMD", action="append", default=[],
                        help="run CMD (repeatable; 'use' carries over to the next)")
    parser.add_argument("--json", action="store_true", help="one JSON document per command; errors as JSON")
    parser.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                        help="what a batch does after a failed command (default: stop)")
    parser.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("subcommand", nargs=argparse.REMAINDER, metavar="monitor [--interval S] [--table T]",
                        help="open the live monitor directly")
    return parser


def _print_error(error: ShellError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"command": None, "input": None, "ok": False, "error": error.to_dict()}), file=sys.stderr)
    else:
        print(f"error: {error.message}", file=sys.stderr)


def _read_script(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read script {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


async def run(args: argparse.Namespace) -> int:
    from pegasus_shell.config import find_clusters_ini, load_clusters, parse_meta_list
    from pegasus_shell.context import ShellContext, Target
    from pegasus_shell.render import Renderer, make_consoles
    from pegasus_shell.runner import run_lines, stream_lines

    clusters = load_clusters(find_clusters_ini())
    if args.cluster:
        clusters.meta_list(args.cluster)
        target = Target(name=args.cluster)
    elif args.meta:
        target = Target(meta_list=tuple(parse_meta_list(args.meta)))
    else:
        target = Target()
    out, err = make_consoles(args.no_color)
    renderer = Renderer(out, err, args.json)
    ctx = ShellContext(clusters, target, json=args.json, no_color=args.no_color or bool(os.environ.get("NO_COLOR")),
                       notice=renderer.notice, progress=renderer.progress)
    try:
        if args.execute:
            return await run_lines(ctx, renderer, args.execute, echo=len(args.execute) > 1,
                                   continue_on_error=args.on_error == "continue")
        if args.file or not sys.stdin.isatty():
            lines = stream_lines(sys.stdin) if args.file in (None, "-") else _read_script(args.file)
            return await run_lines(ctx, renderer, lines, echo=True, continue_on_error=args.on_error == "continue")
        from pegasus_shell.repl import history_path, open_history, run_repl

        await ctx.connected()
        return await run_repl(ctx, renderer, no_color=args.no_color, history=open_history(history_path()))
    finally:
        await ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    loop = install_reactor()
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _print_error(exc, as_json)
        return EXIT_USAGE
    if args.version:
        print(f"{PROG} {__version__}")
        return 0
    if args.file and args.execute:
        _print_error(UsageError(f"give -f or -e, not both (see {PROG} --help)"), as_json)
        return EXIT_USAGE
    if args.subcommand:
        if args.subcommand[0] != "monitor" or args.file or args.execute:
            _print_error(UsageError(f"unexpected argument {args.subcommand[0]!r}; the only subcommand is "
                                    f"'monitor' (see {PROG} --help)"), as_json)
            return EXIT_USAGE
        from shlex import join

        args.execute = [join(args.subcommand)]

    from twisted.internet import reactor

    from pegasus_shell.runner import set_default_interrupt

    result: dict[str, Any] = {"code": 0}

    def finished(task: asyncio.Future) -> None:
        try:
            report(task)
        except OSError:
            pass  # the terminal is gone (a hangup closed it): there is nobody left to tell
        finally:
            reactor.stop()

    def report(task: asyncio.Future) -> None:
        if not task.cancelled() and isinstance(task.exception(), BrokenPipeError):
            # the reader went away (`pegasus-shell ... | head`): stop quietly, as a killed pipeline does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            result["code"] = EXIT_BROKEN_PIPE
        elif task.cancelled():
            result["code"] = EXIT_INTERRUPTED
            _print_error(ShellError("interrupted", "ERR_INTERRUPTED"), args.json)
        elif task.exception() is not None:
            error = to_shell_error(task.exception())
            result["code"] = error.exit_code
            _print_error(error, args.json)
        else:
            result["code"] = task.result()

    def start() -> None:
        task = asyncio.ensure_future(run(args))
        task.add_done_callback(finished)
        # SIGTERM and SIGHUP (a closed terminal) end the run cleanly, stopping an embedded onebox;
        # SIGINT outside a command does the same (inside one, it cancels just that command).
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        set_default_interrupt(task.cancel, loop)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    try:
        sys.stdout.flush()
    except OSError:
        pass  # a terminal that hung up
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
