"""How values look in the monitor's cells: "-" for anything unknown, short durations, sparklines.

Every style here keeps a meaning without colour too (NO_COLOR): alarming values are also bold or marked.
"""

from __future__ import annotations

import functools
import time

from rich.text import Text

MISSING = "-"
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 10


def dash(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def duration_ms(value: int | None) -> str:
    """3.2s, 45s; "-" when unknown."""
    if value is None:
        return MISSING
    seconds = value / 1000
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def rate(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def addresses(values: tuple[str, ...]) -> str:
    return ",".join(values) if values else MISSING


def learners(learner_addresses: tuple[str, ...], progress: tuple[str, ...]) -> str:
    """Learner addresses, each with its progress when known: "127.0.0.1:34803 (checkpoint 45%)"."""
    if not learner_addresses:
        return MISSING
    notes = progress + ("",) * (len(learner_addresses) - len(progress))
    return ",".join(f"{a} ({note})" if note else a for a, note in zip(learner_addresses, notes))


def pending(prepared_not_committed: int | None, queued: int | None) -> str:
    """Prepared but not committed, plus queued: "3+12"; one of them alone when only it is reported."""
    if prepared_not_committed is None and queued is None:
        return MISSING
    if queued is None:
        return str(prepared_not_committed)
    return f"{dash(prepared_not_committed)}+{queued}"


def clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def sparkline(values: tuple[float, ...], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` values as block characters, scaled to the largest of them."""
    recent = values[-width:]
    if not recent:
        return ""
    top = max(recent)
    if top <= 0:
        return SPARK_BLOCKS[0] * len(recent)
    last = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[min(last, round(v / top * last))] for v in recent)


@functools.lru_cache(maxsize=16384)
def styled(value: str, style: str = "") -> Text:
    """A cell. Shared between equal cells (never modified once made): a refresh of a thousand rows then
    mostly reuses the cells of the previous one."""
    return Text(value, style=style, no_wrap=True, overflow="ellipsis")
