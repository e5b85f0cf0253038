"""StorageSpanExporter inside a real OpenTelemetry SDK pipeline.

A real TracerProvider with a BatchSpanProcessor exports nested spans into a store, and the
test reads the trace back through ``store.traces``. Stores run on the memory driver and on
fakeredis (behind RedisDriver), as a SyncStorage and as an async Storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import fakeredis
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from kvstore import Span, Storage, SyncStorage
from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import Command, Reply
from kvstore.drivers.redis import RedisDriver
from kvstore.errors import ConnectionFailedError
from kvstore.otel import StorageSpanExporter, span_to_record

# Two drivers on one dataset: the exporter writes through one, the test reads through the
# other (an async Storage given to the exporter belongs to the exporter's event loop).
DriverPair = Callable[[], tuple[Driver, Driver]]


def _memory_pair() -> tuple[Driver, Driver]:
    driver = MemoryDriver()  # thread-safe and loop-agnostic: one instance serves both
    return driver, driver


def _fakeredis_pair() -> tuple[Driver, Driver]:
    server = fakeredis.FakeServer()
    return tuple(  # type: ignore[return-value]
        RedisDriver(fakeredis.FakeAsyncRedis(server=server, protocol=2), owns_client=True)
        for _ in range(2)
    )


@pytest.fixture(params=[_memory_pair, _fakeredis_pair], ids=["memory", "fakeredis"])
def driver_pair(request: pytest.FixtureRequest) -> DriverPair:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def reader(driver_pair: DriverPair) -> Iterator[tuple[SyncStorage, Driver]]:
    writer_driver, reader_driver = driver_pair()
    with SyncStorage(reader_driver, owns_driver=True) as store:
        yield store, writer_driver


def _run_nested_spans(provider: TracerProvider) -> str:
    """Create a small trace the way instrumented code does; return its trace id."""
    tracer = provider.get_tracer("tests.checkout", "2.1.0")
    with tracer.start_as_current_span(
        "POST /checkout", kind=SpanKind.SERVER, attributes={"http.method": "POST"}
    ) as root:
        root.add_event("cart.loaded", {"items": 3, "skus": ("a", "b")})
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as charge:
            charge.set_attribute("payment.amount", 12.5)
            with tracer.start_as_current_span("fraud.check") as check:
                check.set_attribute("fraud.score", 3)
        other = root.get_span_context()
        with tracer.start_as_current_span("email", links=[Link(other, {"reason": "notify"})]):
            pass
        try:
            with tracer.start_as_current_span("inventory"):
                raise LookupError("sku b is gone")
        except LookupError:
            pass
        root.set_status(Status(StatusCode.OK))
        return format(root.get_span_context().trace_id, "032x")


def _check_trace(spans: Sequence[Span], trace_id: str) -> None:
    assert [s.name for s in spans] == [
        "POST /checkout",
        "charge",
        "fraud.check",
        "email",
        "inventory",
    ]
    root, charge, check, email, inventory = spans
    assert all(s.trace_id == trace_id for s in spans)
    assert all(len(s.span_id) == 16 and s.span_id == s.span_id.lower() for s in spans)
    assert root.parent_span_id is None
    assert (charge.parent_span_id, email.parent_span_id) == (root.span_id, root.span_id)
    assert check.parent_span_id == charge.span_id
    assert (root.kind, charge.kind, check.kind) == ("server", "client", "internal")
    assert root.attributes == {"http.method": "POST"}
    assert (root.events[0].name, root.events[0].attributes) == (
        "cart.loaded",
        {"items": 3, "skus": ["a", "b"]},
    )
    assert charge.attributes == {"payment.amount": 12.5}
    assert check.attributes == {"fraud.score": 3}
    assert (email.links[0].span_id, email.links[0].attributes) == (
        root.span_id,
        {"reason": "notify"},
    )
    assert (inventory.status.code, inventory.status.message) == (
        "error",
        "LookupError: sku b is gone",
    )
    assert (root.status.code, charge.status.code) == ("ok", "unset")
    assert inventory.events[0].name == "exception"
    assert inventory.events[0].attributes["exception.type"] == "LookupError"
    assert (root.scope, root.scope_version) == ("tests.checkout", "2.1.0")
    assert root.resource["service.name"] == "checkout-api"
    assert all(s.end_time is not None and s.end_time >= s.start_time for s in spans)


def _provider(exporter: StorageSpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout-api"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def test_batch_processor_to_sync_storage(reader: tuple[SyncStorage, Driver]) -> None:
    store, writer_driver = reader
    with SyncStorage(writer_driver, owns_driver=True) as writer:
        provider = _provider(StorageSpanExporter(writer))
        trace_id = _run_nested_spans(provider)
        assert provider.force_flush()
        _check_trace(store.traces.get_trace(trace_id), trace_id)
        (summary,) = store.traces.list_traces(name="POST /checkout").items
        assert (summary.trace_id, summary.span_count, summary.scope) == (
            trace_id,
            5,
            "tests.checkout",
        )
        provider.shutdown()


def test_batch_processor_to_async_storage(reader: tuple[SyncStorage, Driver]) -> None:
    store, writer_driver = reader
    exporter = StorageSpanExporter(Storage(writer_driver), owns_store=True)
    provider = _provider(exporter)
    trace_id = _run_nested_spans(provider)
    assert provider.force_flush()
    _check_trace(store.traces.get_trace(trace_id), trace_id)
    provider.shutdown()
    # Shut down: later batches are dropped and reported, never raised.
    assert exporter.export([]) is SpanExportResult.FAILURE
    exporter.shutdown()


class _BrokenDriver(Driver):
    """Every request fails as if the server were unreachable (scripts travel through
    ``execute`` too, and so does the layout check of a store's first call)."""

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        raise ConnectionFailedError("connection refused")


class _HangingDriver(Driver):
    """Every request waits forever; ``waiting`` counts the requests still waiting."""

    waiting = 0

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.waiting += 1
        try:
            await anyio.sleep_forever()
        finally:
            self.waiting -= 1
        raise AssertionError("unreachable")


def _finished_spans(count: int) -> list[Any]:
    """Finished SDK spans, captured with an in-memory processor."""
    captured: list[Any] = []

    class Capture(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            captured.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Capture(StorageSpanExporter(Storage())))
    tracer = provider.get_tracer("t")
    for i in range(count):
        with tracer.start_as_current_span(f"span-{i}"):
            pass
    return captured


@pytest.mark.parametrize("storage_kind", ["sync", "async"])
def test_failures_are_reported_not_raised(
    storage_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store: SyncStorage | Storage = (
        SyncStorage(_BrokenDriver()) if storage_kind == "sync" else Storage(_BrokenDriver())
    )
    exporter = StorageSpanExporter(store, owns_store=True)
    with caplog.at_level(logging.ERROR, logger="kvstore.otel"):
        assert exporter.export(_finished_spans(2)) is SpanExportResult.FAILURE
    (record,) = [r for r in caplog.records if r.name == "kvstore.otel"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionFailedError)
    # Inside the SDK pipeline the application sees nothing either.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("app").start_as_current_span("work"):
        pass
    assert provider.force_flush()
    provider.shutdown()


def test_a_batch_that_hangs_is_cancelled_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = _HangingDriver()
    with SyncStorage(driver) as store:
        exporter = StorageSpanExporter(store, timeout=0.05)
        with caplog.at_level(logging.ERROR, logger="kvstore.otel"):
            for _ in range(2):  # the second export is not stuck behind the first
                assert exporter.export(_finished_spans(1)) is SpanExportResult.FAILURE
        assert sum("took over" in r.getMessage() for r in caplog.records) == 2
        # The hung calls were cancelled, not left running on the store's event loop
        # (cancelling from another thread takes effect at the loop's next turns).
        for _ in range(200):
            if driver.waiting == 0:
                break
            store.portal.call(anyio.sleep, 0.005)
        assert driver.waiting == 0
        exporter.shutdown()


def test_span_to_record_is_faithful() -> None:
    (sdk_span,) = _finished_spans(1)
    record = span_to_record(sdk_span)
    assert record.trace_id == format(sdk_span.context.trace_id, "032x")
    assert record.span_id == format(sdk_span.context.span_id, "016x")
    assert (record.name, record.kind, record.status.code) == ("span-0", "internal", "unset")
    assert record.start_time.microsecond == (sdk_span.start_time // 1000) % 1_000_000
    assert record.resource == dict(sdk_span.resource.attributes)


def test_exporter_owned_by_from_url_closes_its_store() -> None:
    exporter = StorageSpanExporter.from_url("memory://")
    assert exporter.export(_finished_spans(3)) is SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()  # twice is harmless
    assert exporter.export(_finished_spans(1)) is SpanExportResult.FAILURE


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        StorageSpanExporter("redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        StorageSpanExporter(Storage(), timeout=0)
