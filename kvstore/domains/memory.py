"""Memory: conversation threads, their messages, and each resource's working memory.

Key schema (see :mod:`kvstore.keys`):

* ``thread:<id>`` hash: the thread record; ``_rid`` holds its resource id for scripts.
* ``thread_messages:<thread id>`` sorted set: the thread's messages, scored by
  ``created_at`` in microseconds. Each member is a 16-hex-digit insertion number followed
  by the message id, so equal timestamps keep insertion order across calls.
* ``message:<id>`` hash: the message record; ``_tid`` and ``_member`` locate it.
* ``resource:<id>`` hash: the resource record.
* ``resource_threads_by_created:<resource id>`` and ``resource_threads_by_updated:...``
  sorted sets: the indexes ``list_threads`` pages through.
* ``threads`` and ``resources`` sorted sets: every thread and resource, for export
  (``export_threads``, ``export_resources``).

Every public method is one round trip: one script or one batch. Listings cost a constant
number of commands plus one per record returned, whatever the size of the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kvstore._checks import check_ids, check_items, check_metadata, check_text
from kvstore.codec import FormatName, RecordCodec, record_codec, validate
from kvstore.domains import _memory_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_count,
    check_id,
    check_page,
    chunk_of_index,
    encode_record,
    just_below,
    make_page,
    micros,
    next_offset_cursor,
    offset_cursor,
    page_of_index,
    score_bound,
)
from kvstore.errors import NotFoundError, ValidationError
from kvstore.records import (
    Chunk,
    DateRange,
    Include,
    Message,
    MessagePatch,
    Page,
    Resource,
    Thread,
    utc_now,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kvstore.drivers.base import Command, Driver
    from kvstore.keys import Keys

__all__ = ["MemoryStore"]

#: Page size of ``list_messages`` when neither ``last`` nor ``per_page`` is given.
DEFAULT_MESSAGES_PER_PAGE = 40


class MemoryStore(Domain):
    """Threads, messages and working memory; reached as ``store.memory``."""

    __slots__ = ("_messages", "_resources", "_threads")

    def __init__(self, driver: Driver, keys: Keys, format_name: FormatName = "json") -> None:
        super().__init__(driver, keys, format_name)
        self._threads: RecordCodec[Thread] = record_codec(Thread, format_name)
        self._messages: RecordCodec[Message] = record_codec(Message, format_name)
        self._resources: RecordCodec[Resource] = record_codec(Resource, format_name)

    # -- threads ----------------------------------------------------------------------------

    async def save_thread(self, thread: Thread | Mapping[str, Any]) -> Thread:
        """Create or replace a thread.

        ``updated_at`` is kept when given and set to now otherwise. Moving a thread to
        another resource (saving it with another ``resource_id``) updates both resources'
        indexes.

        Returns:
            The thread as stored.

        Raises:
            ValidationError: a field is missing or has the wrong type; nothing is written.
        """
        (saved,) = await self._write_threads([thread], "thread")
        return saved

    async def get_thread(self, thread_id: str) -> Thread | None:
        """The thread with this id, or None."""
        key = self._keys.thread(check_id(thread_id, "thread_id"))
        (fields,) = await self._driver.execute([("HGETALL", key)], idempotent=True)
        return self._threads.from_hash(as_list(fields), key) if fields else None

    async def list_threads(
        self,
        resource_id: str,
        page: int = 0,
        per_page: int = 20,
        order_by: Literal["created_at", "updated_at"] = "created_at",
        direction: Literal["asc", "desc"] = "desc",
    ) -> Page[Thread]:
        """One page of a resource's threads, ordered by ``order_by`` in ``direction``.

        Costs ``per_page + 2`` commands whatever the number of threads stored.
        """
        check_id(resource_id, "resource_id")
        check_page(page, per_page)
        if order_by == "created_at":
            index = self._keys.resource_threads_by_created(resource_id)
        elif order_by == "updated_at":
            index = self._keys.resource_threads_by_updated(resource_id)
        else:
            raise ValidationError("expected 'created_at' or 'updated_at'", field="order_by")
        if direction not in ("asc", "desc"):
            raise ValidationError("expected 'asc' or 'desc'", field="direction")
        total, found = await page_of_index(
            self._driver,
            index,
            self._keys.thread.prefix,
            page=page,
            per_page=per_page,
            newest_first=direction == "desc",
        )
        threads = [
            self._threads.from_hash(fields, self._keys.thread(member.decode()))
            for member, fields in found
        ]
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
        key = self._keys.thread(check_id(thread_id, "thread_id"))
        if title is not None:
            check_text(title, "title")
        codec = self._threads
        now = utc_now()
        fields = [b"updated_at", codec.encode(now)]
        if title is not None:
            fields += (b"title", codec.encode(title))
        if metadata is not None:
            fields += codec.merged_fields("metadata", check_metadata(metadata))
        reply = await self._driver.run(
            scripts.UPDATE_THREAD,
            [key],
            [thread_id, micros(now), self._keys.resource_threads_by_updated.prefix, *fields],
        )
        if reply is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return codec.from_hash(as_list(reply), key)

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread and all its messages. Returns whether the thread existed."""
        keys = self._keys
        check_id(thread_id, "thread_id")
        existed = await self._driver.run(
            scripts.DELETE_THREAD,
            [keys.thread(thread_id)],
            [
                thread_id,
                keys.thread_messages(thread_id),
                keys.message.prefix,
                keys.resource_threads_by_created.prefix,
                keys.resource_threads_by_updated.prefix,
                keys.threads,
            ],
            # Not retried: after a reply lost in flight, a retry finds the record gone
            # and would report that it never existed (issue 14).
            idempotent=False,
        )
        return existed == 1

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
            codec.check(m, f"messages[{i}]")
            for i, m in enumerate(check_items(messages, "messages"))
        ]
        valid = [message for message, _ in checked]
        if not valid:
            return []
        keys = self._keys
        now = utc_now()
        args: list[Any] = [
            keys.message.prefix,
            keys.thread.prefix,
            keys.thread_messages.prefix,
            keys.resource_threads_by_updated.prefix,
            micros(now) if touch else "",
            codec.encode(now),
            len(valid),
        ]
        for message, fields in checked:
            args += (message.id, message.thread_id, micros(message.created_at), len(fields))
            args += fields
        reply = as_list(await self._driver.run(scripts.SAVE_MESSAGES, [keys.message_seq], args))
        if reply[0] == 0:
            missing = reply[1].decode()
            raise NotFoundError(f"no thread {missing!r}: save the thread before its messages")
        return valid

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

        One script: ``per_page + 3`` commands (one more with a date range), plus at most
        ``4 + before + after`` per include, whatever the size of the threads.
        """
        check_id(thread_id, "thread_id")
        mode: Literal["last", "page"]
        if last is not None:
            if page is not None:
                raise ValidationError("give either last or page, not both", field="last")
            if not isinstance(last, int) or isinstance(last, bool) or not 1 <= last <= 1000:
                raise ValidationError("expected an integer from 1 to 1000", field="last")
            mode, page, per_page = "last", 0, last
        else:
            mode, page = "page", page or 0
            per_page = DEFAULT_MESSAGES_PER_PAGE if per_page is None else per_page
        check_page(page, per_page)
        window = validate(date_range or DateRange(), DateRange, where="date_range")
        includes = [
            validate(i, Include, where=f"include[{n}]")
            for n, i in enumerate(check_items(include, "include"))
        ]
        lo = score_bound(window.start, exclusive=window.start_exclusive, lower=True)
        hi = score_bound(window.end, exclusive=window.end_exclusive, lower=False)
        total, items = await self._list_messages(
            thread_id,
            (lo, hi),
            mode=mode,
            offset=page * per_page,
            count=per_page,
            includes=includes,
        )
        has_more = total > per_page if mode == "last" else (page + 1) * per_page < total
        return Page(items=items, total=total, page=page, per_page=per_page, has_more=has_more)

    async def _list_messages(
        self,
        thread_id: str,
        window: tuple[str, str],
        *,
        mode: Literal["last", "page"],
        offset: int,
        count: int,
        includes: Sequence[Include] = (),
    ) -> tuple[int, list[Message]]:
        """Run LIST_MESSAGES (see _memory_scripts): the thread's total in ``window`` and
        the messages, included ones merged in time order."""
        keys = self._keys
        lo, hi = window
        args: list[Any] = [
            keys.message.prefix,
            keys.thread_messages.prefix,
            lo,
            hi,
            just_below(lo),
            mode,
            offset,
            count,
            len(includes),
        ]
        for inc in includes:
            args += (inc.message_id, inc.before, inc.after)
        reply = await self._driver.run(
            scripts.LIST_MESSAGES, [keys.thread_messages(thread_id)], args, idempotent=True
        )
        total, *flat = as_list(reply)
        prefix = keys.message.prefix
        found = [
            (
                member,
                self._messages.from_hash(
                    fields, prefix + member[scripts.SEQ_DIGITS :].decode(errors="replace")
                ),
            )
            for member, fields in zip(flat[::2], flat[1::2], strict=True)
            if fields  # a dangling member has no record: skip it
        ]
        if includes:
            # Equal timestamps fall back to the member, which starts with the insertion number.
            found.sort(key=lambda entry: (entry[1].created_at, entry[0]))
        return total, [message for _, message in found]

    async def get_messages(self, ids: Iterable[str]) -> list[Message]:
        """The messages with these ids, in the order asked; unknown ids are left out."""
        keys = [self._keys.message(i) for i in check_ids(ids, "ids")]
        if not keys:
            return []
        replies = await self._driver.execute([("HGETALL", k) for k in keys], idempotent=True)
        return [
            self._messages.from_hash(as_list(f), k) for k, f in zip(keys, replies, strict=True) if f
        ]

    async def update_messages(
        self, patches: Iterable[MessagePatch | Mapping[str, Any]]
    ) -> list[Message]:
        """Change messages partly: only the fields a patch sets change; metadata is merged.

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
        keys = self._keys
        codec = self._messages
        now = utc_now()
        args: list[Any] = [
            keys.message.prefix,
            keys.thread.prefix,
            keys.resource_threads_by_updated.prefix,
            micros(now),
            codec.encode(now),
            len(valid),
        ]
        for patch in valid:
            fields: list[bytes] = []
            if patch.content is not msgspec.UNSET:
                fields += (b"content", codec.encode(patch.content))
            if patch.role is not msgspec.UNSET:
                fields += (b"role", codec.encode(patch.role))
            if patch.metadata is not msgspec.UNSET:
                fields += codec.merged_fields("metadata", patch.metadata)
            args += (patch.id, len(fields), *fields)
        reply = await self._driver.run(scripts.UPDATE_MESSAGES, [keys.message(valid[0].id)], args)
        status, *hashes = as_list(reply)
        if status == 0:
            raise NotFoundError(f"no message {hashes[0].decode()!r}")
        return [codec.from_hash(f, keys.message(p.id)) for p, f in zip(valid, hashes, strict=True)]

    async def delete_messages(self, ids: Iterable[str]) -> int:
        """Delete messages from their threads and every index. Returns how many existed."""
        ids = check_ids(ids, "ids")
        if not ids:
            return 0
        keys = self._keys
        now = utc_now()
        deleted = await self._driver.run(
            scripts.DELETE_MESSAGES,
            [keys.message(ids[0])],
            [
                keys.message.prefix,
                keys.thread.prefix,
                keys.thread_messages.prefix,
                keys.resource_threads_by_updated.prefix,
                micros(now),
                self._format.encode(now),
                *ids,
            ],
            # Not retried: after a reply lost in flight, a retry finds the record gone
            # and would report that it never existed (issue 14).
            idempotent=False,
        )
        return int(deleted)  # type: ignore[arg-type]

    # -- resources --------------------------------------------------------------------------

    async def get_resource(self, resource_id: str) -> Resource | None:
        """The resource with this id, or None."""
        key = self._keys.resource(check_id(resource_id, "resource_id"))
        (fields,) = await self._driver.execute([("HGETALL", key)], idempotent=True)
        return self._resources.from_hash(as_list(fields), key) if fields else None

    async def save_resource(self, resource: Resource | Mapping[str, Any]) -> Resource:
        """Create or replace a resource (``updated_at`` is set to now when not given)."""
        (saved,) = await self._write_resources([resource], "resource")
        return saved

    async def _write_resources(
        self, resources: Iterable[Resource | Mapping[str, Any]], where: str
    ) -> list[Resource]:
        """Replace resources in one atomic batch; ``where`` names them in errors."""
        valid = []
        commands: list[Command] = []
        now = utc_now()
        for i, given in enumerate(resources):
            name = where.format(i)
            resource = validate(given, Resource, where=name)
            if resource.updated_at is None:
                resource = msgspec.structs.replace(resource, updated_at=now)
            key = self._keys.resource(resource.id)
            commands += (
                ("DEL", key),
                ("HSET", key, *encode_record(self._resources, resource, name)),
                ("ZADD", self._keys.resources, micros(resource.created_at), resource.id),
            )
            valid.append(resource)
        if commands:
            await self._driver.execute(commands, atomic=True, idempotent=True)
        return valid

    async def update_resource(
        self,
        resource_id: str,
        working_memory: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Resource:
        """Set a resource's working memory and merge ``metadata``; create it when missing."""
        key = self._keys.resource(check_id(resource_id, "resource_id"))
        if working_memory is not None:
            check_text(working_memory, "working_memory")
        codec = self._resources
        now = utc_now()
        create = [b"id", codec.encode(resource_id), b"created_at", codec.encode(now)]
        fields = [b"updated_at", codec.encode(now)]
        if working_memory is not None:
            fields += (b"working_memory", codec.encode(working_memory))
        if metadata is not None:
            fields += codec.merged_fields("metadata", check_metadata(metadata))
        reply = await self._driver.run(
            scripts.UPDATE_RESOURCE,
            [key],
            [resource_id, micros(now), self._keys.resources, len(create), *create, *fields],
        )
        return codec.from_hash(as_list(reply), key)

    # -- export and restore ----------------------------------------------------------------

    async def export_threads(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Thread]:
        """One chunk of a walk through every thread of the namespace, oldest first.

        One round trip (``count + 2`` commands) whatever the number of threads stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many threads to read, from 1 to 1000.
        """
        keys = self._keys
        return await chunk_of_index(
            self._driver,
            keys.threads,
            keys.thread.prefix,
            self._threads.from_hash,
            cursor=cursor,
            count=count,
        )

    async def export_messages(
        self, thread_id: str, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[Message]:
        """One chunk of a walk through a thread's messages, in the thread's order.

        The order is :meth:`list_messages`'s: by ``created_at``, equal timestamps in the
        order the messages were first saved. One round trip (``2 * count + 2`` commands).

        Args:
            thread_id: The thread (an unknown thread has no messages).
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many messages to read, from 1 to 1000.
        """
        check_id(thread_id, "thread_id")
        offset = offset_cursor(cursor)
        check_count(count)
        total, items = await self._list_messages(
            thread_id, ("-inf", "+inf"), mode="page", offset=offset, count=count
        )
        return Chunk(items=items, cursor=next_offset_cursor(offset, count, total), total=total)

    async def count_messages(self, thread_ids: Iterable[str]) -> list[int]:
        """How many messages each thread has (0 for an unknown thread), in the order asked.

        One round trip (one ``ZCARD`` per thread).
        """
        keys = [self._keys.thread_messages(t) for t in check_ids(thread_ids, "thread_ids")]
        if not keys:
            return []
        replies = await self._driver.execute([("ZCARD", k) for k in keys], idempotent=True)
        return [int(r) for r in replies]  # type: ignore[arg-type]

    async def export_resources(
        self, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[Resource]:
        """One chunk of a walk through every resource of the namespace, oldest first.

        One round trip (``count + 2`` commands) whatever the number of resources stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many resources to read, from 1 to 1000.
        """
        keys = self._keys
        return await chunk_of_index(
            self._driver,
            keys.resources,
            keys.resource.prefix,
            self._resources.from_hash,
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
        return await self._write_threads(check_items(threads, "threads"), "threads[{}]")

    async def _write_threads(
        self, threads: Iterable[Thread | Mapping[str, Any]], where: str
    ) -> list[Thread]:
        """Run WRITE_THREADS: create or replace threads in one script, ``updated_at`` set
        to now where not given; ``where`` names them in errors (``{}``: the position)."""
        now = utc_now()
        valid = []
        for i, given in enumerate(threads):
            thread = validate(given, Thread, where=where.format(i))
            if thread.updated_at is None:
                thread = msgspec.structs.replace(thread, updated_at=now)
            valid.append(thread)
        if not valid:
            return []
        keys = self._keys
        args: list[Any] = [
            keys.thread.prefix,
            keys.resource_threads_by_created.prefix,
            keys.resource_threads_by_updated.prefix,
            keys.threads,
            len(valid),
        ]
        for i, thread in enumerate(valid):
            fields = encode_record(self._threads, thread, where.format(i))
            args += (thread.id, thread.resource_id, micros(thread.created_at))
            args += (micros(thread.updated_at or now), len(fields), *fields)
        await self._driver.run(
            scripts.WRITE_THREADS, [keys.thread(valid[0].id)], args, idempotent=True
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
        return await self._write_resources(check_items(resources, "resources"), "resources[{}]")
