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
from msgspec.structs import replace

from kvstore import (
    CorruptRecordError,
    Page,
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

    # -- span lifecycle, reads and filters (issue 12) -----------------------------------------

    async def test_traces_a_started_span_is_visible_and_updated_when_it_ends(
        self, store: Storage
    ) -> None:
        traces = store.traces
        root = Span(
            trace_id="run",
            span_id="root",
            name="agent.run",
            start_time=at(0),
            attributes={"user.id": "u1", "step": 0},
        )
        child = Span(
            trace_id="run",
            span_id="tool",
            parent_span_id="root",
            name="tool.call",
            start_time=at(1),
        )
        await traces.save_spans([root, child])
        # Visible while it runs: no end yet.
        (summary,) = (await traces.list_traces()).items
        assert (summary.trace_id, summary.end_time, summary.span_count) == ("run", None, 2)
        assert [s.end_time for s in await traces.get_trace("run")] == [None, None]
        # The child gets events, then attributes, then ends with an error.
        first = SpanEvent(name="progress", timestamp=at(1.5), attributes={"pct": 50})
        second = SpanEvent(name="progress", timestamp=at(1.7), attributes={"pct": 90})
        await traces.update_span("run", "tool", events=[first])
        await traces.update_span("run", "tool", events=[second], attributes={"tool": "search"})
        updated = await traces.update_span(
            "run", "tool", end_time=at(2), status=SpanStatus(code="error", message="boom")
        )
        expected_child = Span(
            trace_id="run",
            span_id="tool",
            parent_span_id="root",
            name="tool.call",
            start_time=at(1),
            end_time=at(2),
            status=SpanStatus(code="error", message="boom"),
            attributes={"tool": "search"},
            events=[first, second],
        )
        assert updated == expected_child
        assert await traces.get_span("run", "tool") == expected_child
        (summary,) = (await traces.list_traces()).items
        assert (summary.end_time, summary.error_count, summary.status.code) == (at(2), 1, "unset")
        assert [t.trace_id for t in (await traces.list_traces(has_error=True)).items] == ["run"]
        assert (await traces.list_traces(status="error")).total == 0
        # The root ends ok, renamed, its attributes merged key by key.
        done = await traces.update_span(
            "run",
            "root",
            name="agent.done",
            end_time=at(3),
            status={"code": "ok"},
            attributes={"step": 2},
        )
        expected_root = Span(
            trace_id="run",
            span_id="root",
            name="agent.done",
            start_time=at(0),
            end_time=at(3),
            status=SpanStatus(code="ok"),
            attributes={"user.id": "u1", "step": 2},
        )
        assert done == expected_root
        assert await traces.get_root_span("run") == expected_root
        (summary,) = (await traces.list_traces()).items
        assert (summary.name, summary.end_time, summary.status, summary.span_count) == (
            "agent.done",
            at(3),
            SpanStatus(code="ok"),
            2,
        )
        for filters, found in (
            ({"status": "ok"}, 1),
            ({"name": "agent.done", "user_id": "u1"}, 1),
            ({"name": "agent.run"}, 0),
            ({"attributes": {"step": 2}}, 1),
            ({"attributes": {"step": 0}}, 0),
            ({"has_error": True}, 1),
        ):
            assert (await traces.list_traces(**filters)).total == found, filters
        assert [s.span_id for s in await traces.get_trace("run")] == ["root", "tool"]
        # The exporter's way still works: a finished span saved again replaces the entry.
        await traces.save_spans([replace(expected_child, status=SpanStatus(code="ok"))])
        assert (await traces.list_traces(has_error=True)).total == 0
        assert (await traces.list_traces()).items[0].error_count == 0
        assert (await traces.get_span("run", "tool")).events == [first, second]  # type: ignore[union-attr]

    async def test_traces_update_span_of_nothing_writes_nothing(self, store: Storage) -> None:
        await store.traces.save_spans(trace("t1", 0))
        before = await store.traces.list_traces()
        assert await store.traces.update_span("t1", "nope", end_time=at(9)) is None
        assert await store.traces.update_span("nope", "t1-root", name="x") is None
        assert await store.traces.list_traces() == before
        assert await store.traces.list_traces(has_error=True) == Page(
            items=[], total=0, page=0, per_page=20, has_more=False
        )

    async def test_traces_get_span_and_get_root_span(self, store: Storage) -> None:
        spans = trace("t1", 0)
        assert await store.traces.get_root_span("t1") is None
        await store.traces.save_spans(spans[:2])  # no root yet: the earliest span stands in
        assert (await store.traces.get_root_span("t1")) == spans[0]
        await store.traces.save_spans(spans[2:])
        assert await store.traces.get_root_span("t1") == spans[3]
        for s in spans:
            assert await store.traces.get_span("t1", s.span_id) == s
        assert await store.traces.get_span("t1", "missing") is None
        assert await store.traces.get_span("missing", "t1-root") is None
        odd = span("a:{b}\n", "c\x00d\x01", 0)
        await store.traces.save_spans([odd])
        assert await store.traces.get_span("a:{b}\n", "c\x00d\x01") == odd
        assert await store.traces.get_root_span("a:{b}\n") == odd

    async def test_traces_light_get_trace_leaves_attributes_out(self, store: Storage) -> None:
        full = trace("t1", 0, attributes={"k": "v"}, resource={"service.name": "s"})
        full[0] = replace(
            full[0],
            events=[SpanEvent(name="e", timestamp=at(0.3))],
            links=[SpanLink(trace_id="x", span_id="y")],
        )
        await store.traces.save_spans(full)
        await store.traces.update_span("t1", "t1-root", attributes={"more": 1}, end_time=at(4))
        heavy = await store.traces.get_trace("t1")
        light = await store.traces.get_trace("t1", with_attributes=False)
        assert light == [replace(s, attributes={}, events=[], links=[], resource={}) for s in heavy]
        assert light[0].end_time == at(4)

    async def test_traces_filters_by_status_errors_ids_tags_environment_service(
        self, store: Storage
    ) -> None:
        model: list[dict[str, Any]] = []
        for i in range(24):
            code = ("ok", "error", "unset")[i % 3]
            attributes = {
                "user.id": f"u{i % 2}",
                "thread.id": f"th{i % 4}",
                "session.id": f"se{i % 3}",
                "run.id": f"r{i}",
                "tags": ["all", f"tag{i % 5}"] + (["x" * 300] if i == 0 else []),
            }
            resource = {"service.name": f"svc{i % 2}"}
            if i % 4:
                resource["deployment.environment.name" if i % 2 else "deployment.environment"] = (
                    "prod" if i % 3 else "dev"
                )
            spans = trace(
                f"t{i:02d}",
                i,
                attributes=attributes,
                resource=resource,
                status=SpanStatus(code=code),
            )
            child_error = i % 7 == 0
            if child_error:
                spans[0] = replace(spans[0], status=SpanStatus(code="error"))
            await store.traces.save_spans(spans)
            model.append(
                {
                    "id": f"t{i:02d}",
                    "start": i,
                    "status": code,
                    "has_error": code == "error" or child_error,
                    "user_id": attributes["user.id"],
                    "thread_id": attributes["thread.id"],
                    "session_id": attributes["session.id"],
                    "run_id": attributes["run.id"],
                    "tag": set(attributes["tags"]),
                    "service": resource["service.name"],
                    "environment": resource.get(
                        "deployment.environment.name", resource.get("deployment.environment")
                    ),
                }
            )
        newest_first = model[::-1]
        filters: list[dict[str, Any]] = [
            {"status": "ok"},
            {"status": "error"},
            {"status": "unset"},
            {"has_error": True},
            {"user_id": "u1"},
            {"thread_id": "th3"},
            {"session_id": "se0"},
            {"run_id": "r5"},
            {"user_id": "nobody"},
            {"tag": "all"},
            {"tag": "tag2"},
            {"tag": "x" * 300},
            {"environment": "prod"},
            {"environment": "dev"},
            {"service": "svc0"},
        ]
        for filt, (start, end) in itertools.product(
            filters, [(None, None), (at(3), at(15)), (None, at(6))]
        ):
            ((field, value),) = filt.items()
            expected = [
                m["id"]
                for m in newest_first
                if (value in m[field] if field == "tag" else m[field] == value)
                and (start is None or at(m["start"]) >= start)
                and (end is None or at(m["start"]) <= end)
            ]
            if filt == {"tag": "x" * 300}:
                expected = []  # longer than 256 bytes: not indexed
            got: list[str] = []
            for page in range(len(expected) // 4 + 1):
                result = await store.traces.list_traces(
                    **filt, from_date=start, to_date=end, page=page, per_page=4
                )
                assert result.total == len(expected), filt
                got += [t.trace_id for t in result.items]
            assert got == expected, (filt, start, end)
        # Ids combine with name and scope, as any attribute does.
        both = await store.traces.list_traces(name="op-t05-root", run_id="r5")
        assert [t.trace_id for t in both.items] == ["t05"]

    async def test_traces_updating_a_root_moves_its_index_entries(self, store: Storage) -> None:
        await store.traces.save_spans(
            trace("t1", 0, attributes={"user.id": "u1", "tags": ["a", "b"]})
        )
        await store.traces.update_span(
            "t1",
            "t1-root",
            attributes={"user.id": "u2", "tags": ["c"]},
            status=SpanStatus(code="error"),
        )
        # A child's update never touches the root's filters.
        await store.traces.update_span(
            "t1", "t1-child-a", name="other", attributes={"user.id": "u3"}
        )
        for filters, found in (
            ({"user_id": "u1"}, 0),
            ({"user_id": "u2"}, 1),
            ({"user_id": "u3"}, 0),
            ({"tag": "a"}, 0),
            ({"tag": "c"}, 1),
            ({"status": "error"}, 1),
            ({"status": "unset"}, 0),
            ({"has_error": True}, 1),
            ({"name": "op-t1-root"}, 1),
        ):
            assert (await store.traces.list_traces(**filters)).total == found, filters
        assert await store.traces.delete_traces(["t1"]) == 1
        for filters in ({"user_id": "u2"}, {"tag": "c"}, {"status": "error"}, {"has_error": True}):
            assert (await store.traces.list_traces(**filters)).total == 0
        assert await store.traces.get_span("t1", "t1-root") is None

    async def test_traces_new_calls_are_one_round_trip_and_check_their_input(
        self, store: Storage
    ) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()
        traces = storage.traces
        await traces.save_spans(trace("t1", 0))
        for call in (
            lambda: traces.get_span("t1", "t1-root"),
            lambda: traces.get_root_span("t1"),
            lambda: traces.get_trace("t1", with_attributes=False),
            lambda: traces.update_span("t1", "t1-root", end_time=at(9), events=[]),
            lambda: traces.list_traces(has_error=True, from_date=T0),
            lambda: traces.list_traces(user_id="u", name="n", scope="s"),
        ):
            before = counting.round_trips
            await call()
            assert counting.round_trips == before + 1
        state = await traces.get_trace("t1")
        bad: list[tuple[Any, str]] = [
            (lambda: traces.get_span("t1", ""), "span_id"),
            (lambda: traces.get_span(1, "x"), "trace_id"),
            (lambda: traces.get_root_span(""), "trace_id"),
            (lambda: traces.get_trace("t1", with_attributes=0), "with_attributes"),
            (
                lambda: traces.update_span("t1", "t1-root", end_time=datetime(2025, 1, 1)),
                "end_time",
            ),
            (lambda: traces.update_span("t1", "t1-root", status={"code": "bad"}), "status.code"),
            (
                lambda: traces.update_span("t1", "t1-root", attributes={"x": float("nan")}),
                "attributes.x",
            ),
            (lambda: traces.update_span("t1", "t1-root", attributes={1: 2}), "attributes"),
            (lambda: traces.update_span("t1", "t1-root", events=[{"name": "e"}]), "events[0]"),
            (lambda: traces.update_span("t1", "t1-root", events="e"), "events"),
            (lambda: traces.update_span("t1", "t1-root", name=3), "name"),
            (lambda: traces.list_traces(status="fine"), "status"),
            (lambda: traces.list_traces(has_error=1), "has_error"),
            (lambda: traces.list_traces(status="ok", has_error=True), "has_error"),
            (lambda: traces.list_traces(tag="a", name="n"), "tag"),
            (lambda: traces.list_traces(user_id="u", attributes={"a": 1}), "user_id"),
            (lambda: traces.list_traces(user_id="u", run_id="r"), "run_id"),
            (lambda: traces.list_traces(thread_id=""), "thread_id"),
            (lambda: traces.list_traces(environment=7), "environment"),
            (lambda: traces.list_traces(service="\ud800"), "service"),
        ]
        for call, field in bad:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert (caught.value.field or "").startswith(field), (field, caught.value.field)
        assert await traces.get_trace("t1") == state

    async def test_traces_one_save_of_a_trace_larger_than_a_script_slice(
        self, store: Storage
    ) -> None:
        # The save script reads and writes span ids 1000 at a time: cross a slice boundary,
        # with spans saved again (one an error) among new ones.
        spans = [
            span("big", f"s{i:04d}", i / 1000, None if i == 0 else "s0000") for i in range(1500)
        ]
        await store.traces.save_spans(spans[:700])
        again = [
            replace(s, name="again", status=SpanStatus(code="error" if i == 650 else "ok"))
            for i, s in enumerate(spans[600:], start=600)
        ]
        await store.traces.save_spans(again)
        stored = await store.traces.get_trace("big")
        assert len(stored) == 1500
        assert sorted(stored, key=lambda s: s.span_id) == spans[:600] + again
        (summary,) = (await store.traces.list_traces()).items
        assert (summary.span_count, summary.error_count) == (1500, 1)
