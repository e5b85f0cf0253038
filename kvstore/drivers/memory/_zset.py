"""The sorted set: a member -> score dict plus a :class:`SortedList` of ``(score, member)``.

Ordering is Redis's: by score, then by member bytes. ``-0.0 == 0.0`` in both Python and C,
so a member scored ``-0`` sorts among the zeros as in Redis.

One encoding detail of Redis shows through its replies and is mirrored here: a small
sorted set (at most 128 members of at most 64 bytes, Redis's default
``zset-max-listpack-*``) is stored as a *listpack*, which keeps scores as text or integers
and so turns ``-0`` into ``0``. A larger one is a skiplist of doubles that keeps ``-0``.
Like Redis 7.0, a set converts to the skiplist form once and never back; :attr:`ZSet.compact`
tracks which form Redis would be using.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Final

from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._parse import LexBound, ScoreRange
from kvstore.drivers.memory._sortedlist import SortedList

__all__ = ["ADDED", "NOP", "UPDATED", "ZSet"]

#: Outcomes of :meth:`ZSet.add`, as Redis's ``ZADD_OUT_*`` flags.
ADDED: Final = 1
UPDATED: Final = 2
NOP: Final = 4

# Redis's defaults for zset-max-listpack-entries and zset-max-listpack-value.
_LISTPACK_MAX_ENTRIES = 128
_LISTPACK_MAX_VALUE = 64

_score: Callable[[tuple[float, bytes]], float] = itemgetter(0)
_member: Callable[[tuple[float, bytes]], bytes] = itemgetter(1)

Entry = tuple[float, bytes]


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
        order: ``(score, member)`` pairs in Redis order.
        compact: Whether Redis would still hold this set as a listpack.
    """

    __slots__ = ("compact", "order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: SortedList[Entry] = SortedList()
        self.compact = True

    def __len__(self) -> int:
        return len(self.scores)

    def add(
        self,
        score: float,
        member: bytes,
        *,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
        incr: bool = False,
    ) -> tuple[int, float]:
        """Redis's ``zsetAdd``: add or update one member.

        Returns:
            The outcome (0, :data:`ADDED`, :data:`UPDATED` or :data:`NOP`) and the new score
            as Redis replies it (which, for a listpack, may differ from the stored ``-0``).

        Raises:
            ReplyError: an increment produced NaN (``inf + -inf``).
        """
        current = self.scores.get(member)
        if current is not None:
            if nx:
                return NOP, score
            if incr:
                score += current
                if score != score:
                    raise ReplyError("ERR resulting score is not a number (NaN)")
            if (lt and score >= current) or (gt and score <= current):
                return NOP, score
            if score == current:
                return 0, score
            self.order.remove((current, member))
            self._insert(score, member)
            return UPDATED, score
        if xx:
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
        self.order.add((score, member))

    def remove(self, member: bytes) -> bool:
        """Remove ``member``; whether it was there."""
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove((score, member))
        return True

    def rank(self, member: bytes) -> int | None:
        """The 0-based position of ``member`` in ascending order, or None."""
        score = self.scores.get(member)
        if score is None:
            return None
        return self.order.bisect_left((score, member))

    def delete_positions(self, start: int, stop: int) -> int:
        """Remove the members at positions ``start`` to ``stop - 1``; how many went."""
        doomed = self.order.slice(start, stop)
        scores = self.scores
        for _, member in doomed:
            del scores[member]
        self.order.delete_range(start, stop)
        return len(doomed)

    def score_span(self, spec: ScoreRange) -> tuple[int, int]:
        """The positions ``[start, stop)`` of the members whose score is in ``spec``."""
        if spec.is_empty():
            return 0, 0
        order = self.order
        if spec.minex:
            start = order.bisect_right(spec.min, key=_score)
        else:
            start = order.bisect_left(spec.min, key=_score)
        if spec.maxex:
            stop = order.bisect_left(spec.max, key=_score)
        else:
            stop = order.bisect_right(spec.max, key=_score)
        return start, max(start, stop)

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
        if order[0][0] == order[-1][0]:  # a single score: members are sorted
            if low.infinity:
                start = 0 if low.infinity < 0 else size
            elif low.exclusive:
                start = order.bisect_right(low.value, key=_member)
            else:
                start = order.bisect_left(low.value, key=_member)
            if high.infinity:
                stop = size if high.infinity > 0 else 0
            elif high.exclusive:
                stop = order.bisect_left(high.value, key=_member)
            else:
                stop = order.bisect_right(high.value, key=_member)
            return start, max(start, stop)
        members = [member for _, member in order]
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
