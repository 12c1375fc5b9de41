"""The live monitor: a Textual app showing the snapshots a :class:`Poller` delivers.

Data flow: a timer ticks the poller; the poller's snapshot arrives as a :class:`SnapshotReady` message; the
app keeps the newest in ``latest`` and, unless paused, puts it into the reactive ``snapshot``, whose watcher
redraws the status line and the view on screen (the other views are redrawn when they are shown).
"""

from __future__ import annotations

from typing import Awaitable, Callable, ClassVar

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.filter import Monochrome, NoColor
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from pegasus_shell.tui import cells
from pegasus_shell.tui.command_screen import CommandOutputScreen
from pegasus_shell.tui.model import Snapshot
from pegasus_shell.tui.poller import Poller
from pegasus_shell.tui.source import SnapshotSource
from pegasus_shell.tui.views import PARTITIONS, TABLES, VIEWS, RowTable, matches

RunCommand = Callable[[str], Awaitable[str]]
COMMANDS_UNAVAILABLE = "commands are unavailable: this monitor was started without a shell (use pegasus-shell monitor)"
FILTER, COMMAND = "filter", "command"


class SnapshotReady(Message):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PromptInput(Input):
    """The one-line prompt for ``/`` (filter) and ``:`` (command); Escape cancels it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    class Cancelled(Message):
        pass

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class MonitorApp(App[None]):
    TITLE = "pegasus monitor"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #status { height: 1; padding: 0 1; background: $panel; }
    #status.-error { background: $error 30%; }
    TabbedContent { height: 1fr; }
    TabPane { padding: 0; }
    RowTable { height: 1fr; }
    #partitions-caption { height: 1; padding: 0 1; color: $text-muted; }
    #prompt { height: 1; border: none; padding: 0 1; display: none; }
    #prompt.-open { display: block; }
    """
    BINDINGS = [
        *(Binding(v.key, f"show_view('{v.id}')", v.title, show=False) for v in VIEWS),
        Binding("tab", "cycle_view(1)", "Next view", priority=True),
        Binding("shift+tab", "cycle_view(-1)", "Previous view", show=False, priority=True),
        Binding("space", "toggle_pause", "Pause"),
        # Priority: run as the key arrives, so that the keys typed right after it (a paste, a script) already
        # go to the prompt, not to the views' bindings.
        Binding("slash", "open_prompt('filter')", "Filter", priority=True),
        Binding("colon", "open_prompt('command')", "Command", priority=True),
        Binding("q", "quit", "Quit"),
    ]

    open_count: ClassVar[int] = 0  # monitors on screen in this process (one at a time: see run_monitor)

    snapshot: reactive[Snapshot | None] = reactive(None, init=False)
    paused: reactive[bool] = reactive(False, init=False)

    def __init__(self, source: SnapshotSource, *, interval: float = 1.0, run_command: RunCommand | None = None,
                 no_color: bool = False, table: str | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"the refresh interval must be > 0 seconds, got {interval}")
        super().__init__()
        if no_color and not self.no_color:  # the same filter Textual installs for NO_COLOR
            self.no_color = True
            self._filters.append(NoColor() if self.native_ansi_color else Monochrome())
        self.interval = interval
        self.run_command = run_command
        self.selected_table = table
        self.latest: Snapshot | None = None  # the newest snapshot, shown or held while paused
        self.held = 0  # snapshots received while paused
        self.filters: dict[str, str] = {v.id: "" for v in VIEWS}
        self.prompt_mode: str | None = None
        self._drawn: dict[str, tuple[Snapshot | None, str]] = {}
        self.poller = Poller(source, lambda s: self.post_message(SnapshotReady(s)), lambda: self.selected_table)

    # ----- layout -----

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with TabbedContent(initial="nodes", id="views"):
            for spec in VIEWS:
                with TabPane(f"{spec.key} {spec.title}", id=spec.id):
                    if spec is PARTITIONS:
                        yield Static(id="partitions-caption")
                    yield RowTable(spec)
        yield PromptInput(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        MonitorApp.open_count += 1
        self._draw_status()
        self.set_interval(self.interval, self.poller.tick)
        self.poller.tick()
        self.screen.set_focus(self.table_for("nodes"))

    async def on_unmount(self) -> None:
        MonitorApp.open_count -= 1
        await self.poller.stop()

    def table_for(self, view_id: str) -> RowTable:
        return self.query_one(f"#{view_id}-table", RowTable)

    @property
    def active_view(self) -> str:
        return self.query_one("#views", TabbedContent).active

    # ----- snapshots -----

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.latest = message.snapshot
        if self.paused:
            self.held += 1
            self._draw_status()
        else:
            self.snapshot = message.snapshot

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        if snapshot is not None and snapshot.selected_table is not None:
            names = [t.name for t in snapshot.tables]
            if self.selected_table not in names:
                self.selected_table = snapshot.selected_table
        self._draw_status()
        self._draw_view(self.active_view)

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self.held = 0
            if self.latest is not None and self.latest is not self.snapshot:
                self.snapshot = self.latest
        self._draw_status()

    def _draw_view(self, view_id: str) -> None:
        snapshot, needle = self.snapshot, self.filters[view_id].lower()
        drawn = self._drawn.get(view_id)
        if snapshot is None or (drawn is not None and drawn[0] is snapshot and drawn[1] == needle):
            return
        self._drawn[view_id] = (snapshot, needle)
        table = self.table_for(view_id)
        rows = table.spec.rows(snapshot)
        if needle:
            rows = [r for r in rows if matches(r, needle)]
        table.show(rows)
        if view_id == PARTITIONS.id:
            self._draw_partitions_caption(snapshot)

    def _draw_partitions_caption(self, snapshot: Snapshot) -> None:
        caption = self.query_one("#partitions-caption", Static)
        name = snapshot.selected_table
        if name is None:
            caption.update("no table: create one with  :create NAME -p 8")
            return
        text = f"table {name}: {len(snapshot.partitions)} partitions"
        row = next((t for t in snapshot.tables if t.name == name), None)
        if row is not None:
            text += f", replica count {row.replica_count}, {cells.dash(row.unhealthy)} unhealthy"
        if self.selected_table not in (None, name):
            text += f"  (loading {self.selected_table}...)"
        caption.update(Text(text, no_wrap=True, overflow="ellipsis"))

    def _draw_status(self) -> None:
        status = self.query_one("#status", Static)
        s = self.snapshot
        parts: list[tuple[str, str]] = []
        if self.paused:
            parts.append((f"PAUSED +{self.held}", "bold reverse"))
        needle = self.filters[self.active_view] if self.is_mounted else ""
        if needle:
            parts.append((f"filter /{needle}", "bold"))
        if s is None:
            parts.append(("connecting...", ""))
        else:
            if s.error:
                parts.append((s.error, "bold"))
            if s.stale_since is not None:
                parts.append((f"tables as of {cells.clock(s.stale_since)}", "bold"))
            if s.meta_address:
                parts.append((f"meta {s.meta_address}", ""))
            parts.append((f"{s.alive_replica_count}/{s.replica_server_count} alive", ""))
            parts.append((f"{len(s.tables)} tables", ""))
            if s.meta_level:
                parts.append((s.meta_level, ""))
            parts.append((f"{cells.clock(s.taken_at)} /{self.interval:g}s", ""))
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (part, style) in enumerate(parts):
            if i:
                text.append(" | ")
            text.append(part, style)
        status.set_class(bool(s and s.error), "-error")
        status.update(text)

    # ----- views -----

    @on(TabbedContent.TabActivated)
    def _view_shown(self, event: TabbedContent.TabActivated) -> None:
        self._draw_view(self.active_view)
        self._draw_status()

    def _modal_open(self) -> bool:
        return isinstance(self.screen, ModalScreen)

    def action_show_view(self, view_id: str) -> None:
        self.query_one("#views", TabbedContent).active = view_id
        self._draw_view(view_id)
        if self.prompt_mode is None:
            self.screen.set_focus(self.table_for(view_id))

    def action_cycle_view(self, step: int) -> None:
        if self._modal_open():
            raise SkipAction()
        if self.prompt_mode is not None:  # the prompt keeps the focus until enter or escape
            return
        ids = [v.id for v in VIEWS]
        self.action_show_view(ids[(ids.index(self.active_view) + step) % len(ids)])

    @on(DataTable.RowHighlighted, "#tables-table")
    def _table_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus and event.row_key.value is not None:
            self.select_table(event.row_key.value)

    @on(DataTable.RowSelected, "#tables-table")
    def _table_chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.select_table(event.row_key.value)
            self.action_show_view(PARTITIONS.id)

    def select_table(self, name: str) -> None:
        if name != self.selected_table:
            self.selected_table = name
            self.poller.tick()  # show its partitions without waiting for the next tick
            if self.snapshot is not None:
                self._drawn.pop(TABLES.id, None)
                self._draw_view(self.active_view)

    # ----- pause -----

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    # ----- the prompt: / filters, : runs a command -----

    def action_open_prompt(self, mode: str) -> None:
        if self.prompt_mode is not None or self._modal_open():
            raise SkipAction()  # a / or : typed into the prompt, or over the command output
        prompt = self.query_one("#prompt", PromptInput)
        self.prompt_mode = mode
        if mode == FILTER:
            prompt.placeholder = f"filter {self.active_view} (enter keeps it, esc clears it)"
            prompt.value = self.filters[self.active_view]
        else:
            prompt.placeholder = "command, e.g. create t2 -p 8 (enter runs it, esc cancels)"
            prompt.value = ""
        prompt.add_class("-open")
        self.screen.set_focus(prompt)  # now, not on the next turn as Widget.focus does

    def _close_prompt(self) -> None:
        self.prompt_mode = None
        self.query_one("#prompt", PromptInput).remove_class("-open")
        self.screen.set_focus(self.table_for(self.active_view))

    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        if self.prompt_mode == FILTER:
            self.set_filter(event.value)

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        mode = self.prompt_mode
        self._close_prompt()
        if mode == COMMAND and event.value.strip():
            self.run_prompt_command(event.value.strip())

    @on(PromptInput.Cancelled)
    def _prompt_cancelled(self) -> None:
        if self.prompt_mode == FILTER:
            self.set_filter("")
        self._close_prompt()

    def set_filter(self, needle: str) -> None:
        self.filters[self.active_view] = needle
        self._draw_view(self.active_view)
        self._draw_status()

    def run_prompt_command(self, line: str) -> None:
        screen = CommandOutputScreen(line)
        self.push_screen(screen)
        if self.run_command is None:
            screen.show_result(COMMANDS_UNAVAILABLE, error=True)
            return
        self._run_command(screen, line)

    @work(exclusive=False, group="commands")
    async def _run_command(self, screen: CommandOutputScreen, line: str) -> None:
        assert self.run_command is not None
        try:
            output = await self.run_command(line)
        except Exception as exc:  # the shell says what went wrong; no traceback on screen
            screen.show_result(str(exc) or type(exc).__name__, error=True)
        else:
            screen.show_result(output or "(done)")
        self.poller.tick()  # show what the command changed
