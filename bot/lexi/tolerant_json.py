"""Decoding a JSON answer so that one unreadable value loses only itself, not the whole answer.

Python's decoder gives up on a whole document when any part is nested deeper than its recursion limit
(or holds an integer with too many digits). LeadLex's encoder has no such limit, so one task with absurd
metadata would otherwise hide every other task in the list. When the fast path fails, the document is
split into its members with a scanner that never recurses, and each member is decoded on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SPECIAL = re.compile(r'[\[\]{}"]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR_END = re.compile(r"[,\]}\s]")
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Unreadable:
    """Stands for a value that could not be decoded (too deep, too long a number); `size` is its length."""

    reason: str
    size: int


def loads(text: str, levels: int = 5) -> Any:
    """Decode `text`; on failure, decode the top `levels` levels member by member.

    Raises ValueError only when the document itself is not JSON (a truncated or garbled answer).
    """
    try:
        return json.loads(text)
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:
        reason = str(exc)[:100]
    start = _skip(text, 0)
    if levels <= 0 or _at(text, start) not in ("[", "{"):
        raise ValueError(reason)
    if _skip(text, _value_end(text, start)) != len(text):
        raise ValueError("extra data after the JSON value")
    return _members(text, start, levels)


def _members(text: str, start: int, levels: int) -> Any:
    """The container at `start`, with each member decoded separately (recursing at most `levels` deep)."""
    is_object = text[start] == "{"
    closing = "}" if is_object else "]"
    result: Any = {} if is_object else []
    i = _skip(text, start + 1)
    if _at(text, i) == closing:
        return result
    while True:
        key = None
        if is_object:
            if _at(text, i) != '"':
                raise ValueError("an object key is not a string")
            key_end = _string_end(text, i)
            key = json.loads(text[i:key_end])
            i = _skip(text, key_end)
            if _at(text, i) != ":":
                raise ValueError("missing ':' after an object key")
            i = _skip(text, i + 1)
        end = _value_end(text, i)
        value = _member(text, i, end, levels - 1)
        if is_object:
            result[key] = value
        else:
            result.append(value)
        i = _skip(text, end)
        if _at(text, i) == ",":
            i = _skip(text, i + 1)
        elif _at(text, i) == closing:
            return result
        else:
            raise ValueError("missing ',' between members")


def _member(text: str, start: int, end: int, levels: int) -> Any:
    """Decode one member; a failing container is split further while levels remain, else Unreadable."""
    try:
        return json.loads(text[start:end])
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:
        reason = str(exc)[:100]
    if levels > 0 and text[start] in "[{":
        return _members(text, start, levels)
    return Unreadable(reason, end - start)


def _at(text: str, i: int) -> str:
    """The character at `i`, or "" past the end."""
    return text[i] if i < len(text) else ""


def _skip(text: str, i: int) -> int:
    """The index of the first non-space character at or after `i`."""
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # \s* always matches


def _string_end(text: str, start: int) -> int:
    """The index just past the string literal starting at `start`."""
    match = _STRING.match(text, start)
    if match is None:
        raise ValueError("unterminated string")
    return match.end()


def _value_end(text: str, start: int) -> int:
    """The index just past the JSON value starting at `start`, found by counting brackets (no recursion)."""
    first = _at(text, start)
    if first == '"':
        return _string_end(text, start)
    if first not in ("[", "{"):
        match = _SCALAR_END.search(text, start)
        end = match.start() if match else len(text)
        if end == start:
            raise ValueError("a value is missing")
        return end
    depth = 0
    i = start
    while True:
        match = _SPECIAL.search(text, i)
        if match is None:
            raise ValueError("unterminated array or object")
        char, i = match.group(), match.start()
        if char == '"':
            i = _string_end(text, i)
            continue
        depth += 1 if char in "[{" else -1
        i += 1
        if depth == 0:
            return i
