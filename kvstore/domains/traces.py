"""Traces: spans in a stream, a summary per trace, listings by time.

Key schema (see :mod:`kvstore.keys`):

* ``spans`` stream: every span of the namespace, one entry each. Entry ids carry time:
  ``<start ms>-<seq>``, the start raised when needed so that ids only grow (see
  :mod:`~kvstore.domains._trace_scripts`); so a time window of spans is an ``XRANGE`` and
  retention by age is ``XTRIM MINID``.
* ``span_clock`` string: the last stream id given out.
* ``trace_spans:<trace id>`` hash: span id -> stream entry id, for ``get_trace``.
* ``trace:<trace id>`` hash: the trace's summary (root span, start, end, span count).
* ``trace_index:<filters>:<values>`` sorted sets, scored by the trace's start time in
  microseconds: an :class:`~kvstore.keys.IndexFamily` with one set for every combination
  of the root span's ``name``, ``scope`` and one of its ``attribute`` pairs.

Why list traces from sorted sets rather than from the stream: a page of traces needs a
``total`` and filters by root span, and a stream window would have to be read whole to
count the traces in it. The trace index answers a window and any filter combination with
one ``ZCOUNT`` and one ``ZRANGE``, reading only the page.

Which attributes are indexed: each attribute of a trace's root span whose value is a
string, number or boolean of at most 256 bytes (JSON-encoded) and whose name is at most 256
bytes. A trace is in ``4 * (1 + attributes)`` index sets; ``list_traces`` filters on one
attribute at a time, so there is one set per combination.

Retention (:class:`TraceRetention`, set on the store) is applied by every ``save_spans``
and by :meth:`TraceStore.apply_retention`, with exact ``XTRIM MAXLEN =`` and
``XTRIM MINID =``. Before trimming, the script reads the entries it will remove and drops
them from their traces, and a trace left with no span leaves every index, so listings
never show a trace that has nothing left. ``get_trace`` also skips any entry that is gone.
Age is read from stream ids: a span that arrives after spans that started later than it
gets the later id, so it is kept longer than its start time alone would say, never
shorter.

Cost of each call (one round trip each; Redis commands counted inside the script):

===================  ===========================================================
``save_spans``       per span 3 (``HGET``, ``XADD``, ``HSET``; 4 with the ``XDEL`` of
                     a span saved again); per trace at most 7 plus its index moves
                     (``4 * (1 + attributes)`` entries written for a new trace, as
                     many removed and written when its root changes); 2 for the
                     clock. Retention adds at most 5, then 2 per span trimmed and,
                     per trace that lost spans, 2 (or 3 plus its index entries when
                     it lost its last span). Each span is trimmed once, so trimming
                     costs O(1) per span saved. One call trims whatever has aged out
                     since the last one: after a long pause, run
                     ``apply_retention`` on a schedule to spread that work.
``get_trace``        1 + the trace's span count
``list_traces``      ``per_page + 2``, whatever the number of traces stored
``delete_traces``    per trace 3 + its span count + its index entries
``apply_retention``  as the retention part of ``save_spans``
``export_spans``     2 (``XLEN`` and one ``XRANGE`` of ``count`` entries)
===================  ===========================================================

Measured on Redis 7 with 3000 spans stored: saving a trace of 10 spans whose root has two
indexed attributes costs 45 commands, ``get_trace`` of it 11, a ``list_traces`` page of 20
(with or without filters) 22.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from kvstore._checks import (
    check_ids,
    check_items,
    check_metadata,
    check_stream_cursor,
    check_text,
)
from kvstore.codec import FormatName, RecordCodec, check_json, record_codec
from kvstore.domains import _trace_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_count,
    check_id,
    check_page,
    decode_with_counters,
    make_page,
    micros,
    page_of_index,
    time_window,
)
from kvstore.errors import ValidationError
from kvstore.records import Chunk, Page, Span, TraceSummary, utc_now

if TYPE_CHECKING:
    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import IndexValue, Keys

__all__ = ["TraceRetention", "TraceStore"]

#: Longest attribute name and JSON-encoded value that the trace index keeps.
MAX_INDEXED_BYTES = 256
#: The summary fields a listing reads (the index keys in ``_ix`` stay behind).
_SUMMARY_FIELDS = (
    "trace_id",
    "name",
    "scope",
    "start_time",
    "end_time",
    "status",
    "root_span_id",
    "_n",
)
_COUNTERS = {b"_n": "span_count"}
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class TraceRetention:
    """How many spans a store keeps: give either limit or both.

    Attributes:
        max_spans: Keep at most this many spans (the newest).
        max_age: Keep only spans whose stream id (their start time, or later when they
            arrived out of order) is younger than this.
    """

    max_spans: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.max_spans is not None and (
            not isinstance(self.max_spans, int)
            or isinstance(self.max_spans, bool)
            or self.max_spans < 1
        ):
            raise ValidationError("expected an integer >= 1", field="max_spans")
        if self.max_age is not None and (
            not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)
        ):
            raise ValidationError("expected a positive timedelta", field="max_age")


class TraceStore(Domain):
    """Spans and traces; reached as ``store.traces``."""

    __slots__ = ("_retention", "_spans", "_summaries")

    def __init__(
        self,
        driver: Driver,
        keys: Keys,
        format_name: FormatName = "json",
        retention: TraceRetention | None = None,
    ) -> None:
        super().__init__(driver, keys, format_name)
        self._spans: RecordCodec[Span] = record_codec(Span, format_name)
        # Scripts maintain a summary attribute by attribute.
        self._summaries: RecordCodec[TraceSummary] = record_codec(
            TraceSummary, format_name, "attributes"
        )
        self._retention = retention or TraceRetention()

    @property
    def retention(self) -> TraceRetention:
        """The retention limits applied on every save."""
        return self._retention

    async def save_spans(self, spans: Iterable[Span | Mapping[str, Any]]) -> list[Span]:
        """Store a batch of spans in one round trip, then apply the retention limits.

        A span saved again (same trace and span id) replaces the earlier one.

        Returns:
            The spans as stored.

        Raises:
            ValidationError: a span is malformed; nothing is written.
        """
        codec = self._spans
        checked = [codec.check(s, f"spans[{i}]") for i, s in enumerate(check_items(spans, "spans"))]
        if not checked:
            return []
        valid, encoded = [s for s, _ in checked], [f for _, f in checked]
        # A span given twice in one batch: the last one counts, as it would across calls.
        latest = {(s.trace_id, s.span_id): (s, f) for s, f in zip(valid, encoded, strict=True)}
        args = self._retention_args()
        args.append(len(latest))
        args.append(len({t for t, _ in latest}))
        by_trace: dict[str, list[Span]] = {}
        for span, fields in latest.values():
            start_ms = max(0, micros(span.start_time) // 1000)
            args += (span.trace_id, span.span_id, start_ms, len(fields), *fields)
            by_trace.setdefault(span.trace_id, []).append(span)
        for trace_id, trace_spans in by_trace.items():
            args += self._trace_args(trace_id, trace_spans)
        await self._driver.run(scripts.SAVE_SPANS, [self._keys.spans], args)
        return valid

    async def apply_retention(self) -> int:
        """Trim the spans beyond the retention limits now, without saving any.

        ``save_spans`` does this on every call; call this where spans may stop arriving
        for long (a scheduled job), so that old spans go anyway.

        Returns:
            How many spans were trimmed.
        """
        args = [*self._retention_args(), 0, 0]
        trimmed = await self._driver.run(scripts.SAVE_SPANS, [self._keys.spans], args)
        return int(trimmed)  # type: ignore[arg-type]

    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every stored span of a trace, each parent before its children.

        The order is depth-first from the roots (spans whose parent is not stored), with
        siblings by start time. Empty when the trace is unknown or all its spans were
        trimmed.
        """
        keys = self._keys
        reply = await self._driver.run(
            scripts.GET_TRACE,
            [keys.spans, keys.trace_spans(check_id(trace_id, "trace_id"))],
            idempotent=True,
        )
        spans = [self._spans.from_hash(fields, keys.spans) for fields in as_list(reply)]
        return _parents_first(spans)

    async def list_traces(
        self,
        *,
        name: str | None = None,
        scope: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        page: int = 0,
        per_page: int = 20,
    ) -> Page[TraceSummary]:
        """One page of traces, newest first (by start time).

        Filters apply to each trace's root span and combine freely. Costs ``per_page + 2``
        commands whatever the number of traces stored.

        Args:
            name: Only traces whose root span has this name.
            scope: Only traces whose root span has this instrumentation scope.
            attributes: Only traces whose root span has this attribute; at most one
                ``{name: value}`` pair (see the module docstring for what is indexed).
            from_date: Only traces that started at or after this time.
            to_date: Only traces that started at or before this time.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.
        """
        for field, value in (("name", name), ("scope", scope)):
            if value is not None:
                check_text(value, field)
        attribute = _attribute_filter(attributes)
        window = time_window(from_date, to_date)
        check_page(page, per_page)
        index = self._keys.trace_index.key({"name": name, "scope": scope, "attribute": attribute})
        prefix = self._keys.trace.prefix
        total, found = await page_of_index(
            self._driver,
            index,
            prefix,
            page=page,
            per_page=per_page,
            window=window,
            fields=_SUMMARY_FIELDS,
        )
        codec = self._summaries
        items = [
            decode_with_counters(codec, f, prefix + m.decode(errors="replace"), _COUNTERS)
            for m, f in found
        ]
        return make_page(items, total, page, per_page)

    async def delete_traces(self, trace_ids: Iterable[str]) -> int:
        """Delete traces: their spans, summaries and index entries.

        Returns:
            How many of the traces existed.
        """
        ids = check_ids(trace_ids, "trace_ids")
        if not ids:
            return 0
        keys = self._keys
        deleted = await self._driver.run(
            scripts.DELETE_TRACES,
            [keys.spans],
            [keys.trace.prefix, keys.trace_spans.prefix, *ids],
            # Not retried: after a reply lost in flight, a retry finds the record gone
            # and would report that it never existed (issue 14).
            idempotent=False,
        )
        return int(deleted)  # type: ignore[arg-type]

    async def export_spans(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Span]:
        """One chunk of a walk through every span of the namespace, in stream order.

        Stream order is roughly start time (see the module docstring). One round trip of
        two commands whatever the number of spans stored. :meth:`save_spans` is the write
        side: it stores spans exactly as given.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many spans to read, from 1 to 1000.
        """
        check_count(count)
        start = "-" if cursor is None else "(" + check_stream_cursor(cursor)
        stream = self._keys.spans
        total, entries = await self._driver.execute(
            [("XLEN", stream), ("XRANGE", stream, start, "+", "COUNT", count)], idempotent=True
        )
        found = as_list(entries)
        items = [self._spans.from_hash(fields, stream) for _, fields in found]
        last = found[-1][0].decode() if len(found) == count else None
        return Chunk(items=items, cursor=last, total=int(total))  # type: ignore[arg-type]

    # -- internals ------------------------------------------------------------------------

    def _retention_args(self) -> list[Arg]:
        """SAVE_SPANS's arguments up to the span count."""
        keys = self._keys
        now_ms = micros(utc_now()) // 1000
        retention = self._retention
        minid: Arg = ""
        below_minid: Arg = ""
        if retention.max_age is not None:
            cutoff = now_ms - retention.max_age // timedelta(milliseconds=1)
            if cutoff > 0:
                minid, below_minid = cutoff, cutoff - 1
        return [
            keys.span_clock,
            keys.trace.prefix,
            keys.trace_spans.prefix,
            now_ms,
            "" if retention.max_spans is None else retention.max_spans,
            minid,
            below_minid,
        ]

    def _trace_args(self, trace_id: str, spans: list[Span]) -> list[Arg]:
        """SAVE_SPANS's arguments for one trace: its root candidate and time span."""
        root = min(spans, key=lambda s: (s.parent_span_id is not None, s.start_time, s.span_id))
        first = min(spans, key=lambda s: s.start_time)
        ended = [s for s in spans if s.end_time is not None]
        last = max(ended, key=lambda s: s.end_time or s.start_time) if ended else None
        encode = self._summaries.encode
        root_fields = [
            b"trace_id",
            encode(trace_id),
            b"name",
            encode(root.name),
            b"scope",
            encode(root.scope),
            b"status",
            encode(root.status),
            b"root_span_id",
            encode(root.span_id),
        ]
        choices: dict[str, list[IndexValue]] = {
            "name": [root.name],
            "scope": [] if root.scope is None else [root.scope],
            "attribute": [
                (k, v)
                for k, v in ((k, _indexed_value(v)) for k, v in root.attributes.items())
                if v is not None and len(k.encode()) <= MAX_INDEXED_BYTES
            ],
        }
        return [
            trace_id,
            "1" if root.parent_span_id is not None else "0",
            micros(root.start_time),
            root.span_id,
            micros(first.start_time),
            encode(first.start_time),
            "" if last is None or last.end_time is None else micros(last.end_time),
            b"" if last is None else encode(last.end_time),
            scripts.pack_keys(self._keys.trace_index.lattice(choices)),
            len(root_fields),
            *root_fields,
        ]


