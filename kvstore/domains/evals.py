"""Evals: every score with its reason, listed by scorer, entity, source, run, span, time,
value or metadata, and aggregated per scorer by hour and by day.

Key schema (layout 2, see :mod:`kvstore.keys`). A score lives in the bucket of its id:

* ``scores`` (bucket hash): escaped score id -> the score, packed, with internal fields
  naming what it is indexed under (see :mod:`~kvstore.domains._eval_scripts`).
* ``score_index`` (bucket lex index): per score, one entry for every combination of its
  scorer (``s``), entity (``e``: type and id) and source (``o``), all of them (``all``), its
  run (``r``) and its span (``p``): ``<filters>\0<values>\0<created>\0<id>``; the same
  combinations by value (``v`` + the tag): ``<filters>\0<values>\0<value>\0<created>\0<id>``;
  and per indexed metadata key, alone (``m``) and with its scorer (``sm``).
* ``score_values`` (bucket lex index) and ``score_sums`` (bucket hash): per scorer and hour
  or day, the bucket's scores by value and their count and exact sum.

Every call is one round trip; ``save_score`` and ``delete_score`` one script on one bucket
(10 commands; 17 for a replace), listings one script per bucket (see
:func:`~kvstore.domains._base.list_index`), ``score_stats`` one script per bucket
(``2 + 2 * periods`` commands each).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kvstore._checks import check_items, check_metadata
from kvstore.codec import (
    FormatName,
    RecordCodec,
    check_json,
    pack_fields,
    record_codec,
    validate,
)
from kvstore.domains import _eval_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_id,
    check_optional_id,
    check_page,
    lex_bounds,
    list_index,
    make_page,
    micros,
    time_window,
    walk_index,
)
from kvstore.errors import CorruptRecordError, ValidationError
from kvstore.keys import lex_escape, lex_time
from kvstore.records import Chunk, Page, Score, ScoreSource, ScoreStats

if TYPE_CHECKING:
    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Bucket
    from kvstore.layout import StoreLayout

__all__ = ["EvalStore"]

_SOURCES: tuple[ScoreSource, ...] = ("live", "test")
#: The periods of ``score_stats``, in microseconds.
_PERIODS = {"hour": 3_600_000_000, "day": 86_400_000_000}
#: The most periods one ``score_stats`` call reads (41 days by the hour).
MAX_PERIODS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Longest metadata key and JSON-encoded value that the score index keeps.
MAX_INDEXED_BYTES = 256
#: How many metadata keys of a score are indexed at most (the first ones that qualify).
MAX_INDEXED_KEYS = 64
_json = msgspec.json.Encoder()
#: Scales a sum that overflows a double back into range (a power of two: exact).
_SCALE = 2.0**-64


class EvalStore(Domain):
    """Eval scores; reached as ``store.evals``."""

    __slots__ = ("_scores",)

    def __init__(self, driver: Driver, layout: StoreLayout, format_name: FormatName) -> None:
        super().__init__(driver, layout, format_name)
        self._scores: RecordCodec[Score] = record_codec(Score, format_name)

    async def save_score(self, score: Score | Mapping[str, Any]) -> Score:
        """Store a score; a score with the same ``id`` is replaced, any other is kept.

        Returns:
            The score as stored (with its generated ``id`` when none was given).

        Raises:
            ValidationError: a field is missing or malformed (the score must be a finite
                number); nothing is written.
        """
        (saved,) = await self._write_scores([score], "score")
        return saved

    async def get_score(self, score_id: str) -> Score | None:
        """The score with this id, or None."""
        check_id(score_id, "score_id")
        keys = await self._keys()
        bucket = keys.bucket_of(score_id)
        (packed,) = await self._driver.execute(
            [("HGET", bucket.scores, lex_escape(score_id))], idempotent=True
        )
        if packed is None:
            return None
        return self._scores.unpack(packed, bucket.scores)  # type: ignore[arg-type]

    async def list_scores(
        self,
        *,
        scorer_id: str | None = None,
        run_id: str | None = None,
        entity: tuple[str, str] | None = None,
        span: tuple[str, str] | None = None,
        source: ScoreSource | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        page: int = 0,
        per_page: int = 20,
    ) -> Page[Score]:
        """One page of scores, newest first; by score, highest first, with a score range.

        ``scorer_id``, ``entity`` and ``source`` combine freely with each other, with a
        time window and with a score range; ``metadata``, ``run_id`` and ``span`` combine
        with a time window (and ``metadata`` with ``scorer_id``) only. A time window and a
        score range do not combine: each is one range of an index (by time, or by value),
        and both at once would need a scan. Every listing is one range of one index, read
        by one script per store bucket (five commands with one bucket) whatever the number
        of scores.

        Args:
            scorer_id: Only this scorer's scores.
            run_id: Only the scores of this run.
            entity: Only scores of this ``(entity_type, entity_id)``.
            span: Only scores of this ``(trace_id, span_id)``.
            source: Only ``"live"`` or only ``"test"`` scores.
            from_date: Only scores made at or after this time.
            to_date: Only scores made at or before this time.
            min_score: Only scores of at least this value; orders the page by score.
            max_score: Only scores of at most this value; orders the page by score.
            metadata: Only scores whose ``metadata`` holds this key with this value
                (equal as JSON: ``1`` is not ``1.0``); at most one ``{key: value}`` pair.
                Indexed: the first 64 top-level keys of at most 256 bytes whose value is
                a string, number or boolean of at most 256 bytes in JSON.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.

        Raises:
            ValidationError: a filter is malformed, or combined with one it does not
                combine with (see above).
        """
        check_optional_id(scorer_id, "scorer_id")
        check_optional_id(run_id, "run_id")
        entity = _check_pair(entity, "entity")
        span = _check_pair(span, "span")
        if source is not None and source not in _SOURCES:
            raise ValidationError("expected 'live' or 'test'", field="source")
        low, high = time_window(from_date, to_date)
        lowest = _check_value(min_score, "min_score")
        highest = _check_value(max_score, "max_score")
        check_page(page, per_page)
        by_value = lowest is not None or highest is not None
        if by_value and (low is not None or high is not None):
            raise ValidationError(
                "a score range cannot be combined with from_date or to_date",
                field="min_score" if lowest is not None else "max_score",
            )
        pair = _metadata_filter(metadata)
        combined = [scorer_id, entity, source, lowest, highest, pair]
        prefix: tuple[str, ...]
        if pair is not None:
            if any(f is not None for f in (run_id, span, entity, source, lowest, highest)):
                raise ValidationError(
                    "metadata combines with scorer_id and a time window only", field="metadata"
                )
            prefix = ("m", *pair) if scorer_id is None else ("sm", scorer_id, *pair)
        elif run_id is not None:
            if span is not None or any(f is not None for f in combined):
                raise ValidationError(
                    "run_id cannot be combined with other filters", field="run_id"
                )
            prefix = ("r", run_id)
        elif span is not None:
            if any(f is not None for f in combined):
                raise ValidationError("span cannot be combined with other filters", field="span")
            prefix = ("p", *span)
        else:
            tag = "".join(t for t, v in (("s", scorer_id), ("e", entity), ("o", source)) if v)
            given = [scorer_id, *(entity or ()), source]
            values = [v for v in given if v is not None]
            prefix = ("v" + tag, *values) if by_value else (tag or "all", *values)
        bounds = (
            _value_bounds(prefix, lowest, highest) if by_value else lex_bounds(prefix, low, high)
        )
        keys = await self._keys()
        total, rows = await list_index(
            self._driver,
            keys.all_buckets,
            _score_index,
            [_scores],
            bounds,
            offset=page * per_page,
            count=per_page,
            newest_first=True,
        )
        items = [self._scores.unpack(row[0], where) for where, row in rows]  # type: ignore[arg-type]
        return make_page(items, total, page, per_page)

    async def delete_score(self, score_id: str) -> bool:
        """Delete a score and its index entries. Returns whether it existed.

        Not retried after a lost reply, so that the answer is never wrong.
        """
        check_id(score_id, "score_id")
        keys = await self._keys()
        bucket = keys.bucket_of(score_id)
        deleted = await self._driver.run(
            scripts.DELETE_SCORE, _script_keys(bucket), [lex_escape(score_id)]
        )
        return deleted == 1

    async def score_stats(
        self,
        scorer_id: str,
        *,
        from_date: datetime,
        to_date: datetime,
        bucket: Literal["hour", "day"] = "hour",
    ) -> list[ScoreStats]:
        """A scorer's count, mean, lowest and highest score per hour or per day (UTC).

        The aggregates are kept as scores are saved, replaced and deleted, so they are
        exact at every moment and reading them costs the same whatever the number of
        scores: one script per store bucket, ``2 + 2 * periods`` commands each. Scores of
        both sources count.

        Args:
            scorer_id: The scorer.
            from_date: The window's start: the period holding it is the first one.
            to_date: The window's end: the period holding it is the last one.
            bucket: ``"hour"`` or ``"day"``: the periods' length.

        Returns:
            One :class:`ScoreStats` per period that holds scores, oldest first; periods
            are whole (a score made in the first period before ``from_date`` counts).

        Raises:
            ValidationError: a malformed argument, ``to_date`` before ``from_date``, or a
                window of more than 1000 periods (``to_date``).
        """
        check_id(scorer_id, "scorer_id")
        if not isinstance(bucket, str) or bucket not in _PERIODS:
            raise ValidationError("expected 'hour' or 'day'", field="bucket")
        low, high = time_window(from_date, to_date)
        if low is None or high is None:  # both are required
            raise ValidationError(
                "expected a timezone-aware datetime",
                field="from_date" if low is None else "to_date",
            )
        length = _PERIODS[bucket]
        first, last = low // length, high // length
        if last < first:
            raise ValidationError("must not be before from_date", field="to_date")
        if last - first >= MAX_PERIODS:
            raise ValidationError(f"spans more than {MAX_PERIODS} {bucket}s", field="to_date")
        periods = [p * length for p in range(first, last + 1)]
        kind = bucket[0]
        keys = await self._keys()
        replies = await self._driver.execute(
            [
                scripts.SCORE_STATS.command(
                    [b.score_values, b.score_sums],
                    [kind, lex_escape(scorer_id), *(lex_time(p) for p in periods)],
                )
                for b in keys.all_buckets
            ],
            idempotent=True,
        )
        merged: list[tuple[int, list[float], float | None, float | None]] = [
            (0, [], None, None) for _ in periods
        ]
        for b, reply in zip(keys.all_buckets, replies, strict=True):
            for i, row in enumerate(as_list(reply)):
                sums, lowest, highest = as_list(row)
                if sums is None:
                    continue
                count, partials = _sums_of(sums, b.score_sums)
                n, parts, mn, mx = merged[i]
                value_low, value_high = (_value_of(v, b.score_values) for v in (lowest, highest))
                merged[i] = (
                    n + count,
                    parts + partials,
                    value_low if mn is None else min(mn, value_low),
                    value_high if mx is None else max(mx, value_high),
                )
        return [
            ScoreStats(
                start=_EPOCH + timedelta(microseconds=period),
                count=n,
                mean=_mean(parts, n),
                min=mn,
                max=mx,
            )
            for period, (n, parts, mn, mx) in zip(periods, merged, strict=True)
            if n and mn is not None and mx is not None
        ]

    async def export_scores(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Score]:
        """One chunk of a walk through every score of the namespace, oldest first.

        One round trip (``count + 3`` commands, and one more per bucket for the total)
        whatever the number of scores stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many scores to read, from 1 to 1000.
        """
        keys = await self._keys()
        return await walk_index(
            self._driver,
            keys,
            _score_index,
            [_scores],
            prefix=("all",),
            decode=lambda row, where: self._scores.unpack(row[0], where),  # type: ignore[arg-type]
            cursor=cursor,
            count=count,
        )

    async def restore_scores(self, scores: Iterable[Score | Mapping[str, Any]]) -> list[Score]:
        """Create or replace scores by id, in one round trip.

        What :meth:`save_score` does for one score, for a batch: the write side of
        :meth:`export_scores`.

        Raises:
            ValidationError: a score is malformed (``scores[i]...``); nothing is written.
        """
        return await self._write_scores(scores, "scores[{}]")

    # -- internals ------------------------------------------------------------------------

    async def _write_scores(
        self, scores: Iterable[Score | Mapping[str, Any]], where: str
    ) -> list[Score]:
        """Run WRITE_SCORES: create or replace scores by id, one script per bucket;
        ``where`` names them in errors (``{}`` stands for the position)."""
        valid = [
            self._check(s, where.format(i))
            for i, s in enumerate(check_items(scores, where.partition("[")[0]))
        ]
        if not valid:
            return []
        keys = await self._keys()
        plans: dict[int, tuple[Bucket, list[Arg]]] = {}
        for score in valid:
            bucket = keys.bucket_of(score.id)
            plan = plans.setdefault(bucket.number, (bucket, []))
            plan[1].extend((lex_escape(score.id), self._packed(score)))
        await self._driver.execute(
            [
                scripts.WRITE_SCORES.command(_script_keys(bucket), [len(args) // 2, *args])
                for bucket, args in plans.values()
            ],
            idempotent=True,
        )
        return valid

    def _check(self, score: Score | Mapping[str, Any], where: str) -> Score:
        """``score`` validated, its value finite."""
        score = validate(score, Score, where=where)
        if not math.isfinite(score.score):
            raise ValidationError("expected a finite number", field=f"{where}.score")
        return score

    def _packed(self, score: Score) -> bytes:
        """The score's packed record, with the internal fields it is indexed under."""
        entity = _pair(score.entity_type, score.entity_id)
        span = _pair(score.trace_id, score.span_id)
        internal = {
            b"_c": lex_time(micros(score.created_at)),
            b"_sc": score.scorer_id,
            b"_et": entity[0] if entity else "",
            b"_ei": entity[1] if entity else "",
            b"_so": score.source,
            b"_ru": score.run_id or "",
            b"_tr": span[0] if span else "",
            b"_sp": span[1] if span else "",
        }
        created = micros(score.created_at)
        # Not escaped: hex digits and a decimal never hold NUL.
        aggregated = {
            b"_v": _value_key(score.score),
            b"_x": repr(score.score + 0.0),
            b"_h": lex_time(created // _PERIODS["hour"] * _PERIODS["hour"]),
            b"_dy": lex_time(created // _PERIODS["day"] * _PERIODS["day"]),
        }
        indexed: list[bytes] = []
        for key, value in score.metadata.items():
            encoded = _indexed_value(value)
            if encoded is not None and len(key.encode()) <= MAX_INDEXED_BYTES:
                indexed += (lex_escape(key).encode(), lex_escape(encoded).encode())
                if len(indexed) == 2 * MAX_INDEXED_KEYS:
                    break  # a write's work stays bounded whatever the metadata holds
        flat = self._scores.fields(score, "score")
        for name, value in internal.items():
            flat += (name, (value if name == b"_c" else lex_escape(value)).encode())
        for name, value in aggregated.items():
            flat += (name, value.encode())
        flat += (b"_m", pack_fields(indexed))
        return pack_fields(flat)


def _script_keys(bucket: Bucket) -> list[str]:
    """What WRITE_SCORES and DELETE_SCORE touch, in the order they name them."""
    return [bucket.scores, bucket.score_index, bucket.score_values, bucket.score_sums]


def _indexed_value(value: Any) -> str | None:
    """A metadata value as the score index spells it (JSON), or None if not indexed."""
    if not isinstance(value, str | int | float | bool):
        return None
    try:
        encoded = _json.encode(value)
    except (msgspec.EncodeError, OverflowError):
        return None  # not JSON (NaN, a lone surrogate, a huge int): the record refuses it
    return encoded.decode() if len(encoded) <= MAX_INDEXED_BYTES else None


def _metadata_filter(metadata: Any) -> tuple[str, str] | None:
    """The ``(key, JSON value)`` a ``metadata`` filter asks for, or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping) or len(metadata) > 1:
        raise ValidationError("expected at most one {key: value} pair", field="metadata")
    if not metadata:
        return None
    ((key, value),) = check_metadata(metadata, "metadata").items()
    check_json(value, f"metadata.{key}")
    encoded = _indexed_value(value)
    if len(key.encode()) > MAX_INDEXED_BYTES or encoded is None:
        raise ValidationError(
            f"only strings, numbers and booleans of at most {MAX_INDEXED_BYTES} bytes are indexed",
            field="metadata",
        )
    return (key, encoded)


def _check_value(value: Any, name: str) -> float | None:
    """A bound of a score range: None, or a finite number (an int as large as a double)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValidationError("expected a finite number", field=name)


def _value_key(value: float) -> str:
    """``value`` as 16 hex digits that sort as the numbers do (-0.0 as 0.0)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", value + 0.0))
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
    return f"{bits:016x}"


def _mean(partials: list[float], count: int) -> float:
    """The correctly rounded sum of ``partials`` over ``count``, also when the sum itself
    is beyond the largest double (scaled by a power of two, which is exact)."""
    try:
        return math.fsum(partials) / count
    except OverflowError:
        return math.fsum(p * _SCALE for p in partials) / count / _SCALE


def _sums_of(raw: bytes, where: str) -> tuple[int, list[float]]:
    """A period's count and the partials of its exact sum, as ``score_sums`` holds them."""
    try:
        count, *partials = raw.split()
        return int(count), [float(p) for p in partials]
    except ValueError:
        raise CorruptRecordError(where, f"not a count and sum: {raw[:80]!r}") from None


def _value_of(key: bytes | None, where: str) -> float:
    """The inverse of :func:`_value_key`; ``where`` names the key it was read from."""
    if key is None:
        raise CorruptRecordError(where, "a period with scores has no values")
    bits = int(key, 16)
    bits = bits ^ 1 << 63 if bits >> 63 else bits ^ 0xFFFF_FFFF_FFFF_FFFF
    (value,) = struct.unpack(">d", struct.pack(">Q", bits))
    return float(value)


def _value_bounds(
    prefix: Sequence[str], lowest: float | None, highest: float | None
) -> tuple[str, str]:
    """``ZRANGE BYLEX`` bounds of the value entries under ``prefix`` within a range."""
    head = "".join(lex_escape(part) + "\x00" for part in prefix)
    lower = "[" + head + ("" if lowest is None else _value_key(lowest))
    # A member's value key is followed by NUL: \x01 sorts above every member with it.
    upper = "(" + (head[:-1] + "\x01" if highest is None else head + _value_key(highest) + "\x01")
    return lower, upper


def _scores(bucket: Bucket) -> str:
    return bucket.scores


def _score_index(bucket: Bucket) -> str:
    return bucket.score_index


def _pair(first: str | None, second: str | None) -> tuple[str, str] | None:
    return None if first is None or second is None else (first, second)


def _check_pair(value: Any, name: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ValidationError("expected a pair of non-empty string ids", field=name)
    return (check_id(value[0], name), check_id(value[1], name))
