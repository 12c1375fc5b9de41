"""Run simulation seeds from the command line.

    python -m tests.sim.run --seeds 500              # seeds 0..499
    python -m tests.sim.run --seeds 100000 --jobs 4  # overnight
    python -m tests.sim.run --seed 1234              # replay one seed, printing its trace if it fails

Exit status 0 when every seed passed. A failing seed prints the command that replays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

from tests.sim.cluster import SimResult, run_seed


def _run(args: tuple[int, float | None]) -> SimResult:
    return run_seed(*args)


def report_failure(result: SimResult, trace_lines: int = 0, window: tuple[float, float] | None = None) -> str:
    lines = [f"seed {result.seed} FAILED: {result.error.rstrip()}"]
    trace = result.trace
    if window is not None:
        trace = [line for line in trace if window[0] <= float(line.split()[0]) <= window[1]]
    elif trace_lines:
        trace = trace[-trace_lines:]
    if (trace_lines or window) and trace:
        lines.append("events of the run:")
        lines.extend("  " + line for line in trace)
    lines.append(f"replay: {result.replay}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="run (replay) this one seed, verbosely")
    which.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on a single core)")
    parser.add_argument("--chaos", type=float, default=None, help="simulated seconds of faults per seed")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    parser.add_argument("--trace", type=int, default=100, help="with --seed: how many last events to print")
    parser.add_argument("--window", type=float, nargs=2, metavar=("FROM", "TO"),
                        help="with --seed: print the events between these simulated times instead")
    args = parser.parse_args(argv)

    if args.seed is not None:
        result = run_seed(args.seed, args.chaos, trace_limit=None)
        if result.ok:
            print(f"seed {args.seed} passed: {result.stats}")
            return 0
        print(report_failure(result, args.trace, tuple(args.window) if args.window else None))
        return 1

    seeds = [(seed, args.chaos) for seed in range(args.start, args.start + args.seeds)]
    started = time.monotonic()
    failures: list[SimResult] = []
    done = 0
    pool = multiprocessing.Pool(args.jobs) if args.jobs > 1 else None
    results = pool.imap_unordered(_run, seeds, chunksize=4) if pool else map(_run, seeds)
    try:
        for result in results:
            done += 1
            if not result.ok:
                failures.append(result)
                print(report_failure(result), flush=True)
                if not args.keep_going:
                    break
            if done % 100 == 0:
                print(f"{done}/{len(seeds)} seeds, {len(failures)} failed, {time.monotonic() - started:.0f}s",
                      flush=True)
    finally:
        if pool:
            pool.terminate()
    elapsed = time.monotonic() - started
    print(f"{done} seeds run in {elapsed:.1f}s, {len(failures)} failed")
    for result in failures:
        print(f"  replay: {result.replay}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
