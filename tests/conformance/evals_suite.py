"""The evals domain's conformance suite: scores and their listings on every backend.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvstore import CorruptRecordError, Score, Storage, ValidationError
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
