"""A sorted list with O(log n) insert, delete, search and positional access.

Sorted sets and streams need what Redis's skiplist gives: insert and delete by value, the
rank of a value, the value at a rank, and slices by rank, all in logarithmic time. A plain
sorted Python list has O(n) inserts; a skiplist in pure Python is slow. This is the design
of ``sortedcontainers`` cut down to what kvstore needs:

* the values live in sublists of bounded length (``_LOAD`` to ``2 * _LOAD``), each sorted,
  and every value of a sublist is below every value of the next one;
* ``_maxes[i]`` is the largest value of sublist ``i``, so one bisect over ``_maxes`` finds
  the sublist of any value and a second bisect finds its offset;
* a Fenwick tree over the sublists' lengths turns a (sublist, offset) pair into a global
  position and back in O(log m). Changing one sublist's length updates it in O(log m);
  splitting, merging or dropping a sublist marks it stale, and the next positional query
  rebuilds it in O(m), which is amortised over the ``_LOAD`` operations between changes.

Values must be mutually comparable and unique (callers store ``(score, member)`` tuples
or packed stream ids).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["SortedList"]

T = TypeVar("T")

#: Target sublist length. Sublists split above twice this and merge below a quarter of it.
_LOAD = 1000


class SortedList(Generic[T]):
    """Unique values kept in ascending order, with positional access."""

    __slots__ = ("_len", "_lists", "_maxes", "_tree")

    def __init__(self, values: Iterable[T] = ()) -> None:
        ordered = sorted(values)  # type: ignore[type-var]
        self._lists: list[list[T]] = [ordered[i : i + _LOAD] for i in range(0, len(ordered), _LOAD)]
        self._maxes: list[T] = [sub[-1] for sub in self._lists]
        self._len = len(ordered)
        self._tree: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[T]:
        for sub in self._lists:
            yield from sub

    def __reversed__(self) -> Iterator[T]:
        for sub in reversed(self._lists):
            yield from reversed(sub)

    def __repr__(self) -> str:
        return f"SortedList({list(self)!r})"

    # --- the Fenwick tree of sublist lengths ------------------------------------------

    def _build_tree(self) -> list[int]:
        tree = [0]
        tree.extend(len(sub) for sub in self._lists)
        size = len(tree) - 1
        for i in range(1, size + 1):
            parent = i + (i & -i)
            if parent <= size:
                tree[parent] += tree[i]
        self._tree = tree
        return tree

    def _grow(self, i: int, delta: int) -> None:
        """Record that sublist ``i`` gained ``delta`` values (a stale tree needs nothing)."""
        tree = self._tree
        if tree is None:
            return
        size = len(tree) - 1
        i += 1
        while i <= size:
            tree[i] += delta
            i += i & -i

    def _offset(self, i: int) -> int:
        """The global position of the first value of sublist ``i``."""
        if i == 0:
            return 0
        tree = self._tree or self._build_tree()
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    def _locate(self, pos: int) -> tuple[int, int]:
        """The (sublist, offset) of global position ``pos``; ``pos == len`` is just past the end."""
        lists = self._lists
        if len(lists) == 1 or pos == 0:
            return 0, pos
        if pos >= self._len:
            return len(lists) - 1, len(lists[-1]) + pos - self._len
        tree = self._tree or self._build_tree()
        size = len(tree) - 1
        i = 0
        step = 1 << (size.bit_length() - 1)
        # Binary lifting: the largest i whose prefix of lengths is <= pos.
        while step:
            nxt = i + step
            if nxt <= size and tree[nxt] <= pos:
                i = nxt
                pos -= tree[nxt]
            step >>= 1
        return i, pos

    # --- structure maintenance ----------------------------------------------------------

    def _split(self, i: int) -> None:
        sub = self._lists[i]
        half = sub[_LOAD:]
        del sub[_LOAD:]
        self._lists.insert(i + 1, half)
        self._maxes[i] = sub[-1]
        self._maxes.insert(i + 1, half[-1])
        self._tree = None

    def _repair(self, i: int) -> None:
        """Restore the invariants of sublist ``i`` after values were deleted from it."""
        lists, maxes = self._lists, self._maxes
        sub = lists[i]
        if not sub:
            del lists[i], maxes[i]
            self._tree = None
            return
        maxes[i] = sub[-1]
        if len(sub) >= _LOAD // 4 or len(lists) == 1:
            return
        # Too small: fold it into a neighbour, then split that if it grew too big.
        j = i - 1 if i > 0 else i
        lists[j].extend(lists[j + 1])
        maxes[j] = lists[j][-1]
        del lists[j + 1], maxes[j + 1]
        self._tree = None
        if len(lists[j]) > 2 * _LOAD:
            self._split(j)

    # --- mutation -----------------------------------------------------------------------

    def add(self, value: T) -> None:
        """Insert ``value``, which must not be present already."""
        lists, maxes = self._lists, self._maxes
        self._len += 1
        if not maxes:
            lists.append([value])
            maxes.append(value)
            self._tree = None
            return
        i = bisect_right(maxes, value)  # type: ignore[type-var]
        if i == len(maxes):
            i -= 1
            lists[i].append(value)
            maxes[i] = value
        else:
            insort(lists[i], value)  # type: ignore[type-var]
        if len(lists[i]) > 2 * _LOAD:
            self._split(i)
        else:
            self._grow(i, 1)

    def remove(self, value: T) -> None:
        """Remove ``value``, which must be present.

        Raises:
            ValueError: ``value`` is not in the list.
        """
        maxes = self._maxes
        i = bisect_left(maxes, value)  # type: ignore[type-var]
        if i < len(maxes):
            sub = self._lists[i]
            j = bisect_left(sub, value)  # type: ignore[type-var]
            if sub[j] == value:
                del sub[j]
                self._len -= 1
                self._grow(i, -1)
                if j == len(sub) or len(sub) < _LOAD // 4:
                    self._repair(i)
                return
        raise ValueError(f"{value!r} is not in the list")

    def delete_range(self, start: int, stop: int) -> None:
        """Delete the values at positions ``start`` to ``stop - 1`` (clamped to the list)."""
        start, stop = max(start, 0), min(stop, self._len)
        if start >= stop:
            return
        i, j = self._locate(start)
        k, m = self._locate(stop)
        lists = self._lists
        if i == k:
            del lists[i][j:m]
            self._len -= stop - start
            self._grow(i, start - stop)
            self._repair(i)
            return
        del lists[k][:m]
        del lists[i][j:]
        del lists[i + 1 : k], self._maxes[i + 1 : k]
        self._len -= stop - start
        self._tree = None
        self._repair(i + 1)  # the old sublist k, now right after i
        self._repair(i)

    # --- queries ------------------------------------------------------------------------

    def bisect_left(self, value: Any, key: Callable[[T], Any] | None = None) -> int:
        """The position of the first value ``>= value`` (compared through ``key`` if given)."""
        maxes = self._maxes
        i = bisect_left(maxes, value, key=key)
        if i == len(maxes):
            return self._len
        return self._offset(i) + bisect_left(self._lists[i], value, key=key)

    def bisect_right(self, value: Any, key: Callable[[T], Any] | None = None) -> int:
        """The position of the first value ``> value`` (compared through ``key`` if given)."""
        maxes = self._maxes
        i = bisect_right(maxes, value, key=key)
        if i == len(maxes):
            return self._len
        return self._offset(i) + bisect_right(self._lists[i], value, key=key)

    def __getitem__(self, pos: int) -> T:
        if pos < 0:
            pos += self._len
        if not 0 <= pos < self._len:
            raise IndexError("SortedList index out of range")
        i, j = self._locate(pos)
        return self._lists[i][j]

    def slice(self, start: int, stop: int) -> list[T]:
        """The values at positions ``start`` to ``stop - 1`` (clamped to the list)."""
        start, stop = max(start, 0), min(stop, self._len)
        if start >= stop:
            return []
        i, j = self._locate(start)
        lists = self._lists
        wanted = stop - start
        out = lists[i][j : j + wanted]
        while len(out) < wanted:
            i += 1
            out.extend(lists[i][: wanted - len(out)])
        return out

    def check(self) -> None:
        """Assert every internal invariant (for tests)."""
        flat = list(self)
        assert flat == sorted(flat), "values out of order"  # type: ignore[type-var]
        assert len(flat) == self._len, "length out of sync"
        assert all(self._lists), "empty sublist"
        assert self._maxes == [sub[-1] for sub in self._lists], "maxes out of sync"
        assert all(len(sub) <= 2 * _LOAD for sub in self._lists), "sublist too long"
        for i in range(len(self._lists)):
            assert self._offset(i) == sum(len(sub) for sub in self._lists[:i]), "bad index"
