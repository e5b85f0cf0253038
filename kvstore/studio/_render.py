"""What the pages show, computed from records: message parts, JSON trees, the waterfall's
bars and the score chart's points. Pure functions, no I/O, nothing that escapes late:
every string that reaches HTML goes through :func:`markupsafe.escape` here or through the
templates' autoescaping."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from kvstore.records import Message, Score, Span

__all__ = [
    "Bar",
    "Chart",
    "MessageView",
    "Part",
    "Waterfall",
    "chart",
    "duration",
    "json_text",
    "json_tree",
    "message_view",
    "waterfall",
    "when",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- small formats ----------------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    """A time as shown everywhere: UTC, to the millisecond."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


def micros(moment: datetime) -> int:
    """Microseconds since the epoch."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def duration(us: float | None) -> str:
    """A duration in microseconds, for people: ``35 µs``, ``812 ms``, ``2.15 s``, ``3 min``."""
    if us is None:
        return "—"
    if us < 1_000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        ms = us / 1_000
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    seconds = us / 1_000_000
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON text (non-ASCII kept, anything unknown as its ``str``)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str, sort_keys=False)


def short(text: str, limit: int = 140) -> str:
    """``text`` on one line, cut at ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- JSON trees -------------------------------------------------------------------------------

#: Containers deeper than this are shown as JSON text: a hostile snapshot nested a million
#: levels deep must not exhaust the stack.
MAX_DEPTH = 40
#: Children shown per container; the rest are counted (the raw JSON has them all).
MAX_CHILDREN = 500


def json_tree(value: Any, *, open_depth: int = 1) -> Markup:
    """A collapsible tree of a JSON value: ``<details>`` per object and array.

    Containers down to ``open_depth`` levels start open. Every key and value is escaped.
    """
    out: list[str] = ['<div class="json-tree">']
    _node(out, None, value, 0, open_depth)
    out.append("</div>")
    return Markup("".join(out))


def _label(key: str | int | None) -> str:
    if key is None:
        return ""
    if isinstance(key, int):
        return f'<span class="jk jk-index">{key}</span><span class="jp">: </span>'
    return f'<span class="jk">{escape(key)}</span><span class="jp">: </span>'


def _node(out: list[str], key: str | int | None, value: Any, depth: int, open_depth: int) -> None:
    if isinstance(value, dict | list) and value and depth < MAX_DEPTH:
        is_dict = isinstance(value, dict)
        items: Iterable[tuple[str | int, Any]] = (
            value.items() if is_dict else enumerate(value)  # type: ignore[union-attr]
        )
        count = len(value)
        noun = ("key" if count == 1 else "keys") if is_dict else ("item" if count == 1 else "items")
        brackets = "{…}" if is_dict else "[…]"
        opened = " open" if depth < open_depth else ""
        out.append(
            f'<details class="jn"{opened}><summary>{_label(key)}'
            f'<span class="jb">{brackets}</span> <span class="jc">{count} {noun}</span>'
            "</summary><ul>"
        )
        for n, (child_key, child) in enumerate(items):
            if n == MAX_CHILDREN:
                out.append(f'<li class="jmore">… {count - n} more (see the raw JSON)</li>')
                break
            out.append("<li>")
            _node(out, str(child_key) if is_dict else child_key, child, depth + 1, open_depth)
            out.append("</li>")
        out.append("</ul></details>")
        return
    out.append(f'<span class="jl">{_label(key)}{_leaf(value)}</span>')


def _leaf(value: Any) -> str:
    if value is None:
        return '<span class="jv jnull">null</span>'
    if isinstance(value, bool):
        return f'<span class="jv jbool">{"true" if value else "false"}</span>'
    if isinstance(value, int | float):
        return f'<span class="jv jnum">{escape(json_text(value))}</span>'
    if isinstance(value, str):
        return f'<span class="jv jstr">"{escape(value)}"</span>'
    if isinstance(value, dict):
        return '<span class="jv">{}</span>'
    if isinstance(value, list):
        return '<span class="jv">[]</span>' if not value else _deep(value)
    return f'<span class="jv">{escape(str(value))}</span>'


