"""A small reader for the subset of EDN that Jepsen histories use, one value at a time.

Supported: maps, vectors and lists (both read as tuples, so they can be map keys), sets (frozenset),
strings with the usual escapes, keywords, symbols, integers (optional N suffix), floats (optional M suffix),
nil, true, false, tagged values (``#inst "..."``, read as Tagged), ``#_`` discards and ``;`` comments.
Commas are whitespace. Anything else is an EdnError that says where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class EdnError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str

    def __repr__(self) -> str:
        return f":{self.name}"


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: str
    value: Any


_DELIMITERS = frozenset('{}[]()";,') | frozenset(" \t\r\n\f")
_INT = re.compile(r"[+-]?\d+N?\Z")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_CLOSERS = {"{": "}", "[": "]", "(": ")"}


def loads(text: str) -> Any:
    """Reads exactly one EDN value from ``text``."""
    reader = _Reader(text)
    value = reader.read()
    reader.skip_blank()
    if reader.pos != len(text):
        raise reader.error("unexpected text after the value")
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> EdnError:
        return EdnError(f"{message} at character {self.pos + 1}")

    def skip_blank(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text):
            ch = text[pos]
            if ch in " \t\r\n\f,":
                pos += 1
            elif ch == ";":
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end + 1
            else:
                break
        self.pos = pos

    def read(self) -> Any:
        self.skip_blank()
        if self.pos >= len(self.text):
            raise self.error("unexpected end of input")
        ch = self.text[self.pos]
        if ch == '"':
            return self._string()
        if ch in _CLOSERS:
            self.pos += 1
            items = self._until(_CLOSERS[ch])
            return self._map(items) if ch == "{" else tuple(items)
        if ch in "}])":
            raise self.error(f"unbalanced {ch!r}")
        if ch == "#":
            return self._dispatch()
        if ch == "\\":
            return self._character()
        return self._atom(self._token())

    def _until(self, closer: str) -> list[Any]:
        items = []
        while True:
            self.skip_blank()
            if self.pos >= len(self.text):
                raise self.error(f"missing {closer!r}")
            if self.text[self.pos] == closer:
                self.pos += 1
                return items
            items.append(self.read())

    def _map(self, items: list[Any]) -> dict[Any, Any]:
        if len(items) % 2:
            raise self.error("a map needs an even number of forms")
        result = {}
        for key, value in zip(items[::2], items[1::2]):
            try:
                result[key] = value
            except TypeError:
                raise self.error(f"a map key cannot be a {type(key).__name__}") from None
        return result

    def _dispatch(self) -> Any:
        self.pos += 1
        if self.text.startswith("{", self.pos):
            self.pos += 1
            try:
                return frozenset(self._until("}"))
            except TypeError:
                raise self.error("a set element cannot be a map") from None
        if self.text.startswith("_", self.pos):
            self.pos += 1
            self.read()
            return self.read()
        tag = self._token()
        if not tag:
            raise self.error("'#' must be followed by '{', '_' or a tag")
        return Tagged(tag, self.read())

    def _string(self) -> str:
        text = self.text
        pos = self.pos + 1
        parts = []
        while True:
            end = pos
            while end < len(text) and text[end] not in '"\\':
                end += 1
            parts.append(text[pos:end])
            if end >= len(text):
                self.pos = end
                raise self.error("unterminated string")
            if text[end] == '"':
                self.pos = end + 1
                return "".join(parts)
            escape = text[end + 1 : end + 2]
            if escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                pos = end + 2
            elif escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[end + 2 : end + 6]):
                parts.append(chr(int(text[end + 2 : end + 6], 16)))
                pos = end + 6
            else:
                self.pos = end
                raise self.error(f"bad string escape \\{escape}")

    def _character(self) -> str:
        self.pos += 1
        token = self._token() or self.text[self.pos : self.pos + 1]
        if not token:
            raise self.error("'\\' must be followed by a character")
        named = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r"}
        if len(token) == 1:
            if token in _DELIMITERS:
                self.pos += 1
            return token
        if token in named:
            return named[token]
        raise self.error(f"unknown character \\{token}")

    def _token(self) -> str:
        text, start = self.text, self.pos
        end = start
        while end < len(text) and text[end] not in _DELIMITERS:
            end += 1
        self.pos = end
        return text[start:end]

    def _atom(self, token: str) -> Any:
        if token == "nil":
            return None
        if token == "true":
            return True
        if token == "false":
            return False
        if token.startswith(":"):
            if len(token) == 1:
                raise self.error("empty keyword")
            return Keyword(token[1:])
        if _INT.match(token):
            return int(token.rstrip("N"))
        if _FLOAT.match(token):
            return float(token.rstrip("M"))
        if token[0].isdigit():
            raise self.error(f"bad number {token!r}")
        return Symbol(token)
