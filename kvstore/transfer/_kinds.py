"""The kinds of record a transfer moves, each with how to walk, write and count it.

A *walk* reads every record of a kind from a store, page by page through the global
indexes (never ``SCAN``), and yields :class:`Step` s: a few records and the position to
resume at after them. Positions are small JSON-able lists, so a migration can keep the
last one in a checkpoint file and continue from it after an interruption.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from kvstore.records import (
    Message,
    Resource,
    Score,
    Span,
    StoredCheckpoint,
    StoreItem,
    Thread,
    WorkflowRun,
)

if TYPE_CHECKING:
    from kvstore.records import Chunk
    from kvstore.storage import Storage

__all__ = ["KINDS", "KINDS_BY_NAME", "KINDS_BY_TAG", "Kind", "Position", "Step", "thread_messages"]

R = TypeVar("R")

#: Where a walk resumes: ``[cursor]`` for most kinds; ``[threads cursor, index of the
#: thread in that chunk, messages cursor]`` for messages. None inside means "the start".
Position: TypeAlias = list[str | int | None]

#: How many threads one round trip of counting covers.
_COUNT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Step(Generic[R]):
    """Records read by a walk, and where it resumes after them (None: the walk is over)."""

    records: list[R]
    after: Position | None


Walk: TypeAlias = Callable[["Storage", "Position | None", int], AsyncIterator[Step[Any]]]


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of record.

    Attributes:
        name: The plural name reports and checkpoints use (``"threads"``).
        tag: The ``kind`` of its lines in an export (``"thread"``).
        type: The record type.
        walk: ``walk(store, start, count)``: every record from ``start`` (None: the
            beginning), reading ``count`` at a time.
        write: Writes records exactly as read (an upsert by id: writing twice is
            harmless), in one round trip.
        count: How many records the store holds, from the indexes, without reading them.
    """

    name: str
    tag: str
    type: type[Any]
    walk: Walk
    write: Callable[[Storage, list[Any]], Awaitable[object]]
    count: Callable[[Storage], Awaitable[int]]


ExportMethod: TypeAlias = Callable[..., Awaitable["Chunk[Any]"]]


def _chunked(export: Callable[[Storage], ExportMethod]) -> Walk:
    """The walk of a kind whose store has an ``export_*(cursor=, count=)`` method."""

    async def walk(store: Storage, start: Position | None, count: int) -> AsyncIterator[Step[Any]]:
        (cursor,) = _position(start, [None], str)
        while True:
            chunk = await export(store)(cursor=cursor, count=count)
            cursor = chunk.cursor
            yield Step(chunk.items, None if cursor is None else [cursor])
            if cursor is None:
                return

    return walk


def _total(export: Callable[[Storage], ExportMethod]) -> Callable[[Storage], Awaitable[int]]:
    async def count(store: Storage) -> int:
        return (await export(store)(count=1)).total

    return count


async def thread_messages(
    store: Storage, thread_id: str, count: int, cursor: str | None = None
) -> AsyncIterator[tuple[list[Message], str | None]]:
    """A thread's messages in its order, ``count`` at a time, with the cursor after each."""
    while True:
        chunk = await store.memory.export_messages(thread_id, cursor=cursor, count=count)
        cursor = chunk.cursor
        yield chunk.items, cursor
        if cursor is None:
            return


async def _walk_messages(
    store: Storage, start: Position | None, count: int
) -> AsyncIterator[Step[Message]]:
    """Every message, thread by thread (threads in :meth:`export_threads` order)."""
    threads_cursor, index, messages_cursor = _position(start, [None, 0, None], str, int, str)
    index = index or 0
    while True:
        threads = await store.memory.export_threads(cursor=threads_cursor, count=count)
        for i in range(index, len(threads.items)):
            thread_id = threads.items[i].id
            async for messages, cursor in thread_messages(store, thread_id, count, messages_cursor):
                if cursor is not None:
                    after: Position | None = [threads_cursor, i, cursor]
                elif i + 1 < len(threads.items):
                    after = [threads_cursor, i + 1, None]
                elif threads.cursor is not None:
                    after = [threads.cursor, 0, None]
                else:
                    after = None
                yield Step(messages, after)
            messages_cursor = None
        if threads.cursor is None:
            return
        threads_cursor, index = threads.cursor, 0