def _indexed_value(value: Any) -> str | None:
    """An attribute value as the trace index spells it, or None if it is not indexed."""
    if not isinstance(value, str | int | float | bool):
        return None
    encoded = _json.encode(value)
    return encoded.decode() if len(encoded) <= MAX_INDEXED_BYTES else None


def _attribute_filter(attributes: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if attributes is None:
        return None
    if not isinstance(attributes, Mapping) or len(attributes) > 1:
        raise ValidationError("expected at most one {name: value} pair", field="attributes")
    if not attributes:
        return None
    ((key, value),) = check_metadata(attributes, "attributes").items()
    check_json(value, f"attributes.{key}")
    encoded = _indexed_value(value)
    if not isinstance(key, str) or len(key.encode()) > MAX_INDEXED_BYTES or encoded is None:
        raise ValidationError(
            f"only strings, numbers and booleans of at most {MAX_INDEXED_BYTES} bytes are indexed",
            field="attributes",
        )
    return (key, encoded)


def _parents_first(spans: list[Span]) -> list[Span]:
    """Depth-first from the roots, siblings by start time; spans in a parent cycle last."""
    by_start = sorted(spans, key=lambda s: (s.start_time, s.span_id))
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in by_start:
        parent = span.parent_span_id
        if parent is not None and parent in ids and parent != span.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    ordered: list[Span] = []
    seen: set[str] = set()
    stack = roots[::-1]
    while stack:
        span = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append(span)
        stack += children.get(span.span_id, [])[::-1]
    # Spans whose parent chain loops never hang from a root; keep them, by start time.
    ordered += [s for s in by_start if s.span_id not in seen]
    return ordered
