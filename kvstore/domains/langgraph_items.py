"""The long-term store of LangGraph agents: items in namespaces, with TTLs and filters.

An item is a JSON object stored under a **namespace** (a tuple of labels, such as
``("memories", "user-1")``) and a key. :class:`ItemStore` (``store.langgraph_items``) serves
LangGraph's ``BaseStore`` through :mod:`kvstore.integrations.langgraph`, and is usable on
its own: its one call, :meth:`ItemStore.batch`, takes gets, puts, searches and namespace
listings and answers them all in one round trip (one batch per node on a cluster).

Key schema (layout 2, see :mod:`kvstore.keys`). A namespace is an owner: it lives in the
bucket of its encoded labels (each label followed by NUL; labels hold no NUL, so byte order
is tuple order), with its items, their index entries and its listing entries
(:class:`~kvstore.keys.ItemKeys`):

* ``lg_items`` (hash): item id -> record. The id is the JSON array ``[*namespace, key]``.
* ``lg_item_index`` (lex index): for each prefix of the item's namespace (``()`` included)
  and each of its **filter tokens**, ``<prefix>\\0<token>\\0<updated>\\0<id>``. The token
  ``*`` lists every item; ``=<field>\\0<value>`` one per top-level field whose value is a
  string, number, boolean or null (the value as canonical JSON, or a digest of it when
  longer than 64 bytes). So a search under any prefix, with or without equality filters,
  reads one prefix of one index per bucket, newest first; further filters are checked
  with one ``ZSCORE`` per candidate, and the search walks the rarest condition.
* ``lg_item_expiry`` (sorted set): item id -> when it expires, for items with a TTL.
* ``lg_namespaces``, ``lg_namespaces_reversed`` (lex indexes) and ``lg_namespace_counts``
  (hash): the namespaces that hold items, forwards and with reversed labels (a suffix is a
  prefix there), and how many items each holds.

Every batch sends one script per bucket it touches (:data:`ITEM_BATCH`): a get or a put
touches its namespace's bucket, a search or a listing every bucket. The script purges up
to :data:`PURGE_LIMIT` expired items of its bucket first, so expired items leave within
bounded work, and reads skip any expired item still stored: an expired item is never
returned. Times come from the caller's clock (like every kvstore write), never the
server's, so the AOF file replays exactly.

Bounded work: a get or put costs a fixed number of commands (a put: one index entry per
namespace prefix and indexed field); a search reads at most ``offset + limit`` matches and
scans at most :data:`SCAN_BUDGET` index entries per bucket and round trip; when a filter
skips more than that, the search goes on from where it stopped in a further round trip.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import msgspec

from kvstore._checks import MAX_INDEX, MAX_PAGE_SIZE, check_int, check_items, check_text
from kvstore.codec import unpack_fields, validate
from kvstore.domains import _langgraph_items_scripts as scripts
from kvstore.domains._base import Domain, as_list, micros, walk_index
from kvstore.errors import CorruptRecordError, ValidationError
from kvstore.keys import item_keys, lex_escape, lex_time
from kvstore.records import (
    Chunk,
    GetItem,
    ItemNamespace,
    ItemOp,
    ItemResult,
    ListNamespaces,
    PutItem,
    SearchItems,
    StoreItem,
    utc_now,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kvstore.drivers.base import Arg
    from kvstore.keys import Bucket

__all__ = ["PURGE_LIMIT", "SCAN_BUDGET", "ItemStore"]

#: How many expired items one script call purges from its bucket, at most.
PURGE_LIMIT = 64
#: How many index entries a search scans per bucket and round trip, at least (up to
#: ``offset + limit``, at most 1000).
SCAN_BUDGET = 200
#: A filter token longer than this is replaced by a digest of itself.
_TOKEN_MAX = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_OFFSET = 1 << 63
_ALL = b"*\x00"


class ItemStore(Domain):
    """The long-term store's items and namespaces; reached as ``store.langgraph_items``."""

    __slots__ = ()

    async def batch(self, ops: Sequence[ItemOp]) -> list[ItemResult]:
        """Run gets, puts, searches and namespace listings together.

        One round trip (one batch per node on a cluster): one script per bucket touched.
        Reads see the store as it was before the batch's writes; several puts of one item
        keep the last. Two cases take further round trips, each bounded: a search whose
        filters skip more than :data:`SCAN_BUDGET` index entries in a bucket goes on from
        where it stopped, and a namespace listing whose conditions reject what it read (a
        ``"*"`` before the prefix's end, a suffix, ``max_depth`` folding namespaces
        together) reads further pages. Those later reads see the batch's writes.

        Args:
            ops: :class:`GetItem`, :class:`PutItem`, :class:`SearchItems` and
                :class:`ListNamespaces` operations.

        Returns:
            One result per operation, in order: a :class:`StoreItem` or None for a get,
            None for a put, a list of :class:`StoreItem` (newest first) for a search, a
            list of namespaces (in tuple order) for a listing.

        Raises:
            ValidationError: an operation is malformed; nothing is written.
        """
        checked = [_check_op(op, f"ops[{i}]") for i, op in enumerate(check_items(ops, "ops"))]
        writes: dict[tuple[ItemNamespace, str], tuple[int, PutItem]] = {}
        for i, op in enumerate(checked):
            if isinstance(op, PutItem):
                writes.pop((op.namespace, op.key), None)  # the last put of an item wins
                writes[(op.namespace, op.key)] = (i, op)
        encoded = {k: self._encode_put(put, f"ops[{i}]") for k, (i, put) in writes.items()}
        if not checked:
            return []
        keys = await self._keys()
        now = utc_now()
        # A batch that reads and writes must not run twice: the second run's reads would
        # see the first run's writes. Reads alone, or writes alone, may.
        run = _Run(
            self, now, idempotent=not writes or all(isinstance(op, PutItem) for op in checked)
        )
        results: list[Any] = [None] * len(checked)
        searches: list[tuple[int, _Search]] = []
        listings: list[tuple[int, _Listing]] = []
        gets: list[tuple[int, int, Bucket]] = []
        for i, op in enumerate(checked):
            if isinstance(op, GetItem):
                bucket = keys.bucket_of(_encode(op.namespace))
                refresh = "1" if op.refresh_ttl else "0"
                slot = run.add(bucket, ["g", _item_id(op.namespace, op.key), refresh])
                gets.append((i, slot, bucket))
            elif isinstance(op, SearchItems):
                search = _Search(op, keys.all_buckets)
                search.plan(run)
                searches.append((i, search))
            elif isinstance(op, ListNamespaces):
                listing = _Listing(op, keys.all_buckets)
                listing.plan(run)
                listings.append((i, listing))
        for (namespace, _key), args in encoded.items():
            run.add(keys.bucket_of(_encode(namespace)), args)
        await run.send()
        for i, slot, bucket in gets:
            reply = run.reply(bucket, slot)
            results[i] = None if reply is None else self._decode(reply)
        # Further rounds, only for searches and listings that asked for more.
        while True:
            pending = [s for _, s in searches if s.take(run)] + [
                s for _, s in listings if s.take(run)
            ]
            if not pending:
                break
            run = _Run(self, now)
            for step in pending:
                step.plan(run)
            await run.send()
        for i, search in searches:
            items = [self._decode(packed) for _, packed in search.page()]
            # The index matched tokens, and a long value's token is a digest: compare the
            # values themselves too.
            results[i] = [item for item in items if _satisfies(item.value, search.op.filter)]
        for i, listing in listings:
            results[i] = listing.page()
        return results

    async def export_items(
        self, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[StoreItem]:
        """One chunk of a walk through every item of the namespace, bucket by bucket.

        One round trip (one script reading a page of the index and the page's records with
        one ``HMGET``, and a ``ZLEXCOUNT`` per bucket for the total) whatever the number of
        items stored. Items that expired are left out (``total``
        counts those not yet purged).

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many items to read, from 1 to 1000.
        """
        keys = await self._keys()
        now = utc_now()
        chunk = await walk_index(
            self._driver,
            keys,
            _index,
            [_items],
            prefix=("", "*"),  # the root level's "every item" entries: each item once
            decode=self._decode_row,
            cursor=cursor,
            count=count,
        )
        live = [i for i in chunk.items if i.expires_at is None or i.expires_at > now]
        return Chunk(items=live, cursor=chunk.cursor, total=chunk.total)

    async def restore_items(
        self, items: Iterable[StoreItem | Mapping[str, Any]]
    ) -> list[StoreItem]:
        """Create or replace items exactly as given, in one round trip.

        Unlike a put, nothing is computed: ``created_at``, ``updated_at``, ``ttl`` and
        ``expires_at`` are stored as given. The write side of :meth:`export_items`.

        Raises:
            ValidationError: an item is malformed (``items[i]...``); nothing is written.
        """
        valid = [
            validate(r, StoreItem, where=f"items[{i}]")
            for i, r in enumerate(check_items(items, "items"))
        ]
        plans: list[tuple[ItemNamespace, list[Arg]]] = []
        for i, item in enumerate(valid):
            where = f"items[{i}]"
            # The checks of a put, then a put's arguments with the times given.
            put = cast(
                "PutItem",
                _check_op(
                    PutItem(namespace=item.namespace, key=item.key, value=item.value, ttl=item.ttl),
                    where,
                ),
            )
            _, item_id, value, ttl, *rest = self._encode_put(put, where)
            expires = "" if item.expires_at is None else str(micros(item.expires_at) // 1000)
            created = lex_time(micros(item.created_at))
            updated = lex_time(micros(item.updated_at))
            plans.append(
                (item.namespace, ["r", item_id, value, created, updated, ttl, expires, *rest])
            )
        if not plans:
            return []
        keys = await self._keys()
        run = _Run(self, utc_now())
        for namespace, args in plans:
            run.add(keys.bucket_of(_encode(namespace)), args)
        await run.send()
        return valid

    # -- internals ------------------------------------------------------------------------

    def _encode_put(self, put: PutItem, where: str) -> list[Arg]:
        """The script arguments of one put or delete."""
        item_id = _item_id(put.namespace, put.key)
        if put.value is None:
            return ["d", item_id]
        value = self._format.encode_value(put.value, f"{where}.value")
        ttl = "" if put.ttl is None else str(max(1, round(put.ttl * 60_000)))
        levels = [
            _encode(put.namespace[:depth]) + "\x00" for depth in range(len(put.namespace) + 1)
        ]
        tokens = [_ALL, *(_token(f, v) for f, v in put.value.items() if _scalar(v))]
        return [
            "p",
            item_id,
            value,
            ttl,
            _packed_list([level.encode() for level in levels]),
            _packed_list(tokens),
            _encode(put.namespace),
            _encode(put.namespace[::-1]),
        ]

    def _decode_row(self, row: list[bytes | None], where: str) -> StoreItem:
        """An item from a walk's row (its record)."""
        (packed,) = row
        if packed is None:
            raise CorruptRecordError(where, "the item record is missing")
        return self._decode(packed, where)

    def _decode(self, packed: bytes, where: str = "lg_items") -> StoreItem:
        """An item from its record (which holds its id)."""
        try:
            flat = unpack_fields(packed)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            labels = msgspec.json.decode(fields[b"_i"], type=list[str])
            value = self._format.decode(fields[b"_d"], dict[str, Any])
            ttl = fields[b"_t"]
            expires = fields[b"_e"]
            return StoreItem(
                namespace=tuple(labels[:-1]),
                key=labels[-1],
                value=value,
                created_at=_time(fields[b"_c"]),
                updated_at=_time(fields[b"_s"]),
                ttl=int(ttl) / 60_000 if ttl else None,
                expires_at=_EPOCH + timedelta(milliseconds=int(expires)) if expires else None,
            )
        except (ValueError, KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CorruptRecordError(where, str(exc) or type(exc).__name__) from None


def _index(bucket: Bucket) -> str:
    return item_keys(bucket).index


def _items(bucket: Bucket) -> str:
    return item_keys(bucket).items


class _Run:
    """One round trip: the operations of each bucket's script, and then their replies."""

    def __init__(self, domain: ItemStore, now: datetime, *, idempotent: bool = True) -> None:
        self._domain = domain
        self._idempotent = idempotent
        self._now = now
        self._args: dict[int, tuple[Bucket, list[Arg]]] = {}
        self._counts: dict[int, int] = {}
        self._replies: dict[int, list[Any]] = {}

    def add(self, bucket: Bucket, op: list[Arg]) -> int:
        """Queue ``op`` in ``bucket``'s script; returns its slot in that script's reply."""
        _, args = self._args.setdefault(bucket.number, (bucket, []))
        args += op
        slot = self._counts.get(bucket.number, 0) + 1
        self._counts[bucket.number] = slot
        return slot

    async def send(self) -> None:
        """Send every bucket's script in one batch."""
        now_ms = micros(self._now) // 1000
        plans = list(self._args.values())
        commands = []
        for bucket, args in plans:
            k = item_keys(bucket)
            commands.append(
                scripts.ITEM_BATCH.command(
                    [k.items, k.index, k.expiry, k.namespaces, k.namespaces_reversed, k.counts],
                    [now_ms, lex_time(micros(self._now)), PURGE_LIMIT, *args],
                )
            )
        # Every write is keyed by the item and stamped with this call's clock, so running
        # a batch twice leaves the store as running it once.
        replies = await self._domain._driver.execute(commands, idempotent=self._idempotent)
        for (bucket, _), reply in zip(plans, replies, strict=True):
            self._replies[bucket.number] = as_list(reply)

    def reply(self, bucket: Bucket, slot: int) -> Any:
        """The reply of the operation queued at ``slot`` in ``bucket``'s script."""
        return self._replies[bucket.number][slot]

    def more_expired(self, bucket: Bucket) -> bool:
        """Whether ``bucket`` still holds expired items after this run's purge."""
        return bool(self._replies[bucket.number][0] == b"1")


class _Search:
    """A search over every bucket: each bucket's matches, newest first, then merged."""

    def __init__(self, op: SearchItems, buckets: Sequence[Bucket]) -> None:
        self.op = op
        self.need = op.offset + op.limit
        self.buckets = buckets
        level = _encode(op.namespace_prefix).encode() + b"\x00"
        tokens = [_token(f, _wanted(v)) for f, v in (op.filter or {}).items()] or [_ALL]
        self.prefixes = [level + t for t in dict.fromkeys(tokens)]
        # Per bucket: where its walk resumes (b"": the top; None: done), and the condition
        # it walks (0: let the script choose the rarest).
        self.state: dict[int, tuple[bytes | None, int]] = {b.number: (b"", 0) for b in buckets}
        self.found: dict[int, list[tuple[bytes, str, bytes]]] = {b.number: [] for b in buckets}
        self.slots: dict[int, int] = {}

    def plan(self, run: _Run) -> None:
        for bucket in self.buckets:
            after, driver = self.state[bucket.number]
            found = self.found[bucket.number]
            if after is None or len(found) >= self.need:
                continue
            need = self.need - len(found)
            # With one bucket the page is known here, so only its items are refreshed;
            # with several, each bucket refreshes the candidates it returns.
            skipped = max(0, self.op.offset - len(found)) if len(self.buckets) == 1 else 0
            self.slots[bucket.number] = run.add(
                bucket,
                [
                    "s",
                    len(self.prefixes),
                    *self.prefixes,
                    driver,
                    after,
                    need,
                    # Bounded work per script call: a large offset takes more rounds.
                    min(MAX_PAGE_SIZE, max(need, SCAN_BUDGET)),
                    "1" if self.op.refresh_ttl else "0",
                    skipped,
                ],
            )

    def take(self, run: _Run) -> bool:
        """Read this round's replies; True when another round is needed."""
        for number, slot in self.slots.items():
            bucket = self.buckets[number]
            after, driver, *flat = as_list(run.reply(bucket, slot))
            for item_id, packed in zip(flat[::2], flat[1::2], strict=True):
                self.found[number].append((_sort_key(packed), item_id.decode(), packed))
            self.state[number] = (after or None, int(driver))
        self.slots = {}
        return any(
            after is not None and len(self.found[n]) < self.need
            for n, (after, _) in self.state.items()
        )

    def page(self) -> list[tuple[str, bytes]]:
        """The ids and records of the page, newest first."""
        runs = [sorted(found, reverse=True) for found in self.found.values()]
        merged = [(item_id, packed) for _, item_id, packed in heapq.merge(*runs, reverse=True)]
        return merged[self.op.offset : self.need]


class _Listing:
    """A namespace listing over every bucket, merged in tuple order."""

    def __init__(self, op: ListNamespaces, buckets: Sequence[Bucket]) -> None:
        self.op = op
        self.buckets = buckets
        self.need = op.offset + op.limit
        prefix = _literal(op.prefix or ())
        suffix = _literal((op.suffix or ())[::-1])
        # The forward index keeps tuple order, so it is read lazily, page by page; the
        # reversed one (a suffix without a usable prefix) must be read to its end.
        self.reversed = not prefix and bool(suffix)
        head = _encode(suffix if self.reversed else prefix)
        self.bounds = ("[" + head, "(" + head[:-1] + "\x01") if head else ("-", "+")
        self.chunk = min(MAX_PAGE_SIZE, max(self.need, 100))
        # Per bucket: where its next page starts, a lex bound: after the last member read
        # (ranks would move as purges and writes change the index between round trips),
        # or past every namespace under one that max_depth folded into a result.
        self.low: dict[int, bytes] = {b.number: self.bounds[0].encode() for b in buckets}
        self.done = {b.number: False for b in buckets}
        self.buffer: dict[int, list[bytes]] = {b.number: [] for b in buckets}
        self.slots: dict[int, int] = {}
        self.results: list[ItemNamespace] = []

    def plan(self, run: _Run) -> None:
        for bucket in self.buckets:
            n = bucket.number
            if self.done[n] or self.buffer[n]:
                continue
            self.slots[n] = run.add(
                bucket,
                ["n", "r" if self.reversed else "p", self.low[n], self.bounds[1], 0, self.chunk],
            )

    def take(self, run: _Run) -> bool:
        for n, slot in self.slots.items():
            bucket = self.buckets[n]
            if run.more_expired(bucket):
                continue  # counts may include expired items: read again after more purging
            members = [m for m in as_list(run.reply(bucket, slot)) if isinstance(m, bytes)]
            self.buffer[n] = members
            if members:
                self.low[n] = b"(" + members[-1]
            self.done[n] = len(members) < self.chunk
        self.slots = {}
        if self.reversed:
            # Read to the end: keep everything, ask for the next pages.
            for n, members in self.buffer.items():
                for member in members:
                    self.results.append(_decode_namespace(member)[::-1])
                self.buffer[n] = []
            return not all(self.done.values())
        return self._merge()

    def _merge(self) -> bool:
        """Move namespaces from the buffers to the results in tuple order; True when a
        bucket must be read further first."""
        kept = self.results
        while len(kept) < self.need:
            if any(not self.done[n] and not self.buffer[n] for n in self.buffer):
                return True
            heads = [(members[0], n) for n, members in self.buffer.items() if members]
            if not heads:
                return False
            member, n = min(heads)
            self.buffer[n].pop(0)
            full = _decode_namespace(member)
            namespace = self._shaped(full)
            if namespace is None:
                continue
            if not kept or kept[-1] != namespace:
                kept.append(namespace)
            if len(namespace) < len(full):
                self._skip_under(_encode(namespace).encode())
        return False

    def _skip_under(self, head: bytes) -> None:
        """Drop every namespace under ``head``: each would fold into the same result.

        A bucket left with nothing buffered reads on from past them, so a listing whose
        ``max_depth`` folds many namespaces into few reads a page per result, not one per
        namespace.
        """
        past = b"[" + head[:-1] + b"\x01"
        for n, members in self.buffer.items():
            while members and members[0].startswith(head):
                members.pop(0)
            if not members and not self.done[n]:
                self.low[n] = past

    def _shaped(self, namespace: ItemNamespace) -> ItemNamespace | None:
        """``namespace`` as listed (truncated to ``max_depth``), or None if it does not
        match the conditions."""
        op = self.op
        if op.prefix is not None and not _matches(namespace, op.prefix):
            return None
        if op.suffix is not None and not _matches(namespace[::-1], op.suffix[::-1]):
            return None
        return namespace if op.max_depth is None else namespace[: op.max_depth]

    def page(self) -> list[ItemNamespace]:
        if self.reversed:
            shaped = (self._shaped(ns) for ns in sorted(self.results))
            unique = list(dict.fromkeys(ns for ns in shaped if ns is not None))
            return unique[self.op.offset : self.need]
        return self.results[self.op.offset : self.need]


# -- encoding -------------------------------------------------------------------------------


def _encode(namespace: Sequence[str]) -> str:
    """A namespace as index members hold it: each label followed by NUL."""
    return "".join(label + "\x00" for label in namespace)


def _decode_namespace(member: bytes) -> ItemNamespace:
    return tuple(member.decode().split("\x00")[:-1])


def _item_id(namespace: ItemNamespace, key: str) -> str:
    return msgspec.json.encode([*namespace, key]).decode()


def _packed_list(parts: Sequence[bytes]) -> bytes:
    return b"".join(b"%08x%s" % (len(p), p) for p in parts)


def _time(sort_key: bytes) -> datetime:
    return _EPOCH + timedelta(microseconds=int(sort_key, 16) - _TIME_OFFSET)


def _sort_key(packed: bytes) -> bytes:
    flat = unpack_fields(packed)
    return dict(zip(flat[::2], flat[1::2], strict=True)).get(b"_s", b"")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _canonical(value: Any) -> bytes:
    """A scalar as canonical JSON: numbers equal in value are equal (1 and 1.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return msgspec.json.encode(value)


def _token(field: str, value: Any) -> bytes:
    """The filter token of a top-level field holding a scalar."""
    canonical = _canonical(value)
    if len(canonical) > _TOKEN_MAX:
        canonical = b"#" + hashlib.blake2b(canonical, digest_size=16).hexdigest().encode()
    return b"=" + lex_escape(field).encode() + b"\x00" + canonical + b"\x00"


def _wanted(condition: Any) -> Any:
    """The value an equality condition asks for (``v`` or ``{"$eq": v}``)."""
    if isinstance(condition, dict):
        return condition["$eq"]
    return condition


def _satisfies(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    """Whether ``value`` meets every equality condition."""
    return all(
        name in value and _scalar(value[name]) and _canonical(value[name]) == _canonical(_wanted(c))
        for name, c in (conditions or {}).items()
    )


def _literal(labels: Sequence[str]) -> tuple[str, ...]:
    """The labels before the first wildcard."""
    out: list[str] = []
    for label in labels:
        if label == "*":
            break
        out.append(label)
    return tuple(out)


def _matches(namespace: Sequence[str], pattern: Sequence[str]) -> bool:
    """Whether ``namespace`` starts with ``pattern`` (``"*"`` matches any label)."""
    return len(namespace) >= len(pattern) and all(
        p in ("*", label) for p, label in zip(pattern, namespace, strict=False)
    )


# -- checks ---------------------------------------------------------------------------------


def _check_namespace(value: Any, field: str, *, empty: bool) -> ItemNamespace:
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValidationError(
            f"expected a tuple of labels, got {type(value).__name__}", field=field
        )
    if not empty and not value:
        raise ValidationError("a namespace needs at least one label", field=field)
    for label in value:
        check_text(label, field)
        if not label or "\x00" in label:
            raise ValidationError("labels must be non-empty and hold no NUL", field=field)
    return tuple(value)


def _check_filter(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"expected a mapping, got {type(value).__name__}", field=field)
    for name, condition in value.items():
        check_text(name, field)
        wanted = condition
        if isinstance(condition, dict):
            if set(condition) != {"$eq"}:
                raise ValidationError(
                    f'only equality is supported: {name!r} must be a value or {{"$eq": value}}',
                    field=field,
                )
            wanted = condition["$eq"]
        if not _scalar(wanted) or (isinstance(wanted, float) and not math.isfinite(wanted)):
            raise ValidationError(
                f"{name!r}: filters compare top-level fields with a string, number, "
                "boolean or None",
                field=field,
            )
    return dict(value)


def _check_op(op: Any, field: str) -> ItemOp:
    """``op`` after its checks, with namespaces as tuples."""
    if isinstance(op, GetItem):
        # An empty namespace holds nothing (puts refuse it), so a get of it finds nothing.
        _check_namespace(op.namespace, f"{field}.namespace", empty=True)
        check_text(op.key, f"{field}.key")
        return GetItem(namespace=tuple(op.namespace), key=op.key, refresh_ttl=bool(op.refresh_ttl))
    if isinstance(op, PutItem):
        namespace = _check_namespace(op.namespace, f"{field}.namespace", empty=False)
        check_text(op.key, f"{field}.key")
        if op.value is not None and not isinstance(op.value, dict):
            raise ValidationError(
                f"expected a mapping or None, got {type(op.value).__name__}", field=f"{field}.value"
            )
        ttl = op.ttl
        if ttl is not None and (
            not isinstance(ttl, int | float)
            or isinstance(ttl, bool)
            or not math.isfinite(ttl)
            or ttl <= 0
            or ttl * 60_000 > MAX_INDEX
        ):
            raise ValidationError("expected a positive number of minutes", field=f"{field}.ttl")
        if op.value is not None:
            for name in op.value:
                check_text(name, f"{field}.value")
        return PutItem(namespace=namespace, key=op.key, value=op.value, ttl=ttl)
    if isinstance(op, SearchItems):
        return SearchItems(
            namespace_prefix=_check_namespace(
                op.namespace_prefix, f"{field}.namespace_prefix", empty=True
            ),
            filter=_check_filter(op.filter, f"{field}.filter"),
            limit=check_int(op.limit, f"{field}.limit", 1, MAX_PAGE_SIZE),
            offset=check_int(op.offset, f"{field}.offset", 0, MAX_INDEX // 2),
            refresh_ttl=bool(op.refresh_ttl),
        )
    if isinstance(op, ListNamespaces):
        return ListNamespaces(
            prefix=None
            if op.prefix is None
            else _check_namespace(op.prefix, f"{field}.prefix", empty=True),
            suffix=None
            if op.suffix is None
            else _check_namespace(op.suffix, f"{field}.suffix", empty=True),
            max_depth=None
            if op.max_depth is None
            else check_int(op.max_depth, f"{field}.max_depth", 1, MAX_INDEX),
            limit=check_int(op.limit, f"{field}.limit", 1, MAX_PAGE_SIZE),
            offset=check_int(op.offset, f"{field}.offset", 0, MAX_INDEX // 2),
        )
    raise ValidationError(
        "expected GetItem, PutItem, SearchItems or ListNamespaces, got " + type(op).__name__,
        field=field,
    )
