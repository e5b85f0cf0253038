"""Sample records of realistic shape and size, shared by every section.

* a message: Mastra's v2 shape, a text part and a tool-invocation part with its result,
  padded to about 0.7 KB as msgspec JSON;
* a workflow run whose snapshot is a Mastra-like run state, 5 KB or 50 KB in all;
* an OpenTelemetry GenAI span with attributes, an event and a resource;
* an eval score with input, output and reasoning.

The peers' sections store the same conversation turns in each peer's own message shape
(:func:`turn`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kvstore.records import Message, Score, Span, SpanEvent, SpanStatus, WorkflowRun

__all__ = [
    "EPOCH",
    "MESSAGE_BYTES",
    "Turn",
    "message",
    "message_pair",
    "run_record",
    "score",
    "snapshot",
    "span",
    "turn",
]

#: Where generated timelines start: fixed, so that runs are comparable.
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
#: The target size of one message, as msgspec JSON of the whole record.
MESSAGE_BYTES = 725

_LOREM = (
    "The forecast for Zürich tomorrow shows light rain in the morning, clearing by noon, "
    "with highs around 7 °C and a north-westerly wind. I compared it with the last three "
    "days and with the seasonal average; it is a little colder than usual for the season. "
)
_encoder = msgspec.json.Encoder()


class Turn(msgspec.Struct, frozen=True):
    """One exchange, in no library's shape: what each peer stores in its own."""

    user_text: str
    assistant_text: str
    tool_call_id: str
    tool_name: str
    tool_args: dict[str, Any]
    tool_result: dict[str, Any]


def turn(i: int) -> Turn:
    return Turn(
        user_text=f"[{i}] What's the weather in Zürich tomorrow, and should I take the bike?",
        assistant_text=_LOREM[:200],
        tool_call_id=f"call_{i:08d}",
        tool_name="get_weather",
        tool_args={"city": "Zürich", "country": "CH", "units": "metric", "days": 2},
        tool_result={
            "temperature_c": 6.5,
            "conditions": "light rain",
            "humidity": 0.81,
            "wind_kmh": 14,
            "precipitation_mm": 2.4,
        },
    )


def _mastra_content(t: Turn, text: str) -> dict[str, Any]:
    return {
        "format": 2,
        "parts": [
            {"type": "text", "text": text},
            {
                "type": "tool-invocation",
                "toolInvocation": {
                    "state": "result",
                    "toolCallId": t.tool_call_id,
                    "toolName": t.tool_name,
                    "args": t.tool_args,
                    "result": t.tool_result,
                },
            },
        ],
    }


def message(i: int, thread_id: str = "thread-1", *, at: datetime | None = None) -> Message:
    """The assistant message of turn ``i``: text and a tool call, about 0.7 KB."""
    t = turn(i)
    base = Message(
        id=f"msg-{i:08d}",
        thread_id=thread_id,
        resource_id="user-1",
        role="assistant",
        content=_mastra_content(t, ""),
        created_at=at or EPOCH + timedelta(seconds=i),
        metadata={"model": "gpt-4o-mini", "tokens": 187},
    )
    room = max(0, MESSAGE_BYTES - len(_encoder.encode(base)))
    text = (_LOREM * (room // len(_LOREM) + 1))[:room]
    return msgspec.structs.replace(base, content=_mastra_content(t, text))


def message_pair(i: int, thread_id: str) -> list[Message]:
    """Turn ``i`` as two messages: the user's question and the assistant's answer."""
    t = turn(i)
    at = EPOCH + timedelta(seconds=2 * i)
    user = Message(
        id=f"{thread_id}-u{i}",
        thread_id=thread_id,
        resource_id="user-1",
        role="user",
        content={"format": 2, "parts": [{"type": "text", "text": t.user_text}]},
        created_at=at,
    )
    answer = msgspec.structs.replace(
        message(i, thread_id, at=at + timedelta(milliseconds=1)), id=f"{thread_id}-a{i}"
    )
    return [user, answer]


def snapshot(size: int, run_id: str = "run-1") -> dict[str, Any]:
    """A Mastra-like workflow run state of about ``size`` bytes as JSON."""
    state: dict[str, Any] = {
        "runId": run_id,
        "status": "running",
        "value": {},
        "context": {"input": {"city": "Zürich", "days": 2, "user": "user-1"}},
        "activePaths": [],
        "suspendedPaths": {},
        "waitingPaths": {},
        "serializedStepGraph": [],
        "timestamp": 1_735_689_600_000,
    }
    step = 0
    while len(_encoder.encode(state)) < size:
        step += 1
        name = f"step-{step}"
        state["context"][name] = {
            "status": "success",
            "payload": {"city": "Zürich", "attempt": 1},
            "output": {"summary": _LOREM[: 40 + step % 60], "score": step / 7},
            "startedAt": 1_735_689_600_000 + step * 1000,
            "endedAt": 1_735_689_600_000 + step * 1000 + 420,
        }
        state["serializedStepGraph"].append({"type": "step", "step": {"id": name}})
        state["activePaths"] = [step]
    return state


def run_record(size: int) -> WorkflowRun:
    """A workflow run whose record is about ``size`` bytes as JSON."""
    return WorkflowRun(
        workflow_name="weather-workflow",
        run_id="run-1",
        snapshot=snapshot(max(0, size - 250)),
        version=3,
        created_at=EPOCH,
        updated_at=EPOCH + timedelta(seconds=30),
        resource_id="user-1",
        status="running",
    )


def span(i: int, trace: int = 0, *, parent: str | None = None) -> Span:
    """An LLM-call span of trace ``trace``."""
    start = EPOCH + timedelta(milliseconds=10 * i)
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{i + 1:016x}",
        parent_span_id=parent,
        name="chat gpt-4o-mini",
        kind="client",
        scope="kvstore.bench",
        scope_version="0.1.0",
        start_time=start,
        end_time=start + timedelta(milliseconds=840),
        status=SpanStatus(code="ok"),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 812,
            "gen_ai.usage.output_tokens": 187,
            "gen_ai.response.finish_reasons": ["tool_calls"],
            "agent.name": "weather-agent",
        },
        events=[
            SpanEvent(
                name="gen_ai.choice",
                timestamp=start + timedelta(milliseconds=830),
                attributes={"index": 0, "finish_reason": "tool_calls"},
            )
        ],
        resource={"service.name": "weather-agent", "service.version": "1.4.2"},
    )


def score(i: int, *, run: int | None = None) -> Score:
    """An answer-relevancy score of run ``run`` (default ``i``)."""
    return Score(
        id=f"score-{i:08d}",
        scorer_id="answer-relevancy",
        score=0.82,
        run_id=f"run-{i if run is None else run}",
        reason="The answer addresses the question about tomorrow's weather and the bike, "
        "citing the forecast; it omits the wind speed the user may care about.",
        input={"question": turn(i).user_text},
        output={"answer": _LOREM[:160]},
        entity_type="agent",
        entity_id="weather-agent",
        trace_id=f"{i:032x}",
        span_id=f"{1:016x}",
        resource_id="user-1",
        thread_id="thread-1",
        source="live",
        metadata={"judge": "gpt-4o", "version": 2},
        created_at=EPOCH + timedelta(seconds=i),
    )
