"""An OpenTelemetry span exporter that writes into a kvstore (the ``otel`` extra).

Wire it like any SDK exporter, usually behind a ``BatchSpanProcessor``::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    store = SyncStorage.from_url("redis://localhost:6379/0")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(StorageSpanExporter(store)))

Then read traces back with ``store.traces``.

Threads and event loops. The SDK calls :meth:`StorageSpanExporter.export` from its own
worker thread (a ``BatchSpanProcessor``'s), so the exporter hands each batch to the event
loop the store runs on and waits for it there, at most ``timeout`` seconds:

* Given a :class:`~kvstore.sync.SyncStorage`, it submits each batch to that store's event
  loop thread (its portal), which is safe from any thread.
* Given an async :class:`~kvstore.storage.Storage` while an event loop runs (made inside
  the application, e.g. in its startup code), it exports on *that* loop: the application
  and the exporter share one store, and a driver bound to the loop (redis-py's) works for
  both. Each batch is scheduled on the loop thread-safely and awaited with the timeout;
  a batch that outlasts it is cancelled. Shut the provider down (or force a flush) from
  outside the loop, e.g. ``await anyio.to_thread.run_sync(provider.shutdown)``: called
  on the loop's own thread, it blocks the loop that the last batch needs, which then fails
  after ``timeout``. An export called on the loop's own thread (a ``SimpleSpanProcessor``)
  cannot wait for the loop it runs on: it schedules the batch there and returns; a
  failure is then logged.
* Given an async :class:`~kvstore.storage.Storage` with no event loop running, it runs it
  on an event loop thread of its own, started on the first export and stopped by
  :meth:`~StorageSpanExporter.shutdown`. Drivers bind to the event loop they first run on,
  so such a Storage must be the exporter's alone (made for it, e.g. with
  ``Storage.from_url``).

Failures never reach the application: as the OpenTelemetry specification asks of
exporters, :meth:`~StorageSpanExporter.export` catches them, logs them with the
:mod:`logging` module (logger ``kvstore.otel``) and returns ``SpanExportResult.FAILURE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import anyio

from kvstore._extras import require
from kvstore.records import Span, SpanEvent, SpanKind, SpanLink, SpanStatus, utc_now
from kvstore.storage import Storage
from kvstore.sync import SyncStorage

require("opentelemetry.sdk.trace.export", "otel")

from anyio.from_thread import BlockingPortal, start_blocking_portal  # noqa: E402
from opentelemetry.attributes import BoundedAttributes  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind as OtelSpanKind  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from contextlib import AbstractContextManager

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["StorageSpanExporter", "span_to_record"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNSET = SpanStatus()
#: Attribute value types stored as they are (floats are checked: NaN and infinities are not).
_PLAIN = frozenset({str, int, bool})
_last_resource: tuple[Resource, dict[str, Any]] | None = None
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


class _AppLoop:
    """The application's running event loop (asyncio or trio), reachable from any thread.

    :meth:`submit` schedules a coroutine function there without blocking and returns a
    :class:`concurrent.futures.Future`; cancelling the future cancels the task.
    """

    __slots__ = ("_loop", "_token")

    def __init__(self, loop: asyncio.AbstractEventLoop | None, token: Any) -> None:
        self._loop = loop
        self._token = token

    @classmethod
    def current(cls) -> _AppLoop | None:
        """The event loop running in this thread, or None."""
        try:
            return cls(asyncio.get_running_loop(), None)
        except RuntimeError:
            pass
        trio = sys.modules.get("trio")
        if trio is not None:
            try:
                return cls(None, trio.lowlevel.current_trio_token())
            except RuntimeError:
                pass
        return None

    def is_current(self) -> bool:
        """Whether the calling thread is the loop's own (where waiting for it deadlocks)."""
        return _AppLoop.current() == self

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _AppLoop)
            and other._loop is self._loop
            and other._token is self._token
        )

    def __hash__(self) -> int:
        return hash((id(self._loop), id(self._token)))

    def submit(self, func: Callable[[], Awaitable[Any]]) -> Future[Any]:
        """Run ``func()`` on the loop, from any thread (the loop's own included).

        Raises:
            RuntimeError: the loop is closed or its run has ended.
        """
        if self._loop is not None:
            coroutine = _coroutine(func)
            try:
                return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except BaseException:
                coroutine.close()  # never scheduled (the loop is closed): not a leak
                raise
        return self._submit_trio(func)

    def _submit_trio(self, func: Callable[[], Awaitable[Any]]) -> Future[Any]:
        import trio

        future: Future[Any] = Future()
        scopes: list[trio.CancelScope] = []

        async def runner() -> None:
            with trio.CancelScope() as scope:
                scopes.append(scope)
                if future.cancelled():
                    scope.cancel()
                try:
                    result = await func()
                except Exception as exc:
                    _settle(future, exception=exc)
                    return
            if scope.cancelled_caught:
                future.cancel()
            else:
                _settle(future, result=result)

        def spawn() -> None:
            trio.lowlevel.spawn_system_task(runner)

        def cancel(done: Future[Any]) -> None:
            if done.cancelled():
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(lambda: [s.cancel() for s in scopes])

        self._token.run_sync_soon(spawn)  # raises RunFinishedError (a RuntimeError)
        future.add_done_callback(cancel)
        return future


async def _coroutine(func: Callable[[], Awaitable[Any]]) -> Any:
    return await func()


