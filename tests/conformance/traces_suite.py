"""The traces domain's conformance suite: spans, traces, listings and retention.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it. Age-based retention is tested with explicit old timestamps, never sleeps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from kvstore import (
    CorruptRecordError,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    Storage,
    TraceRetention,
    ValidationError,
)
from tests.support.counting import CountingDriver

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def span(
    trace_id: str,
    span_id: str,
    start: float,
    parent: str | None = None,
    *,
    base: datetime = T0,
    **kw: Any,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=kw.pop("name", f"op-{span_id}"),
        start_time=base + timedelta(seconds=start),
        end_time=base + timedelta(seconds=start + kw.pop("duration", 1)),
        **kw,
    )


def trace(trace_id: str, start: float, *, base: datetime = T0, **root: Any) -> list[Span]:
    """A root with two children, the first with a child of its own; children first, as an
    exporter delivers them (they end before their parents)."""
    return [
        span(trace_id, f"{trace_id}-grandchild", start + 0.2, f"{trace_id}-child-a", base=base),
        span(trace_id, f"{trace_id}-child-b", start + 0.5, f"{trace_id}-root", base=base),
        span(trace_id, f"{trace_id}-child-a", start + 0.1, f"{trace_id}-root", base=base),
        span(trace_id, f"{trace_id}-root", start, base=base, duration=3, **root),
    ]


class TracesSuite:
    """Tests of ``store.traces``; needs a ``store`` fixture (a :class:`Storage`)."""

    # -- spans and traces -------------------------------------------------------------------

    async def test_traces_spans_round_trip_with_every_field(self, store: Storage) -> None:
        full = Span(
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            parent_span_id=None,
            name="POST /chat",
            kind="server",
            scope="opentelemetry.instrumentation.fastapi",
            scope_version="0.48b0",
            status=SpanStatus(code="error", message="upstream timeout"),
            start_time=at(0),
            end_time=at(1.5),
            attributes={
                "http.method": "POST",
                "http.status_code": 504,
                "ratio": 0.25,
                "retry": True,
                "tags": ["a", "b"],
                "nums": [1, 2],
            },
            events=[
                SpanEvent(name="exception", timestamp=at(1), attributes={"exception.type": "E"}),
                SpanEvent(name="retry", timestamp=at(1.2)),
            ],
            links=[SpanLink(trace_id="0" * 31 + "1", span_id="1" * 16, attributes={"why": "x"})],
            resource={"service.name": "chat-api", "service.version": "1.2.3"},
        )
        await store.traces.save_spans([full])
        assert await store.traces.get_trace(full.trace_id) == [full]
        assert await store.traces.get_trace("unknown") == []

    async def test_traces_get_trace_puts_parents_before_children(self, store: Storage) -> None:
        spans = trace("t1", 0)
        # Siblings saved out of start order, and a late-arriving extra child of the root.
        await store.traces.save_spans(spans[:2])
        await store.traces.save_spans(spans[2:])
        await store.traces.save_spans([span("t1", "t1-child-0", 0.05, "t1-root")])
        got = [s.span_id for s in await store.traces.get_trace("t1")]
        assert got == ["t1-root", "t1-child-0", "t1-child-a", "t1-grandchild", "t1-child-b"]

    async def test_traces_spans_whose_parent_is_elsewhere_count_as_roots(
        self, store: Storage
    ) -> None:
        await store.traces.save_spans(
            [
                span("t1", "child", 2, "local-root"),
                span("t1", "local-root", 1, "remote-parent"),
                span("t1", "orphan", 0, "never-saved"),
            ]
        )
        got = [s.span_id for s in await store.traces.get_trace("t1")]
        assert got == ["orphan", "local-root", "child"]

    async def test_traces_spans_arriving_out_of_time_order_are_all_stored(
        self, store: Storage
    ) -> None:
        # Stream ids only grow; a span that started before those already stored must still
        # be accepted (exporters deliver parents after their children).
        await store.traces.save_spans([span("late", "a", 100)])
        await store.traces.save_spans([span("late", "b", 1, "a"), span("early", "c", -50)])
        assert [s.span_id for s in await store.traces.get_trace("late")] == ["a", "b"]
        assert [s.span_id for s in await store.traces.get_trace("early")] == ["c"]

        async def writer(w: int) -> None:
            for n in range(5):
                await store.traces.save_spans([span(f"w{w}", f"s{n}", 50 - w - n)])

        async with anyio.create_task_group() as tg:
            for w in range(10):
                tg.start_soon(writer, w)
        for w in range(10):
            assert len(await store.traces.get_trace(f"w{w}")) == 5
        assert (await store.traces.list_traces(per_page=100)).total == 12

    async def test_traces_saving_a_span_again_replaces_it(self, store: Storage) -> None:
        await store.traces.save_spans(trace("t1", 0))
        updated = span("t1", "t1-child-a", 0.1, "t1-root", name="renamed")
        await store.traces.save_spans([updated, updated])
        spans = await store.traces.get_trace("t1")
        assert len(spans) == 4
        assert [s.name for s in spans if s.span_id == "t1-child-a"] == ["renamed"]
        (summary,) = (await store.traces.list_traces()).items
        assert summary.span_count == 4

    # -- listing ----------------------------------------------------------------------------

    async def test_traces_trace_summaries(self, store: Storage) -> None:
        await store.traces.save_spans(
            trace("t1", 10, name="agent.run", scope="mastra", status=SpanStatus(code="ok"))
        )
        (summary,) = (await store.traces.list_traces()).items
        assert summary.trace_id == "t1"
        assert (summary.name, summary.scope, summary.status.code) == ("agent.run", "mastra", "ok")
        assert (summary.start_time, summary.end_time) == (at(10), at(13))
        assert (summary.span_count, summary.root_span_id) == (4, "t1-root")

    async def test_traces_root_arriving_last_takes_over_the_summary(self, store: Storage) -> None:
        spans = trace("t1", 0, name="root-name")
        await store.traces.save_spans(spans[:3])
        (early,) = (await store.traces.list_traces()).items
        assert (early.name, early.root_span_id) == ("op-t1-child-a", "t1-child-a")
        assert (await store.traces.list_traces(name="op-t1-child-a")).total == 1
        await store.traces.save_spans(spans[3:])
        (final,) = (await store.traces.list_traces()).items
        assert (final.name, final.root_span_id, final.start_time) == ("root-name", "t1-root", at(0))
        assert (await store.traces.list_traces(name="op-t1-child-a")).total == 0
        assert (await store.traces.list_traces(name="root-name")).total == 1

    async def test_traces_list_traces_filters_and_windows(self, store: Storage) -> None:
        model: list[dict[str, Any]] = []
        combos = itertools.product(["chat", "search"], [None, "lib-a", "lib-b"], ["u1", "u2"])
        for i, (name, scope, user) in enumerate(combos):
            attributes = {"user.id": user, "n": i % 2, "big": "x" * 300, "list": [1, 2]}
            await store.traces.save_spans(
                trace(f"t{i:02d}", i, name=name, scope=scope, attributes=attributes)
            )
            model.append(
                {
                    "id": f"t{i:02d}",
                    "name": name,
                    "scope": scope,
                    "user": user,
                    "n": i % 2,
                    "start": i,
                }
            )
        newest_first = model[::-1]
        filters = itertools.product(
            [None, "chat", "search", "nope"],
            [None, "lib-a", "lib-b"],
            [None, {"user.id": "u1"}, {"n": 1}, {"user.id": "nobody"}],
            [(None, None), (at(3), at(8)), (at(5), None), (None, at(0))],
        )
        for name, scope, attrs, (start, end) in filters:
            expected = [
                m["id"]
                for m in newest_first
                if name in (None, m["name"])
                and scope in (None, m["scope"])
                and (
                    attrs is None
                    or all(m[{"user.id": "user"}.get(k, k)] == v for k, v in attrs.items())
                )
                and (start is None or at(m["start"]) >= start)
                and (end is None or at(m["start"]) <= end)
            ]
            got: list[str] = []
            for page in range(len(expected) // 5 + 1):
                result = await store.traces.list_traces(
                    name=name,
                    scope=scope,
                    attributes=attrs,
                    from_date=start,
                    to_date=end,
                    page=page,
                    per_page=5,
                )
                assert result.total == len(expected)
                assert result.has_more == ((page + 1) * 5 < len(expected))
                got += [t.trace_id for t in result.items]
            assert got == expected, (name, scope, attrs, start, end)

    async def test_traces_each_call_is_one_round_trip(self, store: Storage) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(
            counting,
            namespace=store.namespace,
            trace_retention=TraceRetention(max_spans=100_000, max_age=timedelta(days=1000)),
        )
        await storage.keys()  # the layout check, once per Storage
        traces = storage.traces
        calls: list[Any] = [
            lambda: traces.save_spans(trace("t1", 0) + trace("t2", 5)),
            lambda: traces.get_trace("t1"),
            lambda: traces.list_traces(name="x", scope="y", attributes={"a": 1}, from_date=T0),
            traces.apply_retention,  # looks, finds nothing due
            lambda: traces.delete_traces(["t1", "t2"]),
        ]
        for call in calls:
            before = counting.round_trips
            await call()
            assert counting.round_trips == before + 1

    # -- retention and deletion -------------------------------------------------------------

    async def test_traces_retention_by_count_drops_whole_traces_oldest_first(
        self, store: Storage
    ) -> None:
        # One bucket, so the limit is exact for the namespace.
        traces = Storage(
            store.driver,
            namespace="one-bucket",
            buckets=1,
            trace_retention=TraceRetention(max_spans=6),
        ).traces
        await traces.save_spans(trace("t1", 0))
        await traces.save_spans(trace("t2", 10))
        # 8 spans > 6: the oldest trace goes, whole.
        assert await traces.get_trace("t1") == []
        listed = await traces.list_traces()
        assert [(t.trace_id, t.span_count) for t in listed.items] == [("t2", 4)]
        await traces.save_spans(trace("t3", 20))
        listed = await traces.list_traces()
        assert [(t.trace_id, t.span_count) for t in listed.items] == [("t3", 4)]
        assert listed.total == 1
        assert (await traces.list_traces(name="op-t1-root")).total == 0
        assert (await traces.list_traces(name="op-t2-root")).total == 0

    async def test_traces_retention_by_count_keeps_each_bucket_within_its_share(
        self, store: Storage
    ) -> None:
        storage = Storage(
            store.driver,
            namespace="four-buckets",
            buckets=4,
            trace_retention=TraceRetention(max_spans=8),
        )
        traces = storage.traces
        for i in range(20):
            await traces.save_spans([span(f"t{i:02}", "root", i)])
        listed = await traces.list_traces(per_page=100)
        assert 0 < listed.total <= 8
        kept = {t.trace_id for t in listed.items}
        keys = await storage.keys()
        # In every bucket, the traces kept are newer than the traces dropped.
        for bucket in keys.all_buckets:
            mine = [f"t{i:02}" for i in range(20) if keys.bucket_of(f"t{i:02}") is bucket]
            flags = [t in kept for t in mine]
            assert flags == sorted(flags)
            assert sum(flags) <= 2

    async def test_traces_retention_by_age(self, store: Storage) -> None:
        now = datetime.now(UTC)
        # Saved without retention, oldest first, with explicit timestamps.
        await store.traces.save_spans(trace("old", 0, base=now - timedelta(hours=3)))
        await store.traces.save_spans(trace("middle", 0, base=now - timedelta(minutes=90)))
        await store.traces.save_spans(trace("fresh", 0, base=now - timedelta(minutes=5)))
        assert (await store.traces.list_traces()).total == 3
        aged = Storage(
            store.driver,
            namespace=store.namespace,
            trace_retention=TraceRetention(max_age=timedelta(hours=2)),
        ).traces
        assert await aged.apply_retention() == 4
        assert await aged.get_trace("old") == []
        assert [t.trace_id for t in (await aged.list_traces()).items] == ["fresh", "middle"]
        stricter = Storage(
            store.driver,
            namespace=store.namespace,
            trace_retention=TraceRetention(max_age=timedelta(hours=1)),
        ).traces
        # Saving applies retention to the buckets it writes to; apply_retention to all.
        await stricter.save_spans(trace("new", 0, base=now - timedelta(minutes=1)))
        await stricter.apply_retention()
        listed = await stricter.list_traces()
        assert [t.trace_id for t in listed.items] == ["new", "fresh"]
        assert listed.total == 2
        assert await stricter.get_trace("middle") == []
        assert len(await stricter.get_trace("fresh")) == 4

    async def test_traces_retention_after_a_trace_grows(self, store: Storage) -> None:
        traces = Storage(
            store.driver,
            namespace="one-bucket",
            buckets=1,
            trace_retention=TraceRetention(max_spans=8),
        ).traces
        await traces.save_spans(trace("t1", 0))
        await traces.save_spans(trace("t2", 10))
        # A late span of t2 makes 9 spans: t1 goes, and t2's summary counts its 5.
        await traces.save_spans([span("t2", "late", 12, "t2-root")])
        assert await traces.get_trace("t1") == []
        assert len(await traces.get_trace("t2")) == 5
        (summary,) = (await traces.list_traces()).items
        assert (summary.trace_id, summary.span_count) == ("t2", 5)

    async def test_traces_readers_skip_what_was_removed_behind_their_back(
        self, store: Storage
    ) -> None:
        await store.traces.save_spans(trace("t1", 0) + trace("t2", 5))
        keys = await store.keys()
        # A summary removed by hand leaves its index entries pointing at nothing.
        await store.driver.execute([("HDEL", keys.bucket_of("t1").traces, "t1")])
        listed = await store.traces.list_traces()
        assert [t.trace_id for t in listed.items] == ["t2"]
        # A stream removed by hand: the trace has no spans left to show.
        bucket = keys.bucket_of("t2")
        await store.driver.execute([("DEL", keys.trace_spans(bucket, "t2"))])
        assert await store.traces.get_trace("t2") == []

    async def test_traces_delete_traces(self, store: Storage) -> None:
        await store.traces.save_spans(trace("t1", 0, name="a") + trace("t2", 5, name="a"))
        await store.traces.save_spans(trace("t3", 9, name="a"))
        assert await store.traces.delete_traces(["t1", "t3", "unknown"]) == 2
        assert await store.traces.delete_traces([]) == 0
        assert await store.traces.get_trace("t1") == []
        listed = await store.traces.list_traces(name="a")
        assert ([t.trace_id for t in listed.items], listed.total) == (["t2"], 1)
        assert len(await store.traces.get_trace("t2")) == 4
        keys = await store.keys()
        for gone in ("t1", "t3"):
            bucket = keys.bucket_of(gone)
            assert await store.driver.execute(
                [("EXISTS", keys.trace_spans(bucket, gone), keys.trace_span_ids(bucket, gone))]
            ) == [0]
        # A deleted trace can be saved again.
        await store.traces.save_spans(trace("t1", 0))
        assert len(await store.traces.get_trace("t1")) == 4

    # -- bad input --------------------------------------------------------------------------

    async def test_traces_bad_input_names_the_field_and_writes_nothing(
        self, store: Storage
    ) -> None:
        traces = store.traces
        naive = datetime(2025, 1, 1)
        good = span("t1", "s1", 0)
        cases: list[tuple[Any, str]] = [
            (
                lambda: traces.save_spans([good, {"trace_id": "t1", "span_id": "s2"}]),
                "spans[1].name",
            ),
            (
                lambda: traces.save_spans(
                    [good, Span(trace_id="t", span_id="s", name="n", start_time=naive)]
                ),
                "spans[1].start_time",
            ),
            (
                lambda: traces.save_spans(
                    [Span(trace_id="", span_id="s", name="n", start_time=T0)]
                ),
                "spans[0].trace_id",
            ),
            (
                lambda: traces.save_spans(
                    [
                        {
                            "trace_id": "t",
                            "span_id": "s",
                            "name": "n",
                            "start_time": "2025-01-01T00:00:00Z",
                            "kind": "weird",
                        }
                    ]
                ),
                "spans[0].kind",
            ),
            (
                lambda: traces.save_spans(
                    [
                        good,
                        {
                            "trace_id": "t",
                            "span_id": "s2",
                            "name": "n",
                            "start_time": T0,
                            "attributes": {"x": object()},
                        },
                    ]
                ),
                "spans[1].attributes",
            ),
            (lambda: traces.list_traces(attributes={"a": 1, "b": 2}), "attributes"),
            (lambda: traces.list_traces(attributes={"a": [1, 2]}), "attributes"),
            (lambda: traces.list_traces(attributes={"a": "x" * 300}), "attributes"),
            (lambda: traces.list_traces(name=5), "name"),
            (lambda: traces.list_traces(from_date=naive), "from_date"),
            (lambda: traces.list_traces(per_page=0), "per_page"),
            (lambda: traces.get_trace(""), "trace_id"),
            (lambda: traces.delete_traces(["ok", ""]), "trace_ids"),
        ]
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field
        assert (await traces.list_traces()).total == 0
        assert await traces.get_trace("t1") == []
        with pytest.raises(ValidationError):
            TraceRetention(max_spans=0)
        with pytest.raises(ValidationError):
            TraceRetention(max_age=timedelta(0))

    @pytest.mark.parametrize(
        "weird",
        ["a:b", "trace:x", "{tag}", "}{", "*", "with space", "line\nbreak", "ünï ✓", "a%3Ab"],
    )
    async def test_traces_ids_with_special_characters_are_stored_safely(
        self, store: Storage, weird: str
    ) -> None:
        await store.traces.save_spans(
            [
                span(weird, weird, 0, name=weird, scope=weird, attributes={weird: weird}),
                span(weird, "child", 1, weird),
            ]
        )
        # A neighbour that a naive key join would confuse with the weird trace.
        await store.traces.save_spans(
            [span("plain", "x", 2, name=weird + ":" + weird, attributes={"a": weird})]
        )
        assert [s.span_id for s in await store.traces.get_trace(weird)] == [weird, "child"]
        page = await store.traces.list_traces(name=weird, scope=weird, attributes={weird: weird})
        assert [t.trace_id for t in page.items] == [weird]
        assert (await store.traces.list_traces()).total == 2
        assert await store.traces.delete_traces([weird]) == 1
        assert [t.trace_id for t in (await store.traces.list_traces()).items] == ["plain"]

    async def test_traces_corrupt_records_name_their_key(self, store: Storage) -> None:
        await store.traces.save_spans(trace("t1", 0))
        keys = await store.keys()
        key = keys.bucket_of("t1").traces
        await store.driver.execute([("HSET", key, "t1", b"\x01broken")])
        with pytest.raises(CorruptRecordError) as caught:
            await store.traces.list_traces()
        assert caught.value.key == key
        # A stream entry that does not decode.
        stream = keys.trace_spans(keys.bucket_of("t2"), "t2")
        await store.driver.execute([("XADD", stream, "*", "s", "s", "d", b"\x00[oops")])
        with pytest.raises(CorruptRecordError) as caught:
            await store.traces.get_trace("t2")
        assert caught.value.key == stream

    # -- export -------------------------------------------------------------------------------

    async def test_traces_export_spans_walks_every_span_in_stream_order(
        self, store: Storage
    ) -> None:
        spans = [*trace("a", 0), *trace("b{:}", 10), span("c", "only", 20)]
        await store.traces.save_spans(spans)
        walked: list[Span] = []
        cursor = None
        while True:
            chunk = await store.traces.export_spans(cursor=cursor, count=3)
            assert chunk.total == len(spans)
            walked += chunk.items
            cursor = chunk.cursor
            if cursor is None:
                break
        key = lambda s: (s.trace_id, s.span_id)  # noqa: E731
        assert sorted(walked, key=key) == sorted(spans, key=key)
        # Saving spans again (the write side of an export) stores the same records.
        other = Storage(store.driver, namespace="copy")
        await other.traces.save_spans(walked)
        again: list[Span] = []
        cursor = None
        while True:
            chunk = await other.traces.export_spans(cursor=cursor, count=100)
            again += chunk.items
            if (cursor := chunk.cursor) is None:
                break
        assert sorted(again, key=key) == sorted(walked, key=key)
        with pytest.raises(ValidationError) as caught:
            await store.traces.export_spans(cursor="not-an-id")
        assert caught.value.field == "cursor"
