"""Checkpoints: a graph's saved states, with their channel values and pending writes.

The data of a checkpointer such as LangGraph's (``kvstore.integrations.langgraph``), kept
as a domain of its own: the integration only converts the framework's calls. Values are
stored as the framework's serializer made them (:data:`~kvstore.records.Typed`: a type tag
and bytes); kvstore never decodes them, so custom serializers and encryption keep working.

Model. A **thread** holds checkpoints in **namespaces** (``""`` for the root graph). A
checkpoint refers to one version of each of its channels; a channel value is stored once
per (namespace, channel, version) and shared by every checkpoint that refers to it, so a
checkpoint writes only the channels that changed. Pending writes belong to one checkpoint.

Key schema (layout 2, see :mod:`kvstore.keys`). The owner is the thread: every key of a
thread lives in its bucket (:meth:`~kvstore.keys.Keys.checkpoint_thread`), so each call on
a thread is one script on one slot; ``N``, ``I``, ``K``, ``V``, ``R`` below are escaped
namespaces, checkpoint ids, metadata keys, value tokens and run ids:

* ``cp_index:<thread>`` (lex index): per checkpoint ``n\\0N\\0I`` (by namespace, newest =
  greatest id), ``a\\0I\\0N`` (every namespace), ``m\\0N\\0K\\0V\\0I`` and
  ``M\\0K\\0V\\0I\\0N`` for each scalar metadata value (filters), ``r\\0R\\0N\\0I`` (its run);
  ``s\\0N`` per namespace.
* ``cp_records:<thread>`` (hash): ``N\\0I`` -> the record (packed: checkpoint, metadata,
  parent, channel references, index entries, run).
* ``cp_blobs:<thread>`` (hash): ``N\\0<channel>\\0<version>`` -> the value;
  ``cp_refs:<thread>`` (hash): the same fields -> how many checkpoints refer to it.
* ``cp_writes:<thread>`` (sorted set): one member per pending write, which holds it:
  ``N\\0I\\0<task path>\\0<task id>\\0<index>\\0<channel>\\0<value>``.
* The bucket's ``cp_threads`` (lex index of thread ids) and ``cp_runs``
  (``R\\0<thread>``): what calls across threads (``threads``, ``delete_runs``) read. A
  thread's first checkpoint registers it in the same script, on the same slot.

Metadata filters. Each scalar metadata value (``str``, ``int``, ``float``, ``bool``) is
indexed under a token that folds Python's equalities (``True == 1 == 1.0``); a string of
more than 200 bytes is indexed by its digest. ``list(filters=...)`` walks the smallest
filter's entries and checks the others with ``ZSCORE``.

Costs (each call one round trip on the thread's slot unless said): ``put`` one script
(about 10 commands, more with more channels and metadata keys); ``put_writes`` one script of
three commands; ``get`` one script of five; ``list`` one script per page (``3 + page``
commands without filters); ``delete_thread`` one script (one more per 200 runs of the
thread); ``delete_runs`` one batch reading the runs' links in every bucket, then one script
per thread (one more per 200 checkpoints); ``copy_thread`` two round trips per 100
checkpoints; ``prune`` one script per thread (one more per 200 checkpoints deleted). No
call's work grows with the number of checkpoints a thread keeps, except those that delete
or copy them.

Bytes. On a driver that carries text only (Upstash), a value that is not UTF-8 is stored
base64-encoded; a marker byte says which, so data written by any driver reads on all.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import math
import re
from typing import TYPE_CHECKING, Any

import msgspec

from kvstore._checks import check_items, check_text
from kvstore.codec import pack_fields, unpack_fields, validate
from kvstore.domains import _checkpoint_scripts as scripts
from kvstore.domains._base import Domain, as_list, check_count, check_id, check_ids
from kvstore.errors import CorruptRecordError, ValidationError
from kvstore.keys import lex_escape
from kvstore.records import CheckpointPage, CheckpointWrite, Chunk, StoredCheckpoint, Typed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from kvstore.drivers.base import Arg, Command, Reply
    from kvstore.keys import CheckpointKeys

__all__ = ["CheckpointStore", "filter_token", "indexable_filters"]

#: Candidates one ``list`` call examines at most.
LIST_BUDGET = 1000
#: Checkpoints a ``copy_thread`` round trip copies.
COPY_CHUNK = 100
# Tokens longer than this (in bytes) are indexed by their digest.
_LONG_TOKEN = 200
_RAW = b"="
_BASE64 = b"~"
_INDEX_OFFSET = 1 << 31
_UNESCAPE = re.compile(rb"\x01([\x01\x02])")


def filter_token(value: Any) -> str | None:
    """The token a metadata value is indexed under, or None when it is not indexed.

    Equal scalars get equal tokens, as Python compares them: ``True``, ``1`` and ``1.0``
    are one number. NaN, None and anything but ``str``, ``int``, ``float`` and ``bool`` are
    not indexed.
    """
    if isinstance(value, bool):
        return f"n:{int(value)}"
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    if isinstance(value, str):
        try:
            data = value.encode()
        except UnicodeEncodeError:
            data = value.encode("utf-8", "surrogatepass")
        else:
            if len(data) <= _LONG_TOKEN:
                return "s:" + value
        return "h:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    return None


def _key_ok(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    try:
        return len(key.encode()) <= _LONG_TOKEN
    except UnicodeEncodeError:
        return False


def _escaped(text: str) -> bytes:
    if "\x00" in text or "\x01" in text:
        return lex_escape(text).encode()
    return text.encode()


@functools.lru_cache(maxsize=4096)
def _unescape(data: bytes) -> str:
    if b"\x01" in data:
        data = _UNESCAPE.sub(lambda m: b"\x00" if m.group(1) == b"\x01" else b"\x01", data)
    return data.decode()


@functools.lru_cache(maxsize=256)
def _kind(data: bytes) -> str:
    return data.decode()


def _entries(items: Iterable[bytes]) -> bytes:
    return b"".join(b"%08x%s" % (len(item), item) for item in items)


def _check_typed(value: Any, name: str) -> Typed:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not isinstance(value[1], bytes | bytearray | memoryview)
    ):
        raise ValidationError("expected a (type, bytes) pair", field=name)
    kind = check_text(value[0], name)
    if "\x00" in kind:
        raise ValidationError("a type tag must not hold NUL", field=name)
    return kind, bytes(value[1])


def indexable_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``filters`` that are indexed (a scalar value, a key of at most 200
    bytes): what ``put`` indexes and ``list(filters=...)`` accepts."""
    return {k: v for k, v in filters.items() if _key_ok(k) and filter_token(v) is not None}


