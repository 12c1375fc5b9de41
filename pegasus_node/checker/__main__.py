"""``python -m pegasus_node.checker FILE... [--format etcd|kv] [--timeout S]``: checks Jepsen histories.

Exit status: 0 every file is linearizable, 1 some file is not, 2 some check timed out (and none failed),
3 a file could not be read or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from pegasus_node.checker.history import HistoryError, Operation
from pegasus_node.checker.jepsen import ETCD_MODEL, KV_MODEL, parse_etcd_log, parse_jepsen_kv_edn
from pegasus_node.checker.linearizability import Verdict, check
from pegasus_node.checker.models import Model

EXIT_OK, EXIT_ILLEGAL, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3

_FORMATS = {
    "etcd": (parse_etcd_log, ETCD_MODEL),
    "kv": (parse_jepsen_kv_edn, KV_MODEL),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # exit 2 means "timed out" here, so usage errors take the input-error status
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _guess_format(path: Path) -> str:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            text = line.strip()
            if text.startswith("{"):
                return "kv"
            if "jepsen.util" in text:
                return "etcd"
    raise HistoryError(f"{path}: cannot tell the format (no EDN map nor jepsen.util line); pass --format")


def _load(path: Path, fmt: str | None) -> tuple[list[Operation], Model]:
    parse, model = _FORMATS[fmt or _guess_format(path)]
    return parse(path), model


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m pegasus_node.checker", description="Check Jepsen histories for linearizability.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--format", choices=sorted(_FORMATS), help="history format (guessed when omitted)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per file (default: no limit)")
    args = parser.parse_args(argv)
    if args.timeout is not None and not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds, not {args.timeout}")

    status = EXIT_OK
    for path in args.files:
        try:
            history, model = _load(path, args.format)
        except (OSError, UnicodeDecodeError, HistoryError) as e:
            print(f"{path}: cannot read history: {e}", file=sys.stderr)
            return EXIT_ERROR
        result = check(history, model, timeout=args.timeout)
        print(f"{path}: {result.verdict.value} ({len(history)} operations, {result.elapsed:.2f}s)")
        if result.verdict is Verdict.ILLEGAL:
            print(f"  {result.explanation}")
            status = EXIT_ILLEGAL
        elif result.verdict is Verdict.UNKNOWN:
            print(f"  {result.explanation}")
            if status == EXIT_OK:
                status = EXIT_UNKNOWN
    return status


if __name__ == "__main__":
    sys.exit(main())
