"""An OpenTelemetry span exporter that writes into a kvstore (the ``otel`` extra).

Wire it like any SDK exporter, usually behind a ``BatchSpanProcessor``::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    store = SyncStorage.from_url("redis://localhost:6379/0")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(StorageSpanExporter(store)))

Then read traces back with ``store.traces``.

Threads and event loops. The SDK calls :meth:`StorageSpanExporter.export` from its own
worker thread, never from the application's event loop, so the exporter blocks there:

* Given a :class:`~kvstore.sync.SyncStorage`, it submits each batch to that store's event
  loop thread (its portal), which is safe from any thread.
* Given an async :class:`~kvstore.storage.Storage`, it runs it on an event loop thread of
  its own, started on the first export and stopped by :meth:`~StorageSpanExporter.shutdown`.
  Drivers bind to the event loop they first run on, so such a Storage must be the
  exporter's alone (made for it, e.g. with ``Storage.from_url``). To share one store with
  the application, pass a SyncStorage.
* Given an async Storage that the application already runs, and ``portal``, a
  :class:`~anyio.from_thread.BlockingPortal` of the application's event loop (``async
  with BlockingPortal() as portal:`` on that loop), it submits each batch there: the
  application and the exporter share one Storage. The SDK must then export from another
  thread than that loop's (``BatchSpanProcessor`` does; with ``SimpleSpanProcessor``, run
  the traced code in a worker thread); an export on the loop's own thread would wait for
  itself, so it is refused and reported as failed.

Either way the exporter never needs the application's event loop, so shutting the tracer
provider down from inside that loop cannot deadlock, and a batch that takes longer than
``timeout`` is cancelled and reported as failed.

Failures never reach the application: as the OpenTelemetry specification asks of
exporters, :meth:`~StorageSpanExporter.export` catches them, logs them with the
:mod:`logging` module (logger ``kvstore.otel``) and returns ``SpanExportResult.FAILURE``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from kvstore._extras import require
from kvstore.records import Span, SpanEvent, SpanKind, SpanLink, SpanStatus, utc_now
from kvstore.storage import Storage
from kvstore.sync import SyncStorage

require("opentelemetry.sdk.trace.export", "otel")

from anyio.from_thread import BlockingPortal, start_blocking_portal  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind as OtelSpanKind  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from concurrent.futures import Future
    from contextlib import AbstractContextManager

    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["StorageSpanExporter", "span_to_record"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS: dict[OtelSpanKind, SpanKind] = {
    OtelSpanKind.INTERNAL: "internal",
    OtelSpanKind.SERVER: "server",
    OtelSpanKind.CLIENT: "client",
    OtelSpanKind.PRODUCER: "producer",
    OtelSpanKind.CONSUMER: "consumer",
}
_STATUSES: dict[StatusCode, Literal["unset", "ok", "error"]] = {
    StatusCode.UNSET: "unset",
    StatusCode.OK: "ok",
    StatusCode.ERROR: "error",
}


class _TimeoutExceededError(Exception):
    """A batch took longer than the exporter's timeout and was cancelled."""


