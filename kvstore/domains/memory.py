"""Memory: conversation threads, their messages, and each resource's working memory.

Key schema (layout 2, see :mod:`kvstore.keys`). A thread and its messages live in the
thread's bucket; a resource in its own. ``T``, ``R`` and ``M`` below are thread, resource
and message ids escaped for lex members (:func:`~kvstore.keys.lex_escape`).

* ``threads`` (bucket hash): ``T`` -> the thread record, packed, with internal fields
  ``_r`` (its resource), ``_c``/``_u`` (creation and update sort keys) and ``_q`` (the last
  message sequence number given out).
* ``thread_index`` (bucket lex index): per thread ``c\\0R\\0<created>\\0T`` and
  ``u\\0R\\0<updated>\\0T`` (a resource's threads), ``C\\0<created>\\0T`` and
  ``U\\0<updated>\\0T`` (every thread); and per indexed metadata entry (key ``K`` and
  value ``V`` as JSON, see :func:`_index_value`) ``mc\\0R\\0K\\0V\\0<created>\\0T``,
  ``mu\\0R\\0K\\0V\\0<updated>\\0T``, ``Mc\\0K\\0V\\0<created>\\0T`` and
  ``Mu\\0K\\0V\\0<updated>\\0T``.
* ``messages:<thread id>`` (sorted set): the thread's messages scored by ``created_at`` in
  microseconds; a member is ``<12 hex digits: sequence><M>\\0<packed record>``, so reading a
  page of messages is one ``ZRANGE`` of the records themselves, and equal timestamps keep
  the order in which messages were first saved, per thread, with no shared counter.
* ``message_threads`` (bucket hash): ``M`` -> ``T\\0<score>`` for the messages of the
  bucket's threads: how a message is found by its id alone.
* ``resources`` (bucket hash) and ``resource_index`` (``C\\0<created>\\0R``,
  ``U\\0<updated>\\0R``): resources and their working memory.

Round trips. Every call is one round trip, except those that start from message ids
alone (``get_messages``, ``update_messages``, ``delete_messages`` and ``include``), which
first read where the messages live (one ``HMGET`` per bucket), then act on their threads:
two round trips; ``clone_thread`` reads its source, then writes (two), and ``move_thread``
takes a round trip per 250 messages. A message saved again under a thread other than its
own is moved: saving it reports its old thread, which a second round trip removes it from.
Deleting a thread of more than 1,000 messages takes a round trip per 1,000, so no call
holds the server long.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kvstore._checks import check_int, check_items, check_metadata, check_text
from kvstore.codec import (
    FormatName,
    RecordCodec,
    pack_fields,
    record_codec,
    unpack_fields,
    validate,
)
from kvstore.domains import _memory_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_count,
    check_id,
    check_ids,
    check_page,
    lex_bounds,
    list_index,
    make_page,
    micros,
    walk_index,
)
from kvstore.errors import CorruptRecordError, NotFoundError, ValidationError
from kvstore.keys import lex_escape, lex_time
from kvstore.records import (
    Chunk,
    DateRange,
    Include,
    Message,
    MessagePatch,
    Page,
    Resource,
    Thread,
    new_id,
    utc_now,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from kvstore.drivers.base import Arg, Command, Driver, Reply
    from kvstore.keys import Bucket, Keys
    from kvstore.layout import StoreLayout

__all__ = ["MemoryStore"]

#: Page size of ``list_messages`` when neither ``last`` nor ``per_page`` is given.
DEFAULT_MESSAGES_PER_PAGE = 40

#: How many metadata entries of a thread the ``metadata`` filter of ``list_threads`` finds
#: it by (the first ones saved), and the longest key or value, as JSON, it indexes.
MAX_INDEXED_METADATA = 64
MAX_INDEXED_LENGTH = 256
#: A filter on several metadata keys scans, per bucket, the threads that match its most
#: selective key; it is refused when even that key matches more than this many.
MAX_FILTER_SCAN = 1000
#: Most keys in one ``metadata`` filter.
MAX_FILTER_KEYS = 8
#: Most messages ``clone_thread`` copies (in one atomic script).
MAX_CLONE = 1000
#: Most threads, and the deepest page, ``list_messages_merged`` merges.
MAX_MERGED_THREADS = 100
MAX_MERGED_DEPTH = 1000
#: Messages ``move_thread`` rewrites per round trip.
MOVE_SLICE = 250

_SEQ = scripts.SEQ_DIGITS
# An activity starts with fixed-width fields: the sequence, the created and updated keys.
_ACTIVITY_FIXED = _SEQ + 16 + 16


def _threads(bucket: Bucket) -> str:
    return bucket.threads


def _thread_activity(bucket: Bucket) -> str:
    return bucket.thread_activity


def _thread_index(bucket: Bucket) -> str:
    return bucket.thread_index


def _resources(bucket: Bucket) -> str:
    return bucket.resources


def _resource_index(bucket: Bucket) -> str:
    return bucket.resource_index


class _Location(msgspec.Struct, frozen=True):
    """Where a message lives: its thread (escaped id) and its score there."""

    thread: str
    score: str


class MemoryStore(Domain):
    """Threads, messages and working memory; reached as ``store.memory``."""

    __slots__ = ("_messages", "_resources", "_threads")

    def __init__(self, driver: Driver, layout: StoreLayout, format_name: FormatName) -> None:
        super().__init__(driver, layout, format_name)
        self._threads: RecordCodec[Thread] = record_codec(Thread, format_name)
        self._messages: RecordCodec[Message] = record_codec(Message, format_name)
        self._resources: RecordCodec[Resource] = record_codec(Resource, format_name)

    # -- threads ----------------------------------------------------------------------------

    async def save_thread(self, thread: Thread | Mapping[str, Any]) -> Thread:
        """Create or replace a thread.

        ``updated_at`` is kept when given and set to now otherwise. Moving a thread to
        another resource (saving it with another ``resource_id``) updates both resources'
        listings.

        Returns:
            The thread as stored.

        Raises:
            ValidationError: a field is missing or has the wrong type; nothing is written.
        """
        (saved,) = await self._write_threads([thread], "thread")
        return saved

    async def get_thread(self, thread_id: str) -> Thread | None:
        """The thread with this id, or None."""
        check_id(thread_id, "thread_id")
        keys = await self._keys()
        bucket = keys.bucket_of(thread_id)
        t = lex_escape(thread_id)
        record, activity = await self._driver.execute(
            [("HGET", bucket.threads, t), ("HGET", bucket.thread_activity, t)], idempotent=True
        )
        if activity is None:
            return None
        return self._thread([record, activity], bucket.threads)  # type: ignore[list-item]

    async def list_threads(
        self,
        resource_id: str | None = None,
        page: int = 0,
        per_page: int = 20,
        order_by: Literal["created_at", "updated_at"] = "created_at",
        direction: Literal["asc", "desc"] = "desc",
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> Page[Thread]:
        """One page of a resource's threads (or, without ``resource_id``, of every thread
        of the namespace), ordered by ``order_by`` in ``direction``.

        Args:
            resource_id: The resource, or None for every thread.
            metadata: Only threads whose metadata holds each of these keys with an equal
                value (AND; at most 8 keys). Values must be strings, numbers, booleans or
                None of at most 256 characters as JSON: those are what the index holds,
                for the first 64 such entries of a thread's metadata. ``1`` equals ``1.0``.

        One round trip on one bucket (``per_page + 3`` commands) whatever the number of
        threads stored; with several buckets, see :func:`~kvstore.domains._base.list_index`.
        A filter on one key reads an index of its own like any listing. A filter on
        several keys scans the threads that match its most selective key, and is refused
        (``ValidationError``) when that key matches more than 1,000 threads in a bucket:
        ``total`` stays exact and no call's work grows with the data stored.
        """
        if resource_id is not None:
            check_id(resource_id, "resource_id")
        check_page(page, per_page)
        if order_by not in ("created_at", "updated_at"):
            raise ValidationError("expected 'created_at' or 'updated_at'", field="order_by")
        if direction not in ("asc", "desc"):
            raise ValidationError("expected 'asc' or 'desc'", field="direction")
        entries = [] if metadata is None else _metadata_filter(metadata)
        # Index kinds (see _memory_scripts): c/u by resource, C/U across the namespace, and
        # mc/mu, Mc/Mu the same per metadata entry.
        kind = "c" if order_by == "created_at" else "u"
        owner = () if resource_id is None else (resource_id,)
        prefixes = [("m" + kind if owner else "M" + kind, *owner, k, v) for k, v in entries]
        if not owner:
            kind = kind.upper()
        keys = await self._keys()
        if len(prefixes) > 1:
            extra: list[Arg] = [MAX_FILTER_SCAN]
            extra += ("".join(lex_escape(part) + "\x00" for part in p) for p in prefixes)
            total, found = await list_index(
                self._driver,
                keys.all_buckets,
                _thread_index,
                [_threads, _thread_activity],
                ("-", "+"),
                offset=page * per_page,
                count=per_page,
                newest_first=direction == "desc",
                script=scripts.LIST_MATCHING,
                extra=extra,
            )
            if total < 0:  # the script's mark for a filter too broad to scan
                raise ValidationError(
                    f"each key of this filter matches more than {MAX_FILTER_SCAN} threads "
                    "in a bucket: filter on one key, or add a more selective one",
                    field="metadata",
                )
        else:
            total, found = await list_index(
                self._driver,
                keys.all_buckets,
                _thread_index,
                [_threads, _thread_activity],
                lex_bounds(prefixes[0] if prefixes else (kind, *owner)),
                offset=page * per_page,
                count=per_page,
                newest_first=direction == "desc",
            )
        threads = [self._thread(row, where) for where, row in found]
        return make_page(threads, total, page, per_page)

    async def update_thread(
        self,
        thread_id: str,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Change a thread's title and merge ``metadata`` into its metadata, atomically.

        Keys of ``metadata`` replace the same keys; other stored keys stay. Concurrent
        updates of different keys never lose one another.

        Raises:
            NotFoundError: there is no such thread.
        """
        check_id(thread_id, "thread_id")
        if title is not None:
            check_text(title, "title")
        codec = self._threads
        fields: list[Arg] = []
        if title is not None:
            fields += (b"title", codec.encode(title))
        indexed: list[Arg] = []
        if metadata is not None:
            merged = check_metadata(metadata)
            fields += codec.merged_fields("metadata", merged)
            for key, value in merged.items():
                k = _index_json(key)
                if k is not None:  # a key too long to index was never indexed
                    indexed += (k, _index_value(value) or "")
        now = utc_now()
        keys = await self._keys()
        bucket = keys.bucket_of(thread_id)
        reply = await self._driver.run(
            scripts.UPDATE_THREAD,
            [bucket.threads, bucket.thread_activity, bucket.thread_index],
            [
                lex_escape(thread_id),
                lex_time(micros(now)),
                codec.encode(now),
                MAX_INDEXED_METADATA,
                len(indexed) // 2,
                *indexed,
                *fields,
            ],
        )
        if reply is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return self._thread(as_list(reply), bucket.threads)

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread and all its messages. Returns whether the thread existed.

        One round trip per 250 messages: the thread disappears with the first one, and no
        single call holds the server longer than deleting 250 messages takes. With several
        buckets, one more drops the message ids' homes.
        """
        check_id(thread_id, "thread_id")
        keys = await self._keys()
        thread = keys.thread(thread_id)
        bucket = thread.bucket
        script_keys = [
            bucket.threads,
            bucket.thread_activity,
            bucket.thread_index,
            bucket.pointers,
            thread.messages,
        ]
        t = lex_escape(thread_id)
        first = "1"
        existed = left = None
        gone: list[bytes] = []
        while first == "1" or left:
            # Each slice also drops the homes (several buckets) of the slice before it.
            commands: list[Command] = [
                scripts.DELETE_THREAD.command(script_keys, [t, first, scripts.DELETE_SLICE])
            ]
            if existed is not None and keys.buckets > 1:
                commands += [("DEL", keys.message_home(_unescape(m))) for m in gone]
            reply, *_ = await self._driver.execute(commands)
            status, left, *gone = as_list(reply)
            if existed is None:
                existed = status
            first = "0"
        if gone and keys.buckets > 1:
            await self._driver.execute([("DEL", keys.message_home(_unescape(m))) for m in gone])
        return bool(existed == 1)

    async def move_thread(self, thread_id: str, resource_id: str) -> Thread:
        """Move a thread and its messages to another resource (Mastra's
        ``updateThreadResourceId``): the thread's ``resource_id``, its place in both
        resources' listings and every message's ``resource_id`` follow, and its
        ``updated_at`` is bumped.

        The thread moves atomically in the first round trip, with its first 250 messages;
        each further 250 messages take a round trip (a script on the thread's bucket), so
        that no call holds the server long. A move cut short (a crash, a lost connection)
        leaves later messages with their old ``resource_id``: moving again finishes it.

        Returns:
            The thread as moved.

        Raises:
            NotFoundError: there is no such thread.
        """
        check_id(thread_id, "thread_id")
        check_id(resource_id, "resource_id")
        keys = await self._keys()
        thread = keys.thread(thread_id)
        bucket = thread.bucket
        now = utc_now()
        script_keys = [bucket.threads, bucket.thread_activity, bucket.thread_index, thread.messages]
        head: list[Arg] = [
            lex_escape(thread_id),
            lex_escape(resource_id),
            self._format.encode(resource_id),
            lex_time(micros(now)),
            self._format.encode(now),
        ]
        reply = as_list(
            await self._driver.run(scripts.MOVE_THREAD, script_keys, [*head, "1", 0, MOVE_SLICE])
        )
        if reply[0] == 0:
            raise NotFoundError(f"no thread {thread_id!r}")
        moved = self._thread(reply[2:4], bucket.threads)
        rank = reply[1]
        while rank >= 0:
            reply = as_list(
                await self._driver.run(
                    scripts.MOVE_THREAD, script_keys, [*head, "0", rank, MOVE_SLICE]
                )
            )
            rank = reply[1] if reply[0] == 1 else -1
        return moved

    async def clone_thread(
        self,
        thread_id: str,
        new_thread_id: str,
        *,
        resource_id: str | None = None,
        title: str | None = None,
        message_limit: int | None = None,
        date_range: DateRange | None = None,
        message_ids: Iterable[str] | None = None,
    ) -> tuple[Thread, list[Message]]:
        """Copy a thread and its messages (or some of them) to a new thread (Mastra's
        ``cloneThread``).

        The copies get fresh ids and the new thread's id and resource; their times,
        contents and order stay. The new thread keeps the source's metadata and records
        where it came from under ``metadata["clone"]``: ``source_thread_id``,
        ``cloned_at`` (ISO 8601) and ``last_message_id`` (the last message copied, or
        None).

        Args:
            thread_id: The source thread.
            new_thread_id: The new thread's id; it must not exist.
            resource_id: The new thread's resource (default: the source's).
            title: The new thread's title (default: the source's).
            message_limit: Copy only the newest this many of the selected messages.
            date_range: Copy only messages created in this window.
            message_ids: Copy only these messages (those not in the source are ignored).

        Returns:
            The new thread and its messages, oldest first.

        Two round trips: one reads the source, one script writes the new thread with
        every copy at once, so the clone appears whole or not at all (``message_ids``
        adds one between them that reads the chosen messages). Its cost is bounded
        by the messages copied: at most 1,000, more is refused (``ValidationError``;
        narrow it with ``message_limit`` or ``date_range``).

        Raises:
            NotFoundError: there is no source thread.
            ValidationError: ``new_thread_id`` is taken (nothing is written), or an
                argument is malformed.
        """
        check_id(thread_id, "thread_id")
        check_id(new_thread_id, "new_thread_id")
        if resource_id is not None:
            check_id(resource_id, "resource_id")
        if title is not None:
            check_text(title, "title")
        if message_limit is not None:
            check_int(message_limit, "message_limit", 1, MAX_CLONE)
        only = None if message_ids is None else check_ids(message_ids, "message_ids")
        if only is not None and len(only) > MAX_CLONE:
            raise ValidationError(f"clone at most {MAX_CLONE} messages", field="message_ids")
        window = _score_window(date_range)
        keys = await self._keys()
        source = keys.thread(thread_id)
        t = lex_escape(thread_id)
        low, high = window or ("-inf", "+inf")
        commands: list[Command] = [
            ("HGET", source.bucket.threads, t),
            ("HGET", source.bucket.thread_activity, t),
        ]
        if only:
            # Chosen ids: where they sit in the source (its bucket's pointers), then them.
            commands.append(("HMGET", source.bucket.pointers, *(lex_escape(i) for i in only)))
        elif only is None and message_limit is not None:
            commands.append(
                ("ZRANGE", source.messages, high, low, "BYSCORE", "REV", "LIMIT", 0, message_limit)
            )
        elif only is None:
            commands.append(
                ("ZRANGE", source.messages, low, high, "BYSCORE", "LIMIT", 0, MAX_CLONE + 1)
            )
        record, activity, *found = await self._driver.execute(commands, idempotent=True)
        if activity is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        original = self._thread([record, activity], source.bucket.threads)  # type: ignore[list-item]
        selected: list[bytes] = as_list(found[0]) if found else []
        if only:
            located = {
                lex_escape(i).encode(): _location(pointer)
                for i, pointer in zip(only, selected, strict=True)
                if isinstance(pointer, bytes) and _location(pointer).thread == t
            }
            members = await self._read_members(keys, located)
            kept = [
                (int(located[m].score), member)
                for m, member in members.items()
                if _in_window(int(located[m].score), window)
            ]
            selected = [member for _, member in sorted(kept)]
            if message_limit is not None:
                selected = selected[-message_limit:]
        elif message_limit is not None:
            selected.reverse()
        elif len(selected) > MAX_CLONE:
            raise ValidationError(
                f"a clone copies at most {MAX_CLONE} messages: narrow it with message_limit "
                "or date_range",
                field="message_limit",
            )
        messages = self._decode_members(selected, source.messages)
        now = utc_now()
        owner = original.resource_id if resource_id is None else resource_id
        copies = [
            msgspec.structs.replace(m, id=new_id(), thread_id=new_thread_id, resource_id=owner)
            for m in messages
        ]
        clone = Thread(
            id=new_thread_id,
            resource_id=owner,
            title=original.title if title is None else title,
            metadata={
                **original.metadata,
                "clone": {
                    "source_thread_id": thread_id,
                    "cloned_at": now.isoformat(),
                    "last_message_id": messages[-1].id if messages else None,
                },
            },
            created_at=now,
            updated_at=now,
        )
        target = keys.thread(new_thread_id)
        bucket = target.bucket
        args: list[Arg] = [
            lex_escape(new_thread_id),
            lex_escape(owner),
            lex_time(micros(now)),
            lex_time(micros(now)),
            self._threads.encode(now),
            self._threads.pack(clone),
            _indexed_metadata(clone.metadata),
            len(copies),
        ]
        for copy in copies:
            args += (lex_escape(copy.id), micros(copy.created_at), self._messages.pack(copy))
        commands = [
            scripts.CLONE_THREAD.command(
                [
                    bucket.threads,
                    bucket.thread_activity,
                    bucket.thread_index,
                    bucket.pointers,
                    target.messages,
                ],
                args,
            )
        ]
        if keys.buckets > 1:
            # The copies' homes, as save_messages records them (an id is fresh: a home
            # written by a clone refused for its thread id points at nothing).
            commands += [("SET", keys.message_home(c.id), _home(c)) for c in copies]
        created, *_ = await self._driver.execute(commands)
        if created != 1:
            raise ValidationError(f"thread {new_thread_id!r} exists", field="new_thread_id")
        return clone, copies

    # -- messages ---------------------------------------------------------------------------

    async def save_messages(self, messages: Iterable[Message | Mapping[str, Any]]) -> list[Message]:
        """Create or replace messages by id, and bump their threads' ``updated_at``.

        A message saved again under another thread moves there. Messages with equal
        ``created_at`` keep the order in which they were first saved.

        Returns:
            The messages as stored.

        Raises:
            ValidationError: a message is malformed; nothing is written.
            NotFoundError: a message names a thread that does not exist; nothing is written.
        """
        return await self._write_messages(messages, touch=True)

    async def _write_messages(
        self, messages: Iterable[Message | Mapping[str, Any]], *, touch: bool
    ) -> list[Message]:
        """Run SAVE_MESSAGES; ``touch`` bumps the threads' ``updated_at`` to now."""
        codec = self._messages
        checked = [
            codec.check_packed(m, f"messages[{i}]")
            for i, m in enumerate(check_items(messages, "messages"))
        ]
        if not checked:
            return []
        # One message per id: a later one in the same call replaces an earlier one.
        packed_of = {m.id: p for m, p in checked}
        by_id = {m.id: m for m, _ in checked}
        keys = await self._keys()
        codec = self._messages
        now = utc_now()
        head: list[Arg] = [lex_time(micros(now)), codec.encode(now)] if touch else ["", b""]
        plans: dict[int, tuple[Bucket, list[str], list[Arg]]] = {}
        threads: dict[str, list[Arg]] = {}
        for message in by_id.values():
            entry = threads.get(message.thread_id)
            if entry is None:
                entry = threads[message.thread_id] = []
            entry += (
                lex_escape(message.id),
                micros(message.created_at),
                packed_of[message.id],
            )
        for thread_id, entries in threads.items():
            thread = keys.thread(thread_id)
            plan = plans.get(thread.bucket.number)
            if plan is None:
                plan = plans[thread.bucket.number] = (thread.bucket, [], [])
            plan[1].append(thread.messages)
            plan[2].extend((lex_escape(thread_id), len(entries) // 3, *entries))
        commands = [
            scripts.SAVE_MESSAGES.command(
                [bucket.thread_activity, bucket.thread_index, bucket.pointers, *messages_keys],
                [*head, len(messages_keys), *args],
            )
            for bucket, messages_keys, args in plans.values()
        ]
        if len(plans) > 1:
            await self._require_threads(keys, list(threads))
        if keys.buckets > 1:
            # A message may leave a thread of another bucket: its id's own bucket says
            # where it lived, and learns where it goes.
            commands += [("SET", keys.message_home(m.id), _home(m), "GET") for m in by_id.values()]
        replies = await self._driver.execute(commands)
        homes = replies[len(plans) :]
        moved: dict[bytes, _Location] = {}
        for reply in replies[: len(plans)]:
            status, *rest = as_list(reply)
            if status == 0:
                if homes:
                    await self._restore_homes(keys, list(by_id.values()), homes)
                raise NotFoundError(
                    f"no thread {_unescape(rest[0])!r}: save the thread before its messages"
                )
            for i in range(0, len(rest), 3):
                moved[rest[i]] = _Location(rest[i + 1].decode(), rest[i + 2].decode())
        # With several buckets, a message that left a thread of another bucket: the script
        # saw only its own bucket's pointers, the id's home says where it was.
        for message, previous in zip(by_id.values(), homes, strict=False):
            if isinstance(previous, bytes):
                old = _location(previous)
                if old.thread != lex_escape(message.thread_id):
                    moved.setdefault(lex_escape(message.id).encode(), old)
        if moved:
            await self._remove_messages(keys, moved, touch=touch, now=now)
        return list(by_id.values())

    async def _restore_homes(
        self, keys: Keys, messages: list[Message], homes: Sequence[Reply]
    ) -> None:
        """Put back the homes a refused save overwrote (nothing else of it was written)."""
        await self._driver.execute(
            [
                ("SET", keys.message_home(m.id), home)
                if isinstance(home, bytes)
                else ("DEL", keys.message_home(m.id))
                for m, home in zip(messages, homes, strict=True)
            ]
        )

    async def _require_threads(self, keys: Keys, thread_ids: list[str]) -> None:
        """Check that every thread exists, before a write that spans buckets."""
        found = await self._driver.execute(
            [("HEXISTS", keys.bucket_of(t).thread_activity, lex_escape(t)) for t in thread_ids],
            idempotent=True,
        )
        for thread_id, exists in zip(thread_ids, found, strict=True):
            if not exists:
                raise NotFoundError(f"no thread {thread_id!r}: save the thread before its messages")

    async def list_messages(
        self,
        thread_id: str,
        *,
        last: int | None = None,
        page: int | None = None,
        per_page: int | None = None,
        date_range: DateRange | None = None,
        include: Sequence[Include] = (),
    ) -> Page[Message]:
        """A thread's messages, oldest first.

        Args:
            thread_id: The thread.
            last: Return the newest ``last`` messages (still oldest first). Not combinable
                with ``page``.
            page: The page number, from 0 (default 0).
            per_page: The page size (default 40, or ``last``).
            date_range: Only messages created in this window.
            include: Also return these messages with their neighbours, from any thread,
                merged in time order without duplicates.

        Returns:
            A page whose ``total`` counts the thread's messages in ``date_range``.

        Two commands in one round trip (``ZCARD``/``ZCOUNT`` and one ``ZRANGE`` of the
        records themselves), whatever the size of the thread. ``include`` adds a second
        round trip that reads the neighbours.
        """
        check_id(thread_id, "thread_id")
        if last is not None:
            if page is not None:
                raise ValidationError("give either last or page, not both", field="last")
            check_int(last, "last", 1, 1000)
            page, per_page = 0, last
        else:
            page = page or 0
            per_page = DEFAULT_MESSAGES_PER_PAGE if per_page is None else per_page
        check_page(page, per_page)
        includes = [
            validate(i, Include, where=f"include[{n}]")
            for n, i in enumerate(check_items(include, "include"))
        ]
        window = _score_window(date_range)
        keys = await self._keys()
        thread = keys.thread(thread_id)
        commands = _page_commands(
            thread.messages,
            window,
            last=last,
            page=page,
            per_page=per_page,
            with_scores=bool(includes),
        )
        include_ids = [i.message_id for i in includes]
        if includes:
            commands += _pointer_reads(keys, include_ids)
        replies = await self._driver.execute(commands, idempotent=True)
        total = int(replies[0])  # type: ignore[arg-type]
        members: list[bytes] = as_list(replies[1])
        reverse = last is not None and window is not None  # read newest first, then turned
        if includes:
            located = _merge_pointers(include_ids, replies[2:])
            pairs = [(int(members[i + 1]), members[i]) for i in range(0, len(members), 2)]
            members = await self._with_includes(keys, pairs, includes, located)
        elif reverse:
            members.reverse()
        messages = self._decode_members(members, thread.messages)
        has_more = total > per_page if last is not None else (page + 1) * per_page < total
        return Page(items=messages, total=total, page=page, per_page=per_page, has_more=has_more)

    async def list_messages_merged(
        self,
        *,
        thread_ids: Iterable[str] | None = None,
        resource_id: str | None = None,
        page: int = 0,
        per_page: int = 40,
        date_range: DateRange | None = None,
        direction: Literal["asc", "desc"] = "asc",
    ) -> Page[Message]:
        """The messages of several threads, or of every thread of a resource, merged in
        time order (Mastra's ``listMessages`` with several ``threadId`` or a ``resourceId``).

        Equal times keep each thread's order, and the threads' order as given (for a
        resource: by creation). ``direction="desc"`` lists newest first.

        Args:
            thread_ids: The threads (at most 100; unknown ones have no messages).
            resource_id: Instead of ``thread_ids``: every thread of this resource (at most
                100 threads; more is refused with ``ValidationError``).
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000; ``(page + 1) * per_page`` may not
                exceed 1,000 (each thread is read that deep).
            date_range: Only messages created in this window.
            direction: ``"asc"`` (oldest first) or ``"desc"`` (newest first).

        Returns:
            A page whose ``total`` counts the threads' messages in ``date_range``.

        One round trip for ``thread_ids`` (two commands per thread: the count and the
        first ``(page + 1) * per_page`` messages, whatever the threads hold); a resource
        adds one before it that reads its threads' ids (one command per bucket).
        """
        if (thread_ids is None) == (resource_id is None):
            raise ValidationError("give either thread_ids or resource_id", field="thread_ids")
        check_page(page, per_page)
        if (page + 1) * per_page > MAX_MERGED_DEPTH:
            raise ValidationError(
                f"a merged listing reaches at most {MAX_MERGED_DEPTH} messages deep",
                field="page",
            )
        if direction not in ("asc", "desc"):
            raise ValidationError("expected 'asc' or 'desc'", field="direction")
        window = _score_window(date_range) or ("-inf", "+inf")
        keys = await self._keys()
        if thread_ids is not None:
            wanted = list(dict.fromkeys(check_ids(thread_ids, "thread_ids")))
            if len(wanted) > MAX_MERGED_THREADS:
                raise ValidationError(
                    f"merge at most {MAX_MERGED_THREADS} threads", field="thread_ids"
                )
        else:
            wanted = await self._resource_thread_ids(keys, check_id(resource_id, "resource_id"))
        depth = (page + 1) * per_page
        low, high = window
        commands: list[Command] = []
        for thread_id in wanted:
            key = keys.thread(thread_id).messages
            commands.append(("ZCOUNT", key, low, high))
            if direction == "asc":
                commands.append(
                    ("ZRANGE", key, low, high, "BYSCORE", "LIMIT", 0, depth, "WITHSCORES")
                )
            else:
                commands.append(
                    ("ZRANGE", key, high, low, "BYSCORE", "REV", "LIMIT", 0, depth, "WITHSCORES")
                )
        replies = await self._driver.execute(commands, idempotent=True) if commands else []
        total = 0
        merged: list[tuple[int, int, bytes]] = []
        for position in range(len(wanted)):
            total += int(replies[2 * position])  # type: ignore[arg-type]
            flat = as_list(replies[2 * position + 1])
            merged += ((int(flat[i + 1]), position, flat[i]) for i in range(0, len(flat), 2))
        merged.sort(reverse=direction == "desc")
        messages = [
            self._decode_members([member], keys.thread(wanted[position]).messages)[0]
            for _, position, member in merged[page * per_page : depth]
        ]
        return make_page(messages, total, page, per_page)

    async def _resource_thread_ids(self, keys: Keys, resource_id: str) -> list[str]:
        """A resource's thread ids by creation (at most :data:`MAX_MERGED_THREADS`)."""
        low, high = lex_bounds(("c", resource_id))
        replies = await self._driver.execute(
            [
                ("ZRANGE", b.thread_index, low, high, "BYLEX", "LIMIT", 0, MAX_MERGED_THREADS + 1)
                for b in keys.all_buckets
            ],
            idempotent=True,
        )
        members = sorted(m for reply in replies for m in as_list(reply))
        if len(members) > MAX_MERGED_THREADS:
            raise ValidationError(
                f"resource {resource_id!r} has more than {MAX_MERGED_THREADS} threads: "
                "pass thread_ids",
                field="resource_id",
            )
        return [_unescape(m[m.rindex(b"\x00") + 1 :]) for m in members]

    async def _with_includes(
        self,
        keys: Keys,
        page: list[tuple[int, bytes]],
        includes: list[Include],
        where: Mapping[bytes, _Location],
    ) -> list[bytes]:
        """The page's members with the included messages and their neighbours, in time
        order (equal times by member, which starts with the sequence number)."""
        commands: list[Command] = []
        for inc in includes:
            location = where.get(lex_escape(inc.message_id).encode())
            if location is not None:
                commands.append(
                    scripts.NEIGHBOURS.command(
                        [keys.thread(_unescape(location.thread.encode())).messages],
                        [lex_escape(inc.message_id), location.score, inc.before, inc.after],
                    )
                )
        merged = {member: score for score, member in page}
        if commands:
            for reply in await self._driver.execute(commands, idempotent=True):
                flat = as_list(reply)
                for i in range(0, len(flat), 2):
                    merged.setdefault(flat[i], int(flat[i + 1]))
        return [member for member, _ in sorted(merged.items(), key=lambda e: (e[1], e[0]))]

    async def get_messages(self, ids: Iterable[str]) -> list[Message]:
        """The messages with these ids, in the order asked; unknown ids are left out.

        Two round trips: where the messages live, then their records.
        """
        wanted = check_ids(ids, "ids")
        if not wanted:
            return []
        keys = await self._keys()
        located = await self._locate(keys, wanted)
        members = await self._read_members(keys, located)
        by_id = {}
        for m, member in members.items():
            where = keys.thread(_unescape(located[m].thread.encode())).messages
            (message,) = self._decode_members([member], where)
            by_id[message.id] = message
        return [by_id[i] for i in wanted if i in by_id]

    async def _locate(self, keys: Keys, ids: list[str]) -> dict[bytes, _Location]:
        """Where each of these messages lives, by escaped id (unknown ids left out)."""
        replies = await self._driver.execute(_pointer_reads(keys, ids), idempotent=True)
        return _merge_pointers(ids, replies)

    async def _read_members(
        self, keys: Keys, located: Mapping[bytes, _Location]
    ) -> dict[bytes, bytes]:
        """Each located message's member, by escaped id (those not found left out)."""
        order = list(located)
        commands: list[Command] = []
        for m in order:
            where = located[m]
            messages_key = keys.thread(_unescape(where.thread.encode())).messages
            commands.append(("ZRANGE", messages_key, where.score, where.score, "BYSCORE"))
        found: dict[bytes, bytes] = {}
        if not commands:
            return found
        for m, reply in zip(
            order, await self._driver.execute(commands, idempotent=True), strict=True
        ):
            for member in as_list(reply):
                if member[_SEQ : _SEQ + len(m) + 1] == m + b"\x00":
                    found[m] = member
                    break
        return found

    async def update_messages(
        self, patches: Iterable[MessagePatch | Mapping[str, Any]]
    ) -> list[Message]:
        """Change messages partly: only the fields a patch sets change; metadata is merged.

        Two round trips: where the messages live, then one atomic script per bucket.

        Returns:
            The updated messages.

        Raises:
            NotFoundError: a patch names a message that does not exist; nothing is written.
        """
        valid = [
            validate(p, MessagePatch, where=f"patches[{i}]")
            for i, p in enumerate(check_items(patches, "patches"))
        ]
        if not valid:
            return []
        codec = self._messages
        keys = await self._keys()
        located = await self._locate(keys, [p.id for p in valid])
        now = utc_now()
        # bucket -> thread -> escaped message id -> [score, fields...]; several patches of
        # one message merge, the later ones winning.
        plans: dict[int, tuple[Bucket, dict[str, dict[bytes, list[Arg]]]]] = {}
        for patch in valid:
            m = lex_escape(patch.id).encode()
            where = located.get(m)
            if where is None:
                raise NotFoundError(f"no message {patch.id!r}")
            patch_fields: list[Arg] = []
            if patch.content is not msgspec.UNSET:
                patch_fields += (b"content", codec.encode(patch.content))
            if patch.role is not msgspec.UNSET:
                patch_fields += (b"role", codec.encode(patch.role))
            if patch.metadata is not msgspec.UNSET:
                patch_fields += codec.merged_fields("metadata", patch.metadata)
            thread_id = _unescape(where.thread.encode())
            bucket = keys.bucket_of(thread_id)
            by_thread = plans.setdefault(bucket.number, (bucket, {}))[1]
            by_thread.setdefault(thread_id, {}).setdefault(m, [where.score]).extend(patch_fields)
        commands = []
        for bucket, by_thread in plans.values():
            args: list[Arg] = [lex_time(micros(now)), codec.encode(now), len(by_thread)]
            for thread_id, patched in by_thread.items():
                args += (lex_escape(thread_id), len(patched))
                for m, (score, *fields) in patched.items():
                    args += (m, score, len(fields) // 2, *fields)
            commands.append(
                scripts.PATCH_MESSAGES.command(
                    [
                        bucket.thread_activity,
                        bucket.thread_index,
                        *(keys.thread(t).messages for t in by_thread),
                    ],
                    args,
                )
            )
        by_id: dict[str, Message] = {}
        replies = await self._driver.execute(commands)
        for (_, by_thread), reply in zip(plans.values(), replies, strict=True):
            status, *members = as_list(reply)
            if status == 0:
                raise NotFoundError(f"no message {_unescape(members[0])!r}")
            member_keys = [
                keys.thread(t).messages for t, patched in by_thread.items() for _ in patched
            ]
            for member, key in zip(members, member_keys, strict=True):
                (message,) = self._decode_members([member], key)
                by_id[message.id] = message
        return [by_id[i] for i in dict.fromkeys(p.id for p in valid)]

    async def delete_messages(self, ids: Iterable[str]) -> int:
        """Delete messages from their threads. Returns how many existed.

        Two round trips: where the messages live, then one script per bucket. Not retried
        after a lost reply, so that the count it returns is never wrong.
        """
        wanted = list(dict.fromkeys(check_ids(ids, "ids")))
        if not wanted:
            return 0
        keys = await self._keys()
        located = await self._locate(keys, wanted)
        homes: list[Command] = []
        if keys.buckets > 1:
            homes = [("DEL", keys.message_home(_unescape(m))) for m in located]
        return await self._remove_messages(keys, located, touch=True, now=utc_now(), also=homes)

    async def _remove_messages(
        self,
        keys: Keys,
        located: Mapping[bytes, _Location],
        *,
        touch: bool,
        now: datetime,
        also: Sequence[Command] = (),
    ) -> int:
        """Remove messages from the threads ``located`` names; returns how many were there.

        ``also``: commands sent in the same batch (a deletion drops the ids' homes)."""
        plans: dict[int, tuple[Bucket, dict[str, list[Arg]]]] = {}
        for m, where in located.items():
            thread_id = _unescape(where.thread.encode())
            bucket = keys.bucket_of(thread_id)
            plan = plans.setdefault(bucket.number, (bucket, {}))
            plan[1].setdefault(thread_id, []).extend((m, where.score))
        if not plans:
            return 0
        head: list[Arg] = [lex_time(micros(now)), self._format.encode(now)] if touch else ["", b""]
        commands = []
        for bucket, by_thread in plans.values():
            args: list[Arg] = [*head, len(by_thread)]
            for thread_id, entries in by_thread.items():
                args += (lex_escape(thread_id), len(entries) // 2, *entries)
            commands.append(
                scripts.DELETE_MESSAGES.command(
                    [
                        bucket.thread_activity,
                        bucket.thread_index,
                        bucket.pointers,
                        *(keys.thread(t).messages for t in by_thread),
                    ],
                    args,
                )
            )
        replies = await self._driver.execute([*commands, *also])
        return sum(n for n in replies[: len(commands)] if isinstance(n, int))

    async def pop_message(self, thread_id: str) -> Message | None:
        """Remove a thread's newest message and return it, atomically.

        The newest message is the last one :meth:`list_messages` returns: the greatest
        ``created_at``, and among equal timestamps the one first saved last. Like
        :meth:`delete_messages`, it bumps the thread's ``updated_at``. Concurrent callers
        never get the same message: each message is popped at most once. Not retried after
        a lost reply, so that a message is never popped twice.

        One round trip: one script of a constant number of commands, however long the
        thread is.

        Returns:
            The message removed, or None when the thread has no messages (or does not
            exist).
        """
        check_id(thread_id, "thread_id")
        keys = await self._keys()
        thread = keys.thread(thread_id)
        bucket = thread.bucket
        now = utc_now()
        member = await self._driver.run(
            scripts.POP_MESSAGE,
            [bucket.thread_activity, bucket.thread_index, bucket.pointers, thread.messages],
            [lex_escape(thread_id), lex_time(micros(now)), self._format.encode(now)],
        )
        if member is None:
            return None
        (message,) = self._decode_members([member], thread.messages)  # type: ignore[list-item]
        return message

    # -- resources --------------------------------------------------------------------------

    async def get_resource(self, resource_id: str) -> Resource | None:
        """The resource with this id, or None."""
        check_id(resource_id, "resource_id")
        keys = await self._keys()
        bucket = keys.bucket_of(resource_id)
        (packed,) = await self._driver.execute(
            [("HGET", bucket.resources, lex_escape(resource_id))], idempotent=True
        )
        if packed is None:
            return None
        return self._resources.unpack(packed, bucket.resources)  # type: ignore[arg-type]

    async def save_resource(self, resource: Resource | Mapping[str, Any]) -> Resource:
        """Create or replace a resource (``updated_at`` is set to now when not given)."""
        (saved,) = await self._write_resources([resource], "resource")
        return saved

    async def list_resources(self, page: int = 0, per_page: int = 20) -> Page[Resource]:
        """One page of the namespace's resources, most recently updated first.

        One round trip on one bucket (``per_page + 3`` commands), whatever the number of
        resources stored.
        """
        check_page(page, per_page)
        keys = await self._keys()
        total, found = await list_index(
            self._driver,
            keys.all_buckets,
            _resource_index,
            [_resources],
            lex_bounds(("D",)),
            offset=page * per_page,
            count=per_page,
            newest_first=False,
        )
        resources = [self._resources.unpack(row[0], where) for where, row in found]  # type: ignore[arg-type]
        return make_page(resources, total, page, per_page)

    async def _write_resources(
        self, resources: Iterable[Resource | Mapping[str, Any]], where: str
    ) -> list[Resource]:
        """Replace resources, one script per bucket; ``where`` names them in errors."""
        now = utc_now()
        valid = []
        plans: dict[int, tuple[Bucket, list[Arg]]] = {}
        for i, given in enumerate(check_items(resources, where.partition("[")[0])):
            resource = validate(given, Resource, where=where.format(i))
            if resource.updated_at is None:
                resource = msgspec.structs.replace(resource, updated_at=now)
            valid.append(resource)
        if not valid:
            return []
        keys = await self._keys()
        for resource in valid:
            bucket = keys.bucket_of(resource.id)
            plan = plans.setdefault(bucket.number, (bucket, []))
            created = lex_time(micros(resource.created_at))
            updated = _newest_first_key(resource.updated_at or now)
            packed = pack_fields(
                [
                    *self._resources.fields(resource, where),
                    b"_c",
                    created.encode(),
                    b"_u",
                    updated.encode(),
                ]
            )
            plan[1].extend((lex_escape(resource.id), created, updated, packed))
        await self._driver.execute(
            [
                scripts.WRITE_RESOURCES.command(
                    [bucket.resources, bucket.resource_index], [len(args) // 4, *args]
                )
                for bucket, args in plans.values()
            ],
            idempotent=True,
        )
        return valid

    async def update_resource(
        self,
        resource_id: str,
        working_memory: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Resource:
        """Set a resource's working memory and merge ``metadata``; create it when missing."""
        check_id(resource_id, "resource_id")
        if working_memory is not None:
            check_text(working_memory, "working_memory")
        codec = self._resources
        fields: list[Arg] = []
        if working_memory is not None:
            fields += (b"working_memory", codec.encode(working_memory))
        if metadata is not None:
            fields += codec.merged_fields("metadata", check_metadata(metadata))
        now = utc_now()
        now_key = lex_time(micros(now))
        new = pack_fields(
            [
                *codec.fields(Resource(id=resource_id, created_at=now, updated_at=now)),
                b"_c",
                now_key.encode(),
            ]
        )
        keys = await self._keys()
        bucket = keys.bucket_of(resource_id)
        packed = await self._driver.run(
            scripts.UPDATE_RESOURCE,
            [bucket.resources, bucket.resource_index],
            [
                lex_escape(resource_id),
                _newest_first_key(now),
                new,
                b"updated_at",
                codec.encode(now),
                *fields,
            ],
        )
        return codec.unpack(packed, bucket.resources)  # type: ignore[arg-type]

    # -- export and restore ----------------------------------------------------------------

    async def export_threads(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Thread]:
        """One chunk of a walk through every thread of the namespace, oldest first.

        One round trip (``count + 3`` commands, and one more per bucket for the total)
        whatever the number of threads stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many threads to read, from 1 to 1000.
        """
        keys = await self._keys()
        return await walk_index(
            self._driver,
            keys,
            _thread_index,
            [_threads, _thread_activity],
            prefix=("C",),
            decode=self._thread,
            cursor=cursor,
            count=count,
        )

    async def export_messages(
        self, thread_id: str, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[Message]:
        """One chunk of a walk through a thread's messages, in the thread's order.

        The order is :meth:`list_messages`'s: by ``created_at``, equal timestamps in the
        order the messages were first saved. One round trip (two commands).

        Args:
            thread_id: The thread (an unknown thread has no messages).
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many messages to read, from 1 to 1000.
        """
        check_id(thread_id, "thread_id")
        offset = _offset_cursor(cursor)
        check_count(count)
        keys = await self._keys()
        key = keys.thread(thread_id).messages
        total, members = await self._driver.execute(
            [("ZCARD", key), ("ZRANGE", key, offset, offset + count - 1)], idempotent=True
        )
        end = offset + count
        return Chunk(
            items=self._decode_members(as_list(members), key),
            cursor=str(end) if end < int(total) else None,  # type: ignore[arg-type]
            total=int(total),  # type: ignore[arg-type]
        )

    async def count_messages(self, thread_ids: Iterable[str]) -> list[int]:
        """How many messages each thread has (0 for an unknown thread), in the order asked.

        One round trip (one ``ZCARD`` per thread).
        """
        wanted = check_ids(thread_ids, "thread_ids")
        if not wanted:
            return []
        keys = await self._keys()
        replies = await self._driver.execute(
            [("ZCARD", keys.thread(t).messages) for t in wanted], idempotent=True
        )
        return [int(r) for r in replies]  # type: ignore[arg-type]

    async def export_resources(
        self, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[Resource]:
        """One chunk of a walk through every resource of the namespace, oldest first.

        One round trip (``count + 3`` commands, and one more per bucket for the total)
        whatever the number of resources stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many resources to read, from 1 to 1000.
        """
        keys = await self._keys()
        return await walk_index(
            self._driver,
            keys,
            _resource_index,
            [_resources],
            prefix=("C",),
            decode=lambda row, where: self._resources.unpack(row[0], where),  # type: ignore[arg-type]
            cursor=cursor,
            count=count,
        )

    async def restore_threads(self, threads: Iterable[Thread | Mapping[str, Any]]) -> list[Thread]:
        """Create or replace threads exactly as given, in one round trip.

        What :meth:`save_thread` does for one thread (``updated_at`` is kept when given),
        for a batch: the write side of :meth:`export_threads`.

        Raises:
            ValidationError: a thread is malformed (``threads[i]...``); nothing is written.
        """
        return await self._write_threads(threads, "threads[{}]")

    async def _write_threads(
        self, threads: Iterable[Thread | Mapping[str, Any]], where: str
    ) -> list[Thread]:
        """Run WRITE_THREADS: create or replace threads, one script per bucket, ``updated_at``
        set to now where not given; ``where`` names them in errors (``{}``: the position)."""
        now = utc_now()
        valid = []
        for i, given in enumerate(check_items(threads, where.partition("[")[0])):
            thread = validate(given, Thread, where=where.format(i))
            if thread.updated_at is None:
                thread = msgspec.structs.replace(thread, updated_at=now)
            valid.append(thread)
        if not valid:
            return []
        keys = await self._keys()
        plans: dict[int, tuple[Bucket, list[Arg]]] = {}
        for thread in valid:
            bucket = keys.bucket_of(thread.id)
            plan = plans.setdefault(bucket.number, (bucket, []))
            plan[1].extend(
                (
                    lex_escape(thread.id),
                    lex_escape(thread.resource_id),
                    lex_time(micros(thread.created_at)),
                    lex_time(micros(thread.updated_at or now)),
                    self._threads.encode(thread.updated_at or now),
                    self._threads.pack(thread, where),
                    _indexed_metadata(thread.metadata),
                )
            )
        await self._driver.execute(
            [
                scripts.WRITE_THREADS.command(
                    [bucket.threads, bucket.thread_activity, bucket.thread_index],
                    [len(args) // 7, *args],
                )
                for bucket, args in plans.values()
            ],
            idempotent=True,
        )
        return valid

    async def restore_messages(
        self, messages: Iterable[Message | Mapping[str, Any]]
    ) -> list[Message]:
        """Create or replace messages exactly as given, leaving their threads untouched.

        Like :meth:`save_messages`, except that the threads' ``updated_at`` stays as it
        is, so a thread restored first keeps its own. Messages new to the store are
        ordered as given among messages with equal timestamps: restore a thread's
        messages in :meth:`export_messages` order and its order survives.

        Raises:
            ValidationError: a message is malformed; nothing is written.
            NotFoundError: a message names a thread that does not exist; nothing is written.
        """
        return await self._write_messages(messages, touch=False)

    async def restore_resources(
        self, resources: Iterable[Resource | Mapping[str, Any]]
    ) -> list[Resource]:
        """Create or replace resources exactly as given, in one round trip.

        What :meth:`save_resource` does for one resource, for a batch: the write side of
        :meth:`export_resources`.

        Raises:
            ValidationError: a resource is malformed (``resources[i]...``); nothing is
                written.
        """
        return await self._write_resources(resources, "resources[{}]")

    # -- decoding ---------------------------------------------------------------------------

    def _thread(self, row: Sequence[bytes | None], where: str) -> Thread:
        """A thread from its record and its activity, which holds its ``updated_at``."""
        record, activity = row
        if record is None or activity is None:
            raise CorruptRecordError(where, "a thread without its record or its activity")
        try:
            flat = unpack_fields(record)
        except ValueError as exc:
            raise CorruptRecordError(where, str(exc)) from None
        updated_at = activity[activity.index(b"\x00", _ACTIVITY_FIXED) + 1 :]
        if updated_at[:1] == b"\x01":  # the thread's indexed metadata comes first
            updated_at = updated_at[updated_at.index(b"\x00") + 1 :]
        return self._threads.from_hash([*flat, b"updated_at", updated_at], where)

    def _decode_members(self, members: Sequence[bytes], where: str) -> list[Message]:
        """Decode message members (``<seq><M>\\0<packed record>``), in order.

        Members holding only a document (the common case) are decoded in one call.
        """
        documents: list[bytes] = []
        for member in members:
            cut = member.index(b"\x00", _SEQ)
            if member[cut + 1] == 0:
                documents.append(member[cut + 2 :])
            else:
                documents = []
                break
        else:
            if self._format.binary:
                return [self._messages.unpack(b"\x00" + d, where) for d in documents]
            try:
                return self._message_list(b"[" + b",".join(documents) + b"]")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise CorruptRecordError(where, str(exc)) from None
        return [
            self._messages.unpack(member[member.index(b"\x00", _SEQ) + 1 :], where)
            for member in members
        ]

    def _message_list(self, data: bytes) -> list[Message]:
        decoded: list[Message] = self._format.decode(data, list[Message])
        return decoded


def _index_json(value: Any) -> str | None:
    """``value`` as the metadata index spells it (JSON), or None when it is too long."""
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        return None
    return text if len(text) <= MAX_INDEXED_LENGTH else None


def _index_value(value: Any) -> str | None:
    """A metadata value as the index spells it, or None when it is not indexed (not a
    string, number, boolean or None, or longer than :data:`MAX_INDEXED_LENGTH` as JSON).

    An integral float is spelled as the integer: JSON, and Mastra's JavaScript, hold one
    number where Python holds ``1`` and ``1.0``.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif value is not None and not isinstance(value, str | int | float):
        return None
    return _index_json(value)


def _indexed_metadata(metadata: Mapping[str, Any]) -> str:
    """A thread's indexed metadata as its activity carries it: ``\\1`` then ``K\\2V\\3``
    per indexed entry (at most :data:`MAX_INDEXED_METADATA`), or ``""`` for none."""
    parts = []
    for key, value in metadata.items():
        k, v = _index_json(key), _index_value(value)
        if k is not None and v is not None:
            parts.append(f"{k}\x02{v}\x03")
            if len(parts) == MAX_INDEXED_METADATA:
                break
    return "\x01" + "".join(parts) if parts else ""


def _metadata_filter(metadata: Any) -> list[tuple[str, str]]:
    """The (key, value) index spellings of a ``metadata`` filter.

    Raises:
        ValidationError: not a mapping, more than :data:`MAX_FILTER_KEYS` keys, or a value
            the index does not hold (naming ``metadata.<key>``).
    """
    wanted = check_metadata(metadata)
    if len(wanted) > MAX_FILTER_KEYS:
        raise ValidationError(f"filter on at most {MAX_FILTER_KEYS} keys", field="metadata")
    entries = []
    for key, value in wanted.items():
        k, v = _index_json(key), _index_value(value)
        if k is None or v is None:
            raise ValidationError(
                "only strings, numbers, booleans and None of at most "
                f"{MAX_INDEXED_LENGTH} characters as JSON are indexed",
                field=f"metadata.{key}",
            )
        entries.append((k, v))
    return entries


def _unescape(value: bytes) -> str:
    """The id a lex-escaped value (bytes) stands for."""
    return value.decode().replace("\x01\x01", "\x00").replace("\x01\x02", "\x01")


def _newest_first_key(moment: datetime) -> str:
    """A sort key that lists later times first in ascending order (ties then by id)."""
    return lex_time(-micros(moment))


def _home(message: Message) -> str:
    """Where a message lives, as its pointers spell it: ``<T>\0<score>``."""
    return f"{lex_escape(message.thread_id)}\x00{micros(message.created_at)}"


def _location(pointer: bytes) -> _Location:
    thread, _, score = pointer.partition(b"\x00")
    return _Location(thread.decode(), score.decode())


def _pointer_reads(keys: Keys, ids: Sequence[str]) -> list[Command]:
    """Reads of these message ids' pointers in every bucket (a message lives in its
    thread's bucket)."""
    escaped = [lex_escape(i) for i in ids]
    return [("HMGET", b.pointers, *escaped) for b in keys.all_buckets]


def _merge_pointers(ids: Sequence[str], replies: Sequence[Reply]) -> dict[bytes, _Location]:
    """The replies of :func:`_pointer_reads` for ``ids``, by escaped id."""
    escaped = [lex_escape(i).encode() for i in ids]
    located: dict[bytes, _Location] = {}
    for reply in replies:
        for m, pointer in zip(escaped, as_list(reply), strict=True):
            if pointer is not None:
                located[m] = _location(pointer)
    return located


def _score_window(date_range: DateRange | None) -> tuple[str, str] | None:
    """``ZRANGE BYSCORE`` bounds of a date range, or None for the whole thread."""
    if date_range is None:
        return None
    window = validate(date_range, DateRange, where="date_range")
    if window.start is None and window.end is None:
        return None
    low = (
        "-inf"
        if window.start is None
        else ("(" if window.start_exclusive else "") + str(micros(window.start))
    )
    high = (
        "+inf"
        if window.end is None
        else ("(" if window.end_exclusive else "") + str(micros(window.end))
    )
    return low, high


def _in_window(score: int, window: tuple[str, str] | None) -> bool:
    """Whether a message's score lies within :func:`_score_window`'s bounds."""
    if window is None:
        return True
    low, high = window
    if low != "-inf" and (score <= int(low[1:]) if low[0] == "(" else score < int(low)):
        return False
    return high == "+inf" or (score < int(high[1:]) if high[0] == "(" else score <= int(high))


def _page_commands(
    key: str,
    window: tuple[str, str] | None,
    *,
    last: int | None,
    page: int,
    per_page: int,
    with_scores: bool,
) -> list[Command]:
    """The two commands of a page of messages: the count, and the records (with their
    scores after each when ``with_scores``)."""
    scores = ("WITHSCORES",) if with_scores else ()
    if window is None:
        start, stop = (
            (-last, -1) if last is not None else (page * per_page, (page + 1) * per_page - 1)
        )
        return [("ZCARD", key), ("ZRANGE", key, start, stop, *scores)]
    low, high = window
    count: Command = ("ZCOUNT", key, low, high)
    if last is not None:
        return [count, ("ZRANGE", key, high, low, "BYSCORE", "REV", "LIMIT", 0, last, *scores)]
    offset = page * per_page
    return [count, ("ZRANGE", key, low, high, "BYSCORE", "LIMIT", offset, per_page, *scores)]


def _offset_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    if not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit():
        raise ValidationError("expected a cursor returned by the same method", field="cursor")
    return int(cursor)
