"""The keyspace: keys, their values, their expiry times, and the SCAN order.

Values are plain Python objects, one type per Redis type, so a type check is one
``type(value) is ...`` comparison:

============  ==============================================
Redis type    Python value
============  ==============================================
string        ``bytes``
hash          ``dict[bytes, bytes]`` (insertion-ordered, like a listpack)
set           ``set[bytes]``
zset          :class:`~._zset.ZSet`
stream        :class:`~._stream.Stream`
============  ==============================================

Expiry. Every batch (and every script) runs at one instant, ``now``, read once by the
driver, as Redis freezes time inside a transaction or script. A key lives while
``now <= deadline``, as in Redis. :meth:`Keyspace.purge` drops every key whose deadline has
passed at the start of each batch, using a heap of deadlines, so within a batch no expired
key can be seen by any command (GET, EXISTS, SCAN, DBSIZE alike) and the hot read path needs
no per-key expiry check: with time frozen, purging once up front is exactly equivalent to
Redis's check-on-access plus its background expiry cycle. Commands that set a deadline
already in the past delete the key on the spot, for the same reason.
"""

from __future__ import annotations

from bisect import bisect_left
from heapq import heapify, heappop, heappush
from operator import itemgetter
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from kvstore.drivers.memory._errors import WRONGTYPE, ReplyError
from kvstore.drivers.memory._stream import Stream
from kvstore.drivers.memory._zset import ZSet

if TYPE_CHECKING:
    from kvstore.drivers.memory._lua import LuaEngine

__all__ = ["TYPE_NAMES", "Keyspace", "Value"]

Value: TypeAlias = bytes | dict[bytes, bytes] | set[bytes] | ZSet | Stream
V = TypeVar("V", bytes, dict[bytes, bytes], set[bytes], ZSet, Stream)

#: What TYPE replies for each kind of value.
TYPE_NAMES: dict[type, bytes] = {
    bytes: b"string",
    dict: b"hash",
    set: b"set",
    ZSet: b"zset",
    Stream: b"stream",
}

_first = itemgetter(0)


def _scan_hash(key: bytes) -> int:
    # SCAN visits keys in the order of this hash; the cursor is the hash of the next key
    # to visit. Any stable-per-process hash works; 1 is added so that 0 stays "done".
    return (hash(key) & 0x7FFF_FFFF_FFFF_FFFF) + 1


class Keyspace:
    """One Redis database: data, deadlines and the clock reading of the running batch.

    Attributes:
        data: Every live key and its value.
        expires: Deadlines (milliseconds since the epoch) of the keys that have one.
        now: The frozen clock of the batch being run, in milliseconds.
        lua: Runs scripts for ``EVAL`` and ``EVALSHA`` (set by the driver).
        script_keys: While a script runs, the keys it declared; None otherwise.
    """

    __slots__ = (
        "_deadlines",
        "_scan_order",
        "data",
        "expired",
        "expires",
        "lua",
        "now",
        "script_keys",
    )

    def __init__(self) -> None:
        self.data: dict[bytes, Value] = {}
        self.expires: dict[bytes, int] = {}
        self.now = 0
        #: The keys the last :meth:`purge` deleted.
        self.expired: list[bytes] = []
        self.lua: LuaEngine | None = None
        self.script_keys: frozenset[bytes] | None = None
        # (deadline, key) pairs; entries go stale when a deadline changes or a key goes,
        # and are checked against `expires` when popped.
        self._deadlines: list[tuple[int, bytes]] = []
        # (scan hash, key) for every key, sorted; rebuilt after any key is created.
        self._scan_order: list[tuple[int, bytes]] | None = None

    # --- lookups ------------------------------------------------------------------------

    def read(self, key: bytes, kind: type[V]) -> V | None:
        """The value at ``key`` if it is a ``kind``, None if there is no such key.

        Raises:
            ReplyError: WRONGTYPE, the key holds another type.
        """
        value = self.data.get(key)
        if value is None or type(value) is kind:
            return value
        raise ReplyError(WRONGTYPE)

    # --- writes -------------------------------------------------------------------------

    def create(self, key: bytes, value: Value) -> None:
        """Add a key that does not exist yet (without a deadline)."""
        self.data[key] = value
        self._scan_order = None

    def set_string(self, key: bytes, value: bytes, *, keep_ttl: bool = False) -> None:
        """SET semantics: replace whatever ``key`` holds; drop its deadline unless told not to."""
        data = self.data
        if key not in data:
            self._scan_order = None
        data[key] = value
        if not keep_ttl and self.expires:
            self.expires.pop(key, None)

    def delete(self, key: bytes) -> bool:
        """Remove ``key`` and its deadline; whether it existed."""
        if self.data.pop(key, None) is None:
            return False
        if self.expires:
            self.expires.pop(key, None)
        return True

    def flush(self) -> None:
        """Remove every key."""
        self.data.clear()
        self.expires.clear()
        self._deadlines.clear()
        self._scan_order = None

    # --- expiry -------------------------------------------------------------------------

    def expire_at(self, key: bytes, deadline: int) -> None:
        """Give the existing ``key`` a deadline; a deadline already past deletes it now."""
        if deadline < self.now:
            self.delete(key)
            return
        self.expires[key] = deadline
        heap = self._deadlines
        heappush(heap, (deadline, key))
        # Keys whose deadline is moved again and again (sliding sessions) leave stale
        # heap entries behind; rebuild before they outnumber the live ones.
        if len(heap) > 2 * len(self.expires) + 64:
            heap[:] = [(when, k) for k, when in self.expires.items()]
            heapify(heap)

    def persist(self, key: bytes) -> bool:
        """Remove the deadline of ``key``; whether it had one."""
        return self.expires.pop(key, None) is not None

    def purge(self, now: int) -> bool:
        """Set the clock to ``now`` and delete every key whose deadline is before it.

        Returns:
            Whether any key went; :attr:`expired` then lists them, so that the driver can
            record their deletion.
        """
        self.now = now
        heap = self._deadlines
        if not heap or heap[0][0] >= now:
            return False
        expires, data = self.expires, self.data
        self.expired = gone = []
        while heap and heap[0][0] < now:
            deadline, key = heappop(heap)
            if expires.get(key) == deadline:
                del expires[key], data[key]
                gone.append(key)
        return bool(gone)

    # --- SCAN ---------------------------------------------------------------------------

    def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Visit about ``count`` keys from ``cursor``; returns the next cursor (0 at the end).

        Keys are visited in the order of a hash, and the cursor is the hash of the next key
        to visit, so keys created or deleted between calls never shift the others: every
        key that exists for the whole iteration is returned exactly once, the guarantee
        Redis gives (Redis may also repeat keys; this never does).
        """
        order = self._scan_order
        if order is None:
            order = sorted((_scan_hash(key), key) for key in self.data)
            self._scan_order = order
        start = bisect_left(order, cursor, key=_first)
        stop = min(start + count, len(order))
        # Keys sharing a hash must come in the same call: the cursor cannot split them.
        while 0 < stop < len(order) and order[stop][0] == order[stop - 1][0]:
            stop += 1
        data = self.data
        keys = [key for _, key in order[start:stop] if key in data]
        return (order[stop][0] if stop < len(order) else 0), keys
