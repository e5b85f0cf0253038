"""The facade: one object that holds a driver and the four domain stores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from kvstore.domains.checkpoints import CheckpointStore
from kvstore.domains.evals import EvalStore
from kvstore.domains.langgraph_items import ItemStore
from kvstore.domains.memory import MemoryStore
from kvstore.domains.traces import TraceRetention, TraceStore
from kvstore.domains.workflows import WorkflowStore
from kvstore.drivers._urls import shown_scheme
from kvstore.drivers.memory import MemoryDriver
from kvstore.errors import UnsupportedError
from kvstore.keys import validate_namespace
from kvstore.layout import StoreLayout

if TYPE_CHECKING:
    from types import TracebackType

    from kvstore.codec import FormatName
    from kvstore.drivers.base import Driver
    from kvstore.keys import Keys

__all__ = ["Storage", "driver_from_url"]


def driver_from_url(url: str, **options: Any) -> Driver:
    """Make the driver a URL names.

    ========================================  ==============================================
    ``memory://``                             the embedded in-memory driver
    ``memory:///path/to/data.aof``            the same, kept in an append-only file
    ``redis://``, ``rediss://``, ``unix://``  one Redis server (see :mod:`kvstore.drivers.redis`)
    ``redis+cluster://``, ``rediss+cluster://``  a Redis Cluster
    ``upstash://``, ``upstash+http://``       Upstash over REST (see :mod:`kvstore.drivers.upstash`)
    ========================================  ==============================================

    Extra keyword arguments go to the driver's own ``from_url``.
    """
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryDriver.from_url(url, **options)
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        from kvstore.drivers.redis import RedisDriver

        return RedisDriver.from_url(url, **options)
    if scheme in ("upstash", "upstash+http", "upstash+https"):
        from kvstore.drivers.upstash import UpstashDriver

        return UpstashDriver.from_url(url, **options)
    # Name the scheme only: the rest of the URL may hold a password or an Upstash token.
    raise ValueError(
        f"unsupported storage URL scheme {shown_scheme(url)}: use memory://, redis://, "
        "rediss://, unix://, redis+cluster://, upstash:// or upstash+http://"
    )


class Storage:
    """kvstore's entry point: memory, workflows, evals and traces behind one async API.

    With no driver, it keeps everything in this process's memory (the embedded default),
    which needs no server::

        async with Storage() as store:
            await store.memory.save_thread(Thread(id="t1", resource_id="alice"))

    Args:
        driver: Where data lives. Default: a new :class:`~kvstore.drivers.MemoryDriver`.
        namespace: Prefix of every key, so several apps or tenants can share a database.
        codec: ``"json"`` (default, works everywhere) or ``"msgpack"`` (binary-safe drivers
            only).
        owns_driver: Close the driver in :meth:`aclose`. Default: only a driver this
            object created (``driver=None`` or :meth:`from_url`).
        trace_retention: How many spans ``traces`` keeps (by count, by age or both);
            default: all of them.
        buckets: How many buckets (cluster hash slots) records spread over: 1 to 1024.
            Default: what the store records, or for a new namespace the driver's default
            (1 on a single server, 64 on a Redis Cluster). See :mod:`kvstore.keys`.

    Attributes:
        memory: Threads, messages and working memory.
        workflows: Workflow runs and their snapshots.
        evals: Eval scores.
        traces: Spans and traces.
        langgraph_items: The long-term store of LangGraph agents (items in namespaces).
        checkpoints: Graph checkpoints with their channel values and pending writes (what
            ``kvstore.integrations.langgraph.KVStoreSaver`` keeps).
    """

    __slots__ = (
        "_codec",
        "_driver",
        "_layout",
        "_owns_driver",
        "checkpoints",
        "evals",
        "langgraph_items",
        "memory",
        "namespace",
        "traces",
        "workflows",
    )

    def __init__(
        self,
        driver: Driver | None = None,
        namespace: str = "kv",
        *,
        codec: FormatName = "json",
        owns_driver: bool | None = None,
        trace_retention: TraceRetention | None = None,
        buckets: int | None = None,
    ) -> None:
        if trace_retention is not None and not isinstance(trace_retention, TraceRetention):
            raise TypeError("trace_retention must be a TraceRetention")
        if owns_driver is None:
            owns_driver = driver is None
        if driver is None:
            driver = MemoryDriver()
        if codec not in ("json", "msgpack"):
            raise ValueError(f"unknown codec {codec!r}: choose 'json' or 'msgpack'")
        if codec == "msgpack" and not driver.binary_safe:
            raise UnsupportedError(
                f"{type(driver).__name__} carries text only, so it cannot store MessagePack; "
                "use codec='json'"
            )
        self._driver = driver
        self._codec: FormatName = codec
        self._owns_driver = owns_driver
        self.namespace = validate_namespace(namespace)
        self._layout = layout = StoreLayout(driver, namespace, buckets, codec)
        self.memory = MemoryStore(driver, layout, codec)
        self.workflows = WorkflowStore(driver, layout, codec)
        self.evals = EvalStore(driver, layout, codec)
        self.traces = TraceStore(driver, layout, codec, trace_retention)
        self.langgraph_items = ItemStore(driver, layout, codec)
        self.checkpoints = CheckpointStore(driver, layout, codec)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "kv",
        codec: FormatName = "json",
        trace_retention: TraceRetention | None = None,
        buckets: int | None = None,
        **options: Any,
    ) -> Storage:
        """A store on the backend ``url`` names (see :func:`driver_from_url`); it owns the
        driver and closes it in :meth:`aclose`."""
        return cls(
            driver_from_url(url, **options),
            namespace=namespace,
            codec=codec,
            owns_driver=True,
            trace_retention=trace_retention,
            buckets=buckets,
        )

    @property
    def driver(self) -> Driver:
        """The driver underneath."""
        return self._driver

    async def keys(self) -> Keys:
        """The namespace's keys, after checking the store's layout (see :mod:`kvstore.layout`).

        Raises:
            LayoutError: the store holds data of another layout, bucket count or codec.
        """
        return await self._layout.keys()

    @property
    def codec(self) -> FormatName:
        """How records are encoded in the store: ``"json"`` or ``"msgpack"``."""
        return self._codec

    async def aclose(self) -> None:
        """Close the driver if this store owns it. Closing twice is harmless."""
        if self._owns_driver:
            await self._driver.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Storage({type(self._driver).__name__}, namespace={self.namespace!r})"
