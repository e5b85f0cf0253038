"""What the pages show, computed from records: message parts, JSON trees, waterfall bars,
chart points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kvstore import Message, Score, Span, SpanStatus
from kvstore.studio import _render as render

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def message(content: Any, role: str = "assistant") -> Message:
    return Message(id="m", thread_id="t", role=role, content=content)  # type: ignore[arg-type]


def kinds(content: Any, role: str = "assistant") -> list[tuple[str, str]]:
    view = render.message_view(message(content, role), {"call_9": "search"})
    return [(p.kind, p.tool or p.text) for p in view.parts]


def test_message_shapes() -> None:
    assert kinds("hello", "user") == [("text", "hello")]
    mastra = {
        "format": 2,
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "reasoning": "", "details": [{"type": "text", "text": "hm"}]},
            {
                "type": "tool-invocation",
                "toolInvocation": {"state": "call", "toolName": "f", "args": {}},
            },
            {"type": "text", "text": "done"},
            {"type": "source", "source": {"url": "https://x"}},
        ],
    }
    assert kinds(mastra) == [
        ("reasoning", "hm"),
        ("tool_call", "f"),
        ("text", "done"),
        ("data", "source"),
    ]
    assert kinds({"format": 2, "parts": [], "content": "plain"}) == [("text", "plain")]
    openai = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "think",
        "tool_calls": [{"id": "c1", "function": {"name": "g", "arguments": '{"a": 1}'}}],
    }
    assert kinds(openai) == [("reasoning", "think"), ("tool_call", "g")]
    call = render.message_view(message(openai)).parts[1]
    assert call.args == {"a": 1}  # decoded from OpenAI's JSON text
    tool = {"role": "tool", "tool_call_id": "call_9", "content": '{"hits": 3}'}
    result = render.message_view(message(tool, "tool"), {"call_9": "search"}).parts[0]
    assert (result.kind, result.tool, result.result) == ("tool_result", "search", {"hits": 3})
    parts = {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}
    assert kinds(parts, "user") == [("text", "hi"), ("file", "image_url")]
    ai_sdk = [
        {"type": "tool-call", "toolCallId": "1", "toolName": "h", "args": {}},
        {"type": "tool-result", "toolCallId": "1", "toolName": "h", "result": 2},
    ]
    assert kinds(ai_sdk) == [("tool_call", "h"), ("tool_result", "h")]
    assert kinds({"anything": [1, 2]}) == [("data", "")]
    assert render.message_view(message({"anything": 1})).shape == "JSON"


def test_json_trees_escape_and_stay_shallow() -> None:
    tree = str(render.json_tree({"<k>": ["<v>", 1, None, True, {}]}))
    assert "<k>" not in tree
    assert "&lt;k&gt;" in tree
    assert "&#34;&lt;v&gt;&#34;" in tree or '"&lt;v&gt;"' in tree
    deep: Any = "bottom"
    for _ in range(10_000):
        deep = [deep]
    rendered = str(render.json_tree(deep))  # no RecursionError
    assert rendered.count("<details") == render.MAX_DEPTH
    wide = str(render.json_tree(list(range(render.MAX_CHILDREN + 7))))
    assert "7 more" in wide


def span(span_id: str, parent: str | None, start_ms: int, end_ms: int | None, **kw: Any) -> Span:
    return Span(
        trace_id="t",
        span_id=span_id,
        parent_span_id=parent,
        name=span_id,
        start_time=T0 + timedelta(milliseconds=start_ms),
        end_time=None if end_ms is None else T0 + timedelta(milliseconds=end_ms),
        **kw,
    )


def test_waterfall_geometry() -> None:
    layout = render.waterfall(
        [
            span("child-late", "root", 600, 1000),
            span("root", None, 0, 1000),
            span("grandchild", "child-early", 150, 350),
            span("child-early", "root", 100, 400, status=SpanStatus(code="error")),
            span("orphan", "elsewhere", 500, 500),
        ],
        now=T0 + timedelta(days=1),
    )
    got = [(b.span.span_id, b.depth, b.x, b.width, b.offset_us, b.duration_us) for b in layout.bars]
    assert got == [
        ("root", 0, 0.0, 100.0, 0, 1_000_000),
        ("child-early", 1, 10.0, 30.0, 100_000, 300_000),
        ("grandchild", 2, 15.0, 20.0, 150_000, 200_000),
        ("child-late", 1, 60.0, 40.0, 600_000, 400_000),
        ("orphan", 0, 50.0, 0.0, 500_000, 0),  # roots by start time, each with its tree
    ]
    assert layout.errors == 1
    assert [b.orphan for b in layout.bars] == [False, False, False, False, True]
    assert layout.bars[4].draw_width == render.MIN_DRAW_WIDTH  # an instant still shows
    assert not layout.live  # an orphan, but nothing happened for a day
    assert [t.label for t in layout.ticks][:3] == ["0", "200 ms", "400 ms"]


def test_a_trace_being_written_is_live() -> None:
    now = T0 + timedelta(seconds=5)
    assert render.waterfall([span("a", "missing-root", 0, 100)], now=now).live
    assert render.waterfall([span("a", None, 0, None)], now=now).live
    assert not render.waterfall([span("a", None, 0, 100)], now=now).live


def test_chart_points() -> None:
    scores = [
        Score(scorer_id="b", score=s, created_at=T0 + timedelta(hours=h), id=f"b{h}")
        for h, s in enumerate([0.0, 1.0, 0.5])
    ] + [Score(scorer_id="a", score=2.0, created_at=T0 + timedelta(hours=1), id="a")]
    chart = render.chart(scores)
    assert [s.scorer for s in chart.series] == ["a", "b"]
    (a,), b = chart.series[0].points, chart.series[1].points
    assert (chart.lo, chart.hi) == (0.0, 2.0)  # stretched to a score above 1
    mid = chart.bottom - (chart.bottom - chart.top) / 4  # 0.5 of 0..2
    assert [p.y for p in b] == [chart.bottom, (chart.bottom + chart.top) / 2, mid]
    assert b[0].x == chart.left
    assert b[2].x == chart.right
    assert a.y == chart.top
    assert render.chart([]).series == []
