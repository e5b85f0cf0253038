"""Traces: spans in a stream per trace, a summary per trace, listings by time.

Key schema (layout 2, see :mod:`kvstore.keys`). A trace lives in the bucket of its id;
``T`` is the id escaped for lex members:

* ``spans:<trace id>`` (stream): the trace's spans, one entry each (``s`` its span id,
  ``d`` the packed span). Entry ids carry time, ``<start ms>-<seq>`` (raised when needed so
  that ids only grow: see :mod:`~kvstore.domains._trace_scripts`), so the spans of a trace
  newer than one already read are one ``XRANGE``.
* ``span_ids:<trace id>`` (hash): span id -> stream id (with ``!`` after it when the span's
  status is ``error``), so a span saved again or updated replaces its entry and the trace's
  error count stays exact.
* ``traces`` (bucket hash): ``T`` -> the trace summary listings show (root span, start, end,
  span count, error count), packed; and the bucket's span total (for retention).
* ``trace_index`` (bucket lex index): per trace, one entry for every combination of its
  root span's ``name`` (``n``), ``scope`` (``c``) and one of its attributes (``a``); one for
  each of its root's status code (``s``), tags (``g``), environment (``v``) and service
  (``S``); ``e`` while one of its spans has an error; and ``T`` (every trace by start):
  ``<filters>\0<values>\0<start>\0T``. The scripts make these from the root's *atoms*
  (see :mod:`~kvstore.domains._trace_scripts`), so that an update of the root moves them.

Which attributes are indexed: each attribute of a trace's root span whose value is a
string, number or boolean of at most 256 bytes (JSON-encoded) and whose name is at most 256
bytes; each string of at most 256 bytes in its ``tags`` attribute (:data:`TAGS_ATTRIBUTE`);
its resource's environment and ``service.name`` (:data:`ENVIRONMENT_RESOURCE`,
:data:`SERVICE_RESOURCE`). ``list_traces`` filters on one attribute at a time; the id
filters are attribute filters (:data:`ID_ATTRIBUTES`).

Retention (:class:`TraceRetention`, set on the store) drops whole traces, oldest first by
start: those that started before ``max_age``, and as many as needed to keep each bucket's
spans within its share of ``max_spans`` (``max_spans / buckets``; exact with one bucket).
``save_spans`` returns what retention needs to know (a bucket's span count and its oldest
trace), so it costs nothing until something is due; then the traces go in slices of at most
10, one round trip each, so no call holds the server long. :meth:`TraceStore.apply_retention`
runs it on demand for every bucket.

Cost of each call (one round trip each unless said):

===================  ===========================================================
``save_spans``       one script per bucket: per span an ``XADD`` (and an ``XDEL``
                     for a span saved again), per trace about 7 (its span ids read
                     and written once per 1000 spans) plus its index entries when
                     its root or start changes
``update_span``      one script: 8 commands, 10 when the trace's index entries move
``get_trace``        one ``XRANGE`` of the trace's stream
``get_span``         one script: ``HGET``, ``XRANGE`` of one entry (``get_root_span``:
                     one ``HGET`` more, of the summary)
``list_traces``      one script per bucket, ``per_page + 3`` commands with one bucket
``delete_traces``    one script per bucket, about 5 commands per trace
``apply_retention``  one round trip to look, then one per 10 traces dropped
``export_spans``     one ``XRANGE`` of ``count`` entries and a count per bucket
===================  ===========================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kvstore._checks import check_items, check_metadata, check_text
from kvstore.codec import (
    FormatName,
    RecordCodec,
    check_json,
    check_record,
    record_codec,
    unpack_fields,
)
from kvstore.domains import _trace_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_count,
    check_id,
    check_ids,
    check_page,
    decode_with_counters,
    lex_bounds,
    list_index,
    make_page,
    micros,
    time_window,
)
from kvstore.errors import CorruptRecordError, DriverError, ValidationError
from kvstore.keys import lex_escape, lex_time
from kvstore.records import (
    Chunk,
    Page,
    Span,
    SpanEvent,
    SpanKind,
    SpanStatus,
    TraceSummary,
    UTCDateTime,
    utc_now,
)

if TYPE_CHECKING:
    from kvstore.drivers.base import Arg, Command, Driver
    from kvstore.keys import Bucket, Keys
    from kvstore.layout import StoreLayout

__all__ = ["TraceRetention", "TraceStore"]

#: Longest attribute name and JSON-encoded value that the trace index keeps.
MAX_INDEXED_BYTES = 256
#: Traces retention drops in one round trip at most. Dropping a trace of 10 spans takes
#: Redis about 0.1 to 0.2 ms (its spans and its index entries in a large lex index), so a
#: slice holds the server about a millisecond (the bounded benchmark, 10^6 spans: 100 held
#: it 9 ms on average, 20 held it 2.2 ms with a longest of 10 ms).
RETENTION_SLICE = 10
_COUNTERS = {b"_n": "span_count", b"_ne": "error_count"}
#: The root span attributes behind ``list_traces``'s id filters (OpenTelemetry's ``user.id``
#: and ``session.id``; ``thread.id`` and ``run.id`` by the same pattern).
ID_ATTRIBUTES = {
    "user_id": "user.id",
    "thread_id": "thread.id",
    "session_id": "session.id",
    "run_id": "run.id",
}
#: The root span attribute holding a trace's tags (a list of strings).
TAGS_ATTRIBUTE = "tags"
#: The root span's resource attributes naming its environment, first found wins
#: (OpenTelemetry's current and former names).
ENVIRONMENT_RESOURCE = ("deployment.environment.name", "deployment.environment")
#: The root span's resource attribute naming its service.
SERVICE_RESOURCE = "service.name"
SpanStatusCode = Literal["unset", "ok", "error"]
_json = msgspec.json.Encoder()


def _summaries(bucket: Bucket) -> str:
    return bucket.traces


def _trace_index(bucket: Bucket) -> str:
    return bucket.trace_index


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


class _SpanUpdate(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What :meth:`TraceStore.update_span` was given, validated as one record."""

    name: str | None = None
    end_time: UTCDateTime | None = None
    status: SpanStatus | None = None
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []


