"""LangGraph's checkpointer, kept in kvstore: :class:`KVStoreSaver`.

A thin adapter over ``store.checkpoints`` (:class:`~kvstore.domains.checkpoints.
CheckpointStore`): it turns LangGraph's configs into thread, namespace and checkpoint ids,
serializes with the saver's ``serde`` (LangGraph's serializer protocol, so custom
serializers and ``EncryptedSerializer`` keep working), and calls the domain. Every call is
one round trip (one request on Upstash), whatever the thread holds; see the domain for
what each costs.

What is stored where: a checkpoint without its channel values, and its metadata, in one
record; each channel value once per (namespace, channel, version), shared by the
checkpoints that refer to it; pending writes with the checkpoint they belong to. Scalar
metadata values are indexed, so ``alist(filter=...)`` with ``str``, ``int``, ``float`` or
``bool`` values reads only matching checkpoints; other filter values are checked here on
the candidates. Index entries and channel names are stored as plaintext, also with an
encrypting serializer (as Postgres's metadata columns are).
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import TYPE_CHECKING, Any, Self, cast

from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)

from kvstore.domains.checkpoints import indexable_filters
from kvstore.integrations._loops import LoopBridge
from kvstore.storage import Storage
from kvstore.sync import SyncStorage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from types import TracebackType

    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.serde.base import SerializerProtocol

    from kvstore.domains.checkpoints import CheckpointStore
    from kvstore.records import StoredCheckpoint

__all__ = ["KVStoreSaver"]

# Checkpoints read per round trip when alist has no limit (or a large one).
_PAGE = 100
_STRATEGIES = {"keep_latest": True, "delete": False}


def _config(thread_id: str, namespace: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoint_id,
        }
    }


class KVStoreSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on a kvstore store (memory, the AOF file, Redis, Redis
    Cluster or Upstash)::

        async with KVStoreSaver.from_url("redis://localhost:6379/0") as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})

    It implements every method of ``BaseCheckpointSaver``, async and blocking, and the
    extended ones: ``adelete_for_runs``, ``acopy_thread`` and ``aprune``.

    Blocking methods (``graph.invoke``): on a :class:`~kvstore.SyncStorage` they run through
    its portal, from any thread. On a :class:`~kvstore.Storage` they run on the event loop
    the saver's async methods last ran on (or the saver was made on), from another thread
    (as LangGraph's own async savers do); called on an event loop's thread they raise
    ``asyncio.InvalidStateError``.
    In a program without asyncio (no async call yet), the saver starts a loop of its own
    in a daemon thread, which every later call uses; :meth:`close` stops it.

    Args:
        store: Where checkpoints live. It stays the caller's to close, unless
            ``owns_store`` is true (as with :meth:`from_url`).
        serde: LangGraph's serializer; default ``JsonPlusSerializer``.
        owns_store: Close ``store`` in :meth:`aclose`.
    """

    def __init__(
        self,
        store: Storage | SyncStorage,
        *,
        serde: SerializerProtocol | None = None,
        owns_store: bool = False,
    ) -> None:
        super().__init__(serde=serde)
        self._loops = LoopBridge(store, name="KVStoreSaver", hint="graph.ainvoke, aget_state")
        self._store = store
        self._owns_store = owns_store

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "kv",
        serde: SerializerProtocol | None = None,
        **options: Any,
    ) -> KVStoreSaver:
        """A saver on a store of its own, made from ``url`` (any kvstore URL:
        ``memory:///path.aof``, ``redis://``, ``redis+cluster://``, ``upstash://``);
        :meth:`aclose` (or :meth:`close` in blocking code) closes that store."""
        store = Storage.from_url(url, namespace=namespace, **options)
        return cls(store, serde=serde, owns_store=True)

    @property
    def store(self) -> Storage | SyncStorage:
        """The store the saver keeps checkpoints in."""
        return self._store

    @property
    def _checkpoints(self) -> CheckpointStore:
        return self._loops.storage.checkpoints

    # -- the async interface --------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the newest of its
        thread and namespace), with its pending writes; None when there is none."""
        configurable = config["configurable"]
        stored = await self._loops.call(
            self._checkpoints.get,
            str(configurable["thread_id"]),
            configurable.get("checkpoint_ns", ""),
            get_checkpoint_id(config),
        )
        return None if stored is None else self._tuple(stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangGraph's parameter name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first (greatest id first, across namespaces when ``config``
        names none), filtered by metadata equality, before a checkpoint, up to ``limit``.

        ``config=None`` lists every thread, thread after thread (each newest first).
        """
        if limit is not None and limit <= 0:
            return
        remaining = limit
        if config is None:
            cursor: str | None = None
            while True:
                chunk = await self._loops.call(self._checkpoints.threads, cursor=cursor)
                for thread_id in chunk.items:
                    async for item in self._list_thread(
                        thread_id,
                        namespace=None,
                        checkpoint_id=None,
                        filter=filter,
                        before=before,
                        limit=remaining,
                    ):
                        yield item
                        if remaining is not None:
                            remaining -= 1
                            if remaining == 0:
                                return
                if chunk.cursor is None:
                    return
                cursor = chunk.cursor
        configurable = config["configurable"]
        async for item in self._list_thread(
            str(configurable["thread_id"]),
            namespace=configurable.get("checkpoint_ns"),
            checkpoint_id=get_checkpoint_id(config),
            filter=filter,
            before=before,
            limit=remaining,
        ):
            yield item

    async def _list_thread(
        self,
        thread_id: str,
        *,
        namespace: str | None,
        checkpoint_id: str | None,
        filter: dict[str, Any] | None,  # noqa: A002
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncIterator[CheckpointTuple]:
        conditions = dict(filter or {})
        indexed = indexable_filters(conditions)
        before_id = get_checkpoint_id(before) if before else None
        cursor: str | None = None
        remaining = limit
        while True:
            page_size = _PAGE if remaining is None else min(remaining, 1000)
            page = await self._loops.call(
                self._checkpoints.list,
                thread_id,
                namespace,
                checkpoint_id=checkpoint_id,
                before=before_id,
                filters=indexed,
                limit=page_size,
                cursor=cursor,
            )
            for stored in page.items:
                item = self._tuple(stored)
                if all(item.metadata.get(k) == v for k, v in conditions.items()):
                    yield item
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
            if page.cursor is None:
                return
            cursor = page.cursor

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint: its channel values at ``new_versions``, the rest by
        reference to earlier checkpoints' values. One round trip."""
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        namespace = configurable.get("checkpoint_ns", "")
        copy = checkpoint.copy()
        values: dict[str, Any] = copy.pop("channel_values", {})  # type: ignore[misc]
        dumps = self.serde.dumps_typed
        blobs = [
            (channel, str(version), dumps(values[channel]) if channel in values else ("empty", b""))
            for channel, version in new_versions.items()
        ]
        stored_metadata = get_checkpoint_metadata(config, metadata)
        run_id = stored_metadata.get("run_id")
        await self._loops.call(
            self._checkpoints.put,
            thread_id,
            namespace,
            checkpoint["id"],
            checkpoint=dumps(copy),
            metadata=dumps(stored_metadata),
            versions={c: str(v) for c, v in checkpoint["channel_versions"].items()},
            blobs=blobs,
            parent_id=configurable.get("checkpoint_id"),
            run_id=None if run_id is None else str(run_id),
            filters=stored_metadata,
        )
        return _config(thread_id, namespace, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint ``config`` names. A write
        is stored once per (task, index); special writes (errors, interrupts) replace."""
        configurable = config["configurable"]
        dumps = self.serde.dumps_typed
        await self._loops.call(
            self._checkpoints.put_writes,
            str(configurable["thread_id"]),
            configurable.get("checkpoint_ns", ""),
            configurable["checkpoint_id"],
            task_id,
            [
                (WRITES_IDX_MAP.get(channel, idx), channel, dumps(value))
                for idx, (channel, value) in enumerate(writes)
            ],
            task_path=task_path,
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread, in every namespace."""
        await self._loops.call(self._checkpoints.delete_thread, str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of these runs, in every thread."""
        await self._loops.call(self._checkpoints.delete_runs, [str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint of a thread, with its values, writes and ids, into
        another thread."""
        await self._loops.call(
            self._checkpoints.copy_thread, str(source_thread_id), str(target_thread_id)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep only the newest checkpoint of each namespace of these
        threads (with its writes); ``"delete"``: delete the threads."""
        if strategy not in _STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        await self._loops.call(
            self._checkpoints.prune,
            [str(t) for t in thread_ids],
            keep_latest=_STRATEGIES[strategy],
        )

    # -- the blocking interface -------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Blocking :meth:`aget_tuple`."""
        return self._loops.block(functools.partial(self.aget_tuple, config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Blocking :meth:`alist`."""
        items = self.alist(config, filter=filter, before=before, limit=limit)
        while True:
            try:
                item = self._loops.block(items.__anext__)
            except StopAsyncIteration:
                return
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Blocking :meth:`aput`."""
        return self._loops.block(
            functools.partial(self.aput, config, checkpoint, metadata, new_versions)
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Blocking :meth:`aput_writes`."""
        self._loops.block(functools.partial(self.aput_writes, config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Blocking :meth:`adelete_thread`."""
        self._loops.block(functools.partial(self.adelete_thread, thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Blocking :meth:`adelete_for_runs`."""
        self._loops.block(functools.partial(self.adelete_for_runs, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Blocking :meth:`acopy_thread`."""
        self._loops.block(functools.partial(self.acopy_thread, source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Blocking :meth:`aprune`."""
        self._loops.block(functools.partial(self.aprune, thread_ids, strategy=strategy))

    # -- versions, closing ------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<32 digits: counter>.<16 digits: random>``, as InMemorySaver: two branches
        forked from one checkpoint never write the same (channel, version) value."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    async def aclose(self) -> None:
        """Close the store if the saver owns it (as with :meth:`from_url`)."""
        if self._owns_store:
            if isinstance(self._store, SyncStorage):
                await asyncio.to_thread(self._store.close)
            else:
                await self._loops.call(self._store.aclose)
        self._loops.close()

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        if self._owns_store:
            if isinstance(self._store, SyncStorage):
                self._store.close()
            elif self._loops.loop_running:
                self._loops.block(self._store.aclose)
            else:
                asyncio.run(self._store.aclose())
        self._loops.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KVStoreSaver({self._store!r})"

    # -- internals --------------------------------------------------------------------------

    def _tuple(self, stored: StoredCheckpoint) -> CheckpointTuple:
        loads = self.serde.loads_typed
        checkpoint = cast("Checkpoint", loads(stored.checkpoint))
        checkpoint["channel_values"] = {
            channel: loads(value) for channel, value in stored.values.items() if value[0] != "empty"
        }
        thread_id, namespace = stored.thread_id, stored.namespace
        return CheckpointTuple(
            config=_config(thread_id, namespace, stored.checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast("CheckpointMetadata", loads(stored.metadata)),
            parent_config=(
                _config(thread_id, namespace, stored.parent_id) if stored.parent_id else None
            ),
            pending_writes=[(w.task_id, w.channel, loads(w.value)) for w in stored.writes],
        )
