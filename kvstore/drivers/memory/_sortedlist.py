"""A sorted list of keys, each with a value, with O(log n) insert, delete, search and
positional access.

Sorted sets and streams need what Redis's skiplist gives: insert and delete by key, the
rank of a key, the key at a rank, and slices by rank, all in logarithmic time. A plain
sorted Python list has O(n) inserts; a skiplist in pure Python is slow. This is the design
of ``sortedcontainers`` cut down to what kvstore needs:

* the keys live in sublists of bounded length (``_LOAD`` to ``2 * _LOAD``), each sorted,
  and every key of a sublist is below every key of the next one;
* ``_maxes[i]`` is the largest key of sublist ``i``, so one bisect over ``_maxes`` finds
  the sublist of any key and a second bisect finds its offset;
* a Fenwick tree over the sublists' lengths turns a (sublist, offset) pair into a global
  position and back in O(log m). Changing one sublist's length updates it in O(log m);
  splitting, merging or dropping a sublist marks it stale, and the next positional query
  rebuilds it in O(m), which is amortised over the ``_LOAD`` operations between changes.

Each key carries a value in a parallel list (``_values`` mirrors ``_keys``), so that a
range reply (the members of a sorted set, the fields of stream entries) is a slice of
existing objects rather than something rebuilt from the keys. Keys must be mutually
comparable and unique.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["SortedList"]


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)
V = TypeVar("V")

#: Target sublist length. Sublists split above twice this and merge below a quarter of it.
_LOAD = 1000


class SortedList(Generic[K, V]):
    """Unique keys kept in ascending order, each with a value, with positional access."""

    __slots__ = ("_keys", "_len", "_maxes", "_tree", "_values")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        ordered = sorted(items, key=lambda item: item[0])
        keys = [key for key, _ in ordered]
        values = [value for _, value in ordered]
        self._keys: list[list[K]] = [keys[i : i + _LOAD] for i in range(0, len(keys), _LOAD)]
        self._values: list[list[V]] = [values[i : i + _LOAD] for i in range(0, len(values), _LOAD)]
        self._maxes: list[K] = [sub[-1] for sub in self._keys]
        self._len = len(keys)
        self._tree: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        for sub in self._keys:
            yield from sub

    def __reversed__(self) -> Iterator[K]:
        for sub in reversed(self._keys):
            yield from reversed(sub)

    def __repr__(self) -> str:
        return f"SortedList({list(zip(self, self.values(0, self._len), strict=True))!r})"

    # --- the Fenwick tree of sublist lengths ------------------------------------------

    def _build_tree(self) -> list[int]:
        tree = [0]
        tree.extend(len(sub) for sub in self._keys)
        size = len(tree) - 1
        for i in range(1, size + 1):
            parent = i + (i & -i)
            if parent <= size:
                tree[parent] += tree[i]
        self._tree = tree
        return tree

    def _grow(self, i: int, delta: int) -> None:
        """Record that sublist ``i`` gained ``delta`` keys (a stale tree needs nothing)."""
        tree = self._tree
        if tree is None:
            return
        size = len(tree) - 1
        i += 1
        while i <= size:
            tree[i] += delta
            i += i & -i

    def _offset(self, i: int) -> int:
        """The global position of the first key of sublist ``i``."""
        if i == 0:
            return 0
        last = len(self._keys) - 1
        if i == last:
            return self._len - len(self._keys[last])
        tree = self._tree or self._build_tree()
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    def _locate(self, pos: int) -> tuple[int, int]:
        """The (sublist, offset) of global position ``pos``; ``pos == len`` is just past the end."""
        lists = self._keys
        if pos < len(lists[0]):
            return 0, pos
        # The last sublist is the other common case ("the newest N"), and needs no tree.
        last = len(lists) - 1
        tail = pos - (self._len - len(lists[last]))
        if tail >= 0:
            return last, tail
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
        keys, values = self._keys[i], self._values[i]
        self._keys.insert(i + 1, keys[_LOAD:])
        self._values.insert(i + 1, values[_LOAD:])
        del keys[_LOAD:], values[_LOAD:]
        self._maxes[i] = keys[-1]
        self._maxes.insert(i + 1, self._keys[i + 1][-1])
        self._tree = None

    def _repair(self, i: int) -> None:
        """Restore the invariants of sublist ``i`` after keys were deleted from it."""
        lists, maxes = self._keys, self._maxes
        sub = lists[i]
        if not sub:
            del lists[i], self._values[i], maxes[i]
            self._tree = None
            return
        maxes[i] = sub[-1]
        if len(sub) >= _LOAD // 4 or len(lists) == 1:
            return
        # Too small: fold it into a neighbour, then split that if it grew too big.
        j = i - 1 if i > 0 else i
        lists[j].extend(lists[j + 1])
        self._values[j].extend(self._values[j + 1])
        maxes[j] = lists[j][-1]
        del lists[j + 1], self._values[j + 1], maxes[j + 1]
        self._tree = None
        if len(lists[j]) > 2 * _LOAD:
            self._split(j)

    # --- mutation -----------------------------------------------------------------------

    def add(self, key: K, value: V) -> None:
        """Insert ``key`` with ``value``; ``key`` must not be present already."""
        lists, maxes = self._keys, self._maxes
        self._len += 1
        if not maxes:
            lists.append([key])
            self._values.append([value])
            maxes.append(key)
            self._tree = None
            return
        if maxes[-1] < key:  # appending: streams always do
            i = len(maxes) - 1
            lists[i].append(key)
            self._values[i].append(value)
            maxes[i] = key
        else:
            i = bisect_right(maxes, key)
            sub = lists[i]
            j = bisect_left(sub, key)
            sub.insert(j, key)
            self._values[i].insert(j, value)
        if len(lists[i]) > 2 * _LOAD:
            self._split(i)
        elif self._tree is not None:
            self._grow(i, 1)

    def remove(self, key: K) -> V:
        """Remove ``key`` and return its value.

        Raises:
            KeyError: ``key`` is not in the list.
        """
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i < len(maxes):
            sub = self._keys[i]
            j = bisect_left(sub, key)
            if sub[j] == key:
                del sub[j]
                value = self._values[i].pop(j)
                self._len -= 1
                self._grow(i, -1)
                if j == len(sub) or len(sub) < _LOAD // 4:
                    self._repair(i)
                return value
        raise KeyError(key)

    def delete_range(self, start: int, stop: int) -> None:
        """Delete the keys at positions ``start`` to ``stop - 1`` (clamped to the list)."""
        start, stop = max(start, 0), min(stop, self._len)
        if start >= stop:
            return
        i, j = self._locate(start)
        k, m = self._locate(stop)
        lists, values = self._keys, self._values
        self._len -= stop - start
        if i == k:
            del lists[i][j:m], values[i][j:m]
            self._grow(i, start - stop)
            self._repair(i)
            return
        del lists[k][:m], values[k][:m]
        del lists[i][j:], values[i][j:]
        del lists[i + 1 : k], values[i + 1 : k], self._maxes[i + 1 : k]
        self._tree = None
        self._repair(i + 1)  # the old sublist k, now right after i
        self._repair(i)

    # --- queries ------------------------------------------------------------------------

    def bisect_left(self, key: K) -> int:
        """The position of the first key ``>= key``."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return self._len
        return self._offset(i) + bisect_left(self._keys[i], key)

    def bisect_right(self, key: K) -> int:
        """The position of the first key ``> key``."""
        maxes = self._maxes
        i = bisect_right(maxes, key)
        if i == len(maxes):
            return self._len
        return self._offset(i) + bisect_right(self._keys[i], key)

    def key_at(self, pos: int) -> K:
        """The key at position ``pos`` (negative counts from the end).

        Raises:
            IndexError: ``pos`` is out of range.
        """
        if pos < 0:
            pos += self._len
        if not 0 <= pos < self._len:
            raise IndexError("SortedList index out of range")
        i, j = self._locate(pos)
        return self._keys[i][j]

    def keys(self, start: int, stop: int) -> list[K]:
        """The keys at positions ``start`` to ``stop - 1`` (clamped to the list)."""
        return self._slice(self._keys, start, stop)

    def values(self, start: int, stop: int) -> list[V]:
        """The values at positions ``start`` to ``stop - 1`` (clamped to the list)."""
        return self._slice(self._values, start, stop)

    def _slice(self, lists: list[list[Any]], start: int, stop: int) -> list[Any]:
        size = self._len
        start, stop = max(start, 0), min(stop, size)
        if start >= stop:
            return []
        # Within the last sublist, the common "newest N" case, no tree is needed.
        tail = size - len(lists[-1])
        if start >= tail:
            return lists[-1][start - tail : stop - tail]
        i, j = self._locate(start)
        wanted = stop - start
        out = lists[i][j : j + wanted]
        while len(out) < wanted:
            i += 1
            out.extend(lists[i][: wanted - len(out)])
        return out

    def check(self) -> None:
        """Assert every internal invariant (for tests)."""
        flat = list(self)
        assert flat == sorted(flat), "keys out of order"
        assert len(set(map(repr, flat))) == len(flat), "duplicate keys"
        assert len(flat) == self._len, "length out of sync"
        assert all(self._keys), "empty sublist"
        assert [len(s) for s in self._keys] == [len(s) for s in self._values], "values skewed"
        assert self._maxes == [sub[-1] for sub in self._keys], "maxes out of sync"
        assert all(len(sub) <= 2 * _LOAD for sub in self._keys), "sublist too long"
        for i in range(len(self._keys)):
            assert self._offset(i) == sum(len(sub) for sub in self._keys[:i]), "bad index"
