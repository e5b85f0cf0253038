"""Evals: every score with its reason, listed by scorer, entity, source, run or span.

Key schema (layout 2, see :mod:`kvstore.keys`). A score lives in the bucket of its id:

* ``scores`` (bucket hash): escaped score id -> the score, packed, with internal fields
  naming what it is indexed under (see :mod:`~kvstore.domains._eval_scripts`).
* ``score_index`` (bucket lex index): per score, one entry for every combination of its
  scorer (``s``), entity (``e``: type and id) and source (``o``), all of them (``all``), its
  run (``r``) and its span (``p``): ``<filters>\0<values>\0<created>\0<id>``.

Every call is one round trip; ``save_score`` and ``delete_score`` one script on one bucket,
listings one script per bucket (see :func:`~kvstore.domains._base.list_index`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kvstore._checks import check_items
from kvstore.codec import FormatName, RecordCodec, pack_fields, record_codec, validate
from kvstore.domains import _eval_scripts as scripts
from kvstore.domains._base import (
    Domain,
    check_id,
    check_optional_id,
    check_page,
    lex_bounds,
    list_index,
    make_page,
    micros,
    walk_index,
)
from kvstore.errors import ValidationError
from kvstore.keys import lex_escape, lex_time
from kvstore.records import Chunk, Page, Score, ScoreSource

if TYPE_CHECKING:
    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Bucket
    from kvstore.layout import StoreLayout

__all__ = ["EvalStore"]

_SOURCES: tuple[ScoreSource, ...] = ("live", "test")


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
        page: int = 0,
        per_page: int = 20,
    ) -> Page[Score]:
        """One page of scores, newest first.

        ``scorer_id``, ``entity`` and ``source`` combine freely; ``run_id`` and ``span``
        are used alone. Costs ``per_page + 2`` commands whatever the number of scores.

        Args:
            scorer_id: Only this scorer's scores.
            run_id: Only the scores of this run.
            entity: Only scores of this ``(entity_type, entity_id)``.
            span: Only scores of this ``(trace_id, span_id)``.
            source: Only ``"live"`` or only ``"test"`` scores.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.

        Raises:
            ValidationError: a filter is malformed, or ``run_id`` or ``span`` is combined
                with another filter.
        """
        check_optional_id(scorer_id, "scorer_id")
        check_optional_id(run_id, "run_id")
        entity = _check_pair(entity, "entity")
        span = _check_pair(span, "span")
        if source is not None and source not in _SOURCES:
            raise ValidationError("expected 'live' or 'test'", field="source")
        check_page(page, per_page)
        combined = [scorer_id, entity, source]
        prefix: tuple[str, ...]
        if run_id is not None:
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
            values = [scorer_id, *(entity or ()), source]
            prefix = (tag or "all", *(v for v in values if v is not None))
        keys = await self._keys()
        total, rows = await list_index(
            self._driver,
            keys.all_buckets,
            _score_index,
            [_scores],
            lex_bounds(prefix),
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
            scripts.DELETE_SCORE, [bucket.scores, bucket.score_index], [lex_escape(score_id)]
        )
        return deleted == 1

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
                scripts.WRITE_SCORES.command(
                    [bucket.scores, bucket.score_index], [len(args) // 2, *args]
                )
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
        flat = self._scores.fields(score, "score")
        for name, value in internal.items():
            flat += (name, (value if name == b"_c" else lex_escape(value)).encode())
        return pack_fields(flat)


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