async def _walk_checkpoints(
    store: Storage, start: Position | None, count: int
) -> AsyncIterator[Step[StoredCheckpoint]]:
    """Every checkpoint, thread by thread (threads in :meth:`threads` order), each
    thread's oldest first."""
    threads_cursor, index, cursor = _position(start, [None, 0, None], str, int, str)
    index = index or 0
    checkpoints = store.checkpoints
    while True:
        threads = await checkpoints.threads(cursor=threads_cursor, count=count)
        for i in range(index, len(threads.items)):
            while True:
                chunk = await checkpoints.export_checkpoints(
                    threads.items[i], cursor=cursor, count=count
                )
                cursor = chunk.cursor
                if cursor is not None:
                    after: Position | None = [threads_cursor, i, cursor]
                elif i + 1 < len(threads.items):
                    after = [threads_cursor, i + 1, None]
                elif threads.cursor is not None:
                    after = [threads.cursor, 0, None]
                else:
                    after = None
                yield Step(chunk.items, after)
                if cursor is None:
                    break
        if threads.cursor is None:
            return
        threads_cursor, index = threads.cursor, 0


async def _count_checkpoints(store: Storage) -> int:
    total = 0
    cursor: str | None = None
    while True:
        threads = await store.checkpoints.threads(cursor=cursor, count=_COUNT_PAGE)
        total += sum(await store.checkpoints.count_checkpoints(threads.items))
        cursor = threads.cursor
        if cursor is None:
            return total


def _position(start: Position | None, default: list[Any], *types: type[Any]) -> list[Any]:
    """``start`` checked against the shape a walk makes (it may come from a file).

    Raises:
        ValueError: ``start`` is not a position of this walk.
    """
    if start is None:
        return default
    if len(start) != len(types) or not all(
        v is None or (isinstance(v, t) and not isinstance(v, bool))
        for v, t in zip(start, types, strict=True)
    ):
        raise ValueError(f"not a position of this walk: {start!r}")
    return start


async def _count_messages(store: Storage) -> int:
    total = 0
    cursor: str | None = None
    while True:
        threads = await store.memory.export_threads(cursor=cursor, count=_COUNT_PAGE)
        total += sum(await store.memory.count_messages(t.id for t in threads.items))
        cursor = threads.cursor
        if cursor is None:
            return total


async def _write_spans(store: Storage, spans: list[Span]) -> None:
    await store.traces.save_spans(spans)


def _export_resources(store: Storage) -> ExportMethod:
    return store.memory.export_resources


def _export_threads(store: Storage) -> ExportMethod:
    return store.memory.export_threads


def _export_runs(store: Storage) -> ExportMethod:
    return store.workflows.export_runs


def _export_scores(store: Storage) -> ExportMethod:
    return store.evals.export_scores


def _export_spans(store: Storage) -> ExportMethod:
    return store.traces.export_spans


def _export_store_items(store: Storage) -> ExportMethod:
    return store.langgraph_items.export_items


def _simple(
    name: str,
    tag: str,
    type_: type[Any],
    export: Callable[[Storage], ExportMethod],
    write: Callable[[Storage, list[Any]], Awaitable[object]],
) -> Kind:
    return Kind(name, tag, type_, _chunked(export), write, _total(export))


#: Every kind, in the order transfers move them: a thread before its messages.
KINDS: tuple[Kind, ...] = (
    _simple(
        "resources",
        "resource",
        Resource,
        _export_resources,
        lambda store, records: store.memory.restore_resources(records),
    ),
    _simple(
        "threads",
        "thread",
        Thread,
        _export_threads,
        lambda store, records: store.memory.restore_threads(records),
    ),
    Kind(
        "messages",
        "message",
        Message,
        _walk_messages,
        lambda store, records: store.memory.restore_messages(records),
        _count_messages,
    ),
    _simple(
        "runs",
        "run",
        WorkflowRun,
        _export_runs,
        lambda store, records: store.workflows.restore_runs(records),
    ),
    _simple(
        "scores",
        "score",
        Score,
        _export_scores,
        lambda store, records: store.evals.restore_scores(records),
    ),
    _simple("spans", "span", Span, _export_spans, _write_spans),
    _simple(
        "store_items",
        "store_item",
        StoreItem,
        _export_store_items,
        lambda store, records: store.langgraph_items.restore_items(records),
    ),
    Kind(
        "checkpoints",
        "checkpoint",
        StoredCheckpoint,
        _walk_checkpoints,
        lambda store, records: store.checkpoints.restore_checkpoints(records),
        _count_checkpoints,
    ),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
KINDS_BY_TAG = {kind.tag: kind for kind in KINDS}
