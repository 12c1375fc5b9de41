"""``python -m pegasus_shell.tui --meta ADDR [--interval S] [--table T] [--no-color]``: the monitor alone."""

from __future__ import annotations

import argparse
import sys


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pegasus_shell.tui", description="live monitor of a cluster")
    parser.add_argument("--meta", required=True, help="meta server list, host:port[,host:port...]")
    parser.add_argument("--interval", type=_interval, default=1.0, help="refresh interval in seconds (default 1)")
    parser.add_argument("--table", help="the table whose partitions to show first")
    parser.add_argument("--no-color", action="store_true", help="no colours (as the NO_COLOR variable)")
    args = parser.parse_args(argv)

    from pegasus_node.base.reactor import install_reactor

    loop = install_reactor()  # before anything imports twisted.internet.reactor

    from pegasus_node.client.admin import MetaAdmin
    from pegasus_node.client.errors import PegasusClientError
    from pegasus_shell.connection import wait
    from pegasus_shell.tui.run import run_monitor

    try:
        admin = MetaAdmin(args.meta)
    except PegasusClientError as exc:
        parser.error(exc.message)

    async def run() -> None:
        try:
            await run_monitor(admin, interval=args.interval, no_color=args.no_color, table=args.table)
        finally:
            await wait(admin.close())

    try:
        loop.run_until_complete(run())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
