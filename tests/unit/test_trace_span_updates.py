"""Span updates in both codecs: appended events and merged attributes come back as one span.

The conformance suite runs JSON stores; MessagePack stores keep an update's fields in their
own encoding, which the reader merges into the span's document (``events+<n>`` appends).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kvstore import Span, SpanEvent, SpanStatus, Storage
from kvstore.codec import FormatName

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_updates_merge_into_the_span_in_either_codec(codec: FormatName) -> None:
    async with Storage(codec=codec) as store:
        events = [SpanEvent(name=f"e{i}", timestamp=T0 + timedelta(seconds=i)) for i in range(4)]
        started = Span(
            trace_id="t",
            span_id="s",
            name="run",
            start_time=T0,
            attributes={"a": 1},
            events=events[:1],
        )
        await store.traces.save_spans([started])
        await store.traces.update_span("t", "s", events=events[1:3], attributes={"b": [1, 2]})
        await store.traces.update_span("t", "s", events=events[3:], attributes={"a": "x"})
        done = await store.traces.update_span(
            "t", "s", end_time=T0 + timedelta(seconds=9), status=SpanStatus(code="ok")
        )
        expected = Span(
            trace_id="t",
            span_id="s",
            name="run",
            start_time=T0,
            end_time=T0 + timedelta(seconds=9),
            status=SpanStatus(code="ok"),
            attributes={"a": "x", "b": [1, 2]},
            events=events,
        )
        assert done == expected
        assert await store.traces.get_trace("t") == [expected]
        (light,) = await store.traces.get_trace("t", with_attributes=False)
        assert (light.end_time, light.events, light.attributes) == (expected.end_time, [], {})
