"""An agent's whole story on kvstore, for newcomers: ``python -m kvstore demo``.

Two users talk to agents over several threads; an agent calls a tool and reasons, keeps
working memory about each user, and later recalls the last turns with context around an
earlier message. A trip-booking workflow suspends for approval and is resumed through
compare-and-set while a second worker loses the race. The agents' calls are traced
through the OpenTelemetry exporter (one tool call fails), and two scorers grade the
answers with their reasons. Everything it stores and reads is printed, and
``kvstore studio`` then has something to show in every view.
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import anyio.to_thread

from kvstore import __version__ as kvstore_version
from kvstore._local import URL_ENV, default_url, describe_url
from kvstore.errors import ConflictError
from kvstore.records import (
    Include,
    Message,
    Score,
    Span,
    SpanEvent,
    SpanKind,
    SpanStatus,
    Thread,
)
from kvstore.storage import Storage

if TYPE_CHECKING:
    from kvstore.records import Page

__all__ = ["content_text", "main", "run_demo"]

_START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return _START + timedelta(minutes=minutes)


def content_text(content: Any) -> str:
    """A one-line rendering of any message content shape (text, Mastra v2, OpenAI)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("format") == 2:
        parts = []
        for part in content.get("parts", []):
            if part.get("type") == "text":
                parts.append(part["text"])
            elif part.get("type") == "tool-invocation":
                call = part["toolInvocation"]
                parts.append(f"[tool {call['toolName']}({call['args']}) -> {call.get('result')}]")
            elif part.get("type") == "reasoning":
                parts.append(f"[thinking: {part.get('reasoning', '')}]")
        return " ".join(parts)
    if isinstance(content, dict) and content.get("tool_calls"):
        calls = ", ".join(
            f"{c['function']['name']}({c['function']['arguments']})" for c in content["tool_calls"]
        )
        return f"[calls {calls}]"
    if isinstance(content, dict) and content.get("role") == "tool":
        return f"[result of {content.get('tool_call_id')}: {content.get('content')}]"
    return repr(content)


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", file=self.out)

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def messages(self, page: Page[Message]) -> None:
        for m in page.items:
            stamp = m.created_at.strftime("%H:%M")
            self.line(f"  {stamp} [{m.thread_id}] {m.role:>9}: {content_text(m.content)}")
        self.line(f"  ({len(page.items)} shown, {page.total} in range, more: {page.has_more})")


def _conversation(thread_id: str, resource_id: str, start: float) -> list[Message]:
    """A weather conversation with one tool call, in OpenAI's and Mastra's shapes."""
    return [
        Message(
            id=f"{thread_id}-1",
            thread_id=thread_id,
            resource_id=resource_id,
            role="user",
            content="What's the weather in Zürich? I'm cycling to work.",
            created_at=_at(start),
        ),
        Message(
            id=f"{thread_id}-2",
            thread_id=thread_id,
            resource_id=resource_id,
            role="assistant",
            type="openai",
            content={
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                    }
                ],
            },
            created_at=_at(start + 0.1),
        ),
        Message(
            id=f"{thread_id}-3",
            thread_id=thread_id,
            resource_id=resource_id,
            role="tool",
            type="openai",
            content={
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"temp_c": 3, "rain": 0.8}',
            },
            created_at=_at(start + 0.2),
        ),
        Message(
            id=f"{thread_id}-4",
            thread_id=thread_id,
            resource_id=resource_id,
            role="assistant",
            content={
                "format": 2,
                "parts": [
                    {"type": "reasoning", "reasoning": "3°C and rain: suggest a rain jacket."},
                    {
                        "type": "tool-invocation",
                        "toolInvocation": {
                            "state": "result",
                            "toolCallId": "call_1",
                            "toolName": "get_weather",
                            "args": {"city": "Zürich"},
                            "result": {"temp_c": 3, "rain": 0.8},
                        },
                    },
                    {"type": "text", "text": "3°C with a good chance of rain: take a rain jacket."},
                ],
            },
            created_at=_at(start + 0.3),
        ),
    ]