def _deep(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except RecursionError:
        text = "… nested too deeply to show: see the raw JSON"
    return f'<span class="jv jdeep">{escape(short(text, 2000))}</span>'


# -- messages ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Part:
    """One piece of a message as the thread view draws it.

    ``kind`` is ``text``, ``reasoning``, ``tool_call``, ``tool_result``, ``data`` (any other
    JSON) or ``file``.
    """

    kind: str
    text: str = ""
    tool: str = ""
    call_id: str = ""
    args: Any = None
    has_result: bool = False
    result: Any = None
    state: str = ""


@dataclass(slots=True)
class MessageView:
    """A message with its content split into parts, and the shape it was stored in."""

    message: Message
    shape: str
    parts: list[Part]


def _maybe_json(value: Any) -> Any:
    """A JSON string decoded (OpenAI sends tool arguments and results as text)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
    return value


def message_view(message: Message, tool_names: dict[str, str] | None = None) -> MessageView:
    """Split a message's content into parts, whatever shape it was stored in.

    Shapes: plain text; Mastra's v2 (``{"format": 2, "parts": [...]}``); OpenAI chat
    messages (``tool_calls``, ``role: "tool"`` with ``tool_call_id``, content parts,
    ``reasoning_content``); the AI SDK's content part lists (``tool-call``,
    ``tool-result``). Anything else is shown as a JSON tree.

    Args:
        tool_names: Tool names by call id, to name the tool an OpenAI result answers.
    """
    content = message.content
    names = tool_names or {}
    if isinstance(content, str):
        return MessageView(message, "text", [Part("text", text=content)])
    if isinstance(content, dict) and content.get("format") == 2:
        return MessageView(message, "Mastra v2", _mastra_parts(content))
    if isinstance(content, dict) and (
        "tool_calls" in content
        or "tool_call_id" in content
        or "function_call" in content
        or ("role" in content and "content" in content)
    ):
        return MessageView(message, "OpenAI", _openai_parts(content, names))
    if isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content):
        return MessageView(message, "parts", _content_parts(content))
    return MessageView(message, "JSON", [Part("data", args=content)])


def _reasoning_text(part: dict[str, Any]) -> str:
    text = part.get("reasoning") or part.get("text") or ""
    details = part.get("details")
    if not text and isinstance(details, list):
        text = "\n".join(str(d.get("text", "[redacted]")) for d in details if isinstance(d, dict))
    return str(text)


def _mastra_parts(content: dict[str, Any]) -> list[Part]:
    parts: list[Part] = []
    for raw in content.get("parts") or []:
        if not isinstance(raw, dict):
            parts.append(Part("data", args=raw))
            continue
        kind = raw.get("type")
        if kind == "text":
            parts.append(Part("text", text=str(raw.get("text", ""))))
        elif kind == "reasoning":
            parts.append(Part("reasoning", text=_reasoning_text(raw)))
        elif kind == "tool-invocation" and isinstance(raw.get("toolInvocation"), dict):
            call = raw["toolInvocation"]
            parts.append(
                Part(
                    "tool_call",
                    tool=str(call.get("toolName", "?")),
                    call_id=str(call.get("toolCallId", "")),
                    args=call.get("args"),
                    has_result="result" in call,
                    result=call.get("result"),
                    state=str(call.get("state", "")),
                )
            )
        elif kind == "step-start":
            continue
        elif kind == "file":
            parts.append(Part("file", text=str(raw.get("mimeType", "file"))))
        else:
            parts.append(Part("data", text=str(kind), args=raw))
    if not parts:
        text = content.get("content")
        if isinstance(text, str) and text:
            parts.append(Part("text", text=text))
    return parts


def _openai_parts(content: dict[str, Any], names: dict[str, str]) -> list[Part]:
    parts: list[Part] = []
    reasoning = content.get("reasoning_content") or content.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Part("reasoning", text=reasoning))
    if content.get("role") == "tool" or "tool_call_id" in content:
        call_id = str(content.get("tool_call_id", ""))
        parts.append(
            Part(
                "tool_result",
                tool=names.get(call_id, str(content.get("name", ""))),
                call_id=call_id,
                has_result=True,
                result=_maybe_json(content.get("content")),
            )
        )
        return parts
    body = content.get("content")
    if isinstance(body, str) and body:
        parts.append(Part("text", text=body))
    elif isinstance(body, list):
        parts += _content_parts(body)
    refusal = content.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Part("text", text=f"(refused) {refusal}"))
    calls = content.get("tool_calls") or []
    legacy = content.get("function_call")
    if isinstance(legacy, dict):
        calls = [*calls, {"id": "", "function": legacy}]
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            parts.append(Part("data", args=call))
            continue
        parts.append(
            Part(
                "tool_call",
                tool=str(function.get("name", "?")),
                call_id=str(call.get("id", "")),
                args=_maybe_json(function.get("arguments")),
                state="call",
            )
        )
    return parts


def _content_parts(items: Sequence[Any]) -> list[Part]:
    parts: list[Part] = []
    for raw in items:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind in ("text", "input_text", "output_text"):
            parts.append(Part("text", text=str(raw.get("text", ""))))
        elif kind == "reasoning":
            parts.append(Part("reasoning", text=_reasoning_text(raw)))
        elif kind == "tool-call":
            parts.append(
                Part(
                    "tool_call",
                    tool=str(raw.get("toolName", "?")),
                    call_id=str(raw.get("toolCallId", "")),
                    args=raw.get("args", raw.get("input")),
                    state="call",
                )
            )
        elif kind == "tool-result":
            parts.append(
                Part(
                    "tool_result",
                    tool=str(raw.get("toolName", "")),
                    call_id=str(raw.get("toolCallId", "")),
                    has_result=True,
                    result=raw.get("result", raw.get("output")),
                )
            )
        elif kind in ("image_url", "image", "file", "input_audio"):
            parts.append(Part("file", text=str(kind)))
        else:
            parts.append(Part("data", text=str(kind or ""), args=raw))
    return parts


def tool_names(messages: Iterable[Message]) -> dict[str, str]:
    """Tool names by call id, from the OpenAI tool calls among ``messages``."""
    names: dict[str, str] = {}
    for message in messages:
        content = message.content
        if isinstance(content, dict):
            for call in content.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    names[str(call.get("id", ""))] = str(call["function"].get("name", ""))
    return names


# -- the waterfall ----------------------------------------------------------------------------


@dataclass(slots=True)
class Bar:
    """One span's row: where its bar starts and how wide it is, in percent of the trace.

    ``offset_us`` and ``duration_us`` are exact (from the span's times); ``x`` and ``width``
    are what is drawn (``draw_width`` at least a sliver, so an instant span still shows).
    """

    span: Span
    index: int
    depth: int
    offset_us: int
    duration_us: int | None
    x: float
    width: float
    draw_x: float
    draw_width: float
    error: bool
    orphan: bool
    events: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Tick:
    x: float
    label: str


@dataclass(slots=True)
class Waterfall:
    """A trace laid out: bars in tree order, the axis, and whether it is still being written."""

    bars: list[Bar]
    start: datetime
    total_us: int
    ticks: list[Tick]
    errors: int
    live: bool
    services: list[str]


#: A trace is still being written when a span has no end or a parent not stored yet
#: (exporters send children first), and something in it happened this recently.
LIVE_WINDOW = timedelta(minutes=10)
MIN_DRAW_WIDTH = 0.15


def waterfall(spans: Sequence[Span], *, now: datetime | None = None) -> Waterfall:
    """Lay a trace's spans out as a waterfall: depth-first from the roots, children under
    their parent by start time; a span whose parent is not stored is drawn as a root and
    marked."""
    now = now or datetime.now(UTC)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start_time, s.span_id)):
        parent = span.parent_span_id
        if parent is not None and parent in ids and parent != span.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[Span, int]] = []
    seen: set[str] = set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        stack += [(child, depth + 1) for child in reversed(children.get(span.span_id, []))]
    ordered += [(s, 0) for s in spans if s.span_id not in seen]  # parent cycles

    starts = [micros(s.start_time) for s in spans]
    ends = [micros(s.end_time) for s in spans if s.end_time is not None]
    begin = min(starts)
    finish = max([*starts, *ends])
    open_ended = any(s.end_time is None for s in spans)
    if open_ended:  # a span still running reaches to now (or to the last known moment)
        finish = max(finish, min(micros(now), finish + 60_000_000))
    total = max(finish - begin, 1)

    def pct(us: int) -> float:
        return round((us - begin) * 100 / total, 4)

    bars = []
    for index, (span, depth) in enumerate(ordered):
        start = micros(span.start_time)
        end = micros(span.end_time) if span.end_time is not None else None
        x = pct(start)
        width = round(pct(end if end is not None else finish) - x, 4)
        draw_x = min(x, 100 - MIN_DRAW_WIDTH)
        bars.append(
            Bar(
                span=span,
                index=index,
                depth=depth,
                offset_us=start - begin,
                duration_us=None if end is None else end - start,
                x=x,
                width=width,
                draw_x=draw_x,
                draw_width=min(max(width, MIN_DRAW_WIDTH), 100 - draw_x),
                error=span.status.code == "error",
                orphan=span.parent_span_id is not None and span.parent_span_id not in ids,
                events=[(pct(micros(e.timestamp)), e.name) for e in span.events],
            )
        )
    latest = _EPOCH + timedelta(microseconds=finish)
    pending = open_ended or any(b.orphan for b in bars)
    services = sorted(
        {str(s.resource["service.name"]) for s in spans if "service.name" in s.resource}
    )
    return Waterfall(
        bars=bars,
        start=_EPOCH + timedelta(microseconds=begin),
        total_us=total,
        ticks=_ticks(total),
        errors=sum(b.error for b in bars),
        live=pending and now - latest <= LIVE_WINDOW,
        services=services,
    )


def _ticks(total_us: int) -> list[Tick]:
    """About five round ticks along the axis."""
    raw = total_us / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, at = [], 0.0
    while at <= total_us + 1e-9:
        ticks.append(Tick(round(at * 100 / total_us, 4), duration(at) if at else "0"))
        at += step
    return ticks


# -- the score chart --------------------------------------------------------------------------


@dataclass(slots=True)
class Point:
    score: Score
    x: float
    y: float


@dataclass(slots=True)
class Series:
    scorer: str
    index: int
    points: list[Point]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.2f},{p.y:.2f}" for p in self.points)

    def circles(self, href: Callable[[Score], str]) -> Markup:
        """The points, each a link to its score with its value and time as a tooltip
        (built here rather than in the template: a chart has up to 200 of them)."""
        out = []
        scorer = escape(self.scorer)
        for p in self.points:
            score = p.score
            out.append(
                f'<a href="{escape(href(score))}"><circle class="point" cx="{p.x}" '
                f'cy="{p.y}" r="4.5" data-score="{score.score!r}" '
                f'data-time="{score.created_at.isoformat()}" data-id="{escape(score.id)}">'
                f"<title>{scorer}: {score.score:.3g} at {when(score.created_at)}</title>"
                "</circle></a>"
            )
        return Markup("".join(out))


@dataclass(slots=True)
class Chart:
    """Scores over time, one series per scorer, in an SVG of :attr:`width` by :attr:`height`."""

    series: list[Series]
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    lo: float
    hi: float


def chart(scores: Sequence[Score], *, width: int = 860, height: int = 260) -> Chart:
    """Lay scores out over time: x by ``created_at``, y by the score; each scorer one series.

    The y axis spans 0 to 1 and stretches to any score outside it.
    """
    left, right, top, bottom = 48, width - 16, 14, height - 30
    lo = min([0.0, *(s.score for s in scores)])
    hi = max([1.0, *(s.score for s in scores)])
    times = [micros(s.created_at) for s in scores]
    t0, t1 = (min(times), max(times)) if times else (0, 1)
    span = max(t1 - t0, 1)

    def x_of(us: int) -> float:
        if t1 == t0:
            return (left + right) / 2
        return left + (us - t0) * (right - left) / span

    def y_of(value: float) -> float:
        return bottom - (value - lo) * (bottom - top) / (hi - lo)

    by_scorer: dict[str, list[Score]] = {}
    for score in scores:
        by_scorer.setdefault(score.scorer_id, []).append(score)
    series = [
        Series(
            scorer,
            index % 8,
            [
                Point(s, round(x_of(micros(s.created_at)), 2), round(y_of(s.score), 2))
                for s in sorted(group, key=lambda s: (s.created_at, s.id))
            ],
        )
        for index, (scorer, group) in enumerate(sorted(by_scorer.items()))
    ]
    steps = 4
    y_ticks = [
        (round(y_of(lo + (hi - lo) * i / steps), 2), f"{lo + (hi - lo) * i / steps:g}")
        for i in range(steps + 1)
    ]
    x_ticks = []
    if times:
        first = _EPOCH + timedelta(microseconds=t0)
        last = _EPOCH + timedelta(microseconds=t1)
        x_ticks.append((float(left), first.strftime("%Y-%m-%d %H:%M")))
        if t1 != t0:
            x_ticks.append((float(right), last.strftime("%Y-%m-%d %H:%M")))
    return Chart(series, width, height, left, right, top, bottom, y_ticks, x_ticks, lo, hi)
