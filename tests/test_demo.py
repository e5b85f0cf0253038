"""The demo tells the whole story: something stored in every domain, read back through the
public API, with and without the OpenTelemetry SDK."""

from __future__ import annotations

import io
import sys

import pytest

from kvstore import Storage
from kvstore.demo import run_demo

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _check_story(store: Storage) -> None:
    memory, workflows, evals, traces = store.memory, store.workflows, store.evals, store.traces
    # Memory: two resources with working memory; a tool call and reasoning in both shapes.
    resources = await memory.list_resources()
    assert {r.id for r in resources.items} == {"alice", "bob"}
    assert all(r.working_memory for r in resources.items)
    weather = (await memory.list_messages("alice-weather")).items
    openai_call = weather[1].content
    assert openai_call["tool_calls"][0]["function"]["name"] == "get_weather"
    assert weather[2].content["role"] == "tool"
    parts = {part["type"] for part in weather[3].content["parts"]}
    assert parts == {"reasoning", "tool-invocation", "text"}
    # Workflows: one run resumed and finished, one still suspended, one failed.
    runs = await workflows.list_runs()
    assert sorted((r.run_id, r.status) for r in runs.items) == [
        ("report-2026-03-14", "failed"),
        ("trip-alice-lisbon", "success"),
        ("trip-bob-paris", "suspended"),
    ]
    finished = await workflows.get_run("trip-alice-lisbon", "trip-booking")
    assert finished is not None
    assert finished.version == 5
    assert finished.snapshot["context"]["approve"]["resumePayload"] == {"ok": True}
    # Scores: two scorers with reasons, one low score explained.
    for scorer in ("answer-relevancy", "tool-call-accuracy"):
        page = await evals.list_scores(scorer_id=scorer, per_page=100)
        assert page.total == 10
        assert all(s.reason for s in page.items)
    assert any(
        s.score == 0.2 for s in (await evals.list_scores(scorer_id="answer-relevancy")).items
    )
    # Traces: nested spans, one trace with an error, scores pointing at spans.
    listing = await traces.list_traces()
    assert listing.total == 3
    depths = []
    errors = 0
    for summary in listing.items:
        spans = await traces.get_trace(summary.trace_id)
        assert len(spans) == summary.span_count
        by_id = {s.span_id: s for s in spans}
        for span in spans:
            depth, parent = 0, span.parent_span_id
            while parent is not None:
                depth, parent = depth + 1, by_id[parent].parent_span_id
            depths.append(depth)
            assert span.end_time is not None
            assert span.end_time >= span.start_time
        errors += sum(s.status.code == "error" for s in spans)
    assert max(depths) == 2
    assert errors == 2
    linked = [s for s in (await evals.list_scores(per_page=100)).items if s.trace_id]
    for score in linked:
        assert score.span_id in {s.span_id for s in await traces.get_trace(score.trace_id)}


async def test_the_demo_stores_something_in_every_view() -> None:
    out = io.StringIO()
    async with Storage() as store:
        await run_demo(store, out)
        await _check_story(store)
        await run_demo(store, io.StringIO())  # again on the same store: the same story
        await _check_story(store)
    text = out.getvalue()
    assert "worker B got ConflictError" in text
    assert "through kvstore.otel.StorageSpanExporter" in text
    assert "why 0.2?" in text


async def test_the_demo_without_the_otel_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kvstore.otel", None)  # import fails as if missing
    out = io.StringIO()
    async with Storage() as store:
        await run_demo(store, out)
        await _check_story(store)
    assert 'pip install "kvstore[otel]"' in out.getvalue()
