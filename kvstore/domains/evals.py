"""Evals: scores, each keeping its raw value and the reasoning behind it.

Key schema (see :mod:`kvstore.keys`):

* ``score:<id>`` hash: the score record, one field per attribute (``metadata.<key>``
  fields merged key by key), plus internal fields naming its index entries.
* ``score_index:<filters>:<values>`` sorted sets, scored by creation time in microseconds:
  an :class:`~kvstore.keys.IndexFamily` with one set for every combination of ``scorer``,
  ``entity`` (type and id) and ``source``. A score is in at most 8 of them.
* ``scores_by_run:<run id>`` sorted set: the scores of one run.
* ``scores_by_span:<escaped trace id>:<span id>`` sorted set: the scores of one span.

Scores are keyed by their own id, never by their run: any number of scores of one run
(several scorers, several attempts) are all kept.

Filters: ``scorer_id``, ``entity`` and ``source`` combine freely. ``run_id`` and ``span``
each select one run's or one span's scores, a handful; they are served by their own set and
are not combined with other filters (filter that handful in code). A combination index for
them would multiply every score's index entries by four for little use.

Cost of each call (one round trip each; Redis commands counted inside the script):

==================  ============================================================
``save_score``      at most 12 for a new id (HMGET, HSET, 10 index entries); at
                    most 23 when it replaces a score with the same id
``get_score``       1
``list_scores``     ``per_page + 2``, whatever the number of scores stored
``delete_score``    at most 12
``export_scores``   ``count + 2``, whatever the number of scores stored
``restore_scores``  as ``save_score`` for each score
==================  ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kvstore._checks import check_items
from kvstore.codec import FormatName, RecordCodec, record_codec, validate
from kvstore.domains import _eval_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_id,
    check_optional_id,
    check_page,
    chunk_of_index,
    encode_record,
    make_page,
    micros,
    page_of_index,
)
from kvstore.errors import ValidationError
from kvstore.records import Chunk, Page, Score, ScoreSource

if TYPE_CHECKING:
    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Keys

__all__ = ["EvalStore"]

_SOURCES: tuple[ScoreSource, ...] = ("live", "test")


class EvalStore(Domain):
    """Eval scores; reached as ``store.evals``."""

    __slots__ = ("_scores",)

    def __init__(self, driver: Driver, keys: Keys, format_name: FormatName = "json") -> None:
        super().__init__(driver, keys, format_name)
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
        key = self._keys.score(check_id(score_id, "score_id"))
        (fields,) = await self._driver.execute([("HGETALL", key)], idempotent=True)
        return self._scores.from_hash(as_list(fields), key) if fields else None

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
        keys = self._keys
        check_optional_id(scorer_id, "scorer_id")
        check_optional_id(run_id, "run_id")
        entity = _check_pair(entity, "entity")
        span = _check_pair(span, "span")
        if source is not None and source not in _SOURCES:
            raise ValidationError("expected 'live' or 'test'", field="source")
        check_page(page, per_page)
        combined = [scorer_id, entity, source]
        if run_id is not None:
            if span is not None or any(f is not None for f in combined):
                raise ValidationError(
                    "run_id cannot be combined with other filters", field="run_id"
                )
            index = keys.scores_by_run(run_id)
        elif span is not None:
            if any(f is not None for f in combined):
                raise ValidationError("span cannot be combined with other filters", field="span")
            index = keys.scores_by_span(*span)
        else:
            index = keys.score_index.key({"scorer": scorer_id, "entity": entity, "source": source})
        prefix = keys.score.prefix
        total, found = await page_of_index(
            self._driver, index, prefix, page=page, per_page=per_page
        )
        codec = self._scores
        items = [codec.from_hash(f, prefix + m.decode(errors="replace")) for m, f in found]
        return make_page(items, total, page, per_page)

    async def delete_score(self, score_id: str) -> bool:
        """Delete a score and its index entries. Returns whether it existed."""
        keys = self._keys
        family = keys.score_index
        deleted = await self._driver.run(
            scripts.DELETE_SCORE,
            [keys.score(check_id(score_id, "score_id"))],
            [
                score_id,
                family.prefix,
                *family.names,
                keys.scores_by_run.prefix,
                keys.scores_by_span.prefix,
            ],
            # Not retried: after a reply lost in flight, a retry finds the record gone
            # and would report that it never existed (issue 14).
            idempotent=False,
        )
        return deleted == 1

    async def export_scores(self, *, cursor: str | None = None, count: int = 100) -> Chunk[Score]:
        """One chunk of a walk through every score of the namespace, oldest first.

        One round trip (``count + 2`` commands) whatever the number of scores stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many scores to read, from 1 to 1000.
        """
        keys = self._keys
        return await chunk_of_index(
            self._driver,
            keys.score_index.key({}),
            keys.score.prefix,
            self._scores.from_hash,
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
        return await self._write_scores(check_items(scores, "scores"), "scores[{}]")

    # -- internals ------------------------------------------------------------------------

    async def _write_scores(
        self, scores: Iterable[Score | Mapping[str, Any]], where: str
    ) -> list[Score]:
        """Run WRITE_SCORES: create or replace scores by id in one script; ``where``
        names them in errors (``{}`` stands for the position)."""
        valid = [self._check(s, where.format(i)) for i, s in enumerate(scores)]
        if not valid:
            return []
        keys = self._keys
        family = keys.score_index
        args: list[Arg] = [
            keys.score.prefix,
            family.prefix,
            *family.names,
            keys.scores_by_run.prefix,
            keys.scores_by_span.prefix,
            len(valid),
        ]
        for i, score in enumerate(valid):
            one = self._score_args(score, where.format(i))
            args += (len(one) - 7, *one)
        await self._driver.run(
            scripts.WRITE_SCORES, [keys.score(valid[0].id)], args, idempotent=True
        )
        return valid

    def _check(self, score: Score | Mapping[str, Any], where: str) -> Score:
        """``score`` validated, its value finite."""
        score = validate(score, Score, where=where)
        if not math.isfinite(score.score):
            raise ValidationError("expected a finite number", field=f"{where}.score")
        return score

    def _score_args(self, score: Score, where: str) -> list[Arg]:
        """One score's part of WRITE_SCORES's arguments: 7 values, then its fields."""
        family = self._keys.score_index
        entity = _pair(score.entity_type, score.entity_id)
        span = _pair(score.trace_id, score.span_id)
        return [
            score.id,
            micros(score.created_at),
            family.escaped(score.scorer_id),
            "" if entity is None else family.escaped(entity),
            family.escaped(score.source),
            score.run_id or "",
            "" if span is None else self._keys.scores_by_span.member(*span),
            *encode_record(self._scores, score, where),
        ]


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
