"""Pilot tests (App.run_test, 80x24) of every view and key binding, fed by a deterministic source."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace

import pytest
import pytest_twisted
from textual import events
from textual.filter import Monochrome, NoColor

from pegasus_shell.tui.app import COMMANDS_UNAVAILABLE, MonitorApp
from pegasus_shell.tui.command_screen import CommandOutputScreen
from pegasus_shell.tui.run import run_monitor
from tests.tui.scripted import R1, R2, R3, ScriptedSource, on_loop, sample_snapshot, wait_until

QUIET = 3600.0  # no timer ticks during a test: polls happen at start and when a test asks


def make_app(*snapshots, **kwargs) -> tuple[MonitorApp, ScriptedSource]:
    source = ScriptedSource(list(snapshots) or [sample_snapshot()])
    app = MonitorApp(source, interval=QUIET, **kwargs)
    app.animation_level = "none"  # tab switches without the underline's animation: faster tests
    return app, source


def cells(app: MonitorApp, view: str) -> list[list[str]]:
    table = app.table_for(view)
    return [[c.plain for c in table.get_row_at(i)] for i in range(table.row_count)]


def status_line(app: MonitorApp) -> str:
    return str(app.query_one("#status").render())


async def started(app: MonitorApp, pilot) -> None:
    await wait_until(lambda: app.snapshot is not None, pilot)
    await pilot.pause()


def run(body):
    """Decorate an ``async def body(app, pilot)``-style test so that it runs on the reactor's loop."""

    @pytest_twisted.ensureDeferred
    async def test():
        await on_loop(body())

    test.__name__ = body.__name__
    return test


@run
async def test_number_keys_and_tabs_switch_views_at_80x24():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert app.active_view == "nodes"
        for key, view in (("2", "tables"), ("3", "partitions"), ("4", "events"), ("1", "nodes")):
            await pilot.press(key)
            assert app.active_view == view
            assert app.table_for(view).has_focus
        await pilot.press("tab")
        assert app.active_view == "tables"
        await pilot.press("tab", "tab", "tab")
        assert app.active_view == "nodes"
        await pilot.press("shift+tab")
        assert app.active_view == "events"
        assert app.size == (80, 24)


@run
async def test_nodes_view_shows_status_lease_beacon_replica_counts_and_ops():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        rows = {r[0]: r for r in cells(app, "nodes")}
        assert rows["10.0.0.1:34601"][1:3] == ["meta", "alive"]
        assert rows[R1] == [R1, "replica", "alive", "3.4s", "0.6s", "2", "1", "1520", "▁▂▅█▇█"]
        assert rows[R2][2] == "no answer"  # the meta server still counts it alive; it did not answer us
        assert rows[R2][7] == "-"
        assert rows[R3][2:5] == ["unalive", "0.0s", "7.1s"]
        assert "2/3 alive" not in status_line(app)  # one alive, one silent, one dead
        assert "1/3 alive" in status_line(app)


@run
async def test_tables_view_is_the_ls_d_health_view():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("2")
        assert cells(app, "tables") == [
            ["!orders", "1", "4", "3", "2", "2", "1", "1"],
            [" users", "2", "2", "1", "2", "0", "0", "0"],
        ]


@run
async def test_partitions_view_shows_every_field_and_dashes_for_absent_ones():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("3")
        rows = cells(app, "partitions")
        assert rows[0] == ["!1.0", "unhealthy", "5", R1, "1200", "1203", "3+12", "3.4s", R2, R3]
        assert rows[1] == [" 1.1", "healthy", "4", R2, "980", "980", "0+0", "3.9s", f"{R1},{R3}", "-"]
        assert rows[2] == ["!1.2", "read_unhealthy", "7", R3, "40", "-", "-", "-", "-", "-"]
        assert rows[3] == [" 1.3", "healthy", "3", R1, "77", "-", "-", "-", f"{R2},{R3}", "-"]
        table = app.table_for("partitions")
        unhealthy, healthy = table.get_row_at(2)[0], table.get_row_at(1)[0]
        assert "bold" in str(unhealthy.style) and "reverse" in str(unhealthy.style)
        assert str(healthy.style) == ""
        caption = str(app.query_one("#partitions-caption").render())
        assert "table orders: 4 partitions, replica count 3, 2 unhealthy" in caption


