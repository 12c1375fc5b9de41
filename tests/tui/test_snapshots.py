"""SVG snapshots (pytest-textual-snapshot) of each view at 80x24, fed by a deterministic source.

Regenerate after a deliberate change of the screens with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the SVGs under tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest

from pegasus_shell.tui.app import MonitorApp
from tests.tui.scripted import ScriptedSource, sample_snapshot, wait_until

def monitor(**kwargs) -> MonitorApp:
    return MonitorApp(ScriptedSource([sample_snapshot()]), interval=3600.0, **kwargs)


async def first_snapshot(pilot) -> None:
    await wait_until(lambda: pilot.app.snapshot is not None, pilot)


@pytest.mark.parametrize("key,view", [("1", "nodes"), ("2", "tables"), ("3", "partitions"), ("4", "events")])
def test_view(snap, key, view):
    assert snap(monitor(), press=[key], terminal_size=(80, 24), run_before=first_snapshot)


def test_nodes_without_colour(snap):
    assert snap(monitor(no_color=True), terminal_size=(80, 24), run_before=first_snapshot)


def test_paused_and_filtered(snap):
    assert snap(monitor(), press=["3", "space", "slash", *"unh"], terminal_size=(80, 24),
                        run_before=first_snapshot)


def test_command_output(snap):
    async def run_command(line: str) -> str:
        return "created table t2: 8 partitions, 1 replica"

    async def run_it(pilot) -> None:
        await first_snapshot(pilot)
        await pilot.press("colon", *"create t2 -p 8", "enter")
        await wait_until(lambda: pilot.app.screen.text.startswith("created"), pilot)

    assert snap(monitor(run_command=run_command), terminal_size=(80, 24), run_before=run_it)