def _filter_tokens(filters: Any, name: str) -> dict[str, str]:
    """Metadata key -> token, for the indexed items of ``filters``."""
    if filters is None:
        return {}
    if not hasattr(filters, "items"):
        raise ValidationError("expected a mapping", field=name)
    return {k: filter_token(v) for k, v in indexable_filters(filters).items()}  # type: ignore[misc]


class CheckpointStore(Domain):
    """Checkpoints of graph threads; reached as ``store.checkpoints``."""

    __slots__ = ()

    async def put(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str,
        *,
        checkpoint: Typed,
        metadata: Typed,
        versions: Mapping[str, str],
        blobs: Sequence[tuple[str, str, Typed]] = (),
        parent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a checkpoint (replacing one with the same id), atomically.

        One script on the thread's slot, whatever the thread holds.

        Args:
            thread_id: The thread.
            namespace: The namespace in the thread (``""``: the root graph).
            checkpoint_id: The checkpoint's id. Ids of a namespace must sort in time
                order: the greatest is the newest.
            checkpoint: The checkpoint without its channel values, serialized.
            metadata: Its metadata, serialized.
            versions: channel -> the version of the channel's value it refers to.
            blobs: The channel values this checkpoint stores: (channel, version, value);
                unchanged channels refer to values stored by earlier checkpoints.
            parent_id: The checkpoint it follows.
            run_id: The run that wrote it (``delete_runs`` deletes by run).
            filters: The metadata values ``list(filters=...)`` can find it by; values that
                are not scalars are ignored.

        Raises:
            ValidationError: an argument is malformed; nothing is written.
        """
        check_id(thread_id, "thread_id")
        check_text(namespace, "namespace")
        check_id(checkpoint_id, "checkpoint_id")
        if parent_id is not None:
            check_id(parent_id, "parent_id")
        if run_id is not None:
            check_id(run_id, "run_id")
        if not hasattr(versions, "items"):
            raise ValidationError("expected a mapping", field="versions")
        refs = b"".join(
            b"%s\0%s\0" % (_escaped(check_text(c, "versions")), _escaped(check_text(v, "versions")))
            for c, v in versions.items()
        )
        blob_args: list[Arg] = []
        for i, item in enumerate(check_items(blobs, "blobs")):
            if not isinstance(item, tuple) or len(item) != 3:
                raise ValidationError("expected (channel, version, value)", field=f"blobs[{i}]")
            channel, version, value = item
            blob_args += (
                _escaped(check_text(channel, f"blobs[{i}]"))
                + b"\0"
                + _escaped(check_text(version, f"blobs[{i}]")),
                self._value(_check_typed(value, f"blobs[{i}]")),
            )
        record = self._record(
            namespace,
            checkpoint_id,
            checkpoint=_check_typed(checkpoint, "checkpoint"),
            metadata=_check_typed(metadata, "metadata"),
            parent_id=parent_id,
            run_id=run_id,
            refs=refs,
            filters=_filter_tokens(filters, "filters"),
        )
        keys = await self._keys()
        thread = keys.checkpoint_thread(thread_id)
        await self._driver.run(
            scripts.PUT,
            _thread_keys(thread),
            [
                _escaped(namespace),
                _escaped(checkpoint_id),
                record,
                _escaped(thread_id),
                len(blob_args) // 2,
                *blob_args,
            ],
            idempotent=True,
        )

    async def put_writes(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[int, str, Typed]],
        *,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against a checkpoint.

        A write at an index of 0 or more is stored once: writing the same task and index
        again keeps the first. A write at a negative index (a special write: an error, an
        interrupt) replaces the stored one. One script of three commands.

        Args:
            writes: (index, channel, value) for each write.
            task_path: The task's path; writes read back ordered by task path, task id and
                index. A task keeps one path.
        """
        check_id(thread_id, "thread_id")
        check_text(namespace, "namespace")
        check_id(checkpoint_id, "checkpoint_id")
        check_id(task_id, "task_id")
        check_text(task_path, "task_path")
        args: list[Arg] = [
            b"\0".join(
                (
                    _escaped(namespace),
                    _escaped(checkpoint_id),
                    _escaped(task_path),
                    _escaped(task_id),
                    b"",
                )
            )
        ]
        for i, item in enumerate(check_items(writes, "writes")):
            if not isinstance(item, tuple) or len(item) != 3:
                raise ValidationError("expected (index, channel, value)", field=f"writes[{i}]")
            index, channel, value = item
            if not isinstance(index, int) or isinstance(index, bool):
                raise ValidationError("expected an integer index", field=f"writes[{i}]")
            if not -_INDEX_OFFSET <= index < _INDEX_OFFSET:
                raise ValidationError("index out of range", field=f"writes[{i}]")
            args += (
                b"%08x" % (index + _INDEX_OFFSET),
                b"1" if index < 0 else b"0",
                _escaped(check_text(channel, f"writes[{i}]"))
                + b"\0"
                + self._value(_check_typed(value, f"writes[{i}]")),
            )
        if len(args) == 1:
            return
        keys = await self._keys()
        thread = keys.checkpoint_thread(thread_id)
        await self._driver.run(scripts.PUT_WRITES, [thread.writes], args, idempotent=True)

    async def get(
        self, thread_id: str, namespace: str = "", checkpoint_id: str | None = None
    ) -> StoredCheckpoint | None:
        """A checkpoint with its channel values and pending writes, or None.

        Without ``checkpoint_id``, the namespace's newest. One script of five commands,
        whatever the thread holds.
        """
        check_id(thread_id, "thread_id")
        check_text(namespace, "namespace")
        if checkpoint_id is not None:
            check_id(checkpoint_id, "checkpoint_id")
        keys = await self._keys()
        thread = keys.checkpoint_thread(thread_id)
        reply = await self._driver.run(
            scripts.GET,
            _thread_keys(thread)[:5],
            [_escaped(namespace), b"" if checkpoint_id is None else _escaped(checkpoint_id)],
            idempotent=True,
        )
        if reply is None:
            return None
        found_id, record, blobs, writes = as_list(reply)
        assert isinstance(found_id, bytes)
        assert isinstance(record, bytes)
        where = thread.records
        fields = _record_fields(record, where)
        refs = _refs(fields.get(b"b", b""))
        values = {
            ref: self._typed(raw, where)
            for ref, raw in zip(refs, as_list(blobs), strict=True)
            if isinstance(raw, bytes)
        }
        return self._stored(
            thread_id,
            namespace,
            _unescape(found_id),
            fields=fields,
            refs=refs,
            values=values,
            writes=writes,
            where=where,
        )

    async def export_checkpoints(
        self, thread_id: str, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[StoredCheckpoint]:
        """One chunk of a walk through a thread's checkpoints, oldest first (every
        namespace), with their values, writes and the tokens they are indexed under
        (``tokens``, which only this method fills). ``total`` counts the thread's
        checkpoints. One round trip (one script of about ``4 + count`` commands).

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many checkpoints to read, from 1 to 1000.
        """
        check_id(thread_id, "thread_id")
        check_count(count)
        after = b""
        if cursor is not None:
            try:
                after = base64.urlsafe_b64decode(str(cursor).encode("ascii"))
            except (binascii.Error, UnicodeEncodeError, ValueError):
                raise ValidationError(
                    "expected a cursor returned by the same method", field="cursor"
                ) from None
            if b"\0" not in after:
                raise ValidationError(
                    "expected a cursor returned by the same method", field="cursor"
                )
        keys = await self._keys()
        thread = keys.checkpoint_thread(thread_id)
        reply = as_list(
            await self._driver.run(
                scripts.COPY_CHUNK, _thread_keys(thread)[:5], [after, count], idempotent=True
            )
        )
        next_after, total, *rows, blob_fields, blob_values = reply
        assert isinstance(next_after, bytes)
        items = []
        for ns, fields, item in self._decode_rows(
            thread_id, rows, blob_fields, blob_values, where=thread.records
        ):
            tokens = _tokens(fields.get(b"e", b""), ns)
            items.append(msgspec.structs.replace(item, tokens=tokens) if tokens else item)
        return Chunk(
            items=items,
            cursor=base64.urlsafe_b64encode(next_after).decode() if next_after else None,
            total=int(total),
        )

    def _decode_rows(
        self,
        thread_id: str,
        rows: list[Reply],
        blob_fields: Reply,
        blob_values: Reply,
        *,
        where: str,
        keep: Callable[[str], bool] = lambda found: True,
    ) -> Iterator[tuple[bytes, dict[bytes, bytes], StoredCheckpoint]]:
        """The checkpoints of a page reply (``LIST`` or ``COPY_CHUNK``) whose id ``keep``
        accepts, each with its escaped namespace and its record's fields. Each channel
        value is decoded once, however many checkpoints of the page refer to it."""
        blobs = {
            field: self._typed(raw, where)
            for field, raw in zip(as_list(blob_fields), as_list(blob_values), strict=True)
            if isinstance(raw, bytes)
        }
        for row in rows:
            ns, found_id, record, writes = as_list(row)
            assert isinstance(ns, bytes)
            assert isinstance(found_id, bytes)
            assert isinstance(record, bytes)
            found = _unescape(found_id)
            if not keep(found):
                continue
            fields = _record_fields(record, where)
            refs = _refs(fields.get(b"b", b""))
            head = ns + b"\0"
            values = {}
            for ref in refs:
                stored = blobs.get(head + ref[0] + b"\0" + ref[1])
                if stored is not None:
                    values[ref] = stored
            item = self._stored(
                thread_id,
                _unescape(ns),
                found,
                fields=fields,
                refs=refs,
                values=values,
                writes=writes,
                where=where,
            )
            yield ns, fields, item

    async def count_checkpoints(self, thread_ids: Iterable[str]) -> list[int]:
        """How many checkpoints each thread has (0 for a missing one), in the order given.
        One round trip (one ``ZLEXCOUNT`` per thread)."""
        threads = check_ids(thread_ids, "thread_ids")
        if not threads:
            return []
        keys = await self._keys()
        replies = await self._driver.execute(
            [("ZLEXCOUNT", keys.checkpoint_thread(t).index, "[a\0", "(a\x01") for t in threads],
            idempotent=True,
        )
        return [int(n) for n in replies]  # type: ignore[arg-type]

    async def restore_checkpoints(
        self, checkpoints: Iterable[StoredCheckpoint | Mapping[str, Any]]
    ) -> list[StoredCheckpoint]:
        """Create or replace checkpoints exactly as :meth:`export_checkpoints` read them:
        values, writes, run and index tokens included. One round trip (one script per
        checkpoint, in one batch: one batch per node on a cluster).

        Raises:
            ValidationError: a checkpoint is malformed (``checkpoints[i]...``); nothing is
                written.
        """
        valid = [
            validate(c, StoredCheckpoint, where=f"checkpoints[{i}]")
            for i, c in enumerate(check_items(checkpoints, "checkpoints"))
        ]
        if not valid:
            return []
        commands: list[Command] = []
        keys = await self._keys()
        for i, item in enumerate(valid):
            where = f"checkpoints[{i}]"
            check_id(item.thread_id, where)
            check_text(item.namespace, where)
            check_id(item.checkpoint_id, where)
            ns, cid = _escaped(item.namespace), _escaped(item.checkpoint_id)
            refs = b"".join(
                b"%s\0%s\0" % (_escaped(check_text(c, where)), _escaped(check_text(v, where)))
                for c, v in item.versions.items()
            )
            blob_args: list[Arg] = []
            for channel, value in item.values.items():
                version = item.versions.get(channel)
                if version is None:
                    raise ValidationError("a value without a version", field=f"{where}.values")
                blob_args += (
                    _escaped(channel) + b"\0" + _escaped(version),
                    self._value(_check_typed(value, f"{where}.values")),
                )
            writes: list[Arg] = [
                b"\0".join(
                    (
                        ns,
                        cid,
                        _escaped(check_text(w.task_path, where)),
                        _escaped(check_id(w.task_id, where)),
                        b"%08x" % (w.index + _INDEX_OFFSET),
                        _escaped(check_text(w.channel, where)),
                        self._value(_check_typed(w.value, f"{where}.writes")),
                    )
                )
                for w in item.writes
                if -_INDEX_OFFSET <= w.index < _INDEX_OFFSET
            ]
            record = self._record(
                item.namespace,
                item.checkpoint_id,
                checkpoint=_check_typed(item.checkpoint, f"{where}.checkpoint"),
                metadata=_check_typed(item.metadata, f"{where}.metadata"),
                parent_id=item.parent_id,
                run_id=item.run_id,
                refs=refs,
                filters=item.tokens,
            )
            commands.append(
                scripts.PUT.command(
                    _thread_keys(keys.checkpoint_thread(item.thread_id)),
                    [
                        ns,
                        cid,
                        record,
                        _escaped(item.thread_id),
                        len(blob_args) // 2,
                        *blob_args,
                        *writes,
                    ],
                )
            )
        await self._driver.execute(commands, idempotent=True)
        return valid

    async def list(
        self,
        thread_id: str,
        namespace: str | None = None,
        *,
        checkpoint_id: str | None = None,
        before: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> CheckpointPage:
        """One page of a thread's checkpoints, newest first (greatest id first).

        One script of about ``3 + limit`` commands without filters. With filters, the
        script walks the entries of the rarest filter value and checks the others, at most
        1,000 candidates per call: a page may then come back short with a cursor.

        Args:
            namespace: Only this namespace; None: every namespace, merged by id.
            checkpoint_id: Only the checkpoint with this id (in every namespace when
                ``namespace`` is None).
            before: Only checkpoints whose id is less than this.
            filters: metadata key -> value; only checkpoints whose metadata holds every
                one (scalars only: ``str``, ``int``, ``float``, ``bool``).
            limit: The page size, from 1 to 1000.
            cursor: None for the first page, then the previous page's ``cursor``.

        Raises:
            ValidationError: a filter value is not a scalar, or an argument is malformed.
        """
        check_id(thread_id, "thread_id")
        if namespace is not None:
            check_text(namespace, "namespace")
        if checkpoint_id is not None:
            check_id(checkpoint_id, "checkpoint_id")
        if before is not None:
            check_id(before, "before")
        check_count(limit, "limit")
        tokens = []
        if filters is not None:
            if not hasattr(filters, "items"):
                raise ValidationError("expected a mapping", field="filters")
            for key, value in filters.items():
                token = filter_token(value)
                if token is None or not _key_ok(key):
                    raise ValidationError(
                        "filters take str keys and str, int, float or bool values",
                        field=f"filters[{key!r}]",
                    )
                tokens.append(_escaped(key) + b"\0" + _escaped(token))
        upper = b""
        if before is not None:
            upper = _escaped(before)
        if cursor is not None:
            try:
                resume = base64.urlsafe_b64decode(cursor.encode("ascii"))
            except (binascii.Error, UnicodeEncodeError, AttributeError, ValueError):
                raise ValidationError(
                    "expected a cursor returned by the same method", field="cursor"
                ) from None
            upper = resume if not upper else min(upper, resume)
        if checkpoint_id is not None:
            scope, arg = b"i" if namespace is None else b"n", b""
            if namespace is None:
                arg = _escaped(checkpoint_id)
            else:
                arg, limit = _escaped(namespace), 1
                # One checkpoint of one namespace: the range of ids up to and including it.
                bound = _escaped(checkpoint_id) + b"\0"
                upper = bound if not upper else min(upper, bound)
        elif namespace is None:
            scope, arg = b"a", b""
        else:
            scope, arg = b"n", _escaped(namespace)
        keys = await self._keys()
        thread = keys.checkpoint_thread(thread_id)
        reply = as_list(
            await self._driver.run(
                scripts.LIST,
                _thread_keys(thread)[:5],
                [scope, arg, upper, limit, LIST_BUDGET, *tokens],
                idempotent=True,
            )
        )
        next_cursor, *rows, blob_fields, blob_values = reply
        assert isinstance(next_cursor, bytes)

        def keep(found: str) -> bool:
            if checkpoint_id is not None and found != checkpoint_id:
                return False
            return before is None or found < before

        items = [
            item
            for _, _, item in self._decode_rows(
                thread_id, rows, blob_fields, blob_values, where=thread.records, keep=keep
            )
        ]
        if checkpoint_id is not None and namespace is not None:
            next_cursor = b""
        return CheckpointPage(
            items=items,
            cursor=base64.urlsafe_b64encode(next_cursor).decode() if next_cursor else None,
        )

    async def threads(self, *, cursor: str | None = None, count: int = 100) -> Chunk[str]:
        """One chunk of a walk through the ids of every thread with checkpoints, bucket by
        bucket. One round trip (a range read, and a count per bucket for the total)."""
        check_count(count)
        keys = await self._keys()
        buckets = keys.all_buckets
        position, after = 0, b""
        if cursor is not None:
            head, sep, tail = str(cursor).partition(":")
            try:
                position, after = int(head), base64.urlsafe_b64decode(tail.encode("ascii"))
            except (ValueError, binascii.Error, UnicodeEncodeError):
                position = -1
            if not sep or not 0 <= position < len(buckets):
                raise ValidationError(
                    "expected a cursor returned by the same method", field="cursor"
                )
        bucket = buckets[position]
        low = b"(" + after if after else b"-"
        commands: list[Command] = [
            ("ZRANGEBYLEX", bucket.checkpoint_threads, low, "+", "LIMIT", 0, count)
        ]
        commands += [("ZCARD", b.checkpoint_threads) for b in buckets]
        found, *counts = await self._driver.execute(commands, idempotent=True)
        members = [m for m in as_list(found) if isinstance(m, bytes)]
        sizes = [int(n) for n in counts]  # type: ignore[arg-type]
        next_cursor: str | None = None
        if len(members) == count:
            next_cursor = f"{position}:{base64.urlsafe_b64encode(members[-1]).decode()}"
        else:
            later = [b for b in range(position + 1, len(buckets)) if sizes[b]]
            if later:
                next_cursor = f"{later[0]}:"
        return Chunk(items=[_unescape(m) for m in members], cursor=next_cursor, total=sum(sizes))

    async def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, value and write of a thread, in every namespace.

        One script (one more per 200 runs the thread has checkpoints of). A missing thread
        is a no-op.
        """
        check_id(thread_id, "thread_id")
        await self._delete_threads([thread_id])

    async def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete every checkpoint written by these runs, in every thread, with its writes
        and the values no other checkpoint refers to.

        Two round trips (the runs' threads, found in every bucket; then one script per
        thread), one more per 200 checkpoints of a thread.
        """
        runs = check_ids(run_ids, "run_ids")
        if not runs:
            return
        keys = await self._keys()
        buckets = keys.all_buckets
        commands: list[Command] = []
        for bucket in buckets:
            for run in runs:
                escaped = _escaped(run)
                commands.append(
                    (
                        "ZRANGEBYLEX",
                        bucket.checkpoint_runs,
                        b"[" + escaped + b"\0",
                        b"(" + escaped + b"\x01",
                    )
                )
        replies = await self._driver.execute(commands, idempotent=True)
        todo: dict[str, list[bytes]] = {}
        for i, reply in enumerate(replies):
            run_escaped = _escaped(runs[i % len(runs)])
            for member in as_list(reply):
                assert isinstance(member, bytes)
                thread_id = _unescape(member[len(run_escaped) + 1 :])
                todo.setdefault(thread_id, []).append(run_escaped)
        while todo:
            plans = [(keys.checkpoint_thread(t), t, r) for t, r in todo.items()]
            done = await self._driver.execute(
                [
                    scripts.DROP_RUNS.command(
                        _thread_keys(thread), [_escaped(t), scripts.SLICE, *r]
                    )
                    for thread, t, r in plans
                ],
                idempotent=True,
            )
            todo = {t: r for (_, t, r), ok in zip(plans, done, strict=True) if ok != 1}

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint of a thread, with its values and writes, into another
        thread under the same ids (the source is unchanged; checkpoints the target has
        with the same ids are replaced).

        Two round trips per 100 checkpoints, oldest first: an interrupted copy leaves a
        consistent prefix of the history, and copying again completes it.
        """
        check_id(source_thread_id, "source_thread_id")
        check_id(target_thread_id, "target_thread_id")
        keys = await self._keys()
        source = keys.checkpoint_thread(source_thread_id)
        target = keys.checkpoint_thread(target_thread_id)
        target_keys = _thread_keys(target)
        after = b""
        while True:
            reply = as_list(
                await self._driver.run(
                    scripts.COPY_CHUNK,
                    _thread_keys(source)[:5],
                    [after, COPY_CHUNK],
                    idempotent=True,
                )
            )
            next_after, _, *rows, blob_fields, blob_values = reply
            assert isinstance(next_after, bytes)
            commands: list[Command] = []
            pairs = [
                x
                for f, v in zip(as_list(blob_fields), as_list(blob_values), strict=True)
                if v is not None
                for x in (f, v)
            ]
            if pairs:
                commands.append(("HSET", target.blobs, *pairs))
            for row in rows:
                ns, found_id, record, writes = as_list(row)
                commands.append(
                    scripts.PUT.command(
                        target_keys,
                        [ns, found_id, record, _escaped(target_thread_id), 0, *as_list(writes)],
                    )
                )
            if commands:
                await self._driver.execute(commands, idempotent=True)
            if not next_after:
                return
            after = next_after

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """Keep only the newest checkpoint of each namespace of these threads (with its
        values and writes), or with ``keep_latest=False`` delete the threads entirely.

        One script per thread, all in one batch (one more per 200 checkpoints deleted).
        """
        threads = check_ids(thread_ids, "thread_ids")
        if not threads:
            return
        if not keep_latest:
            await self._delete_threads(threads)
            return
        keys = await self._keys()
        todo = dict.fromkeys(threads, b"")
        while todo:
            plans = list(todo.items())
            replies = await self._driver.execute(
                [
                    scripts.PRUNE.command(
                        _thread_keys(keys.checkpoint_thread(t)),
                        [_escaped(t), scripts.SLICE, start],
                    )
                    for t, start in plans
                ],
                idempotent=True,
            )
            todo = {}
            for (t, _), resume in zip(plans, replies, strict=True):
                if resume:
                    assert isinstance(resume, bytes)
                    todo[t] = resume

    # -- internals ------------------------------------------------------------------------

    async def _delete_threads(self, thread_ids: Sequence[str]) -> None:
        keys = await self._keys()
        todo = list(dict.fromkeys(thread_ids))
        while todo:
            done = await self._driver.execute(
                [
                    scripts.DELETE_THREAD.command(
                        _thread_keys(keys.checkpoint_thread(t)), [_escaped(t), scripts.SLICE]
                    )
                    for t in todo
                ],
                idempotent=True,
            )
            todo = [t for t, ok in zip(todo, done, strict=True) if ok != 1]

    def _value(self, typed: Typed) -> bytes:
        """A serialized value as stored: a marker, the type tag, NUL, the bytes."""
        kind, data = typed
        if not self._driver.binary_safe:
            try:
                data.decode()
            except UnicodeDecodeError:
                return _BASE64 + kind.encode() + b"\0" + base64.b64encode(data)
        return _RAW + kind.encode() + b"\0" + data

    @staticmethod
    def _typed(stored: bytes, where: str) -> Typed:
        marker, body = stored[:1], stored[1:]
        kind, sep, data = body.partition(b"\0")
        if not sep or marker not in (_RAW, _BASE64):
            raise CorruptRecordError(where, "not a stored checkpoint value")
        if marker == _BASE64:
            try:
                data = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise CorruptRecordError(where, "bad base64 in a checkpoint value") from None
        return _kind(kind), data

    def _record(
        self,
        namespace: str,
        checkpoint_id: str,
        *,
        checkpoint: Typed,
        metadata: Typed,
        parent_id: str | None,
        run_id: str | None,
        refs: bytes,
        filters: Mapping[str, str],
    ) -> bytes:
        ns, cid = _escaped(namespace), _escaped(checkpoint_id)
        entries = [b"n\0" + ns + b"\0" + cid, b"a\0" + cid + b"\0" + ns]
        for key, token in filters.items():
            pair = _escaped(key) + b"\0" + _escaped(token)
            entries.append(b"m\0" + ns + b"\0" + pair + b"\0" + cid)
            entries.append(b"M\0" + pair + b"\0" + cid + b"\0" + ns)
        run = b"" if run_id is None else _escaped(run_id)
        if run_id is not None:
            entries.append(b"r\0" + run + b"\0" + ns + b"\0" + cid)
        return pack_fields(
            [
                b"c",
                self._value(checkpoint),
                b"m",
                self._value(metadata),
                b"p",
                b"" if parent_id is None else parent_id.encode(),
                b"b",
                refs,
                b"e",
                _entries(entries),
                b"r",
                run,
            ]
        )

    def _stored(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str,
        *,
        fields: dict[bytes, bytes],
        refs: Sequence[tuple[bytes, bytes]],
        values: Mapping[tuple[bytes, bytes], Typed],
        writes: Reply,
        where: str,
    ) -> StoredCheckpoint:
        try:
            parent = fields.get(b"p", b"").decode()
            run = fields.get(b"r", b"")
            prefix_length = len(_escaped(namespace)) + len(_escaped(checkpoint_id)) + 2
            write_list = []
            for member in as_list(writes):
                assert isinstance(member, bytes)
                path, task, index, channel, value = member[prefix_length:].split(b"\0", 4)
                write_list.append(
                    CheckpointWrite(
                        task_id=_unescape(task),
                        channel=_unescape(channel),
                        value=self._typed(value, where),
                        index=int(index, 16) - _INDEX_OFFSET,
                        task_path=_unescape(path),
                    )
                )
            versions = {_unescape(c): _unescape(v) for c, v in refs}
            stored_values = {_unescape(ref[0]): typed for ref, typed in values.items()}
            return StoredCheckpoint(
                thread_id=thread_id,
                namespace=namespace,
                checkpoint_id=checkpoint_id,
                parent_id=parent or None,
                checkpoint=self._typed(fields[b"c"], where),
                metadata=self._typed(fields[b"m"], where),
                versions=versions,
                values=stored_values,
                writes=write_list,
                run_id=_unescape(run) if run else None,
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(where, f"bad checkpoint record: {exc}") from None


def _thread_keys(thread: CheckpointKeys) -> list[Arg]:
    return [
        thread.index,
        thread.records,
        thread.blobs,
        thread.refs,
        thread.writes,
        thread.bucket.checkpoint_threads,
        thread.bucket.checkpoint_runs,
    ]


def _record_fields(record: bytes, where: str) -> dict[bytes, bytes]:
    try:
        flat = unpack_fields(record)
    except ValueError as exc:
        raise CorruptRecordError(where, str(exc)) from None
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _tokens(packed: bytes, ns: bytes) -> dict[str, str]:
    """metadata key -> token, from a record's index entries (its ``m`` entries)."""
    out: dict[str, str] = {}
    pos, size = 0, len(packed)
    head = b"m\0" + ns + b"\0"
    while pos < size:
        length = int(packed[pos : pos + 8], 16)
        entry = packed[pos + 8 : pos + 8 + length]
        pos += 8 + length
        if entry.startswith(head):
            key, token, _ = entry[len(head) :].split(b"\0", 2)
            out[_unescape(key)] = _unescape(token)
    return out


def _refs(packed: bytes) -> list[tuple[bytes, bytes]]:
    parts = packed.split(b"\0")
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