async def run_demo(store: Storage, out: TextIO = sys.stdout) -> None:
    """Play the demo story against ``store`` and print what happens to ``out``.

    The story, in the order it is stored: two users' threads with a tool call and
    reasoning, their working memory; a workflow that suspends and is resumed through
    compare-and-set; traces of the agents' calls, written through the OpenTelemetry
    exporter when the ``otel`` extra is installed (one with a failed tool call); and scores
    with reasons from two scorers.
    """
    p = _Printer(out)
    p.line(f"kvstore demo on {store!r}")
    await _memory_story(store, p)
    await _workflow_story(store, p)
    trace_ids = await _trace_story(store, p)
    await _eval_story(store, p, trace_ids)


async def _memory_story(store: Storage, p: _Printer) -> None:
    memory = store.memory
    p.section("Threads for two resources")
    threads = [
        Thread(id="alice-weather", resource_id="alice", title="Weather", created_at=_at(0)),
        Thread(id="alice-travel", resource_id="alice", title="Trip to Lisbon", created_at=_at(5)),
        Thread(id="alice-recipes", resource_id="alice", title="Soup recipes", created_at=_at(10)),
        Thread(id="bob-weather", resource_id="bob", title="Weather", created_at=_at(2)),
    ]
    for thread in threads:
        saved = await memory.save_thread(thread)
        p.line(f"  saved thread {saved.id!r} of {saved.resource_id!r}: {saved.title}")

    p.section("A conversation with a tool call")
    conversation = _conversation("alice-weather", "alice", 1)
    await memory.save_messages(conversation)
    await memory.save_messages(_conversation("bob-weather", "bob", 3))
    chat = [
        ("user", "Book me a train to Lisbon next Friday."),
        ("assistant", "Done: the 08:12 from Zürich HB, seat 42, window."),
        ("user", "And a vegetarian restaurant near the hotel?"),
        ("assistant", "Try 'Ao 26 Vegan Food Project', 5 minutes' walk away."),
    ]
    await memory.save_messages(
        Message(
            id=f"alice-travel-{i}",
            thread_id="alice-travel",
            resource_id="alice",
            role=role,  # type: ignore[arg-type]
            content=text,
            created_at=_at(6 + i),
        )
        for i, (role, text) in enumerate(chat)
    )
    p.line(f"  saved {len(conversation)} + {len(conversation)} + {len(chat)} messages")

    p.section("Working memory")
    await memory.update_resource(
        "alice", working_memory="# Alice\n- cycles to work\n- vegetarian", metadata={"tz": "CET"}
    )
    resource = await memory.update_resource("alice", metadata={"language": "de"})
    await memory.update_resource(
        "bob", working_memory="# Bob\n- lives in Zürich", metadata={"tz": "CET"}
    )
    p.line(f"  alice: {resource.working_memory!r}")
    p.line(f"  alice metadata (merged): {resource.metadata}")

    p.section("Alice's threads, most recently active first")
    listing = await memory.list_threads("alice", order_by="updated_at")
    for thread in listing.items:
        p.line(f"  {thread.id:<14} {thread.title!r:<18} updated {thread.updated_at:%H:%M:%S}")
    p.line(f"  ({listing.total} threads)")

    p.section("Recall: the last 2 messages of the travel thread")
    p.messages(await memory.list_messages("alice-travel", last=2))

    p.section("Recall with context: last 2, plus the tool call before the weather answer")
    p.messages(
        await memory.list_messages(
            "alice-travel",
            last=2,
            include=[Include(message_id="alice-weather-4", before=2)],
        )
    )

    p.section("Tidy up: Alice deletes the recipes thread")
    await memory.delete_thread("alice-recipes")
    p.line(f"  alice now has {(await memory.list_threads('alice')).total} threads")


# -- workflows --------------------------------------------------------------------------------


def _trip_snapshot(status: str, **steps: Any) -> dict[str, Any]:
    """A Mastra-like workflow snapshot of the trip-booking workflow."""
    context: dict[str, Any] = {
        "input": {"from": "Zürich HB", "to": "Lisboa Oriente", "date": "2026-03-20"},
        **steps,
    }
    suspended = [name for name, step in steps.items() if step.get("status") == "suspended"]
    return {
        "status": status,
        "context": context,
        "activePaths": [
            {"stepPath": [name], "status": step["status"]} for name, step in steps.items()
        ],
        "suspendedPaths": {name: [i] for i, name in enumerate(suspended)},
        "serializedStepGraph": [
            {"type": "step", "step": {"id": "search-trains"}},
            {"type": "step", "step": {"id": "approve"}},
            {"type": "step", "step": {"id": "book"}},
        ],
    }


