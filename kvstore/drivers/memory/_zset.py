"""The sorted set: a member -> score dict plus a :class:`SortedList` of order keys.

Redis orders members by score, then by member bytes. Each member gets an *order key*: its
score packed into 8 bytes that sort like the doubles do, followed by the member itself.
Plain ``bytes`` comparison of order keys is then exactly Redis's order, and it is much
cheaper than comparing ``(score, member)`` tuples, which keeps a million-member set quick
to build. ``-0.0`` is packed as ``0.0``, since Redis compares them as equal.

One encoding detail of Redis shows through its replies and is mirrored here: a small
sorted set (at most 128 members of at most 64 bytes, Redis's default
``zset-max-listpack-*``) is stored as a *listpack*, which keeps scores as text or integers
and so turns ``-0`` into ``0``. A larger one is a skiplist of doubles that keeps ``-0``.
Like Redis 7.0, a set converts to the skiplist form once and never back; :attr:`ZSet.compact`
tracks which form Redis would be using.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Final, cast

from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._sortedlist import SortedList

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply
    from kvstore.drivers.memory._parse import LexBound, ScoreRange

__all__ = ["ADDED", "GT", "INCR", "LT", "NOP", "NX", "UPDATED", "XX", "ZSet", "order_key"]

#: Options of :meth:`ZSet.add`, as Redis's ``ZADD_IN_*`` flags.
INCR: Final = 1
NX: Final = 2
XX: Final = 4
GT: Final = 8
LT: Final = 16

#: Outcomes of :meth:`ZSet.add`, as Redis's ``ZADD_OUT_*`` flags.
ADDED: Final = 1
UPDATED: Final = 2
NOP: Final = 4

# Redis's defaults for zset-max-listpack-entries and zset-max-listpack-value.
_LISTPACK_MAX_ENTRIES = 128
_LISTPACK_MAX_VALUE = 64

_DOUBLE = struct.Struct(">d")
_UINT64 = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1


def _score_bits(score: float) -> int:
    """``score`` as an unsigned 64-bit integer with the same order as the double.

    IEEE 754 bits sort like the values for positive numbers; flipping the sign bit puts
    them above the negatives, and inverting a negative number's bits reverses their order.
    """
    bits: int = _UINT64.unpack(_DOUBLE.pack(score + 0.0))[0]  # + 0.0 turns -0.0 into 0.0
    return bits ^ _ALL if bits & _SIGN else bits | _SIGN


def order_key(score: float, member: bytes) -> bytes:
    """The key that sorts ``member`` where Redis puts it: by score, then by member."""
    # _score_bits inlined: this runs for every member added.
    (bits,) = _UINT64.unpack(_DOUBLE.pack(score + 0.0))
    return _UINT64.pack(bits ^ _ALL if bits & _SIGN else bits | _SIGN) + member


def _prefix(score: float) -> bytes:
    """The smallest order key of the members with ``score``."""
    return _UINT64.pack(_score_bits(score))


def _prefix_after(score: float) -> bytes:
    """The smallest order key above every key with ``score``."""
    return _UINT64.pack(_score_bits(score) + 1)


def _gte_min(member: bytes, low: LexBound) -> bool:
    if low.infinity:
        return low.infinity < 0
    return member > low.value if low.exclusive else member >= low.value


def _lte_max(member: bytes, high: LexBound) -> bool:
    if high.infinity:
        return high.infinity > 0
    return member < high.value if high.exclusive else member <= high.value


def _lex_range_is_empty(low: LexBound, high: LexBound) -> bool:
    # Redis's sdscmplex: "-" and "+" are shared objects, so a bound compares equal only to
    # the very same infinity (and then the range is empty since infinities are exclusive).
    if low.infinity and low.infinity == high.infinity:
        return True
    if low.infinity < 0 or high.infinity > 0:
        return False
    if low.infinity > 0 or high.infinity < 0:
        return True
    return low.value > high.value or (low.value == high.value and (low.exclusive or high.exclusive))


class ZSet:
    """A Redis sorted set.

    Attributes:
        scores: Member -> score.
        order: The members' order keys (see :func:`order_key`), in Redis order, each with
            its member as the value.
        compact: Whether Redis would still hold this set as a listpack.
    """

    __slots__ = ("compact", "order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: SortedList[bytes, bytes] = SortedList()
        self.compact = True

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, score: float, member: bytes, flags: int = 0) -> tuple[int, float]:
        """Redis's ``zsetAdd``: add or update one member.

        Args:
            score: The score, or the increment with :data:`INCR`.
            member: The member.
            flags: :data:`INCR`, :data:`NX`, :data:`XX`, :data:`GT` and :data:`LT`, or'ed.

        Returns:
            The outcome (0, :data:`ADDED`, :data:`UPDATED` or :data:`NOP`) and the new score
            as Redis replies it (which, for a listpack, may differ from the stored ``-0``).

        Raises:
            ReplyError: an increment produced NaN (``inf + -inf``).
        """
        current = self.scores.get(member)
        if current is not None:
            if flags & NX:
                return NOP, score
            if flags & INCR:
                score += current
                if math.isnan(score):
                    raise ReplyError("ERR resulting score is not a number (NaN)")
            if (flags & LT and score >= current) or (flags & GT and score <= current):
                return NOP, score
            if score == current:  # -0.0 == 0.0 too: Redis leaves the member alone
                return 0, score
            self.order.remove(order_key(current, member))
            self._insert(score, member)
            return UPDATED, score
        if flags & XX:
            return NOP, score
        if self.compact and (
            len(self.scores) >= _LISTPACK_MAX_ENTRIES or len(member) > _LISTPACK_MAX_VALUE
        ):
            self.compact = False
        self._insert(score, member)
        return ADDED, score

    def _insert(self, score: float, member: bytes) -> None:
        if self.compact:
            score += 0.0  # a listpack stores -0 as the integer 0
        self.scores[member] = score
        self.order.add(order_key(score, member), member)

    def remove(self, member: bytes) -> bool:
        """Remove ``member``; whether it was there."""
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove(order_key(score, member))
        return True

    def rank(self, member: bytes) -> int | None:
        """The 0-based position of ``member`` in ascending order, or None."""
        score = self.scores.get(member)
        if score is None:
            return None
        return self.order.bisect_left(order_key(score, member))

    def entries(self, start: int, stop: int) -> list[tuple[bytes, float]]:
        """``(member, score)`` of the members at positions ``start`` to ``stop - 1``."""
        scores = self.scores
        return [(member, scores[member]) for member in self.order.values(start, stop)]

    def members(self, start: int, stop: int) -> list[Reply]:
        """The members at positions ``start`` to ``stop - 1``."""
        return cast("list[Reply]", self.order.values(start, stop))

    def delete_positions(self, start: int, stop: int) -> int:
        """Remove the members at positions ``start`` to ``stop - 1``; how many went."""
        doomed = self.order.values(start, stop)
        scores = self.scores
        for member in doomed:
            del scores[member]
        self.order.delete_range(start, stop)
        return len(doomed)

    def score_span(self, spec: ScoreRange) -> tuple[int, int]:
        """The positions ``[start, stop)`` of the members whose score is in ``spec``."""
        if spec.is_empty():
            return 0, 0
        order = self.order
        low = _prefix_after(spec.min) if spec.minex else _prefix(spec.min)
        high = _prefix(spec.max) if spec.maxex else _prefix_after(spec.max)
        start = order.bisect_left(low)
        return start, max(start, order.bisect_left(high))

    def lex_walk(
        self, low: LexBound, high: LexBound, *, reverse: bool, offset: int
    ) -> tuple[int, int]:
        """The positions ``[start, stop)`` a BYLEX query returns after ``LIMIT offset``.

        Redis steps over ``offset`` members from the first one in range without checking
        them, then takes members while they are within the far bound. With one score that
        is the span shifted by ``offset``; with mixed scores (see :meth:`lex_span`) the step
        may leave the span and land on members in range again, which Redis then returns.
        """
        first, stop = self.lex_span(low, high, reverse=reverse)
        order = self.order
        size = len(order)
        if first == stop or stop - first > offset or order.key_at(0)[:8] == order.key_at(-1)[:8]:
            if reverse:
                return first, max(first, stop - offset)
            return min(stop, first + offset), stop
        members = order.values(0, size)
        if reverse:
            at = stop - 1 - offset
            begin = at
            while begin >= 0 and _gte_min(members[begin], low):
                begin -= 1
            return (begin + 1, at + 1) if at >= 0 else (0, 0)
        at = first + offset
        end = at
        while end < size and _lte_max(members[end], high):
            end += 1
        return (at, end) if at < size else (0, 0)

    def lex_span(self, low: LexBound, high: LexBound, *, reverse: bool) -> tuple[int, int]:
        """The positions ``[start, stop)`` of the members in the lexicographic range.

        Redis defines BYLEX only for members that all have the same score, and then it is
        two bisections. With mixed scores Redis's answer depends on its encoding; this
        mirrors its listpack walk (which is what small sets use): start at the first member
        in range when walking from the front (or back, for ``reverse``) and stop at the
        first member out of range.
        """
        order = self.order
        size = len(order)
        if not size or _lex_range_is_empty(low, high):
            return 0, 0
        prefix = order.key_at(0)[:8]
        if prefix == order.key_at(-1)[:8]:  # a single score: members are sorted
            if low.infinity:
                start = 0 if low.infinity < 0 else size
            elif low.exclusive:
                start = order.bisect_right(prefix + low.value)
            else:
                start = order.bisect_left(prefix + low.value)
            if high.infinity:
                stop = size if high.infinity > 0 else 0
            elif high.exclusive:
                stop = order.bisect_left(prefix + high.value)
            else:
                stop = order.bisect_right(prefix + high.value)
            return start, max(start, stop)
        members = order.values(0, size)
        if not _gte_min(members[-1], low) or not _lte_max(members[0], high):
            return 0, 0
        if reverse:
            last = next(i for i in range(size - 1, -1, -1) if _lte_max(members[i], high))
            if not _gte_min(members[last], low):
                return 0, 0
            first = last
            while first > 0 and _gte_min(members[first - 1], low):
                first -= 1
            return first, last + 1
        first = next(i for i in range(size) if _gte_min(members[i], low))
        if not _lte_max(members[first], high):
            return 0, 0
        stop = first + 1
        while stop < size and _lte_max(members[stop], high):
            stop += 1
        return first, stop
