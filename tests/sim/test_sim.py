"""The deterministic simulation as part of the test run: 500 seeds by default (SIM_SEEDS overrides), and
a slow run of many more (``pytest -m slow``; SIM_SLOW_SEEDS, default 5000, from seed 1,000,000 on).
Each failing seed is reported with the command that replays it."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from tests.sim.cluster import SimResult, run_seed
from tests.sim.run import report_failure


def run_seeds(first: int, count: int) -> list[SimResult]:
    """Every failing result; seeds run on up to two worker processes."""
    seeds = range(first, first + count)
    workers = min(2, os.cpu_count() or 1)
    if workers < 2:
        return [r for r in map(run_seed, seeds) if not r.ok]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return [r for r in pool.imap_unordered(run_seed, seeds, chunksize=8) if not r.ok]


def assert_all_pass(failures: list[SimResult]) -> None:
    if failures:
        failures.sort(key=lambda r: r.seed)
        pytest.fail(f"{len(failures)} simulation seed(s) failed:\n" + "\n".join(report_failure(r) for r in failures),
                    pytrace=False)


@pytest.mark.timeout(1200)  # generous: a loaded 2-core machine can be several times slower
def test_simulation_seeds() -> None:
    assert_all_pass(run_seeds(0, int(os.environ.get("SIM_SEEDS", "500"))))


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_simulation_many_seeds() -> None:
    assert_all_pass(run_seeds(1_000_000, int(os.environ.get("SIM_SLOW_SEEDS", "5000"))))


def test_a_seed_replays_identically() -> None:
    first, second = run_seed(7), run_seed(7)
    assert first.ok and first.stats == second.stats
    assert first.stats["acked_decrees"] > 0 and first.stats["ops"] > 0