_SEARCH = {
    "status": "success",
    "output": {"trains": [{"id": "TGV 9211", "departs": "08:12", "price_eur": 189.5}]},
}
_WAITING = {
    "status": "suspended",
    "suspendPayload": {"question": "Book TGV 9211 for 189.50 EUR?", "asked": "alice"},
}


_RUNS = [
    ("trip-booking", "trip-alice-lisbon"),
    ("trip-booking", "trip-bob-paris"),
    ("daily-weather-report", "report-2026-03-14"),
]


async def _workflow_story(store: Storage, p: _Printer) -> None:
    workflows = store.workflows
    p.section("A workflow that pauses for approval")
    run_id = "trip-alice-lisbon"
    for workflow_name, old_run in _RUNS:  # run again on the same store: start afresh
        await workflows.delete_run(workflow_name, old_run)
    version = await workflows.persist_snapshot(
        "trip-booking",
        run_id,
        _trip_snapshot("running", **{"search-trains": _SEARCH}),
        resource_id="alice",
        status="running",
        expected_version=0,
    )
    version = await workflows.persist_snapshot(
        "trip-booking",
        run_id,
        _trip_snapshot("suspended", **{"search-trains": _SEARCH, "approve": _WAITING}),
        status="suspended",
        expected_version=version,
    )
    p.line(f"  {run_id}: suspended at step 'approve', waiting for alice (version {version})")
    await workflows.persist_snapshot(
        "trip-booking",
        "trip-bob-paris",
        _trip_snapshot(
            "suspended",
            **{
                "search-trains": _SEARCH,
                "approve": {
                    **_WAITING,
                    "suspendPayload": {"question": "Book TGV 9213 for 142 EUR?", "asked": "bob"},
                },
            },
        ),
        resource_id="bob",
        status="suspended",
    )
    p.line("  trip-bob-paris: suspended too, still waiting for bob")

    p.section("Resume: two workers race for the suspended run; compare-and-set picks one")
    (run,) = [
        r
        for r in (await workflows.list_runs("trip-booking", status="suspended")).items
        if r.run_id == run_id
    ]
    approved = {"status": "success", "output": {"approved": True}, "resumePayload": {"ok": True}}
    resumed = _trip_snapshot("running", **{"search-trains": _SEARCH, "approve": approved})
    version = await workflows.persist_snapshot(
        run.workflow_name, run.run_id, resumed, status="running", expected_version=run.version
    )
    p.line(f"  worker A resumed {run.run_id} (version {run.version} -> {version})")
    try:
        await workflows.persist_snapshot(
            run.workflow_name, run.run_id, resumed, status="running", expected_version=run.version
        )
    except ConflictError:
        p.line(f"  worker B got ConflictError: version {run.version} is gone, A owns the run")
    booked = {"status": "success", "output": {"booking": "PNR 4KX9TQ", "seat": "42 window"}}
    done = await workflows.update_run(
        "trip-booking",
        run_id,
        status="success",
        result=booked["output"],
        expected_version=version,
    )
    await workflows.persist_snapshot(
        "trip-booking",
        run_id,
        _trip_snapshot(
            "success", **{"search-trains": _SEARCH, "approve": approved, "book": booked}
        ),
        expected_version=done.version,
    )
    p.line(f"  {run_id}: {done.status}, result {done.result}")

    await workflows.persist_snapshot(
        "daily-weather-report",
        "report-2026-03-14",
        {"status": "failed", "context": {"fetch": {"status": "failed", "error": "timeout"}}},
        resource_id="bob",
        status="failed",
    )
    await workflows.update_run(
        "daily-weather-report",
        "report-2026-03-14",
        error={"message": "weather API timed out after 10 s", "step": "fetch"},
    )
    page = await workflows.list_runs()
    counts = Counter(r.status for r in page.items)
    p.line(f"  {page.total} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


# -- traces -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One span of a demo trace: times in milliseconds from the trace's start."""

    name: str
    start: float
    end: float
    kind: SpanKind = "internal"
    attributes: dict[str, Any] = field(default_factory=dict)
    children: tuple[_Step, ...] = ()
    error: str | None = None
    events: tuple[tuple[str, float, dict[str, Any]], ...] = ()


def _llm(start: float, end: float, tokens_in: int, tokens_out: int, **extra: Any) -> _Step:
    return _Step(
        "llm.chat gpt-4o-mini",
        start,
        end,
        kind="client",
        attributes={
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            **extra,
        },
    )


#: The agents' calls, as the traces show them: (when, in minutes from the demo's start, root).
_TRACES: list[tuple[float, _Step]] = [
    (
        1,
        _Step(
            "weather-agent.generate",
            0,
            2150,
            kind="server",
            attributes={
                "agent.name": "weather-agent",
                "user.id": "alice",
                "thread.id": "alice-weather",
            },
            children=(
                _Step("memory.recall", 2, 31, attributes={"kvstore.messages": 20}),
                _llm(36, 810, 412, 38, **{"gen_ai.response.finish_reason": "tool_calls"}),
                _Step(
                    "tool.get_weather",
                    822,
                    1290,
                    attributes={"tool.name": "get_weather", "tool.args": '{"city": "Zürich"}'},
                    children=(
                        _Step(
                            "GET api.weather.example/v1/now",
                            830,
                            1272,
                            kind="client",
                            attributes={"http.method": "GET", "http.status_code": 200},
                        ),
                    ),
                ),
                _llm(1301, 2102, 498, 61, **{"gen_ai.response.finish_reason": "stop"}),
                _Step("memory.save", 2108, 2141, attributes={"kvstore.messages": 3}),
            ),
            events=((("first token", 1390, {"gen_ai.response.model": "gpt-4o-mini"})),),
        ),
    ),
    (
        6,
        _Step(
            "travel-agent.generate",
            0,
            3260,
            kind="server",
            attributes={
                "agent.name": "travel-agent",
                "user.id": "alice",
                "thread.id": "alice-travel",
            },
            children=(
                _Step("memory.recall", 3, 40, attributes={"kvstore.messages": 20}),
                _llm(45, 690, 388, 44, **{"gen_ai.response.finish_reason": "tool_calls"}),
                _Step(
                    "tool.book_train",
                    700,
                    1720,
                    attributes={"tool.name": "book_train", "tool.args": '{"seat": "41"}'},
                    error="SeatUnavailable: seat 41 is taken",
                    children=(
                        _Step(
                            "POST rail.example/bookings",
                            712,
                            1688,
                            kind="client",
                            attributes={"http.method": "POST", "http.status_code": 409},
                            error="409 Conflict",
                        ),
                    ),
                ),
                _Step(
                    "tool.book_train",
                    1730,
                    2505,
                    attributes={"tool.name": "book_train", "tool.args": '{"seat": "42"}'},
                    children=(
                        _Step(
                            "POST rail.example/bookings",
                            1741,
                            2480,
                            kind="client",
                            attributes={"http.method": "POST", "http.status_code": 201},
                        ),
                    ),
                ),
                _llm(2512, 3220, 530, 52, **{"gen_ai.response.finish_reason": "stop"}),
                _Step("memory.save", 3224, 3255, attributes={"kvstore.messages": 2}),
            ),
        ),
    ),
    (
        3,
        _Step(
            "weather-agent.generate",
            0,
            1620,
            kind="server",
            attributes={
                "agent.name": "weather-agent",
                "user.id": "bob",
                "thread.id": "bob-weather",
            },
            children=(
                _Step("memory.recall", 2, 25, attributes={"kvstore.messages": 20}),
                _llm(30, 610, 402, 37, **{"gen_ai.response.finish_reason": "tool_calls"}),
                _Step(
                    "tool.get_weather",
                    615,
                    905,
                    attributes={"tool.name": "get_weather", "tool.args": '{"city": "Zürich"}'},
                ),
                _llm(910, 1590, 480, 55, **{"gen_ai.response.finish_reason": "stop"}),
                _Step("memory.save", 1594, 1618, attributes={"kvstore.messages": 3}),
            ),
        ),
    ),
]


class _Ids:
    """Trace and span ids from a seeded generator: the same on every run of the demo."""

    def __init__(self) -> None:
        self._random = random.Random(20260314)

    def trace(self) -> int:
        return self._random.getrandbits(128) or 1

    def span(self) -> int:
        return self._random.getrandbits(64) or 1


def _nanos(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _export_with_otel(exporter: Any) -> list[str]:
    """Play :data:`_TRACES` through the OpenTelemetry SDK into ``exporter``; return the
    trace ids. Runs in a worker thread: the exporter saves on the demo's event loop."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource as OtelResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import SpanKind as OtelKind
    from opentelemetry.trace import Status, StatusCode

    class SameIds(IdGenerator):
        """The same ids on every run, so that running the demo again rewrites its traces."""

        def __init__(self) -> None:
            self.ids = _Ids()

        def generate_span_id(self) -> int:
            return self.ids.span()

        def generate_trace_id(self) -> int:
            return self.ids.trace()

    provider = TracerProvider(
        resource=OtelResource.create({"service.name": "kvstore-demo"}), id_generator=SameIds()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("kvstore.demo", kvstore_version)

    def play(step: _Step, origin: datetime, parent: Any) -> Any:
        def at(ms: float) -> int:
            return _nanos(origin + timedelta(milliseconds=ms))

        context = None if parent is None else trace.set_span_in_context(parent)
        span = tracer.start_span(
            step.name,
            context=context,
            kind=OtelKind[step.kind.upper()],
            attributes=step.attributes,
            start_time=at(step.start),
        )
        for name, ms, attributes in step.events:
            span.add_event(name, attributes, timestamp=at(ms))
        for child in step.children:
            play(child, origin, span)
        if step.error:
            kind, _, text = step.error.partition(": ")
            span.add_event(
                "exception",
                {"exception.type": kind if text else "Error", "exception.message": text or kind},
                timestamp=at(step.end),
            )
            span.set_status(Status(StatusCode.ERROR, step.error))
        span.end(end_time=at(step.end))
        return span

    ids = []
    for minutes, root in _TRACES:
        span = play(root, _at(minutes), None)
        ids.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()
    return ids


def _spans_without_otel(ids: _Ids, root: _Step, origin: datetime) -> list[Span]:
    """The same trace as :func:`_export_with_otel` writes, as kvstore records."""
    spans: list[Span] = []
    trace_id = format(ids.trace(), "032x")

    def add(step: _Step, parent: str | None) -> None:
        span_id = format(ids.span(), "016x")

        def at(ms: float) -> datetime:
            return origin + timedelta(milliseconds=ms)

        events = [SpanEvent(name=n, timestamp=at(ms), attributes=a) for n, ms, a in step.events]
        if step.error:
            events.append(
                SpanEvent(
                    name="exception", timestamp=at(step.end), attributes={"message": step.error}
                )
            )
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=step.name,
                kind=step.kind,
                scope="kvstore.demo",
                start_time=at(step.start),
                end_time=at(step.end),
                attributes=step.attributes,
                events=events,
                status=SpanStatus(code="error", message=step.error) if step.error else SpanStatus(),
                resource={"service.name": "kvstore-demo"},
            )
        )
        for child in step.children:
            add(child, span_id)

    add(root, None)
    return spans


async def _trace_story(store: Storage, p: _Printer) -> list[str]:
    p.section("Traces of the agents' calls")
    try:
        from kvstore.otel import StorageSpanExporter
    except ImportError:
        ids = _Ids()
        trace_ids = []
        for minutes, root in _TRACES:
            spans = _spans_without_otel(ids, root, _at(minutes))
            await store.traces.save_spans(spans)
            trace_ids.append(spans[0].trace_id)
        p.line('  (saved directly: pip install "kvstore[otel]" to go through OpenTelemetry)')
    else:
        # Made while the demo's loop runs, the exporter writes on that loop: the SDK's
        # export thread and the demo share one store.
        exporter = StorageSpanExporter(store)
        trace_ids = await anyio.to_thread.run_sync(_export_with_otel, exporter)
        p.line("  written by the OpenTelemetry SDK through kvstore.otel.StorageSpanExporter")
    for summary in (await store.traces.list_traces()).items:
        took = (summary.end_time or summary.start_time) - summary.start_time
        p.line(
            f"  {summary.start_time:%H:%M} {summary.name:<24} {summary.span_count:>2} spans "
            f"{took.total_seconds():.2f} s  {summary.trace_id}"
        )
    failed = [s for s in await store.traces.get_trace(trace_ids[1]) if s.status.code == "error"]
    p.line(f"  failed spans in the travel agent's call: {', '.join(s.name for s in failed)}")
    return trace_ids


# -- evals ------------------------------------------------------------------------------------

_RELEVANCY = [0.92, 0.88, 0.95, 0.2, 0.81, 0.9, 0.86, 0.97, 0.74, 0.93]
_TOOL_ACCURACY = [1.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 1.0, 0.5, 1.0]


async def _eval_story(store: Storage, p: _Printer, trace_ids: list[str]) -> None:
    p.section("Scores from two scorers, with their reasons")
    weather_trace, travel_trace = trace_ids[0], trace_ids[1]
    weather_spans = await store.traces.get_trace(weather_trace)
    travel_spans = await store.traces.get_trace(travel_trace)
    for i, (relevancy, accuracy) in enumerate(zip(_RELEVANCY, _TOOL_ACCURACY, strict=True)):
        when = _at(-9 * 60 + i * 60)
        agent = "travel-agent" if i % 3 == 2 else "weather-agent"
        common: dict[str, Any] = {
            "run_id": f"call-{i:02}",
            "entity_type": "agent",
            "entity_id": agent,
            "resource_id": "alice" if i % 2 else "bob",
            "source": "test" if i in (0, 4) else "live",
            "created_at": when,
        }
        if i == 3:
            question, answer = "What's the weather in Zürich?", "Take a rain jacket."
            reason = (
                "The answer gives advice but not the temperature or the chance of rain the "
                "user asked about; only the advice is relevant."
            )
        else:
            question = "What's the weather in Zürich? I'm cycling to work."
            answer = "3°C with a good chance of rain: take a rain jacket."
            reason = "The answer states the temperature and the rain and advises the cyclist."
        if i == len(_RELEVANCY) - 1:
            common |= {"trace_id": weather_trace, "span_id": weather_spans[0].span_id}
            common |= {"thread_id": "alice-weather", "resource_id": "alice"}
        await store.evals.save_score(
            Score(
                id=f"demo-relevancy-{i:02}",
                scorer_id="answer-relevancy",
                score=relevancy,
                reason=reason,
                input={"messages": [{"role": "user", "content": question}]},
                output={"text": answer},
                metadata={"judge": "gpt-4o", "prompt_version": 3},
                **common,
            )
        )
        tool_reason = {
            1.0: "Called get_weather once with the city the user named.",
            0.5: "Called the right tool, but retried it with other arguments after an error.",
            0.0: "Answered from memory without calling get_weather.",
        }[accuracy]
        extra = {}
        if i == 2:
            failed = next(s for s in travel_spans if s.status.code == "error")
            extra = {"trace_id": travel_trace, "span_id": failed.span_id}
            extra |= {"thread_id": "alice-travel"}
        await store.evals.save_score(
            Score(
                id=f"demo-tool-accuracy-{i:02}",
                scorer_id="tool-call-accuracy",
                score=accuracy,
                reason=tool_reason,
                input={
                    "expected_tools": ["get_weather"]
                    if agent == "weather-agent"
                    else ["book_train"]
                },
                output={"called": ["get_weather"] if accuracy else []},
                **(common | extra),
            )
        )
    for scorer in ("answer-relevancy", "tool-call-accuracy"):
        page = await store.evals.list_scores(scorer_id=scorer, per_page=100)
        values = [s.score for s in page.items]
        p.line(f"  {scorer:<19} {page.total} scores, mean {sum(values) / len(values):.2f}")
    (low,) = [
        s
        for s in (await store.evals.list_scores(scorer_id="answer-relevancy", per_page=100)).items
        if s.score < 0.5
    ]
    p.line(f"  why {low.score}? {low.reason}")


async def _main(url: str) -> None:
    async with Storage.from_url(url) as store:
        await run_demo(store)


def main() -> None:
    """Run the demo on ``$KVSTORE_URL``, by default the local file (see :mod:`kvstore._local`).

    The command line's ``kvstore demo`` does the same with richer output around it.
    """
    url = os.environ.get(URL_ENV) or default_url()
    print(f"kvstore demo: using {describe_url(url)}", file=sys.stderr)
    anyio.run(_main, url)