class _SpanHead(msgspec.Struct, kw_only=True, frozen=True):
    """A span without its attributes, events, links and resource: a light read decodes
    only these (msgspec skips the rest of the document unparsed into values)."""

    trace_id: str
    span_id: str
    name: str
    start_time: datetime
    parent_span_id: str | None = None
    kind: SpanKind = "internal"
    scope: str | None = None
    scope_version: str | None = None
    status: SpanStatus = SpanStatus()
    end_time: datetime | None = None


class TraceStore(Domain):
    """Spans and traces; reached as ``store.traces``."""

    __slots__ = ("_retention", "_spans", "_summaries")

    def __init__(
        self,
        driver: Driver,
        layout: StoreLayout,
        format_name: FormatName,
        retention: TraceRetention | None = None,
    ) -> None:
        super().__init__(driver, layout, format_name)
        self._spans: RecordCodec[Span] = record_codec(Span, format_name)
        # Scripts maintain a summary attribute by attribute.
        self._summaries: RecordCodec[TraceSummary] = record_codec(
            TraceSummary, format_name, "attributes"
        )
        self._retention = retention or TraceRetention()

    @property
    def retention(self) -> TraceRetention:
        """The retention limits applied after saves and by :meth:`apply_retention`."""
        return self._retention

    async def save_spans(self, spans: Iterable[Span | Mapping[str, Any]]) -> list[Span]:
        """Store a batch of spans in one round trip, then apply the retention limits.

        A span saved again (same trace and span id) replaces the earlier one. Spans may
        arrive in any order, children before parents.

        Returns:
            The spans as stored.

        Raises:
            ValidationError: a span is malformed; nothing is written.
        """
        checked = [
            self._spans.check_packed(s, f"spans[{i}]")
            for i, s in enumerate(check_items(spans, "spans"))
        ]
        valid = [span for span, _ in checked]
        if not valid:
            return []
        # A span given twice in one batch: the last one counts, as it would across calls.
        latest = {(s.trace_id, s.span_id): s for s in valid}
        packed = {(s.trace_id, s.span_id): p for s, p in checked}
        by_trace: dict[str, list[Span]] = {}
        for span in latest.values():
            by_trace.setdefault(span.trace_id, []).append(span)
        keys = await self._keys()
        now_ms = micros(utc_now()) // 1000
        plans: dict[int, tuple[Bucket, list[str], list[Arg]]] = {}
        for trace_id, trace_spans in by_trace.items():
            bucket = keys.bucket_of(trace_id)
            plan = plans.setdefault(bucket.number, (bucket, [], []))
            plan[1].extend(
                (keys.trace_spans(bucket, trace_id), keys.trace_span_ids(bucket, trace_id))
            )
            plan[2].extend(self._trace_args(trace_id, trace_spans))
            for span in trace_spans:
                plan[2].extend(
                    (
                        lex_escape(span.span_id),
                        max(0, micros(span.start_time) // 1000),
                        "1" if span.status.code == "error" else "0",
                        packed[(span.trace_id, span.span_id)],
                    )
                )
        replies = await self._driver.execute(
            [
                scripts.SAVE_SPANS.command(
                    [bucket.traces, bucket.trace_index, *trace_keys],
                    [now_ms, len(trace_keys) // 2, *args],
                )
                for bucket, trace_keys, args in plans.values()
            ]
        )
        due = [
            bucket
            for (bucket, _, _), reply in zip(plans.values(), replies, strict=True)
            if self._retention_due(keys, *as_list(reply))
        ]
        if due:
            await self._trim(keys, due)
        return valid

    async def apply_retention(self) -> int:
        """Drop the traces beyond the retention limits now, without saving any.

        ``save_spans`` does this for the buckets it writes to; call this where spans may
        stop arriving for long (a scheduled job), so that old traces go anyway.

        Returns:
            How many spans were dropped (with their traces).
        """
        if self._retention.max_spans is None and self._retention.max_age is None:
            return 0
        keys = await self._keys()
        return await self._trim(keys, keys.all_buckets)

    async def get_trace(self, trace_id: str, *, with_attributes: bool = True) -> list[Span]:
        """Every stored span of a trace, each parent before its children.

        The order is depth-first from the roots (spans whose parent is not stored), with
        siblings by start time. Empty when the trace is unknown or was dropped. One
        ``XRANGE``.

        Args:
            with_attributes: False for a light read (a waterfall, a tree): each span comes
                without its ``attributes``, ``events``, ``links`` and ``resource``, which
                are then not decoded.
        """
        check_id(trace_id, "trace_id")
        if not isinstance(with_attributes, bool):
            raise ValidationError("expected a bool", field="with_attributes")
        keys = await self._keys()
        bucket = keys.bucket_of(trace_id)
        stream = keys.trace_spans(bucket, trace_id)
        (entries,) = await self._driver.execute([("XRANGE", stream, "-", "+")], idempotent=True)
        return _parents_first(self._entries(as_list(entries), stream, light=not with_attributes))

    async def get_span(self, trace_id: str, span_id: str) -> Span | None:
        """One span of a trace, or None. One script: two commands and an ``EVALSHA``."""
        check_id(trace_id, "trace_id")
        check_id(span_id, "span_id")
        return await self._read_span(trace_id, lex_escape(span_id))

    async def get_root_span(self, trace_id: str) -> Span | None:
        """A trace's root span (the one its summary names, see
        :class:`~kvstore.records.TraceSummary`), or None. One script: three commands and
        an ``EVALSHA``."""
        check_id(trace_id, "trace_id")
        return await self._read_span(trace_id, "")

    async def update_span(
        self,
        trace_id: str,
        span_id: str,
        *,
        name: str | None = None,
        end_time: datetime | None = None,
        status: SpanStatus | Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        events: Iterable[SpanEvent | Mapping[str, Any]] | None = None,
    ) -> Span | None:
        """Update a stored span (one started and saved without ``end_time``, say) in place.

        Only what is given changes: ``attributes`` merge key by key into the span's,
        ``events`` are appended to its events. The trace's summary and index entries follow
        in the same atomic script (its end, error count and, for its root, name, status
        and filter values). The span's stream entry moves to the end of the trace's stream
        (the next id), so an export walking the trace meanwhile may meet it twice, the
        later copy being the newer. Not retried after a lost reply: appending events twice
        is not harmless.

        Returns:
            The span as now stored, or None when the trace holds no such span (nothing is
            written).

        Raises:
            ValidationError: a value is malformed; nothing is written.
        """
        check_id(trace_id, "trace_id")
        check_id(span_id, "span_id")
        if attributes is not None:
            check_metadata(attributes, "attributes")
        given: dict[str, Any] = {
            k: v
            for k, v in (
                ("name", name),
                ("end_time", end_time),
                ("status", status),
                ("attributes", attributes),
                ("events", None if events is None else check_items(events, "events")),
            )
            if v is not None
        }
        update, _ = check_record(given, _SpanUpdate)
        encode = self._spans.encode
        overrides: list[Arg] = []
        root_fields: list[Arg] = []
        drops: list[str] = []
        adds: list[str] = []
        if update.name is not None:
            overrides += (b"name", encode(update.name))
            root_fields += (b"name", encode(update.name))
            drops.append("n\x00")
            adds.append(f"n\x00{lex_escape(update.name)}")
        if update.status is not None:
            overrides += (b"status", encode(update.status))
            root_fields += (b"status", encode(update.status))
            drops.append("s\x00")
            adds.append(f"s\x00{update.status.code}")
        if update.end_time is not None:
            overrides += (b"end_time", encode(update.end_time))
        if update.attributes:
            overrides += self._spans.merged_fields("attributes", update.attributes)
            for key, value in update.attributes.items():
                drops.append(f"a\x00{lex_escape(key)}\x00")
                adds.append(_attribute_atom(key, value))
            if TAGS_ATTRIBUTE in update.attributes:
                drops.append("g\x00")
                adds += _tag_atoms(update.attributes[TAGS_ATTRIBUTE])
        events_value = b""
        if update.events:
            events_value = self._spans.encode_value(update.events, "events")
        keys = await self._keys()
        bucket = keys.bucket_of(trace_id)
        stream = keys.trace_spans(bucket, trace_id)
        reply = await self._driver.run(
            scripts.UPDATE_SPAN,
            [bucket.traces, bucket.trace_index, stream, keys.trace_span_ids(bucket, trace_id)],
            [
                lex_escape(trace_id),
                lex_escape(span_id),
                len(overrides) // 2,
                *overrides,
                events_value,
                "" if update.end_time is None else micros(update.end_time),
                b"" if update.end_time is None else encode(update.end_time),
                "" if update.status is None else ("1" if update.status.code == "error" else "0"),
                len(root_fields),
                *root_fields,
                scripts.pack_prefixes(drops),
                scripts.pack_prefixes(a for a in adds if a),
            ],
        )
        return None if reply is None else self._spans.unpack(_packed(reply), stream)

    async def list_traces(
        self,
        *,
        name: str | None = None,
        scope: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        status: SpanStatusCode | None = None,
        has_error: bool = False,
        tag: str | None = None,
        environment: str | None = None,
        service: str | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        page: int = 0,
        per_page: int = 20,
    ) -> Page[TraceSummary]:
        """One page of traces, newest first (by start time).

        Filters apply to each trace's root span (``has_error`` to all its spans) and
        each is served by an index, together with the time window, in one script per
        bucket (``per_page + 3`` commands on one bucket) whatever the number of traces
        stored. ``name``, ``scope`` and one attribute filter (``attributes`` or an id)
        combine freely; ``status``, ``has_error``, ``tag``, ``environment`` and
        ``service`` are each given alone (with the time window).

        Args:
            name: Only traces whose root span has this name.
            scope: Only traces whose root span has this instrumentation scope.
            attributes: Only traces whose root span has this attribute; at most one
                ``{name: value}`` pair (see the module docstring for what is indexed).
            user_id: Only traces whose root span's ``user.id`` attribute is this.
            thread_id: The same for its ``thread.id`` attribute.
            session_id: The same for its ``session.id`` attribute.
            run_id: The same for its ``run.id`` attribute.
            status: Only traces whose root span's status code is this (``"error"``,
                ``"ok"`` or ``"unset"``).
            has_error: Only traces with at least one span whose status is ``error``.
            tag: Only traces whose root span's ``tags`` attribute (a list of strings)
                holds this tag.
            environment: Only traces whose root span's resource says this
                ``deployment.environment.name`` (or the former ``deployment.environment``).
            service: Only traces whose root span's resource says this ``service.name``.
            from_date: Only traces that started at or after this time.
            to_date: Only traces that started at or before this time.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.
        """
        for field, value in (("name", name), ("scope", scope)):
            if value is not None:
                check_text(value, field)
        attribute = _attribute_filter(attributes)
        for field, value in (
            ("user_id", user_id),
            ("thread_id", thread_id),
            ("session_id", session_id),
            ("run_id", run_id),
        ):
            if value is None:
                continue
            check_id(value, field)
            if attribute is not None:
                raise ValidationError(
                    "give at most one of attributes, user_id, thread_id, session_id and run_id",
                    field=field,
                )
            attribute = (ID_ATTRIBUTES[field], _json.encode(value).decode())
        alone = _single_filter(status, has_error, tag, environment, service)
        if alone is not None and (name, scope, attribute) != (None, None, None):
            raise ValidationError(
                "status, has_error, tag, environment and service each combine with the "
                "time window only, not with name, scope or an attribute",
                field=alone[0],
            )
        low, high = time_window(from_date, to_date)
        check_page(page, per_page)
        present = [
            (tag, value)
            for tag, value in (("n", name), ("c", scope), ("a", attribute))
            if value is not None
        ]
        prefix: list[str] = ["".join(tag for tag, _ in present) or "T"]
        for _, filter_value in present:
            prefix += filter_value if isinstance(filter_value, tuple) else (filter_value,)
        if alone is not None:
            prefix = list(alone[1])
        keys = await self._keys()
        total, rows = await list_index(
            self._driver,
            keys.all_buckets,
            _trace_index,
            [_summaries],
            lex_bounds(prefix, low, high),
            offset=page * per_page,
            count=per_page,
            newest_first=True,
        )
        items = [self._summary(row[0], where) for where, row in rows]  # type: ignore[arg-type]
        return make_page(items, total, page, per_page)

    async def delete_traces(self, trace_ids: Iterable[str]) -> int:
        """Delete traces: their spans, summaries and index entries.

        One script per bucket. Not retried after a lost reply, so that the count it
        returns is never wrong.

        Returns:
            How many of the traces existed.
        """
        ids = list(dict.fromkeys(check_ids(trace_ids, "trace_ids")))
        if not ids:
            return 0
        keys = await self._keys()
        existed, _ = await self._delete(keys, ids)
        return existed

    async def export_spans(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Span]:
        """One chunk of a walk through every span of the namespace, trace by trace.

        Traces come bucket by bucket, oldest first, each trace's spans in stream order. One
        round trip: up to ``count`` spans of one trace, the next trace to read and the
        bucket span counts for the total. A chunk holds one trace's spans only, so it may be
        short. :meth:`save_spans` is the write side: it stores spans exactly as given.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many spans to read, from 1 to 1000.
        """
        check_count(count)
        keys = await self._keys()
        buckets = keys.all_buckets
        position, rank, trace, after = _span_cursor(cursor, len(buckets))
        bucket = buckets[position]
        low, high = lex_bounds(("T",))
        commands: list[Command] = [("HGET", b.traces, scripts.TOTAL_FIELD) for b in buckets]
        if trace is None:
            # The first trace of the walk (or of the bucket): find it with the counts.
            commands.append(("ZRANGE", bucket.trace_index, low, high, "BYLEX", "LIMIT", rank, 1))
        else:
            stream = keys.trace_spans(bucket, trace)
            commands += [
                ("XRANGE", stream, "(" + after if after else "-", "+", "COUNT", count),
                ("ZRANGE", bucket.trace_index, low, high, "BYLEX", "LIMIT", rank + 1, 1),
            ]
        replies = await self._driver.execute(commands, idempotent=True)
        total = sum(int(r) for r in replies[: len(buckets)] if isinstance(r, bytes))
        rest = replies[len(buckets) :]
        items: list[Span] = []
        if trace is None:
            (following,) = rest
            next_rank = rank
        else:
            entries, following = as_list(rest[0]), rest[1]
            items = self._entries(entries, keys.trace_spans(bucket, trace))
            if len(entries) == count:
                last = entries[-1][0].decode()
                return Chunk(items=items, cursor=_cursor(position, rank, trace, last), total=total)
            next_rank = rank + 1
        found = as_list(following)
        if found:
            next_trace = _unescape(found[0][found[0].rindex(b"\x00") + 1 :])
            return Chunk(
                items=items, cursor=_cursor(position, next_rank, next_trace, ""), total=total
            )
        if position + 1 < len(buckets):
            return Chunk(items=items, cursor=f"{position + 1}:0", total=total)
        return Chunk(items=items, cursor=None, total=total)

    # -- retention -------------------------------------------------------------------------

    def _retention_due(self, keys: Keys, spans: int, oldest: bytes) -> bool:
        """Whether a bucket that holds ``spans`` spans and whose oldest trace started at
        the sort key ``oldest`` needs trimming."""
        retention = self._retention
        if retention.max_spans is not None and spans > self._bucket_limit(keys):
            return True
        if retention.max_age is not None and oldest:
            return oldest.decode() < lex_time(self._cutoff())
        return False

    def _bucket_limit(self, keys: Keys) -> int:
        assert self._retention.max_spans is not None
        return math.ceil(self._retention.max_spans / keys.buckets)

    def _cutoff(self) -> int:
        assert self._retention.max_age is not None
        return micros(utc_now() - self._retention.max_age)

    async def _trim(self, keys: Keys, buckets: list[Bucket]) -> int:
        """Drop traces from ``buckets`` until they are within the limits, in slices."""
        low, _ = lex_bounds(("T",))
        dropped = 0
        pending = list(buckets)
        while pending:
            # The oldest traces of each pending bucket, with their span counts and the
            # bucket's total.
            replies = await self._driver.execute(
                [
                    cmd
                    for b in pending
                    for cmd in (
                        ("HGET", b.traces, scripts.TOTAL_FIELD),
                        (
                            "ZRANGE",
                            b.trace_index,
                            low,
                            "(T\x01",
                            "BYLEX",
                            "LIMIT",
                            0,
                            RETENTION_SLICE,
                        ),
                    )
                ],
                idempotent=True,
            )
            doomed: list[str] = []
            still: list[Bucket] = []
            for i, bucket in enumerate(pending):
                spans = int(replies[2 * i] or 0)  # type: ignore[arg-type]
                oldest = as_list(replies[2 * i + 1])
                chosen = await self._choose(bucket, spans, oldest, keys)
                if chosen:
                    doomed += chosen
                    if len(chosen) == RETENTION_SLICE:
                        still.append(bucket)
            if not doomed:
                break
            _, spans_dropped = await self._delete(keys, doomed)
            dropped += spans_dropped
            pending = still
        return dropped

    async def _choose(
        self, bucket: Bucket, spans: int, oldest: list[bytes], keys: Keys
    ) -> list[str]:
        """Which of a bucket's oldest traces (members of its ``T`` entries) to drop."""
        retention = self._retention
        chosen: list[str] = []
        cutoff = None if retention.max_age is None else lex_time(self._cutoff()).encode()
        excess = 0 if retention.max_spans is None else spans - self._bucket_limit(keys)
        counts: list[int] = []
        if excess > 0:
            ids = [m[m.rindex(b"\x00") + 1 :] for m in oldest]
            if ids:
                (packed,) = await self._driver.execute(
                    [("HMGET", bucket.traces, *ids)], idempotent=True
                )
                counts = [_span_count(p) for p in as_list(packed)]
        for i, member in enumerate(oldest):
            aged = cutoff is not None and member[2:18] < cutoff
            if not aged and excess <= 0:
                break
            chosen.append(_unescape(member[member.rindex(b"\x00") + 1 :]))
            if counts:
                excess -= counts[i]
        return chosen

    async def _delete(self, keys: Keys, trace_ids: list[str]) -> tuple[int, int]:
        """Delete traces, one script per bucket; (traces that existed, spans deleted)."""
        plans: dict[int, tuple[Bucket, list[str], list[str]]] = {}
        for trace_id in trace_ids:
            bucket = keys.bucket_of(trace_id)
            plan = plans.setdefault(bucket.number, (bucket, [], []))
            plan[1].extend(
                (keys.trace_spans(bucket, trace_id), keys.trace_span_ids(bucket, trace_id))
            )
            plan[2].append(lex_escape(trace_id))
        replies = await self._driver.execute(
            [
                scripts.DELETE_TRACES.command([bucket.traces, bucket.trace_index, *trace_keys], ts)
                for bucket, trace_keys, ts in plans.values()
            ]
        )
        existed = spans = 0
        for reply in replies:
            e, n = as_list(reply)
            existed += int(e)
            spans += int(n)
        return existed, spans

    # -- internals ------------------------------------------------------------------------

    def _entries(self, entries: list[Any], where: str, *, light: bool = False) -> list[Span]:
        """Spans from stream entries (``[id, [field, value, ...]]``); ``light``: without
        their attributes, events, links and resource (see :class:`_SpanHead`)."""
        spans = []
        heads = record_codec(_SpanHead, self._format.name) if light else None
        for _, fields in entries:
            packed = dict(zip(fields[::2], fields[1::2], strict=True)).get(b"d")
            if packed is None:
                raise CorruptRecordError(where, "a stream entry without its span")
            if heads is None:
                spans.append(self._spans.unpack(packed, where))
            else:
                head = heads.unpack(packed, where)
                spans.append(Span(**{f: getattr(head, f) for f in head.__struct_fields__}))
        return spans

    async def _read_span(self, trace_id: str, escaped_span_id: str) -> Span | None:
        """READ_SPAN: a span by its escaped id, or the trace's root for ''."""
        keys = await self._keys()
        bucket = keys.bucket_of(trace_id)
        stream = keys.trace_spans(bucket, trace_id)
        reply = await self._driver.run(
            scripts.READ_SPAN,
            [bucket.traces, stream, keys.trace_span_ids(bucket, trace_id)],
            [lex_escape(trace_id), escaped_span_id],
            idempotent=True,
        )
        return None if reply is None else self._spans.unpack(_packed(reply), stream)

    def _summary(self, packed: bytes, where: str) -> TraceSummary:
        try:
            flat = unpack_fields(packed)
        except ValueError as exc:
            raise CorruptRecordError(where, str(exc)) from None
        return decode_with_counters(self._summaries, flat, where, _COUNTERS)

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
        start = micros(first.start_time)
        return [
            lex_escape(trace_id),
            len(spans),
            "1" if root.parent_span_id is not None else "0",
            micros(root.start_time),
            lex_escape(root.span_id),
            start,
            lex_time(start),
            encode(first.start_time),
            "" if last is None or last.end_time is None else micros(last.end_time),
            b"" if last is None else encode(last.end_time),
            scripts.pack_prefixes(_atoms(root)),
            len(root_fields),
            *root_fields,
        ]


def _atoms(root: Span) -> list[str]:
    """A root span's index atoms (see :mod:`~kvstore.domains._trace_scripts`)."""
    out = [f"n\x00{lex_escape(root.name)}"]
    if root.scope is not None:
        out.append(f"c\x00{lex_escape(root.scope)}")
    out += [_attribute_atom(k, v) for k, v in root.attributes.items()]
    out.append(f"s\x00{root.status.code}")
    out += _tag_atoms(root.attributes.get(TAGS_ATTRIBUTE))
    environment = next((root.resource[k] for k in ENVIRONMENT_RESOURCE if k in root.resource), None)
    for kind, value in (("v", environment), ("S", root.resource.get(SERVICE_RESOURCE))):
        if isinstance(value, str) and _indexed_text(value):
            out.append(f"{kind}\x00{lex_escape(value)}")
    return [atom for atom in out if atom]


def _attribute_atom(key: str, value: Any) -> str:
    """An attribute's atom, or '' when it is not indexed."""
    encoded = _indexed_value(value)
    if encoded is None or len(key.encode()) > MAX_INDEXED_BYTES:
        return ""
    return f"a\x00{lex_escape(key)}\x00{lex_escape(encoded)}"


def _tag_atoms(tags: Any) -> list[str]:
    """The atoms of a ``tags`` attribute: one per string of at most 256 bytes."""
    if not isinstance(tags, list):
        return []
    return [f"g\x00{lex_escape(t)}" for t in dict.fromkeys(t for t in tags if _indexed_text(t))]


def _indexed_text(value: Any) -> bool:
    return isinstance(value, str) and len(value.encode()) <= MAX_INDEXED_BYTES


def _packed(reply: Any) -> bytes:
    if not isinstance(reply, bytes):
        raise DriverError(f"expected a packed span, got {type(reply).__name__}")
    return reply


def _span_count(packed: bytes | None) -> int:
    if packed is None:
        return 0
    flat = unpack_fields(packed)
    for i in range(0, len(flat), 2):
        if flat[i] == b"_n":
            return int(flat[i + 1])
    return 0


def _unescape(value: bytes) -> str:
    return value.decode().replace("\x01\x01", "\x00").replace("\x01\x02", "\x01")


def _cursor(position: int, rank: int, trace: str, after: str) -> str:
    return f"{position}:{rank}:{after}:{trace}"


def _span_cursor(cursor: Any, buckets: int) -> tuple[int, int, str | None, str]:
    """(bucket, trace rank, trace id or None, last stream id read) of an export cursor."""
    if cursor is None:
        return 0, 0, None, ""
    if isinstance(cursor, str):
        parts = cursor.split(":", 3)
        if (
            len(parts) == 2
            and all(p.isascii() and p.isdigit() for p in parts)
            and int(parts[0]) < buckets
        ):
            return int(parts[0]), int(parts[1]), None, ""
        if len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts[:2]):
            after = parts[2]
            if int(parts[0]) < buckets and (not after or _is_stream_id(after)):
                return int(parts[0]), int(parts[1]), parts[3], after
    raise ValidationError("expected a cursor returned by the same method", field="cursor")


def _is_stream_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return bool(sep) and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()


def _indexed_value(value: Any) -> str | None:
    """An attribute value as the trace index spells it, or None if it is not indexed."""
    if not isinstance(value, str | int | float | bool):
        return None
    encoded = _json.encode(value)
    return encoded.decode() if len(encoded) <= MAX_INDEXED_BYTES else None


def _single_filter(
    status: Any, has_error: Any, tag: Any, environment: Any, service: Any
) -> tuple[str, tuple[str, ...]] | None:
    """The one filter of those served alone, as (argument, index prefix), or None.

    Raises:
        ValidationError: a value is malformed, or more than one is given.
    """
    found: list[tuple[str, tuple[str, ...]]] = []
    if status is not None:
        if status not in ("unset", "ok", "error"):
            raise ValidationError("expected 'error', 'ok' or 'unset'", field="status")
        found.append(("status", ("s", status)))
    if not isinstance(has_error, bool):
        raise ValidationError("expected a bool", field="has_error")
    if has_error:
        found.append(("has_error", ("e",)))
    for field, kind, value in (
        ("tag", "g", tag),
        ("environment", "v", environment),
        ("service", "S", service),
    ):
        if value is not None:
            found.append((field, (kind, check_text(value, field))))
    if len(found) > 1:
        raise ValidationError(
            "status, has_error, tag, environment and service each combine with the time "
            "window only: give one of them",
            field=found[1][0],
        )
    return found[0] if found else None


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
