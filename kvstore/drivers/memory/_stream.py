"""The stream: entries ordered by id, and Redis's stream id grammar.

An id ``<ms>-<seq>`` (two unsigned 64-bit numbers) is packed into one Python int,
``ms << 64 | seq``, so ids compare, sort and bisect as plain ints, and "the next id"
(``seq + 1``, carrying into ``ms``) is ``+ 1``, exactly Redis's ``streamIncrID``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._parse import UINT64_MAX, c_string, string2ull
from kvstore.drivers.memory._sortedlist import SortedList

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply

__all__ = ["MAX_ID", "Stream", "format_id", "parse_id", "parse_interval_id"]

#: The largest id, ``18446744073709551615-18446744073709551615``.
MAX_ID = (UINT64_MAX << 64) | UINT64_MAX

INVALID_ID = "ERR Invalid stream ID specified as stream command argument"


def format_id(packed: int) -> bytes:
    """``b"<ms>-<seq>"``."""
    return b"%d-%d" % (packed >> 64, packed & UINT64_MAX)


def parse_id(
    raw: bytes, *, missing_seq: int = 0, strict: bool = False, auto_seq: bool = False
) -> tuple[int, bool]:
    """Redis's ``streamGenericParseIDOrReply``.

    Args:
        raw: The argument.
        missing_seq: The sequence of an id given as ``<ms>`` alone.
        strict: Refuse the ``-`` and ``+`` shorthands.
        auto_seq: Accept ``<ms>-*`` (XADD), returned with sequence 0 and
            ``seq_given=False``.

    Returns:
        The packed id and whether its sequence was given.

    Raises:
        ReplyError: ``ERR Invalid stream ID specified as stream command argument``.
    """
    if len(raw) > 127:  # Redis copies the id into a 128-byte buffer first
        raise ReplyError(INVALID_ID)
    text = c_string(raw)
    if text in {b"-", b"+"}:
        if strict:
            raise ReplyError(INVALID_ID)
        return (0 if text == b"-" else MAX_ID), True
    ms_text, dash, seq_text = text.partition(b"-")
    ms = string2ull(ms_text)
    if ms is None:
        raise ReplyError(INVALID_ID)
    if not dash:
        return ms << 64 | missing_seq, True
    if auto_seq and seq_text == b"*":
        return ms << 64, False
    seq = string2ull(seq_text)
    if seq is None:
        raise ReplyError(INVALID_ID)
    return ms << 64 | seq, True


def parse_interval_id(raw: bytes, *, missing_seq: int) -> tuple[int, bool]:
    """Redis's ``streamParseIntervalIDOrReply``: an XRANGE bound, ``(`` meaning exclusive.

    Returns:
        The packed id and whether it is exclusive.
    """
    if len(raw) > 1 and raw[:1] == b"(":
        return parse_id(raw[1:], missing_seq=missing_seq, strict=True)[0], True
    return parse_id(raw, missing_seq=missing_seq)[0], False


class Stream:
    """A Redis stream (entries only: consumer groups are not supported).

    Attributes:
        entries: Packed id -> the flat ``(field, value, ...)`` given to XADD, in id order.
        ids: The packed ids in order, each with its fields as the value.
        last_id: The largest id ever added. Deleting entries never lowers it, so XADD
            keeps refusing ids at or below it, as Redis does.
    """

    __slots__ = ("entries", "ids", "last_id")

    def __init__(self) -> None:
        self.entries: dict[int, tuple[bytes, ...]] = {}
        self.ids: SortedList[int, tuple[bytes, ...]] = SortedList()
        self.last_id = 0

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, packed: int, fields: tuple[bytes, ...]) -> None:
        """Add an entry; ``packed`` must be above :attr:`last_id`.

        ``fields`` is a tuple: tuples of bytes drop out of the garbage collector's sight,
        which keeps collections quick in a process holding millions of entries.
        """
        self.ids.add(packed, fields)
        self.entries[packed] = fields
        self.last_id = packed

    def delete(self, packed: int) -> bool:
        """Delete one entry; whether it existed."""
        if self.entries.pop(packed, None) is None:
            return False
        self.ids.remove(packed)
        return True

    def _delete_oldest(self, count: int) -> int:
        doomed = self.ids.keys(0, count)
        for packed in doomed:
            del self.entries[packed]
        self.ids.delete_range(0, count)
        return len(doomed)

    def trim_maxlen(self, maxlen: int, limit: int) -> int:
        """Delete the oldest entries beyond ``maxlen`` (at most ``limit`` of them if not 0)."""
        excess = len(self.entries) - maxlen
        if limit:
            excess = min(excess, limit)
        return self._delete_oldest(excess) if excess > 0 else 0

    def trim_minid(self, minid: int, limit: int) -> int:
        """Delete the entries below ``minid`` (at most ``limit`` of them if not 0)."""
        excess = self.ids.bisect_left(minid)
        if limit:
            excess = min(excess, limit)
        return self._delete_oldest(excess) if excess > 0 else 0

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The positions ``[first, stop)`` of the ids from ``start`` to ``end`` inclusive."""
        if start > end:
            return 0, 0
        first = self.ids.bisect_left(start)
        return first, max(first, self.ids.bisect_right(end))

    def replies(self, first: int, stop: int, *, reverse: bool) -> list[Reply]:
        """The entries at positions ``[first, stop)`` as XRANGE replies them:
        ``[id, [field, value, ...]]`` each (copies: replies never alias the store)."""
        ids, fields = self.ids.keys(first, stop), self.ids.values(first, stop)
        if reverse:
            ids.reverse()
            fields.reverse()
        return [[format_id(packed), list(f)] for packed, f in zip(ids, fields, strict=True)]
