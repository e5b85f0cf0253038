"""The evals domain's conformance suite: scores and their listings on every backend.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvstore import CorruptRecordError, Score, ScoreStats, Storage, ValidationError
from kvstore.codec import pack_fields, unpack_fields
from kvstore.domains._base import micros
from kvstore.keys import lex_time
from tests.support.counting import CountingDriver
from tests.support.walks import assert_bucket_order, walk_all

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def score(id_: str, seconds: float = 0, **kw: Any) -> Score:
    return Score(
        id=id_,
        scorer_id=kw.pop("scorer_id", "relevance"),
        score=kw.pop("score", 0.5),
        created_at=at(seconds),
        **kw,
    )


class EvalsSuite:
    """Tests of ``store.evals``; needs a ``store`` fixture (a :class:`Storage`)."""

    async def test_evals_score_round_trip(self, store: Storage) -> None:
        full = Score(
            scorer_id="faithfulness",
            score=0.875,
            run_id="run-1",
            reason="The answer cites both sources, but adds one unsupported claim.",
            input={"messages": [{"role": "user", "content": "Why is the sky blue?"}]},
            output={"text": "Rayleigh scattering…", "tokens": 42, "tools": []},
            entity_type="agent",
            entity_id="support-bot",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            resource_id="user-1",
            thread_id="thread-1",
            source="test",
            metadata={"model": "gpt-4o", "judge": {"temperature": 0}},
            created_at=at(0),
        )
        saved = await store.evals.save_score(full)
        assert saved == full
        assert await store.evals.get_score(full.id) == full
        minimal = await store.evals.save_score({"scorer_id": "s", "score": 1})
        assert len(minimal.id) == 32
        got = await store.evals.get_score(minimal.id)
        assert got == minimal
        assert got is not None
        assert (got.score, got.source, got.run_id) == (1.0, "live", None)
        assert await store.evals.get_score("missing") is None

    async def test_evals_every_score_of_a_run_is_kept(self, store: Storage) -> None:
        # Mastra's bug: a second score with the same run_id overwrote the first.
        for i, scorer in enumerate(["relevance", "toxicity", "relevance"]):
            await store.evals.save_score(score(f"s{i}", i, scorer_id=scorer, run_id="run-1"))
        page = await store.evals.list_scores(run_id="run-1")
        assert [s.id for s in page.items] == ["s2", "s1", "s0"]
        assert page.total == 3
        assert [s.id for s in (await store.evals.list_scores(scorer_id="relevance")).items] == [
            "s2",
            "s0",
        ]

    async def test_evals_every_filter_and_combination(self, store: Storage) -> None:
        saved: list[Score] = []
        combos = itertools.product(
            ["relevance", "toxicity"],
            [None, ("agent", "a1"), ("agent", "a2"), ("workflow", "a1")],
            ["live", "test"],
        )
        for i, (scorer, entity, source) in enumerate(combos):
            s = score(
                f"s{i:02d}",
                i,
                scorer_id=scorer,
                entity_type=entity[0] if entity else None,
                entity_id=entity[1] if entity else None,
                source=source,
                run_id=f"run-{i % 3}",
                trace_id=f"trace-{i % 2}",
                span_id=f"span-{i % 4}",
            )
            saved.append(await store.evals.save_score(s))
        newest_first = sorted(saved, key=lambda s: s.created_at, reverse=True)

        async def check(expected: list[Score], **filters: Any) -> None:
            ids = [s.id for s in expected]
            got: list[str] = []
            for page in range(len(ids) // 3 + 1):
                result = await store.evals.list_scores(page=page, per_page=3, **filters)
                assert result.total == len(ids), filters
                assert result.has_more == ((page + 1) * 3 < len(ids)), filters
                got += [s.id for s in result.items]
            assert got == ids, filters
            whole = await store.evals.list_scores(per_page=100, **filters)
            assert whole.items == expected, filters

        for scorer, entity, source in itertools.product(
            [None, "relevance", "toxicity", "nobody"],
            [None, ("agent", "a1"), ("workflow", "a1"), ("agent", "zz")],
            [None, "live", "test"],
        ):
            await check(
                [
                    s
                    for s in newest_first
                    if scorer in (None, s.scorer_id)
                    and entity in (None, (s.entity_type, s.entity_id))
                    and source in (None, s.source)
                ],
                scorer_id=scorer,
                entity=entity,
                source=source,
            )
        for run in ["run-0", "run-1", "run-9"]:
            await check([s for s in newest_first if s.run_id == run], run_id=run)
        for trace, span in [("trace-0", "span-0"), ("trace-1", "span-1"), ("trace-0", "span-1")]:
            await check(
                [s for s in newest_first if (s.trace_id, s.span_id) == (trace, span)],
                span=(trace, span),
            )

    async def test_evals_saving_an_id_again_replaces_the_score_and_its_index_entries(
        self, store: Storage
    ) -> None:
        await store.evals.save_score(
            score("s1", scorer_id="old", run_id="r-old", entity_type="agent", entity_id="a")
        )
        await store.evals.save_score(score("s1", 1, scorer_id="new", run_id="r-new"))
        assert (await store.evals.list_scores(scorer_id="old")).total == 0
        assert (await store.evals.list_scores(run_id="r-old")).total == 0
        assert (await store.evals.list_scores(entity=("agent", "a"))).total == 0
        assert [s.id for s in (await store.evals.list_scores(scorer_id="new")).items] == ["s1"]
        assert [s.id for s in (await store.evals.list_scores(run_id="r-new")).items] == ["s1"]
        assert (await store.evals.list_scores()).total == 1
        got = await store.evals.get_score("s1")
        assert got is not None
        assert (got.scorer_id, got.entity_type) == ("new", None)

    async def test_evals_delete_score(self, store: Storage) -> None:
        await store.evals.save_score(score("s1", run_id="r", trace_id="t", span_id="p"))
        await store.evals.save_score(score("s2", 1, run_id="r"))
        assert await store.evals.delete_score("s1") is True
        assert await store.evals.delete_score("s1") is False
        assert await store.evals.get_score("s1") is None
        assert [s.id for s in (await store.evals.list_scores(run_id="r")).items] == ["s2"]
        assert (await store.evals.list_scores(span=("t", "p"))).total == 0
        assert (await store.evals.list_scores()).total == 1

    async def test_evals_each_call_is_one_round_trip(self, store: Storage) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()  # the layout check, once per Storage
        evals = storage.evals
        calls: list[Any] = [
            lambda: evals.save_score(score("s1", run_id="r", entity_type="a", entity_id="b")),
            lambda: evals.get_score("s1"),
            lambda: evals.list_scores(scorer_id="relevance", entity=("a", "b"), source="live"),
            lambda: evals.list_scores(run_id="r"),
            lambda: evals.list_scores(scorer_id="relevance", from_date=at(-5), to_date=at(5)),
            lambda: evals.list_scores(entity=("a", "b"), min_score=0, max_score=1),
            lambda: evals.list_scores(scorer_id="relevance", metadata={"k": "v"}, to_date=at(5)),
            lambda: evals.score_stats("relevance", from_date=at(0), to_date=at(86_400)),
            lambda: evals.score_stats(
                "relevance", from_date=at(0), to_date=at(86_400 * 999), bucket="day"
            ),
            lambda: evals.delete_score("s1"),
        ]
        for call in calls:
            before = counting.round_trips
            await call()
            assert counting.round_trips == before + 1

    async def test_evals_bad_input_names_the_field_and_writes_nothing(self, store: Storage) -> None:
        evals = store.evals
        cases: list[tuple[Any, str]] = [
            (lambda: evals.save_score({"score": 1}), "score.scorer_id"),
            (lambda: evals.save_score({"scorer_id": "s", "score": "high"}), "score.score"),
            (lambda: evals.save_score({"scorer_id": "s", "score": float("nan")}), "score.score"),
            (lambda: evals.save_score(Score(scorer_id="s", score=float("inf"))), "score.score"),
            (
                lambda: evals.save_score({"scorer_id": "s", "score": 1, "source": "prod"}),
                "score.source",
            ),
            (
                lambda: evals.save_score({"scorer_id": "s", "score": 1, "run_id": ""}),
                "score.run_id",
            ),
            (lambda: evals.save_score({"scorer_id": "", "score": 1}), "score.scorer_id"),
            (
                lambda: evals.save_score({"scorer_id": "s", "score": 1, "output": object()}),
                "score.output",
            ),
            (lambda: evals.list_scores(entity=("agent",)), "entity"),
            (lambda: evals.list_scores(entity="agent:a1"), "entity"),
            (lambda: evals.list_scores(span=("t", "")), "span"),
            (lambda: evals.list_scores(source="prod"), "source"),
            (lambda: evals.list_scores(run_id="r", scorer_id="s"), "run_id"),
            (lambda: evals.list_scores(span=("t", "s"), source="live"), "span"),
            (lambda: evals.list_scores(run_id="r", span=("t", "s")), "run_id"),
            (lambda: evals.list_scores(per_page=1001), "per_page"),
            (lambda: evals.get_score(""), "score_id"),
        ]
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field
        assert (await evals.list_scores()).total == 0

    @pytest.mark.parametrize(
        "weird",
        ["a:b", "score:x", "{tag}", "}{", "*", "with space", "line\nbreak", "ünï ✓", "a%3Ab"],
    )
    async def test_evals_ids_with_special_characters_are_stored_safely(
        self, store: Storage, weird: str
    ) -> None:
        await store.evals.save_score(
            score(
                weird,
                scorer_id=weird,
                run_id=weird,
                entity_type=weird,
                entity_id=weird,
                trace_id=weird,
                span_id=weird,
            )
        )
        # A neighbour whose ids a naive key join would confuse with the weird ones.
        await store.evals.save_score(
            score("plain", 1, scorer_id="x", entity_type="a", entity_id="b:" + weird)
        )
        got = await store.evals.get_score(weird)
        assert got is not None
        assert got.scorer_id == weird
        for filters in (
            {"scorer_id": weird},
            {"run_id": weird},
            {"entity": (weird, weird)},
            {"span": (weird, weird)},
            {"scorer_id": weird, "entity": (weird, weird), "source": "live"},
        ):
            assert [s.id for s in (await store.evals.list_scores(**filters)).items] == [weird]
        assert [
            s.id for s in (await store.evals.list_scores(entity=("a", "b:" + weird))).items
        ] == ["plain"]

    async def test_evals_corrupt_record_names_its_key(self, store: Storage) -> None:
        await store.evals.save_score(score("good", 0, run_id="r"))
        await store.evals.save_score(score("bad", 1, run_id="r"))
        key = (await store.keys()).bucket_of("bad").scores
        await store.driver.execute([("HSET", key, "bad", b'\x00{"score": "not a number"}')])
        with pytest.raises(CorruptRecordError) as caught:
            await store.evals.get_score("bad")
        assert caught.value.key == key
        with pytest.raises(CorruptRecordError) as caught:
            await store.evals.list_scores(run_id="r")
        assert caught.value.key == key
        assert await store.evals.get_score("good") == score("good", 0, run_id="r")

    # -- export and restore -----------------------------------------------------------------

    async def test_evals_export_scores_walks_every_score(self, store: Storage) -> None:
        saved = [await store.evals.save_score(score(f"s{i}", 10 - i, run_id="r")) for i in range(5)]
        walked, totals = await walk_all(store.evals.export_scores, count=2)
        assert totals == {5}
        assert sorted(walked, key=lambda s: s.created_at) == saved[::-1]
        await assert_bucket_order(store, walked, lambda s: s.id, lambda s: s.created_at)

    async def test_evals_restore_scores_replaces_by_id_with_index_entries(
        self, store: Storage
    ) -> None:
        await store.evals.save_score(score("s1", 1, scorer_id="old", run_id="r-old"))
        scores = [
            score("s1", 2, scorer_id="new", run_id="r", entity_type="agent", entity_id="a:1"),
            score("s{2}", 3, run_id="r", trace_id="t", span_id="p", source="test"),
            score("s\n3", 4, run_id="r", reason="why", metadata={"k": {"v": 1}}),
        ]
        assert await store.evals.restore_scores(scores) == scores
        assert [await store.evals.get_score(s.id) for s in scores] == scores
        assert (await store.evals.list_scores(run_id="r-old")).total == 0
        assert (await store.evals.list_scores(scorer_id="old")).total == 0
        assert (await store.evals.list_scores(run_id="r")).items == scores[::-1]
        assert (await store.evals.list_scores(entity=("agent", "a:1"))).items == [scores[0]]
        assert (await store.evals.list_scores(span=("t", "p"))).items == [scores[1]]
        assert (await store.evals.list_scores(source="test")).items == [scores[1]]
        with pytest.raises(ValidationError) as caught:
            await store.evals.restore_scores([scores[0], {"scorer_id": "s", "score": float("inf")}])
        assert caught.value.field == "scores[1].score"

    # -- time windows and score ranges ------------------------------------------------------

    async def _varied(self, store: Storage) -> list[Score]:
        """24 scores over a day: two scorers, entities, sources, runs and spans, and
        values with ties, negatives, -0.0 and integers."""
        values = [0.5, -1.0, 0.0, -0.0, 3, 0.25, 0.5, 1e-300, -2.5, 0.75, 1.0, 0.5]
        saved = []
        for i in range(24):
            saved.append(
                await store.evals.save_score(
                    score(
                        f"s{i:02d}",
                        i * 3600,
                        scorer_id=("relevance", "toxicity")[i % 2],
                        score=values[i % len(values)],
                        entity_type="agent" if i % 3 else None,
                        entity_id=f"a{i % 2}" if i % 3 else None,
                        source=("live", "test")[i // 12],
                        run_id=f"run-{i % 4}",
                        trace_id="t",
                        span_id=f"p{i % 2}",
                    )
                )
            )
        return saved

    async def _pages(self, store: Storage, **filters: Any) -> list[Score]:
        """Every page of a listing of 5, checked against the whole listing at once."""
        whole = await store.evals.list_scores(per_page=1000, **filters)
        paged: list[Score] = []
        for page in range(whole.total // 5 + 1):
            result = await store.evals.list_scores(page=page, per_page=5, **filters)
            assert result.total == whole.total, filters
            paged += result.items
        assert paged == whole.items, filters
        return whole.items

    async def test_evals_time_window_with_every_filter(self, store: Storage) -> None:
        saved = await self._varied(store)
        newest_first = saved[::-1]
        windows = [(None, at(5 * 3600)), (at(5 * 3600), None), (at(3 * 3600), at(17 * 3600 - 1))]
        filters: list[dict[str, Any]] = [
            {},
            {"scorer_id": "toxicity"},
            {"entity": ("agent", "a1")},
            {"source": "test"},
            {"scorer_id": "relevance", "entity": ("agent", "a0"), "source": "live"},
            {"run_id": "run-1"},
            {"span": ("t", "p0")},
        ]

        def matches(s: Score, f: dict[str, Any]) -> bool:
            return (
                f.get("scorer_id", s.scorer_id) == s.scorer_id
                and f.get("entity", (s.entity_type, s.entity_id)) == (s.entity_type, s.entity_id)
                and f.get("source", s.source) == s.source
                and f.get("run_id", s.run_id) == s.run_id
                and f.get("span", (s.trace_id, s.span_id)) == (s.trace_id, s.span_id)
            )

        for (start, end), f in itertools.product(windows, filters):
            expected = [
                s
                for s in newest_first
                if matches(s, f)
                and (start is None or s.created_at >= start)
                and (end is None or s.created_at <= end)
            ]
            assert await self._pages(store, from_date=start, to_date=end, **f) == expected
        # Both ends are inclusive, to the microsecond.
        exact = saved[7].created_at
        got = await store.evals.list_scores(from_date=exact, to_date=exact)
        assert got.items == [saved[7]]
        later = exact + timedelta(microseconds=1)
        assert (await store.evals.list_scores(from_date=later, to_date=later)).total == 0

    async def test_evals_score_range_orders_by_score_highest_first(self, store: Storage) -> None:
        saved = await self._varied(store)
        # Highest score first, equal scores newest first; -0.0 counts as 0.0.
        ranked = sorted(saved, key=lambda s: (s.score + 0.0, s.created_at), reverse=True)
        ranges = [(0.0, None), (None, 0.0), (0.25, 0.75), (0.5, 0.5), (-3, 1e-300), (2, 1)]
        filters: list[dict[str, Any]] = [
            {},
            {"scorer_id": "relevance"},
            {"entity": ("agent", "a1")},
            {"source": "live"},
            {"scorer_id": "toxicity", "entity": ("agent", "a1"), "source": "test"},
        ]
        for (low, high), f in itertools.product(ranges, filters):
            expected = [
                s
                for s in ranked
                if f.get("scorer_id", s.scorer_id) == s.scorer_id
                and f.get("entity", (s.entity_type, s.entity_id)) == (s.entity_type, s.entity_id)
                and f.get("source", s.source) == s.source
                and (low is None or s.score >= low)
                and (high is None or s.score <= high)
            ]
            got = await self._pages(store, min_score=low, max_score=high, **f)
            assert [s.id for s in got] == [s.id for s in expected], (low, high, f)
        # A replaced score moves in the value index; a deleted one leaves it.
        await store.evals.save_score(score("s00", 0, score=99.0))
        await store.evals.delete_score("s04")
        top = await store.evals.list_scores(min_score=3, per_page=100)
        assert [s.id for s in top.items] == ["s00", "s16"]

    async def test_evals_refused_filter_combinations(self, store: Storage) -> None:
        evals = store.evals
        cases: list[tuple[Any, str]] = [
            (lambda: evals.list_scores(min_score=0, from_date=T0), "min_score"),
            (lambda: evals.list_scores(max_score=1, to_date=T0), "max_score"),
            (lambda: evals.list_scores(run_id="r", min_score=0), "run_id"),
            (lambda: evals.list_scores(span=("t", "s"), max_score=0), "span"),
            (lambda: evals.list_scores(min_score=float("nan")), "min_score"),
            (lambda: evals.list_scores(max_score=float("inf")), "max_score"),
            (lambda: evals.list_scores(min_score="0.5"), "min_score"),
            (lambda: evals.list_scores(max_score=True), "max_score"),
            (lambda: evals.list_scores(min_score=10**400), "min_score"),
            (lambda: evals.list_scores(from_date=datetime(2025, 1, 1)), "from_date"),
            (lambda: evals.list_scores(to_date="2025-01-01"), "to_date"),
        ]
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field
        # A time window does combine with run_id and span.
        await evals.save_score(score("s1", 10, run_id="r", trace_id="t", span_id="s"))
        assert (await evals.list_scores(run_id="r", from_date=at(10))).total == 1
        assert (await evals.list_scores(span=("t", "s"), to_date=at(9))).total == 0

    # -- aggregates ---------------------------------------------------------------------------

    @pytest.mark.parametrize("buckets", [1, 4])
    async def test_evals_score_stats_stay_exact_under_random_writes_and_deletes(
        self, store: Storage, buckets: int
    ) -> None:
        evals = Storage(store.driver, namespace=f"stats-{buckets}", buckets=buckets).evals
        rng = random.Random(12 + buckets)
        # Values whose naive running sum drifts (0.1 + 0.2 - 0.1 != 0.2), cancels
        # catastrophically (1e16 and 1.0) or underflows.
        values = [0.1, 0.2, 0.3, 1 / 3, 1e16, -1e16, 1.0, -0.0, 7, 5e-324, -2.5]
        live: dict[str, Score] = {}
        for step in range(120):
            action = rng.random()
            if action < 0.25 and live:
                gone = rng.choice(sorted(live))
                assert await evals.delete_score(gone) is True
                del live[gone]
            else:
                # New ids, and ids saved again: a replace moves the score's value, scorer
                # and period at once.
                sid = f"s{rng.randrange(40)}"
                new = score(
                    sid,
                    rng.randrange(3 * 86_400),
                    scorer_id=rng.choice(["judge", "judge", "other"]),
                    score=rng.choice(values),
                    source=rng.choice(["live", "test"]),
                )
                await evals.save_score(new)
                live[sid] = new
            if step % 20 == 19:
                for period in ("hour", "day"):
                    for scorer in ("judge", "other"):
                        await self._check_stats(evals, live, scorer, period)
        # Everything deleted: no period left.
        for sid in list(live):
            await evals.delete_score(sid)
        assert await evals.score_stats("judge", from_date=T0, to_date=at(3 * 86_400)) == []

    async def _check_stats(
        self, evals: Any, live: dict[str, Score], scorer: str, period: str
    ) -> None:
        length = timedelta(hours=1) if period == "hour" else timedelta(days=1)
        groups: dict[datetime, list[float]] = {}
        for s in live.values():
            if s.scorer_id == scorer:
                midnight = T0 - timedelta(hours=12)
                start = midnight + (s.created_at - midnight) // length * length
                groups.setdefault(start, []).append(s.score)
        expected = [
            ScoreStats(
                start=start,
                count=len(group),
                mean=math.fsum(group) / len(group),
                min=min(group),
                max=max(group),
            )
            for start, group in sorted(groups.items())
        ]
        got = await evals.score_stats(
            scorer, from_date=T0, to_date=T0 + timedelta(days=3, hours=-1), bucket=period
        )
        assert got == expected, (scorer, period)

    async def test_evals_score_stats_periods_and_refusals(self, store: Storage) -> None:
        evals = store.evals
        # T0 is 12:00: a score at 12:59:59.999999, one at 13:00, one the next day.
        await evals.save_score(score("a", 3600 - 1e-6, score=1.0))
        await evals.save_score(score("b", 3600, score=2.0))
        await evals.save_score(score("c", 86_400, score=4.0, source="test"))
        await evals.save_score(score("d", 0, scorer_id="other", score=8.0))
        hours = await evals.score_stats("relevance", from_date=at(1800), to_date=at(3600))
        # Whole periods: the score at 12:59 counts though it is before from_date.
        assert hours == [
            ScoreStats(start=at(0), count=1, mean=1.0, min=1.0, max=1.0),
            ScoreStats(start=at(3600), count=1, mean=2.0, min=2.0, max=2.0),
        ]
        days = await evals.score_stats(
            "relevance", from_date=at(0), to_date=at(86_400), bucket="day"
        )
        midnight = T0 - timedelta(hours=12)
        assert days == [
            ScoreStats(start=midnight, count=2, mean=1.5, min=1.0, max=2.0),
            ScoreStats(start=midnight + timedelta(days=1), count=1, mean=4.0, min=4.0, max=4.0),
        ]
        assert await evals.score_stats("nobody", from_date=at(0), to_date=at(86_400)) == []
        # The most periods one call reads: 1000.
        most = await evals.score_stats("relevance", from_date=at(0), to_date=at(3600 * 999))
        assert [s.count for s in most] == [1, 1, 1]
        cases: list[tuple[Any, str]] = [
            (
                lambda: evals.score_stats("relevance", from_date=at(0), to_date=at(3600 * 1000)),
                "to_date",
            ),
            (lambda: evals.score_stats("relevance", from_date=at(7200), to_date=at(0)), "to_date"),
            (
                lambda: evals.score_stats(
                    "relevance", from_date=at(0), to_date=at(0), bucket="week"
                ),
                "bucket",
            ),
            (lambda: evals.score_stats("", from_date=at(0), to_date=at(0)), "scorer_id"),
            (
                lambda: evals.score_stats("s", from_date=datetime(2025, 1, 1), to_date=at(0)),
                "from_date",
            ),
            (lambda: evals.score_stats("s", from_date=at(0), to_date=None), "to_date"),
        ]
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field

    # -- metadata ----------------------------------------------------------------------------

    async def test_evals_metadata_equality_with_scorer_and_time_window(
        self, store: Storage
    ) -> None:
        metas: list[dict[str, Any]] = [
            {"model": "gpt-4o", "v": 1, "ok": True},
            {"model": "gpt-4o", "v": 1.0, "ok": False, "nested": {"model": "gpt-4o"}},
            {"model": "claude", "v": 2, "weird key\n:{}": "a\x00b", "": "empty"},
            {"model": "x" * 300, "long": "y" * 254},
            {},
        ]
        saved = []
        for i in range(15):
            saved.append(
                await store.evals.save_score(
                    score(
                        f"s{i:02d}",
                        i * 60,
                        scorer_id=("relevance", "toxicity")[i % 2],
                        metadata=metas[i % len(metas)],
                    )
                )
            )
        newest_first = saved[::-1]
        pairs: list[tuple[str, Any]] = [
            ("model", "gpt-4o"),
            ("model", "claude"),
            ("v", 1),
            ("v", 1.0),  # JSON tells 1 and 1.0 apart
            ("ok", True),
            ("ok", False),
            ("weird key\n:{}", "a\x00b"),
            ("", "empty"),
            ("long", "y" * 254),
            ("model", "nobody"),
        ]
        for (key, value), scorer, window in itertools.product(
            pairs, [None, "toxicity"], [(None, None), (at(120), at(600))]
        ):
            expected = [
                s
                for s in newest_first
                if key in s.metadata
                and s.metadata[key] == value
                and type(s.metadata[key]) is type(value)
                and scorer in (None, s.scorer_id)
                and (window[0] is None or window[0] <= s.created_at <= window[1])
            ]
            got = await self._pages(
                store,
                metadata={key: value},
                scorer_id=scorer,
                from_date=window[0],
                to_date=window[1],
            )
            assert got == expected, (key, value, scorer, window)
        # A replace moves its metadata entries; a delete removes them.
        await store.evals.save_score(score("s00", 0, metadata={"model": "claude"}))
        await store.evals.delete_score("s05")
        got = await store.evals.list_scores(metadata={"model": "gpt-4o"}, per_page=100)
        assert [s.id for s in got.items] == ["s11", "s10", "s06", "s01"]
        claude = await store.evals.list_scores(metadata={"model": "claude"}, per_page=100)
        assert [s.id for s in claude.items] == ["s12", "s07", "s02", "s00"]
        assert (await store.evals.list_scores(metadata={})).total == 14

    async def test_evals_metadata_filters_refused(self, store: Storage) -> None:
        evals = store.evals
        cases: list[tuple[Any, str]] = [
            (lambda: evals.list_scores(metadata={"a": 1, "b": 2}), "metadata"),
            (lambda: evals.list_scores(metadata=[("a", 1)]), "metadata"),
            (lambda: evals.list_scores(metadata={"a": {"b": 1}}), "metadata"),
            (lambda: evals.list_scores(metadata={"a": None}), "metadata"),
            (lambda: evals.list_scores(metadata={"a": "x" * 300}), "metadata"),
            (lambda: evals.list_scores(metadata={"k" * 257: 1}), "metadata"),
            (lambda: evals.list_scores(metadata={1: 1}), "metadata"),
            (lambda: evals.list_scores(metadata={"a": float("nan")}), "metadata.a"),
            (lambda: evals.list_scores(metadata={"a": 1}, source="live"), "metadata"),
            (lambda: evals.list_scores(metadata={"a": 1}, entity=("e", "f")), "metadata"),
            (lambda: evals.list_scores(metadata={"a": 1}, run_id="r"), "metadata"),
            (lambda: evals.list_scores(metadata={"a": 1}, span=("t", "s")), "metadata"),
            (lambda: evals.list_scores(metadata={"a": 1}, min_score=0), "metadata"),
        ]
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field

    async def test_evals_scores_saved_before_the_value_index_are_tolerated(
        self, store: Storage
    ) -> None:
        """A score written before ``_v``, ``_x``, ``_h``, ``_dy`` and ``_m`` existed: its
        record lacks them and only its time entries exist. Listings by time show it; score
        ranges, metadata filters and aggregates leave it out; replacing or deleting it
        leaves the aggregates exact."""
        evals = store.evals
        keys = await store.keys()
        await evals.save_score(score("new", 10, score=1.0, metadata={"m": 1}))
        old = score("old", 20, score=5.0, metadata={"m": 1})
        saved = await evals.save_score(old)
        bucket = keys.bucket_of("old")
        (packed,) = await store.driver.execute([("HGET", bucket.scores, "old")])
        assert isinstance(packed, bytes)
        flat = unpack_fields(packed)
        legacy = [
            (flat[i], flat[i + 1])
            for i in range(0, len(flat), 2)
            if flat[i] not in (b"_v", b"_x", b"_h", b"_dy", b"_m")
        ]
        assert len(legacy) == len(flat) // 2 - 5
        # What the layout-2 scripts before this change made of it.
        created = lex_time(micros(old.created_at))
        tail = f"\0{created}\0old"
        await evals.delete_score("old")
        await store.driver.execute(
            [
                ("HSET", bucket.scores, "old", pack_fields([x for pair in legacy for x in pair])),
                (
                    "ZADD",
                    bucket.score_index,
                    *(
                        x
                        for member in (
                            "all" + tail,
                            "s\0relevance" + tail,
                            "o\0live" + tail,
                            "so\0relevance\0live" + tail,
                        )
                        for x in (0, member)
                    ),
                ),
            ]
        )
        assert await evals.get_score("old") == saved
        assert [s.id for s in (await evals.list_scores(scorer_id="relevance")).items] == [
            "old",
            "new",
        ]
        assert [s.id for s in (await evals.list_scores(min_score=0)).items] == ["new"]
        assert [s.id for s in (await evals.list_scores(metadata={"m": 1})).items] == ["new"]
        one = [ScoreStats(start=at(0), count=1, mean=1.0, min=1.0, max=1.0)]
        assert await evals.score_stats("relevance", from_date=at(0), to_date=at(0)) == one
        # Deleting it takes nothing from the aggregates; replacing it adds it to them.
        assert await evals.delete_score("old") is True
        assert await evals.score_stats("relevance", from_date=at(0), to_date=at(0)) == one
        await store.driver.execute(
            [("HSET", bucket.scores, "old", pack_fields([x for pair in legacy for x in pair]))]
        )
        await evals.save_score(old)
        both = [ScoreStats(start=at(0), count=2, mean=3.0, min=1.0, max=5.0)]
        assert await evals.score_stats("relevance", from_date=at(0), to_date=at(0)) == both
        assert [s.id for s in (await evals.list_scores(min_score=0)).items] == ["old", "new"]

    async def test_evals_corrupt_aggregates_name_their_key(self, store: Storage) -> None:
        await store.evals.save_score(score("s1", 0))
        bucket = (await store.keys()).bucket_of("s1")
        await store.driver.execute(
            [("HSET", bucket.score_sums, f"h\0relevance\0{lex_time(micros(at(0)))}", "x y")]
        )
        with pytest.raises(CorruptRecordError) as caught:
            await store.evals.score_stats("relevance", from_date=at(0), to_date=at(0))
        assert caught.value.key == bucket.score_sums

    async def test_evals_the_first_64_metadata_keys_are_indexed(self, store: Storage) -> None:
        many = {"nested": {"a": 1}, **{f"k{i}": i for i in range(100)}}
        await store.evals.save_score(score("s1", 0, metadata=many))
        assert (await store.evals.list_scores(metadata={"k63": 63})).total == 1
        assert (await store.evals.list_scores(metadata={"k64": 64})).total == 0
        assert await store.evals.get_score("s1") == score("s1", 0, metadata=many)
        assert await store.evals.delete_score("s1") is True
        assert (await store.evals.list_scores(metadata={"k0": 0})).total == 0
