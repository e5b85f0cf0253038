"""Checks of caller input that every domain shares: ids, text, lists, paging, versions.

Each check returns the value it accepts (so a call site stays one line) or raises
:class:`~kvstore.errors.ValidationError` naming the argument. Nothing reaches a driver
unchecked, so a bad argument never surfaces as a ``TypeError``, a ``UnicodeEncodeError``
or a Redis error, and never after part of a call was written.

Values stored as JSON (record attributes of type ``Any``, snapshots, metadata) are checked
by :mod:`kvstore.codec` as they are encoded; this module checks the arguments around them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import msgspec

from kvstore.errors import ValidationError

__all__ = [
    "MAX_INDEX",
    "check_count",
    "check_id",
    "check_ids",
    "check_items",
    "check_metadata",
    "check_optional_id",
    "check_page",
    "check_stream_cursor",
    "check_text",
    "check_ttl",
    "check_version",
    "offset_cursor",
    "utf8",
]

#: The largest rank, offset or version kvstore sends: integers up to 2**53 - 1 are exact
#: in the doubles of Lua and Redis scores, and every command accepts them.
MAX_INDEX = 2**53 - 1
#: Largest page, chunk and ``last`` size.
MAX_PAGE_SIZE = 1000

# A lone surrogate (U+D800 to U+DFFF) is a str but not text: UTF-8 cannot encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A stream entry id as Redis spells it; each part must also fit in 64 bits.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
# Not lists of items, though Python iterates them: a string, bytes, a mapping, a record.
_NOT_A_LIST = (str, bytes, bytearray, memoryview, Mapping, msgspec.Struct)


def utf8(text: str, field: str | None = None) -> bytes:
    """``text`` as UTF-8; a lone surrogate raises ValidationError (naming ``field``)."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise _surrogate_error(text, field, exc.start) from None


def check_text(value: Any, name: str) -> str:
    """Return ``value`` if it is a string that UTF-8 can encode.

    Raises:
        ValidationError: naming ``name``, for a non-string or a lone surrogate.
    """
    if not isinstance(value, str):
        raise ValidationError(f"expected a string, got {type(value).__name__}", field=name)
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            raise _surrogate_error(value, name, found.start())
    return value


def check_id(value: Any, name: str) -> str:
    """Return ``value`` if it is a usable id: a non-empty string that UTF-8 can encode.

    Raises:
        ValidationError: naming ``name``.
    """
    if not isinstance(value, str):
        raise ValidationError(f"expected a string id, got {type(value).__name__}", field=name)
    if not value:
        raise ValidationError("ids must not be empty", field=name)
    return check_text(value, name)


def check_optional_id(value: Any, name: str) -> str | None:
    """Like :func:`check_id`, but None passes (meaning "not given")."""
    return None if value is None else check_id(value, name)


def check_items(values: Any, name: str) -> list[Any]:
    """``values`` as a list, if it is a collection of items (a list, tuple, set, generator).

    A string, bytes, a mapping or a single record is refused, although Python can iterate
    it: ``delete_messages("ab")`` must not mean the messages ``"a"`` and ``"b"``.

    Raises:
        ValidationError: naming ``name``.
    """
    if isinstance(values, _NOT_A_LIST) or not isinstance(values, Iterable):
        raise ValidationError(
            f"expected a list, got {type(values).__name__}"
            + (
                " (wrap a single item in a list)"
                if isinstance(values, str | msgspec.Struct)
                else ""
            ),
            field=name,
        )
    return list(values)


def check_ids(values: Any, name: str) -> list[str]:
    """A list of ids (see :func:`check_items` and :func:`check_id`).

    Raises:
        ValidationError: naming ``name``; the message gives the position of a bad id.
    """
    ids = check_items(values, name)
    for i, value in enumerate(ids):
        try:
            check_id(value, name)
        except ValidationError as exc:
            message = str(exc).removeprefix(f"{name}: ")
            raise ValidationError(f"{message} (item {i})", field=name) from None
    return ids


def check_metadata(value: Any, name: str = "metadata") -> dict[str, Any]:
    """A copy of ``value`` if it is a mapping with string keys that UTF-8 can encode.

    Its values are checked when they are encoded (:meth:`kvstore.codec.Format.encode_value`).
    """
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"expected a mapping with string keys, got {type(value).__name__}", field=name
        )
    for key in value:
        check_text(key, name)
    return dict(value)


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """An integer (not a bool) from ``low`` to ``high``."""
    if not _is_int(value) or not low <= value <= high:
        raise ValidationError(f"expected an integer from {low} to {high}", field=name)
    return int(value)


def check_page(page: Any, per_page: Any) -> None:
    """Validate paging arguments: ``page`` from 0, ``per_page`` from 1 to 1000."""
    check_int(page, "page", 0, MAX_INDEX // MAX_PAGE_SIZE)
    check_int(per_page, "per_page", 1, MAX_PAGE_SIZE)


def check_count(count: Any, name: str = "count") -> int:
    """Validate the size of an export chunk (1 to 1000, like ``per_page``)."""
    return check_int(count, name, 1, MAX_PAGE_SIZE)


def check_version(value: Any, name: str = "expected_version") -> int | None:
    """A version for compare-and-set: None (not given) or an integer from 0."""
    return None if value is None else check_int(value, name, 0, MAX_INDEX)


def check_ttl(value: Any, name: str = "ttl") -> int:
    """A lease's length: a ``timedelta`` of at least a millisecond, as whole milliseconds
    (what ``PX`` takes; anything finer is dropped)."""
    if not isinstance(value, timedelta) or not 1 <= value // timedelta(milliseconds=1) <= (
        MAX_INDEX
    ):
        raise ValidationError("expected a timedelta of at least 1 millisecond", field=name)
    return value // timedelta(milliseconds=1)


def offset_cursor(cursor: Any) -> int:
    """The rank a walk over a sorted set resumes at: its cursor is that rank, in decimal."""
    if cursor is None:
        return 0
    if (
        not isinstance(cursor, str)
        or not cursor.isascii()
        or not cursor.isdigit()
        or int(cursor) > MAX_INDEX
    ):
        raise ValidationError("expected a cursor returned by the same method", field="cursor")
    return int(cursor)


def check_stream_cursor(cursor: Any) -> str:
    """A cursor of a walk through a stream: a stream entry id (``<ms>-<seq>``)."""
    match = _STREAM_ID.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None or any(int(part) >= 2**64 for part in match.groups()):
        raise ValidationError("expected a cursor returned by the same method", field="cursor")
    return str(cursor)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _surrogate_error(text: str, field: str | None, at: int) -> ValidationError:
    return ValidationError(
        f"holds a lone surrogate (U+{ord(text[at]):04X} at position {at}), which is not "
        "text: UTF-8 cannot encode it",
        field=field,
    )