@run
async def test_events_view_lists_configuration_changes_newest_first():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("4")
        rows = cells(app, "events")
        assert [r[1] for r in rows] == ["node_dead", "config_changed", "table_created", "table_created", "node_alive"]
        assert rows[0][0] == "22:13:18"
        assert "declared dead" in rows[0][2]


@run
async def test_enter_on_a_table_shows_its_partitions_and_polls_for_it():
    app, source = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("2", "down", "enter")
        assert app.active_view == "partitions"
        assert app.selected_table == "users"
        await wait_until(lambda: app.snapshot.selected_table == "users", pilot)
        assert source.calls[-1] == "users"
        assert [r[0] for r in cells(app, "partitions")] == [" 2.0", " 2.1"]
        await pilot.press("2")
        assert cells(app, "tables")[1][0] == " users"
        assert app.table_for("tables").cursor_row == 1  # the cursor stays on the chosen table across refreshes


@run
async def test_space_pauses_the_display_but_keeps_polling_and_shows_the_newest_after():
    snapshots = [sample_snapshot(1), sample_snapshot(2, tables=()), sample_snapshot(3, nodes=())]
    app, source = make_app(*snapshots)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("space")
        assert app.paused
        for refresh in (2, 3):
            app.poller.tick()
            await wait_until(lambda: app.latest.refresh == refresh, pilot)
        assert app.snapshot.refresh == 1  # nothing dropped: held in app.latest
        assert len(cells(app, "nodes")) == 4
        assert "PAUSED +2" in status_line(app)
        await pilot.press("space")
        assert not app.paused
        assert app.snapshot.refresh == 3
        assert cells(app, "nodes") == []  # the newest snapshot (3) has no nodes
        assert "PAUSED" not in status_line(app)


@run
async def test_slash_filters_rows_of_the_current_view_and_escape_clears():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("slash", *"0.0.0.2")
        assert [r[0] for r in cells(app, "nodes")] == [R1]
        assert "filter /10.0.0.2" not in status_line(app) and "filter /0.0.0.2" in status_line(app)
        await pilot.press("enter")
        assert app.prompt_mode is None and app.table_for("nodes").has_focus
        await pilot.press("4")
        assert len(cells(app, "events")) == 5  # filters are per view
        await pilot.press("slash", *"DEAD", "enter")
        assert [r[1] for r in cells(app, "events")] == ["node_dead"]  # case-insensitive
        await pilot.press("1")
        assert [r[0] for r in cells(app, "nodes")] == [R1]  # kept while another view was shown
        await pilot.press("slash", "escape")
        assert len(cells(app, "nodes")) == 4


@run
async def test_keys_typed_into_the_prompt_do_not_trigger_bindings():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("slash", "q", "2", "space", "tab")
        assert app.is_running and app.active_view == "nodes" and not app.paused
        assert app.query_one("#prompt").value == "q2 "
        await pilot.press("escape")
        assert app.prompt_mode is None


@run
async def test_a_burst_of_keys_after_slash_all_go_to_the_prompt():
    """A paste or a script sends '/' and the text at once: none of it may reach the views' bindings."""
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        for key, char in [("slash", "/"), ("2", "2"), ("full_stop", "."), ("q", "q"), ("slash", "/"), ("enter", None)]:
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # as the terminal driver does, without waiting in between
        await wait_until(lambda: app.filters["nodes"] == "2.q/" and app.prompt_mode is None, pilot)
        assert app.is_running and app.active_view == "nodes"


@run
async def test_colon_runs_a_command_through_the_shell_and_shows_its_output():
    ran: list[str] = []

    async def run_command(line: str) -> str:
        ran.append(line)
        return "created table t2 (8 partitions)"

    app, source = make_app(run_command=run_command)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        polls = len(source.calls)
        await pilot.press("colon", *"create t2 -p 8", "enter")
        assert isinstance(app.screen, CommandOutputScreen)
        await wait_until(lambda: app.screen.text.startswith("created"), pilot)
        await pilot.pause()
        assert app.screen.shown_text == "created table t2 (8 partitions)"
        assert ran == ["create t2 -p 8"]
        await wait_until(lambda: len(source.calls) > polls, pilot)  # refreshed to show the change
        await pilot.press("2")  # keys go to the output screen, not to the views
        assert app.active_view == "nodes"
        await pilot.press("escape")
        assert not isinstance(app.screen, CommandOutputScreen)


