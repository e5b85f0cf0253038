"""``score_stats`` against a recomputation from scratch, over any sequence of saves, replaces
and deletes, with any finite values (on the memory driver, which runs the same Lua as Redis;
the conformance suite runs a random sequence on every backend).

Also the sort key of score values, which the value index and the aggregates rely on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvstore import Score, ScoreStats, Storage
from kvstore.domains.evals import _value_key, _value_of

T0 = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
VALUES = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.1, 0.2, -0.1, 1e16, -1e16, 1.0, 5e-324, -0.0, 1.7e308, -1.7e308]
)
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("save"),
            st.integers(0, 7),  # id: saving one again replaces it
            st.sampled_from(["judge", "other"]),
            VALUES,
            st.integers(0, 4 * 3600 - 1),  # seconds after 22:00: two days, four hours
        ),
        st.tuples(st.just("delete"), st.integers(0, 7)),
    ),
    max_size=30,
)


def _mean(values: list[float]) -> float:
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        return math.fsum(v * 2.0**-64 for v in values) / len(values) * 2.0**64


def _expected(live: dict[int, tuple[str, float, int]], bucket: str) -> list[ScoreStats]:
    length = 3600 if bucket == "hour" else 86_400
    midnight = T0 - timedelta(hours=22)
    groups: dict[int, list[float]] = {}
    for scorer, value, seconds in live.values():
        if scorer == "judge":
            period = (22 * 3600 + seconds) // length
            groups.setdefault(period, []).append(value)
    return [
        ScoreStats(
            start=midnight + timedelta(seconds=period * length),
            count=len(values),
            mean=_mean(values),
            min=min(values),
            max=max(values),
        )
        for period, values in sorted(groups.items())
    ]


async def _run(ops: list[Any], buckets: int) -> None:
    async with Storage(buckets=buckets) as store:
        live: dict[int, tuple[str, float, int]] = {}
        for op in ops:
            if op[0] == "save":
                _, n, scorer, value, seconds = op
                await store.evals.save_score(
                    Score(
                        id=f"s{n}",
                        scorer_id=scorer,
                        score=value,
                        created_at=T0 + timedelta(seconds=seconds),
                    )
                )
                live[n] = (scorer, value, seconds)
            else:
                assert await store.evals.delete_score(f"s{op[1]}") is (
                    live.pop(op[1], None) is not None
                )
        for bucket in ("hour", "day"):
            got = await store.evals.score_stats(
                "judge", from_date=T0, to_date=T0 + timedelta(hours=4), bucket=bucket
            )
            assert got == _expected(live, bucket), bucket


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, buckets=st.sampled_from([1, 3]))
def test_score_stats_equal_a_recomputation_after_any_writes(ops: list[Any], buckets: int) -> None:
    anyio.run(_run, ops, buckets)


@given(a=st.floats(allow_nan=False), b=st.floats(allow_nan=False))
def test_value_keys_sort_as_the_numbers(a: float, b: float) -> None:
    if a < b:
        assert _value_key(a) < _value_key(b)
    elif a == b:  # -0.0 and 0.0 too
        assert _value_key(a) == _value_key(b)
    assert _value_of(_value_key(a).encode(), "k") == a
