"""Item 10: StorageSpanExporter given the application's own async Storage.

An application has one async Storage and hands it to the exporter. The exporter must then
write on the application's event loop (redis-py's connections belong to the loop that
made them), scheduled thread-safely from the SDK's worker thread and bounded by its
timeout, so that the application and the exporter share the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind

from kvstore import Message, Storage, Thread
from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import Command, Reply
from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import ConnectionFailedError
from kvstore.otel import StorageSpanExporter
from kvstore.upstash_server import UpstashServer

pytestmark = pytest.mark.anyio


def _provider(processor: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(processor)
    return provider


def _request(provider: TracerProvider, **attributes: Any) -> str:
    """Spans the way instrumented code makes them; returns the trace id."""
    tracer = provider.get_tracer("tests.app", "1.0")
    with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER, attributes=attributes) as root:
        with tracer.start_as_current_span("db.query"), tracer.start_as_current_span("cache"):
            pass
        return format(root.get_span_context().trace_id, "032x")


async def _app_uses(store: Storage, step: str) -> None:
    """The application's own use of the store, around the exports."""
    await store.memory.save_thread(Thread(id=f"t-{step}", resource_id="alice"))
    await store.memory.save_messages(
        [Message(id=f"m-{step}", thread_id=f"t-{step}", role="user", content=step)]
    )
    page = await store.memory.list_messages(f"t-{step}")
    assert [m.content for m in page.items] == [step]


@pytest.mark.redis
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_app_and_the_exporter_share_one_redis_store(
    hardening_redis_url: str, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    del anyio_backend
    caplog.set_level(logging.ERROR, logger="kvstore.otel")
    async with Storage.from_url(hardening_redis_url) as store:
        await _app_uses(store, "before")
        exporter = StorageSpanExporter(store)
        provider = _provider(BatchSpanProcessor(exporter))
        first = _request(provider, **{"user.id": "u1"})
        # A flush exports from the calling thread: here a worker thread, as the SDK does.
        assert await anyio.to_thread.run_sync(provider.force_flush)
        spans = await store.traces.get_trace(first)
        assert [s.name for s in spans] == ["GET /", "db.query", "cache"]
        await _app_uses(store, "between")
        second = _request(provider)
        # Shutdown exports what is left from the SDK's own worker thread.
        await anyio.to_thread.run_sync(provider.shutdown)
        assert len(await store.traces.get_trace(second)) == 3
        page = await store.traces.list_traces(attributes={"user.id": "u1"})
        assert [t.trace_id for t in page.items] == [first]
        await _app_uses(store, "after")  # the exporter did not close the app's store
    assert not [r for r in caplog.records if r.name == "kvstore.otel"]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_app_and_the_exporter_share_one_upstash_store(
    upstash_memory_server: UpstashServer, anyio_backend: str
) -> None:
    del anyio_backend
    server = upstash_memory_server
    async with Storage(UpstashDriver(server.url, server.token), owns_driver=True) as store:
        await store.driver.execute([("FLUSHDB",)])
        await _app_uses(store, "before")
        provider = _provider(BatchSpanProcessor(StorageSpanExporter(store)))
        trace_id = _request(provider)
        await anyio.to_thread.run_sync(provider.shutdown)
        assert len(await store.traces.get_trace(trace_id)) == 3
        await _app_uses(store, "after")


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_an_export_on_the_loops_own_thread_is_scheduled_there(anyio_backend: str) -> None:
    """A SimpleSpanProcessor exports as each span ends, on the application's thread: the
    exporter cannot wait for the loop it runs on, so it schedules the batch there."""
    del anyio_backend
    async with Storage() as store:
        exporter = StorageSpanExporter(store)
        provider = _provider(SimpleSpanProcessor(exporter))
        trace_id = _request(provider)
        assert not exporter.force_flush()  # on the loop's thread: it cannot wait
        assert await anyio.to_thread.run_sync(exporter.force_flush)
        assert len(await store.traces.get_trace(trace_id)) == 3
        assert exporter.force_flush()
        provider.shutdown()


class _BrokenDriver(MemoryDriver):
    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        raise ConnectionFailedError("connection refused")


class _HangingDriver(Driver):
    """Every request waits until cancelled; ``waiting`` counts the requests still waiting."""

    def __init__(self) -> None:
        self.waiting = 0

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.waiting += 1
        try:
            await anyio.sleep_forever()
        finally:
            self.waiting -= 1
        raise AssertionError("unreachable")


def _spans(count: int) -> list[Any]:
    captured: list[Any] = []

    class Capture(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            captured.append(span)

    provider = _provider(Capture(StorageSpanExporter(Storage())))
    for i in range(count):
        with provider.get_tracer("t").start_as_current_span(f"span-{i}"):
            pass
    return captured


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_failed_batch_is_reported_not_raised(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    del anyio_backend
    exporter = StorageSpanExporter(Storage(_BrokenDriver()))
    with caplog.at_level(logging.ERROR, logger="kvstore.otel"):
        result = await anyio.to_thread.run_sync(exporter.export, _spans(2))
    assert result is SpanExportResult.FAILURE
    (record,) = [r for r in caplog.records if r.name == "kvstore.otel"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionFailedError)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_batch_that_hangs_is_cancelled_after_the_timeout(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    del anyio_backend
    driver = _HangingDriver()
    exporter = StorageSpanExporter(Storage(driver), timeout=0.05)
    with caplog.at_level(logging.ERROR, logger="kvstore.otel"):
        for _ in range(2):  # the second export is not stuck behind the first
            result = await anyio.to_thread.run_sync(exporter.export, _spans(1))
            assert result is SpanExportResult.FAILURE
    assert sum("took over" in r.getMessage() for r in caplog.records) == 2
    # Cancelled, not left running on the application's loop (cancelling from another
    # thread takes effect within a few turns of the loop).
    for _ in range(1000):
        if not driver.waiting:
            break
        await anyio.sleep(0)
    assert driver.waiting == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_export_after_the_loop_ended_fails_without_hanging(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    made: list[StorageSpanExporter] = []

    async def app() -> None:
        made.append(StorageSpanExporter(Storage()))

    anyio.run(app, backend=backend)
    with caplog.at_level(logging.ERROR, logger="kvstore.otel"):
        assert made[0].export(_spans(1)) is SpanExportResult.FAILURE
    assert [r for r in caplog.records if r.name == "kvstore.otel"]
    made[0].shutdown()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_non_finite_attributes_do_not_lose_the_batch(anyio_backend: str) -> None:
    """A store refuses NaN (JSON cannot hold it); the exporter stores OTLP/JSON's spelling."""
    del anyio_backend
    async with Storage() as store:
        provider = _provider(BatchSpanProcessor(StorageSpanExporter(store)))
        trace_id = _request(
            provider, ratio=float("nan"), limit=float("inf"), bounds=(float("-inf"), 1.5)
        )
        await anyio.to_thread.run_sync(provider.shutdown)
        (root, *_) = await store.traces.get_trace(trace_id)
        assert root.attributes == {
            "ratio": "NaN",
            "limit": "Infinity",
            "bounds": ["-Infinity", 1.5],
        }