@run
async def test_a_failing_command_shows_its_error_message():
    async def run_command(line: str) -> str:
        raise RuntimeError('table "t2" already exists')

    app, _ = make_app(run_command=run_command)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("colon", *"create t2", "enter")
        await wait_until(lambda: app.screen.error, pilot)
        await pilot.pause()
        assert app.screen.shown_text == 'table "t2" already exists'
        await pilot.press("q")  # closes the output, does not quit
        assert app.is_running and not isinstance(app.screen, CommandOutputScreen)


@run
async def test_the_monitor_cannot_be_opened_from_its_own_prompt():
    async def run_command(line: str) -> str:  # what the shell's registry does for "monitor"
        await run_monitor(admin=None, interval=1.0)
        return "opened"

    app, _ = make_app(run_command=run_command)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("colon", *"monitor", "enter")
        await wait_until(lambda: app.screen.error, pilot)
        assert app.screen.text == "the monitor is already open (q closes it)"
    assert MonitorApp.open_count == 0


@run
async def test_colon_without_a_shell_says_commands_are_unavailable():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("colon", *"ls", "enter")
        await pilot.pause()
        assert app.screen.shown_text == COMMANDS_UNAVAILABLE
        await pilot.press("enter")
        await pilot.press("colon", "escape")  # an empty or cancelled prompt runs nothing
        assert not isinstance(app.screen, CommandOutputScreen)


@run
async def test_q_quits():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


@run
async def test_polls_never_overlap_and_a_slow_poll_skips_ticks():
    gate = asyncio.Event()
    source = ScriptedSource([sample_snapshot(1), sample_snapshot(2)], gate=gate)
    app = MonitorApp(source, interval=QUIET)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.poller.in_flight and app.snapshot is None
        for _ in range(5):
            app.poller.tick()
        assert app.poller.ticks_skipped == 5 and source.max_active == 1
        await pilot.press("2")  # the UI is not blocked by the poll in flight
        assert app.active_view == "tables"
        gate.set()
        await wait_until(lambda: app.snapshot is not None, pilot)
        app.poller.tick()
        await wait_until(lambda: app.snapshot.refresh == 2, pilot)
        assert source.max_active == 1 and len(source.calls) == 2


@run
async def test_the_timer_refreshes_by_itself():
    source = ScriptedSource([sample_snapshot(1), sample_snapshot(2), sample_snapshot(3)])
    app = MonitorApp(source, interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: app.snapshot is not None and app.snapshot.refresh == 3, pilot)


@run
async def test_an_unreachable_meta_server_is_said_and_stale_tables_are_marked():
    stale = sample_snapshot(2, meta_address="", error="meta server: connection refused", stale_since=1_700_000_001.0)
    app, _ = make_app(sample_snapshot(1), stale)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        app.poller.tick()
        await wait_until(lambda: app.snapshot.refresh == 2, pilot)
        line = status_line(app)
        assert "meta server: connection refused" in line and "tables as of 22:13:21" in line
        assert app.query_one("#status").has_class("-error")


@run
async def test_a_failing_source_keeps_the_last_data_and_says_so():
    class Flaky(ScriptedSource):
        async def poll(self, selected_table):
            if len(self.calls) >= 1:
                self.calls.append(selected_table)
                raise ValueError("bad reply")
            return await super().poll(selected_table)

    source = Flaky([sample_snapshot(1)])
    app = MonitorApp(source, interval=QUIET)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        app.poller.tick()
        await wait_until(lambda: app.snapshot.error is not None, pilot)
        assert "polling failed: ValueError: bad reply" in status_line(app)
        assert len(cells(app, "nodes")) == 4


@run
async def test_the_no_color_flag_renders_without_colour():
    app, _ = make_app(no_color=True)
    assert app.no_color and any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert len(cells(app, "nodes")) == 4


def test_the_no_color_variable_renders_without_colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not make_app()[0].no_color
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_app()[0].no_color


def test_a_bad_interval_is_refused():
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="interval must be > 0"):
            MonitorApp(ScriptedSource([sample_snapshot()]), interval=bad)


def test_sample_snapshots_are_immutable():
    snapshot = sample_snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.nodes = ()  # type: ignore[misc]
    assert replace(snapshot) == snapshot
