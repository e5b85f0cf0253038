"""SyncStorage: the blocking twin of :class:`~kvstore.storage.Storage`.

It is not a second implementation: it runs a :class:`~kvstore.storage.Storage` on an event
loop in a background thread (anyio's blocking portal) and blocks on each call. Every domain
and method of the async API is there with the same name and arguments.

Types: at run time a domain is a :class:`Blocking` wrapper that forwards calls through
``__getattr__``; for type checkers and editors it is the matching protocol
(:class:`BlockingMemoryStore`...), generated from the async classes by
``python -m kvstore._gen_sync`` into ``kvstore/_sync_api.py``. So ``mypy --strict`` rejects
``store.memory.get_thred("t")`` and knows that ``store.memory.get_thread("t")`` returns a
``Thread | None``.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar, cast

from anyio.from_thread import BlockingPortal, start_blocking_portal

from kvstore._sync_api import (
    BlockingCheckpointStore,
    BlockingEvalStore,
    BlockingItemStore,
    BlockingMemoryStore,
    BlockingTraceStore,
    BlockingWorkflowStore,
)
from kvstore.storage import Storage, driver_from_url

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import TracebackType

    from kvstore.codec import FormatName
    from kvstore.domains.traces import TraceRetention
    from kvstore.drivers.base import Driver
    from kvstore.keys import Keys

__all__ = [
    "Blocking",
    "BlockingCheckpointStore",
    "BlockingEvalStore",
    "BlockingItemStore",
    "BlockingMemoryStore",
    "BlockingTraceStore",
    "BlockingWorkflowStore",
    "SyncStorage",
]

D = TypeVar("D")

#: The domains a Storage offers; SyncStorage wraps each.
DOMAINS = ("memory", "workflows", "evals", "traces", "checkpoints", "langgraph_items")


class Blocking(Generic[D]):
    """A domain store whose coroutine methods block until done.

    ``Blocking(portal, store.memory).get_thread("t1")`` runs
    ``await store.memory.get_thread("t1")`` on the portal's loop and returns its result.
    """

    __slots__ = ("_domain", "_portal")

    def __init__(self, portal: BlockingPortal, domain: D) -> None:
        self._portal = portal
        self._domain = domain

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._domain, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            raise AttributeError(f"{type(self._domain).__name__} has no blocking method {name!r}")

        @functools.wraps(method)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._portal.call(functools.partial(method, *args, **kwargs))

        return blocking

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._domain) if not n.startswith("_")]

    def __repr__(self) -> str:
        return f"Blocking({self._domain!r})"


class SyncStorage:
    """kvstore for blocking code: the same domains and methods as :class:`Storage`.

    Example::

        with SyncStorage() as store:
            store.memory.save_thread(Thread(id="t1", resource_id="alice"))
            print(store.memory.get_thread("t1"))

    Args:
        driver: As for :class:`Storage`; default the embedded in-memory driver.
        namespace: As for :class:`Storage`.
        codec: As for :class:`Storage`.
        backend: The event loop the portal runs: ``"asyncio"`` (needed by RedisDriver) or
            ``"trio"``.
        owns_driver: As for :class:`Storage`.
        trace_retention: As for :class:`Storage`.
        buckets: As for :class:`Storage`.
    """

    __slots__ = (
        "_closed",
        "_portal",
        "_portal_cm",
        "_storage",
        "checkpoints",
        "evals",
        "langgraph_items",
        "memory",
        "traces",
        "workflows",
    )

    def __init__(
        self,
        driver: Driver | None = None,
        namespace: str = "kv",
        *,
        codec: FormatName = "json",
        backend: Literal["asyncio", "trio"] = "asyncio",
        owns_driver: bool | None = None,
        trace_retention: TraceRetention | None = None,
        buckets: int | None = None,
    ) -> None:
        self._closed = False
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(backend)
        self._portal = self._portal_cm.__enter__()
        try:
            # Built on the portal's loop: some drivers bind to the loop they are made on.
            self._storage = self._portal.call(
                functools.partial(
                    Storage,
                    driver,
                    namespace=namespace,
                    codec=codec,
                    owns_driver=owns_driver,
                    trace_retention=trace_retention,
                    buckets=buckets,
                )
            )
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        # Typed as the generated protocols: Blocking forwards through __getattr__, which
        # type checkers cannot follow.
        storage, portal = self._storage, self._portal
        self.memory = cast(BlockingMemoryStore, Blocking(portal, storage.memory))
        self.workflows = cast(BlockingWorkflowStore, Blocking(portal, storage.workflows))
        self.evals = cast(BlockingEvalStore, Blocking(portal, storage.evals))
        self.traces = cast(BlockingTraceStore, Blocking(portal, storage.traces))
        self.checkpoints = cast(BlockingCheckpointStore, Blocking(portal, storage.checkpoints))
        self.langgraph_items = cast(BlockingItemStore, Blocking(portal, storage.langgraph_items))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "kv",
        codec: FormatName = "json",
        backend: Literal["asyncio", "trio"] = "asyncio",
        trace_retention: TraceRetention | None = None,
        buckets: int | None = None,
        **options: Any,
    ) -> SyncStorage:
        """A blocking store on the backend ``url`` names; it owns and closes the driver."""
        return cls(
            driver_from_url(url, **options),
            namespace=namespace,
            codec=codec,
            backend=backend,
            owns_driver=True,
            trace_retention=trace_retention,
            buckets=buckets,
        )

    @property
    def storage(self) -> Storage:
        """The async :class:`Storage` this object drives."""
        return self._storage

    @property
    def namespace(self) -> str:
        """The namespace, as for :class:`Storage`."""
        return self._storage.namespace

    def keys(self) -> Keys:
        """The namespace's keys, after checking the store's layout (see :meth:`Storage.keys`)."""
        return self._portal.call(self._storage.keys)

    @property
    def portal(self) -> BlockingPortal:
        """The portal running :attr:`storage`'s event loop, for calls that need a timeout
        (``portal.start_task_soon(...)`` returns a ``concurrent.futures.Future``)."""
        return self._portal

    def close(self) -> None:
        """Close the store (and its driver if owned), then stop the portal's loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self._storage.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
