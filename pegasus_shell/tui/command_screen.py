"""The output of a command run from the monitor's ``:`` prompt, over the monitor until dismissed."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class CommandOutputScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    CommandOutputScreen { align: center middle; }
    CommandOutputScreen > Vertical {
        width: 100%; height: 100%; max-width: 120; max-height: 40;
        border: round $accent; background: $surface; padding: 0 1;
    }
    CommandOutputScreen #command-title { height: 1; text-style: bold; }
    CommandOutputScreen #command-hint { height: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, command: str, text: str = "running...") -> None:
        super().__init__()
        self.command = command
        self._text = text
        self.error = False
        self._output = Static(self._body(), id="command-output")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f":{self.command}", no_wrap=True, overflow="ellipsis"), id="command-title")
            with VerticalScroll(id="command-scroll"):
                yield self._output
            yield Static("esc, enter or q closes", id="command-hint")

    @property
    def text(self) -> str:
        return self._text

    @property
    def shown_text(self) -> str:
        return str(self._output.render())

    def show_result(self, text: str, *, error: bool = False) -> None:
        self._text = text
        self.error = error
        self._output.update(self._body())

    def _body(self) -> Text:
        return Text(self._text, style="bold red" if self.error else "")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
