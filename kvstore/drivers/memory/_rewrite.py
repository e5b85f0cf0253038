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
  touches them all, ends every key's pending state (what was copied is flushed on replay).

Commands on different keys commute (no supported write reads one key to write another;
scripts are recorded as the commands they ran), so replaying "every copied key, then the
kept writes in order" gives the same keyspace as the writes did.
"""

from __future__ import annotations

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
#: id), and its deadline.
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
    if kind == b"string":
        yield [b"SET", key, value]
    elif kind == b"hash":
        # In insertion order, which HGETALL shows.
        yield from _chunked([b"HSET", key], [word for pair in value.items() for word in pair], 2)
    elif kind == b"set":
        yield from _chunked([b"SADD", key], list(value), 1)
    elif kind == b"zset":
        flat = [word for member, score in value.items() for word in (encode_arg(score), member)]
        yield from _chunked([b"ZADD", key], flat, 2)
    else:
        entries, last_id = value
        for packed, fields in entries.items():
            yield [b"XADD", key, format_id(packed), *fields]
        if not entries or last_id != next(reversed(entries)):
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


class Capture:
    """What a running rewrite needs from each batch: see the module docstring.

    Attributes:
        pending: The keys not copied yet.
        buffer: The kept writes, as ``(now, commands)`` records in the order they ran.
    """

    __slots__ = ("buffer", "keys", "pending")

    def __init__(self, ks: Keyspace) -> None:
        # Made under the driver's lock: a dict copy is the quickest way to a key set (a few
        # ms for 10^5 keys, quicker than set()); its values are not used.
        self.pending: dict[bytes, Value] = ks.data.copy()
        #: The keys to copy, in order.
        self.keys = list(self.pending)
        self.buffer: list[tuple[int, list[list[bytes]]]] = []

    def take(self, ks: Keyspace, start: int, budget: int) -> tuple[int, list[Copy]]:
        """Copy pending keys from ``keys[start]`` on, about ``budget`` elements' worth.

        Returns:
            The position to continue from and the copies.
        """
        keys, pending, data = self.keys, self.pending, ks.data
        copies = []
        index = start
        while index < len(keys) and budget > 0:
            key = keys[index]
            index += 1
            if key not in pending:  # FLUSHDB ended its pending state
                continue
            del pending[key]
            copied = _copy_value(ks, key)
            if copied is not None:
                copies.append(copied)
                value = data[key]
                budget -= 1 if type(value) is bytes else len(value)
            budget -= 1  # a key costs something even when it is gone
        return index, copies

    def record(self, now: int, commands: list[list[bytes]]) -> None:
        """Keep what the rewritten file needs of a batch's writes (under the driver's lock)."""
        pending = self.pending
        if not pending:
            self.buffer.append((now, commands))
            return
        kept = []
        for words in commands:
            step = _MULTI_KEY_STEP.get(words[0])
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
