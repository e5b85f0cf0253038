"""The keyspace as commands that rebuild it, and the writes made while that is written.

A rewrite (see ``._aof``) replaces the append-only file with the shortest list of commands
that rebuilds the keyspace. Python has no ``fork()`` snapshot to serialise from, and copying
the whole keyspace under the driver's lock would stall writers for as long as the copy
takes, so the keyspace is copied a few hundred keys at a time, each chunk under the lock,
while batches keep running in between. :class:`Capture` keeps the two consistent:

* every key that existed when the rewrite began is *pending* until its chunk is copied;
* a batch's write to a pending key is left out of the rewrite buffer, since the copy made
  later already holds its effect; a write to any other key (copied already, or created
  after the rewrite began) is kept, to be appended after the copied keys;
* a write touching several keys (``DEL``, ``MSET``) is split by key, and ``FLUSHDB``, which
  touches them all, ends every key's pending state (what was copied is flushed on replay);
* a collection larger than a chunk is copied a slice per hold of the lock and stays pending
  until its last slice: a write to it meanwhile discards the slices taken (they no longer
  belong to one moment) and it is copied again, whole in one hold, so that a key written
  to all the time still gets copied.

Commands on different keys commute (no supported write reads one key to write another;
scripts are recorded as the commands they ran), so replaying "every copied key, then the
kept writes in order" gives the same keyspace as the writes did.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any, TypeAlias

from kvstore.drivers._commandspec import COMMANDS
from kvstore.drivers.base import encode_arg
from kvstore.drivers.memory._keyspace import TYPE_NAMES, Keyspace, Value
from kvstore.drivers.memory._stream import Stream, format_id
from kvstore.drivers.memory._zset import ZSet

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Capture", "Copy", "rebuild"]

#: A copied key: its name, its type (as TYPE replies it), its value copied so that later
#: writes cannot change it (a sorted set as its scores, a stream as its entries and last
#: id), and its deadline. A collection copied in slices has a list of them in place of its
#: dict or set (merging them under the lock would cost as much as copying it whole).
Copy: TypeAlias = tuple[bytes, bytes, Any, int | None]

#: Elements (fields, members, entries) per rebuilding command, as Redis's
#: AOF_REWRITE_ITEMS_PER_CMD bounds them, so that no record grows huge.
ITEMS_PER_COMMAND = 512

# Writes whose keys start at argument 1 and run to the end in groups of `step` words (DEL:
# the key; MSET: key and value). Keyless writes (FLUSHDB) touch every key. Every other
# write has one key, argument 1.
_MULTI_KEY_STEP = {
    name.encode(): spec.step
    for name, spec in COMMANDS.items()
    if spec.write and spec.first_key == 1 and spec.last_key == -1
}
_KEYLESS = {name.encode() for name, spec in COMMANDS.items() if spec.write and not spec.first_key}


def _copy_value(ks: Keyspace, key: bytes) -> Copy | None:
    """``key``'s value and deadline, copied at C speed (run under the driver's lock)."""
    value = ks.data.get(key)
    if value is None:
        return None
    kind = TYPE_NAMES[type(value)]
    copied: Any
    if isinstance(value, ZSet):
        copied = value.scores.copy()
    elif isinstance(value, Stream):
        # Entries' field lists never change after XADD, so sharing them is safe; the dict
        # keeps insertion order, which is id order since ids only grow.
        copied = (value.entries.copy(), value.last_id)
    elif isinstance(value, bytes):
        copied = value  # immutable
    else:
        copied = value.copy()  # a hash or a set
    return key, kind, copied, ks.expires.get(key)


def rebuild(copy: Copy) -> Iterator[list[bytes]]:
    """The commands that recreate one copied key, deadline included."""
    key, kind, value, deadline = copy
    last_id = 0
    if kind == b"stream":
        value, last_id = value
    parts = value if isinstance(value, list) else [value]  # see Copy
    if kind == b"string":
        yield [b"SET", key, value]
    elif kind == b"hash":
        # In insertion order, which HGETALL shows.
        flat = [word for part in parts for pair in part.items() for word in pair]
        yield from _chunked([b"HSET", key], flat, 2)
    elif kind == b"set":
        yield from _chunked([b"SADD", key], [member for part in parts for member in part], 1)
    elif kind == b"zset":
        flat = [w for part in parts for m, score in part.items() for w in (encode_arg(score), m)]
        yield from _chunked([b"ZADD", key], flat, 2)
    else:
        for part in parts:
            for packed, fields in part.items():
                yield [b"XADD", key, format_id(packed), *fields]
        if not parts[-1] or last_id != next(reversed(parts[-1])):
            # The last id outlives deleted entries, so that `*` ids never go back: add an
            # entry at the last id and delete it again, as no supported command sets it.
            last = format_id(last_id)
            yield [b"XADD", key, last, b"", b""]
            yield [b"XDEL", key, last]
    if deadline is not None:
        yield [b"PEXPIREAT", key, b"%d" % deadline]


def _chunked(head: list[bytes], flat: list[bytes], width: int) -> Iterator[list[bytes]]:
    step = ITEMS_PER_COMMAND * width
    for start in range(0, len(flat), step):
        yield [*head, *flat[start : start + step]]


class _Slices:
    """A collection being copied a slice at a time: its live value, the slices taken."""

    __slots__ = ("count", "items", "key", "kind", "parts", "value")

    def __init__(self, key: bytes, value: Value) -> None:
        self.key, self.value = key, value
        source: Any = value.scores if isinstance(value, ZSet) else value
        source = source.entries if isinstance(source, Stream) else source
        self.items = iter(source.items() if isinstance(source, dict) else source)
        self.kind: type[dict[Any, Any]] | type[set[Any]] = type(source)
        self.parts: list[Any] = []
        self.count = 0


class Capture:
    """What a running rewrite needs from each batch: see the module docstring.

    Attributes:
        pending: The keys not copied yet.
        buffer: The kept writes, as ``(now, commands)`` records in the order they ran.
    """

    __slots__ = ("_slices", "_whole", "buffer", "keys", "pending")

    def __init__(self, ks: Keyspace) -> None:
        # Made under the driver's lock: a dict copy is the quickest way to a key set (a few
        # ms for 10^5 keys, quicker than set()); its values are not used.
        self.pending: dict[bytes, Value] = ks.data.copy()
        #: The keys to copy, in order.
        self.keys = list(self.pending)
        self.buffer: list[tuple[int, list[list[bytes]]]] = []
        self._slices: _Slices | None = None  # the collection being copied in slices
        self._whole: set[bytes] = set()  # written to while sliced: copy in one hold

    def take(self, ks: Keyspace, start: int, budget: int) -> tuple[int, list[Copy]]:
        """Copy pending keys from ``keys[start]`` on, about ``budget`` elements' worth.

        A collection of more than ``budget`` elements is copied over several calls, which
        return the same position until its last slice is taken.

        Returns:
            The position to continue from and the copies.
        """
        keys, pending, data = self.keys, self.pending, ks.data
        chunk = budget
        copies = []
        index = start
        while index < len(keys) and budget > 0:
            key = keys[index]
            value = data.get(key) if key in pending else None  # not pending: FLUSHDB
            size = 0 if value is None else 1 if type(value) is bytes else len(value)
            copied: Copy | None
            if value is not None and size > chunk and key not in self._whole:
                copied, taken = self._slice(ks, key, value, budget)
                budget -= taken
                if copied is None:
                    break  # the budget is spent; the key stays pending
            else:
                copied = _copy_value(ks, key) if value is not None else None
                budget -= size
            pending.pop(key, None)
            index += 1
            budget -= 1  # a key costs something even when it is gone
            if copied is not None:
                copies.append(copied)
        return index, copies

    def _slice(
        self, ks: Keyspace, key: bytes, value: Value, budget: int
    ) -> tuple[Copy | None, int]:
        """Copy up to ``budget`` more elements of ``key``; its copy once complete, and how
        many elements were copied."""
        slices = self._slices
        if slices is None or slices.key != key or slices.value is not value:
            slices = self._slices = _Slices(key, value)
        part = slices.kind(islice(slices.items, budget))
        slices.parts.append(part)
        slices.count += len(part)
        if slices.count < len(value):
            return None, len(part)
        self._slices = None
        copied: Any = slices.parts
        if isinstance(value, Stream):
            copied = (copied, value.last_id)
        return (key, TYPE_NAMES[type(value)], copied, ks.expires.get(key)), len(part)

    def _restart(self) -> None:
        """The collection being sliced was written to: copy it again, whole this time."""
        assert self._slices is not None
        self._whole.add(self._slices.key)
        self._slices = None

    def record(self, now: int, commands: list[list[bytes]]) -> None:
        """Keep what the rewritten file needs of a batch's writes (under the driver's lock)."""
        pending = self.pending
        if not pending:
            self.buffer.append((now, commands))
            return
        kept = []
        sliced = self._slices.key if self._slices is not None else None
        for words in commands:
            step = _MULTI_KEY_STEP.get(words[0])
            if sliced is not None and (
                words[0] in _KEYLESS or sliced in (words[1::step] if step else words[1:2])
            ):
                self._restart()
                sliced = None
            if step is not None:
                rest = [
                    word
                    for i in range(1, len(words), step)
                    if words[i] not in pending
                    for word in words[i : i + step]
                ]
                if rest:
                    kept.append([words[0], *rest])
            elif words[0] in _KEYLESS:
                pending.clear()
                kept.append(words)
            elif words[1] not in pending:
                kept.append(words)
        if kept:
            self.buffer.append((now, kept))
