"""``KVStoreStore``: LangGraph's long-term store (``BaseStore``) on kvstore.

A thin adapter over ``store.langgraph_items`` (:mod:`kvstore.domains.langgraph_items`): it
turns LangGraph's operations into the domain's, sends them as one
:meth:`~kvstore.domains.langgraph_items.ItemStore.batch` (one round trip, one batch per
node on a cluster) and turns the results into LangGraph's ``Item``, ``SearchItem`` and
namespace tuples. Semantic (vector) search is out of scope: a search with ``query`` is
refused.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from kvstore.integrations._loops import LoopBridge
from kvstore.records import (
    GetItem,
    ItemOp,
    ListNamespaces,
    PutItem,
    SearchItems,
    StoreItem,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kvstore.storage import Storage
    from kvstore.sync import SyncStorage

__all__ = ["KVStoreStore"]


class KVStoreStore(BaseStore):
    """LangGraph's long-term memory store on a kvstore :class:`~kvstore.Storage` or
    :class:`~kvstore.SyncStorage`.

    Every backend works: memory, the AOF file, Redis, Redis Cluster and Upstash. A batch is
    one round trip (one batch per node on a cluster); reads see the store as it was before
    the batch's puts, and several puts of one item keep the last.

    ``search`` filters are equality on top-level fields (``{"kind": "note"}`` or
    ``{"kind": {"$eq": "note"}}``, with a string, number, boolean or None), served by an
    index; other operators and nested conditions are refused with
    :class:`~kvstore.ValidationError`, and so is ``query`` (semantic search is out of
    scope). Results are newest first (by ``updated_at``).

    Args:
        store: The kvstore store, a :class:`~kvstore.Storage` or a
            :class:`~kvstore.SyncStorage` (it stays yours to close).
        ttl: LangGraph's TTL configuration: ``default_ttl`` (minutes) for puts that give
            none, ``refresh_on_read`` (default True). Expired items are never returned,
            and are deleted by later calls on their bucket: ``sweep_interval_minutes`` is
            not needed and ignored.

    The synchronous methods (``get``, ``put``, ``search``...): on a
    :class:`~kvstore.SyncStorage` they run through its portal, from any thread. On a
    :class:`~kvstore.Storage` they run the async ones on the event loop the store was made
    or last used on, from another thread; on an event loop's thread they raise
    ``asyncio.InvalidStateError`` (use the ``a``-methods). With no such loop running (a
    program without asyncio), on a loop of the adapter's own, in a daemon thread, which
    every later call uses too.
    """

    supports_ttl: bool = True

    def __init__(self, store: Storage | SyncStorage, *, ttl: TTLConfig | None = None) -> None:
        self._loops = LoopBridge(store, name="KVStoreStore", hint="aget, aput, ...")
        self.ttl_config = ttl

    @property
    def storage(self) -> Storage:
        """The kvstore store underneath (a SyncStorage's async :class:`~kvstore.Storage`)."""
        return self._loops.storage

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run LangGraph operations in one round trip; results in order."""
        return await self._loops.call(self._run, ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run LangGraph operations from blocking code, on the store's event loop."""
        return self._loops.block(functools.partial(self._run, ops))

    async def _run(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        converted = [_convert(op) for op in ops]
        results = await self.storage.langgraph_items.batch(converted)
        return [_result(op, r) for op, r in zip(ops, results, strict=True)]


def _convert(op: Op) -> ItemOp:
    """A LangGraph operation as the domain's."""
    validate_op_namespace(op)
    if isinstance(op, GetOp):
        return GetItem(namespace=op.namespace, key=op.key, refresh_ttl=op.refresh_ttl)
    if isinstance(op, PutOp):
        value = None if op.value is None else dict(op.value)
        return PutItem(namespace=op.namespace, key=op.key, value=value, ttl=op.ttl)
    if isinstance(op, SearchOp):
        if op.query is not None:
            raise NotImplementedError(
                "KVStoreStore does not do semantic (vector) search: search with filter= "
                "instead of query= (see the README, 'LangGraph store')"
            )
        return SearchItems(
            namespace_prefix=op.namespace_prefix,
            filter=op.filter,
            limit=op.limit,
            offset=op.offset,
            refresh_ttl=op.refresh_ttl,
        )
    if isinstance(op, ListNamespacesOp):
        prefix = suffix = None
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                prefix = tuple(condition.path)
            elif condition.match_type == "suffix":
                suffix = tuple(condition.path)
            else:
                raise ValueError(f"unknown match type {condition.match_type!r}")
        return ListNamespaces(
            prefix=prefix,
            suffix=suffix,
            max_depth=op.max_depth,
            limit=op.limit,
            offset=op.offset,
        )
    raise ValueError(f"unknown operation {type(op).__name__}")


def _item(item: StoreItem) -> Item:
    return Item(
        value=item.value,
        key=item.key,
        namespace=item.namespace,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _result(op: Op, result: Any) -> Result:
    if isinstance(op, GetOp):
        return None if result is None else _item(result)
    if isinstance(op, SearchOp):
        return [
            SearchItem(
                namespace=i.namespace,
                key=i.key,
                value=i.value,
                created_at=i.created_at,
                updated_at=i.updated_at,
            )
            for i in result
        ]
    if isinstance(op, ListNamespacesOp):
        return list(result)
    return None