class StorageSpanExporter(SpanExporter):
    """Exports OpenTelemetry spans to ``store.traces``.

    Args:
        store: Where spans go: a :class:`~kvstore.sync.SyncStorage`, or an async
            :class:`~kvstore.storage.Storage` used by this exporter only (see the module
            docstring).
        timeout: Seconds one batch may take before it is cancelled and reported failed.
        owns_store: Close ``store`` in :meth:`shutdown`. Default: only a store this object
            created (:meth:`from_url`).
        backend: The event loop to run an async Storage on: ``"asyncio"`` (needed by
            RedisDriver) or ``"trio"``.
        portal: With an async Storage the application runs: a portal of its event loop,
            where batches are saved (see the module docstring). The portal and the store
            stay the application's: :meth:`shutdown` closes neither.
    """

    def __init__(
        self,
        store: SyncStorage | Storage,
        *,
        timeout: float = 30.0,
        owns_store: bool = False,
        backend: Literal["asyncio", "trio"] = "asyncio",
        portal: BlockingPortal | None = None,
    ) -> None:
        if not isinstance(store, SyncStorage | Storage):
            raise TypeError(f"expected a SyncStorage or a Storage, got {type(store).__name__}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if portal is not None:
            if not isinstance(store, Storage):
                raise TypeError("portal goes with an async Storage; a SyncStorage has its own")
            if owns_store:
                raise ValueError("a store run on the application's portal stays its own")
        self._store = store
        self._timeout = timeout
        self._owns_store = owns_store
        self._backend = backend
        self._lock = threading.Lock()
        self._shut_down = False
        # The private event loop of an async Storage, started on the first export.
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        # The application's portal, when given: never started or stopped here.
        self._outside_portal = portal

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0, **options: Any) -> StorageSpanExporter:
        """An exporter with a store of its own on the backend ``url`` names; it is closed
        by :meth:`shutdown`. Keyword arguments go to :meth:`SyncStorage.from_url
        <kvstore.sync.SyncStorage.from_url>`."""
        return cls(SyncStorage.from_url(url, **options), timeout=timeout, owns_store=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Save a batch of finished spans in one round trip; never raises.

        Returns:
            ``SUCCESS``, or ``FAILURE`` after logging why.
        """
        if self._shut_down:
            logger.warning("StorageSpanExporter is shut down, dropping %d spans", len(spans))
            return SpanExportResult.FAILURE
        try:
            records = [span_to_record(s) for s in spans]
            if records:
                self._save(records)
        except _TimeoutExceededError:
            logger.error(
                "exporting %d spans to kvstore took over %ss; the batch was dropped",
                len(spans),
                self._timeout,
            )
            return SpanExportResult.FAILURE
        except Exception:
            logger.exception("exception while exporting %d spans to kvstore", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing to flush: each export is written before it returns."""
        del timeout_millis
        return True

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        """Stop exporting; stop the private event loop and close the store if owned.

        Later exports are dropped and reported as failures. Calling it twice is harmless.
        """
        del timeout_millis  # every export is already bounded by `timeout`
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            portal_cm, portal = self._portal_cm, self._portal
            self._portal_cm = self._portal = None
        store = self._store
        try:
            if isinstance(store, SyncStorage):
                if self._owns_store:
                    store.close()
            elif portal_cm is not None and portal is not None:
                try:
                    if self._owns_store:
                        # The driver is bound to the private loop: close it there.
                        portal.call(store.aclose)
                finally:
                    portal_cm.__exit__(None, None, None)
            elif self._owns_store:
                with start_blocking_portal(self._backend) as fresh:
                    fresh.call(store.aclose)
        except Exception:
            logger.exception("exception while shutting StorageSpanExporter down")

    # -- internals ------------------------------------------------------------------------

    def _save(self, records: list[Span]) -> None:
        """Run ``save_spans`` on the store's event loop and wait at most ``timeout``."""
        store = self._store
        if isinstance(store, SyncStorage):
            portal, save = store.portal, store.storage.traces.save_spans
        elif self._outside_portal is not None:
            # Raises RuntimeError on the portal's own loop thread instead of waiting there.
            portal, save = self._outside_portal, store.traces.save_spans
        else:
            portal, save = self._private_portal(), store.traces.save_spans
        future: Future[list[Span]] = portal.start_task_soon(save, records)
        try:
            future.result(timeout=self._timeout)
        except TimeoutError:
            if future.done():
                raise  # the save itself raised TimeoutError: report it as any failure
            future.cancel()
            raise _TimeoutExceededError from None

    def _private_portal(self) -> BlockingPortal:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("StorageSpanExporter is shut down")
            if self._portal is None:
                portal_cm = start_blocking_portal(self._backend)
                self._portal = portal_cm.__enter__()
                self._portal_cm = portal_cm
            return self._portal


def span_to_record(span: ReadableSpan) -> Span:
    """An OpenTelemetry SDK span as a kvstore :class:`~kvstore.records.Span`.

    Ids become lowercase hex (32 digits for traces, 16 for spans); times keep
    microseconds; attribute sequences become lists.

    Raises:
        ValueError: the span has no span context.
    """
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    scope = span.instrumentation_scope
    start = _time(span.start_time) if span.start_time is not None else utc_now()
    return Span(
        trace_id=_trace_id(context.trace_id),
        span_id=_span_id(context.span_id),
        parent_span_id=None if span.parent is None else _span_id(span.parent.span_id),
        name=span.name,
        kind=_KINDS.get(span.kind, "internal"),
        scope=None if scope is None else scope.name,
        scope_version=None if scope is None else scope.version,
        status=SpanStatus(
            code=_STATUSES.get(span.status.status_code, "unset"),
            message=span.status.description,
        ),
        start_time=start,
        end_time=None if span.end_time is None else _time(span.end_time),
        attributes=_attributes(span.attributes),
        events=[
            SpanEvent(
                name=event.name,
                timestamp=_time(event.timestamp),
                attributes=_attributes(event.attributes),
            )
            for event in span.events
        ],
        links=[
            SpanLink(
                trace_id=_trace_id(link.context.trace_id),
                span_id=_span_id(link.context.span_id),
                attributes=_attributes(link.attributes),
            )
            for link in span.links
        ],
        resource=_attributes(span.resource.attributes),
    )


def _trace_id(value: int) -> str:
    return format(value, "032x")


def _span_id(value: int) -> str:
    return format(value, "016x")


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: list(v) if isinstance(v, tuple | list) else v for k, v in attributes.items()}