def _settle(future: Future[Any], *, result: Any = None, exception: Exception | None = None) -> None:
    """Complete ``future`` unless another thread cancelled it first."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class StorageSpanExporter(SpanExporter):
    """Exports OpenTelemetry spans to ``store.traces``.

    Args:
        store: Where spans go: a :class:`~kvstore.sync.SyncStorage`, or an async
            :class:`~kvstore.storage.Storage`. Made while an event loop runs, the exporter
            writes to an async Storage on that loop, so the application's own store can
            be shared; made with no loop running, on a private loop, with a Storage of its
            own (see the module docstring).
        timeout: Seconds one batch may take before it is cancelled and reported failed.
        owns_store: Close ``store`` in :meth:`shutdown`. Default: only a store this object
            created (:meth:`from_url`).
        backend: The event loop to run an async Storage on: ``"asyncio"`` (needed by
            RedisDriver) or ``"trio"``.
    """

    def __init__(
        self,
        store: SyncStorage | Storage,
        *,
        timeout: float = 30.0,
        owns_store: bool = False,
        backend: Literal["asyncio", "trio"] = "asyncio",
    ) -> None:
        if not isinstance(store, SyncStorage | Storage):
            raise TypeError(f"expected a SyncStorage or a Storage, got {type(store).__name__}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self._store = store
        self._timeout = timeout
        self._owns_store = owns_store
        self._backend = backend
        self._lock = threading.Lock()
        self._shut_down = False
        # The application's event loop, when an async Storage is handed over while it runs.
        self._app_loop = _AppLoop.current() if isinstance(store, Storage) else None
        # Batches scheduled on the application's loop from its own thread, not awaited.
        self._pending: set[Future[Any]] = set()
        # The private event loop of an async Storage, started on the first export.
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

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
        """Wait for batches scheduled on the application's loop from its own thread.

        Every other export is written before it returns. On the loop's own thread there is
        nothing to wait with: it returns whether no batch is pending.
        """
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        if self._app_loop is not None and self._app_loop.is_current():
            return False
        try:
            for future in pending:
                future.result(timeout=timeout_millis / 1000)
        except Exception:  # a failed batch was logged when it failed
            return False
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
            elif self._app_loop is not None:
                if self._owns_store:
                    self._close_on_app_loop(store, self._app_loop)
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
            future: Future[Any] = portal.start_task_soon(save, records)
        elif self._app_loop is not None:
            if self._app_loop.is_current():
                self._schedule_here(store, records, self._app_loop)
                return
            future = self._app_loop.submit(lambda: store.traces.save_spans(records))
        else:
            future = self._private_portal().start_task_soon(store.traces.save_spans, records)
        try:
            future.result(timeout=self._timeout)
        except TimeoutError:
            if future.done():
                raise  # the save itself raised TimeoutError: report it as any failure
            future.cancel()
            raise _TimeoutExceededError from None

    def _schedule_here(self, store: Storage, records: list[Span], loop: _AppLoop) -> None:
        """Schedule a batch on the loop this thread runs, which cannot be waited for here."""
        timeout = self._timeout

        async def save() -> None:
            with anyio.fail_after(timeout):
                await store.traces.save_spans(records)

        future = loop.submit(save)
        with self._lock:
            self._pending.add(future)

        def done(finished: Future[Any]) -> None:
            with self._lock:
                self._pending.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error(
                    "exception while exporting %d spans to kvstore",
                    len(records),
                    exc_info=finished.exception(),
                )

        future.add_done_callback(done)

    def _close_on_app_loop(self, store: Storage, loop: _AppLoop) -> None:
        """Close an owned store on the application's loop (its driver is bound to it)."""
        future = loop.submit(store.aclose)
        if not loop.is_current():
            future.result(timeout=self._timeout)

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
    microseconds; attribute sequences become lists, and NaN and infinite attribute values
    the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (as OTLP/JSON spells them).

    Raises:
        ValueError: the span has no span context.
    """
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    scope = span.instrumentation_scope
    start = _time(span.start_time) if span.start_time is not None else utc_now()
    status = span.status
    return Span(
        trace_id=_trace_id(context.trace_id),
        span_id=_span_id(context.span_id),
        parent_span_id=None if span.parent is None else _span_id(span.parent.span_id),
        name=span.name,
        kind=_KINDS.get(span.kind, "internal"),
        scope=None if scope is None else scope.name,
        scope_version=None if scope is None else scope.version,
        status=_UNSET
        if status.status_code is StatusCode.UNSET and status.description is None
        else SpanStatus(
            code=_STATUSES.get(status.status_code, "unset"), message=status.description
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
        resource=_resource(span.resource),
    )


def _trace_id(value: int) -> str:
    return format(value, "032x")


def _span_id(value: int) -> str:
    return format(value, "016x")


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _resource(resource: Resource) -> dict[str, Any]:
    """A resource's attributes; converted once per resource (an SDK has one or a few), then
    copied, so that no two records share a dict."""
    global _last_resource  # noqa: PLW0603 - a one-entry cache; a race only converts twice
    last = _last_resource
    if last is None or last[0] is not resource:
        last = _last_resource = (resource, _attributes(resource.attributes))
    return dict(last[1])


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    # BoundedAttributes (the SDK's) copies its dict at C speed; iterating it as a Mapping
    # costs a Python call per key.
    out = dict(attributes.copy() if isinstance(attributes, BoundedAttributes) else attributes)
    for key, value in out.items():
        if type(value) not in _PLAIN:
            out[key] = _attribute(value)
    return out


def _attribute(value: Any) -> Any:
    """An attribute value as stored: sequences as lists, NaN and infinities as OTLP/JSON
    spells them (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), since a store refuses them
    as numbers (JSON has no spelling for them) and one such value would lose the batch."""
    if isinstance(value, tuple | list):
        return [_attribute(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
