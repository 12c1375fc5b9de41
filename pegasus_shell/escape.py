"""Splitting command lines into byte tokens, and printing bytes back, as the Pegasus shell does.

Input follows the Pegasus shell (which uses redis's ``sdssplitargs``): words are separated by blanks;
``"double quotes"`` understand ``\\xHH``, ``\\n``, ``\\r``, ``\\t``, ``\\a``, ``\\b``, ``\\\\`` and ``\\"``;
``'single quotes'`` understand only ``\\'``; an unquoted ``#`` at the start of a word begins a comment.
Output follows the Pegasus shell's ``escape_all``: printable ASCII stays, ``\\n \\r \\t \\" \\\\`` are
escaped, and every other byte becomes ``\\xHH``. :func:`display` wraps a word in double quotes when it would
not read back as the same bytes otherwise, so anything the shell prints can be pasted back into it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pegasus_shell.errors import UsageError

_DQ_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}
_OUT_ESCAPES = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x22: '\\"', 0x5C: "\\\\"}
_HEX = "0123456789abcdefABCDEF"


@dataclass(frozen=True)
class Token:
    """One word of a command line: its bytes, and whether any part of it was quoted."""

    value: bytes
    quoted: bool = False
    start: int = 0  # offset of the word in the line, for completion

    @property
    def text(self) -> str:
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{escape(self.value)!r} is not valid UTF-8 text") from None

    def is_flag(self) -> bool:
        """An unquoted word starting with '-' that is not a negative number."""
        if self.quoted or not self.value.startswith(b"-") or self.value == b"-":
            return False
        try:
            float(self.value)
        except ValueError:
            return True
        return False


@dataclass(frozen=True)
class SplitLine:
    tokens: list[Token]
    unterminated: bool  # the line ends inside a quote (only possible with partial=True)
    trailing_space: bool  # the line ends with a blank: the next word has not started


def split_line(line: str, partial: bool = False) -> SplitLine:
    """Split a command line into tokens.

    With ``partial`` (for completion) an unterminated quote is accepted and ends the last word; without it
    that is a :class:`UsageError`.
    """
    tokens: list[Token] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t\r\n":
            i += 1
        if i >= n:
            return SplitLine(tokens, False, bool(line) and line[-1] in " \t")
        if line[i] == "#":
            return SplitLine(tokens, False, False)
        start = i
        buf = bytearray()
        quoted = False
        while i < n and line[i] not in " \t\r\n":
            ch = line[i]
            if ch == '"':
                quoted = True
                i, closed = _read_double(line, i + 1, buf)
                if not closed:
                    if partial:
                        tokens.append(Token(bytes(buf), True, start))
                        return SplitLine(tokens, True, False)
                    raise UsageError("unbalanced double quote in the command line")
            elif ch == "'":
                quoted = True
                i, closed = _read_single(line, i + 1, buf)
                if not closed:
                    if partial:
                        tokens.append(Token(bytes(buf), True, start))
                        return SplitLine(tokens, True, False)
                    raise UsageError("unbalanced single quote in the command line")
            else:
                buf += ch.encode("utf-8")
                i += 1
        tokens.append(Token(bytes(buf), quoted, start))


def _read_double(line: str, i: int, buf: bytearray) -> tuple[int, bool]:
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n:
            nxt = line[i + 1]
            if nxt == "x" and i + 3 < n and line[i + 2] in _HEX and line[i + 3] in _HEX:
                buf.append(int(line[i + 2 : i + 4], 16))
                i += 4
                continue
            buf += _DQ_ESCAPES.get(nxt, nxt.encode("utf-8"))
            i += 2
            continue
        if ch == '"':
            return i + 1, True
        buf += ch.encode("utf-8")
        i += 1
    return i, False


def _read_single(line: str, i: int, buf: bytearray) -> tuple[int, bool]:
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n and line[i + 1] == "'":
            buf += b"'"
            i += 2
            continue
        if ch == "'":
            return i + 1, True
        buf += ch.encode("utf-8")
        i += 1
    return i, False


def escape(data: bytes | str) -> str:
    """The Pegasus shell's ``escape_all`` spelling of ``data``: ASCII only, lossless."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = []
    for byte in data:
        special = _OUT_ESCAPES.get(byte)
        if special is not None:
            out.append(special)
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02X}")
    return "".join(out)


def unescape(text: str) -> bytes:
    """The inverse of :func:`escape` (what a double-quoted word means)."""
    buf = bytearray()
    _read_double(text + '"', 0, buf)
    return bytes(buf)


def display(data: bytes | str) -> str:
    """``data`` as one word that reads back as the same bytes: quoted when it has to be."""
    escaped = escape(data)
    needs_quotes = (
        not escaped
        or escaped != (data if isinstance(data, str) else data.decode("latin-1"))
        or any(c in escaped for c in " '#")
        or escaped.startswith("-")
    )
    return f'"{escaped}"' if needs_quotes else escaped
