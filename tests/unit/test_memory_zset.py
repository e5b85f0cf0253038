"""The memory driver's sorted sets: scale, ordering and Redis's encoding quirks."""

from __future__ import annotations

import pytest

from kvstore.drivers.memory import MemoryDriver
from kvstore.drivers.memory._parse import LexBound, ScoreRange
from kvstore.drivers.memory._zset import ADDED, GT, INCR, LT, NOP, NX, UPDATED, XX, ZSet, order_key

pytestmark = pytest.mark.anyio

MILLION = 1_000_000


def _member(i: int) -> bytes:
    return b"m%07d" % i


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # once is enough
async def test_a_million_members_stay_ordered_at_both_ends() -> None:
    # Member i gets score i // 3, so every score is shared by three members, ordered by name.
    driver = MemoryDriver()
    args: list[int | bytes] = []
    for i in range(MILLION):
        args += (i // 3, _member(i))
    assert await driver.execute([("ZADD", "z", *args)]) == [MILLION]
    last, top = MILLION - 1, (MILLION - 1) // 3
    replies = await driver.execute(
        [
            ("ZCARD", "z"),
            ("ZRANGE", "z", 0, 2, "WITHSCORES"),
            ("ZRANGE", "z", -3, -1),
            ("ZRANK", "z", _member(0)),
            ("ZRANK", "z", _member(last)),
            ("ZREVRANK", "z", _member(last)),
            ("ZRANK", "z", _member(500_000)),
            ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 0, 2, "WITHSCORES"),
            ("ZRANGE", "z", f"({top - 1}", "+inf", "BYSCORE"),
            ("ZCOUNT", "z", 100, "(200"),
        ]
    )
    assert replies == [
        MILLION,
        [_member(0), b"0", _member(1), b"0", _member(2), b"0"],
        [_member(last - 2), _member(last - 1), _member(last)],
        0,
        last,
        0,
        500_000,
        [_member(last), b"%d" % top, _member(last - 1), b"%d" % (top - 1)],
        [_member(last)],  # top is 333333, held by the last member only
        300,
    ]
    # Take a thousand out of the middle, swap the two ends, cut ranks 1 to 10.
    replies = await driver.execute(
        [
            ("ZREM", "z", *(_member(i) for i in range(400_000, 401_000))),
            ("ZADD", "z", -1, _member(last), "+inf", _member(0)),
            ("ZREMRANGEBYRANK", "z", 1, 10),
            ("ZRANGE", "z", 0, 1),
            ("ZRANGE", "z", -1, -1, "WITHSCORES"),
            ("ZRANK", "z", _member(500_000)),
            ("ZCARD", "z"),
        ]
    )
    size = MILLION - 1_000 - 10
    # Before member 500 000 now: the old last member, members 11 to 399 999 and members
    # 401 000 to 499 999.
    rank = 1 + (400_000 - 11) + (500_000 - 401_000)
    assert replies == [1_000, 0, 10, [_member(last), _member(11)], [_member(0), b"inf"], rank, size]


def test_order_keys_sort_like_redis() -> None:
    pairs = [
        (float("-inf"), b"a"), (-2.5, b"z"), (-0.0, b"b"), (0.0, b"a"), (0.0, b"c"),
        (5e-324, b""), (1.0, b"\x00"), (1.0, b"\xff"), (1e308, b"a"), (float("inf"), b""),
    ]  # fmt: skip
    keys = [order_key(score, member) for score, member in pairs]
    # -0 sorts with the zeros, by member: "a" (0.0) before "b" (-0.0).
    assert sorted(keys) == [keys[i] for i in (0, 1, 3, 2, 4, 5, 6, 7, 8, 9)]


def test_add_outcomes_follow_zsetadd() -> None:
    zset = ZSet()
    assert zset.add(1.0, b"a") == (ADDED, 1.0)
    assert zset.add(1.0, b"a") == (0, 1.0)
    assert zset.add(2.0, b"a", NX) == (NOP, 2.0)
    assert zset.add(2.0, b"b", XX) == (NOP, 2.0)
    assert zset.add(0.5, b"a", GT) == (NOP, 0.5)
    assert zset.add(3.0, b"a", GT) == (UPDATED, 3.0)
    assert zset.add(-1.0, b"a", INCR | LT) == (UPDATED, 2.0)
    assert zset.scores == {b"a": 2.0}
    assert zset.add(float("inf"), b"a", INCR) == (UPDATED, float("inf"))
    with pytest.raises(Exception, match="resulting score is not a number"):
        zset.add(float("-inf"), b"a", INCR)


def test_negative_zero_follows_the_encoding_redis_would_use() -> None:
    small, big = ZSet(), ZSet()
    for i in range(129):
        big.add(float(i), b"%d" % i)
    assert small.compact
    assert not big.compact
    # A listpack stores -0 as 0; the reply of an increment is the computed double.
    assert small.add(-0.0, b"z", INCR) == (ADDED, -0.0)
    assert str(small.scores[b"z"]) == "0.0"
    assert big.add(-0.0, b"z") == (ADDED, -0.0)
    assert str(big.scores[b"z"]) == "-0.0"
    # 0 == -0, so Redis leaves the member alone and replies the new value.
    assert big.add(0.0, b"z") == (0, 0.0)
    assert str(big.scores[b"z"]) == "-0.0"
    long_member = ZSet()
    long_member.add(-0.0, b"x" * 65)
    assert not long_member.compact
    assert str(long_member.scores[b"x" * 65]) == "-0.0"


def _lex(text: str) -> LexBound:
    if text in ("-", "+"):
        return LexBound(b"", True, -1 if text == "-" else 1)
    return LexBound(text[1:].encode(), text[0] == "(", 0)


@pytest.mark.parametrize(
    ("low", "high", "reverse", "span"),
    [
        ("-", "+", False, (0, 4)),
        ("[b", "[c", False, (1, 3)),
        ("(b", "+", False, (2, 4)),
        ("-", "(b", True, (0, 1)),
        ("+", "-", False, (0, 0)),
        ("-", "-", False, (0, 0)),
        ("[b", "[b", False, (1, 2)),
        ("(b", "[b", False, (0, 0)),
    ],
)
def test_lex_span_with_one_score(low: str, high: str, reverse: bool, span: tuple[int, int]) -> None:
    zset = ZSet()
    for member in (b"a", b"b", b"c", b"d"):
        zset.add(0.0, member)
    assert zset.lex_span(_lex(low), _lex(high), reverse=reverse) == span


def test_lex_span_with_mixed_scores_walks_like_a_listpack() -> None:
    # Order: (1, "z"), (2, "a"), (3, "m"). Redis first checks that the last member is >= min
    # and the first <= max, then walks from one end.
    zset = ZSet()
    for score, member in ((1.0, b"z"), (2.0, b"a"), (3.0, b"m")):
        zset.add(score, member)
    assert zset.lex_span(_lex("[b"), _lex("+"), reverse=False) == (0, 3)  # "z" >= "b" first
    assert zset.lex_span(_lex("[n"), _lex("+"), reverse=False) == (0, 0)  # last "m" < "n"
    assert zset.lex_span(_lex("-"), _lex("[y"), reverse=False) == (0, 0)  # first "z" > "y"
    assert zset.lex_span(_lex("[b"), _lex("[m"), reverse=True) == (0, 0)  # first "z" > "m"
    # The same range from either end: (1, "b"), (2, "z"), (3, "a"), (4, "c") gives "b" going
    # forward (stopping at "z") and "c" going backward (stopping at "a").
    zset = ZSet()
    for score, member in ((1.0, b"b"), (2.0, b"z"), (3.0, b"a"), (4.0, b"c")):
        zset.add(score, member)
    assert zset.lex_span(_lex("[b"), _lex("[c"), reverse=False) == (0, 1)
    assert zset.lex_span(_lex("[b"), _lex("[c"), reverse=True) == (3, 4)


def test_score_span() -> None:
    zset = ZSet()
    for score, member in ((1.0, b"a"), (1.0, b"b"), (2.0, b"c"), (float("inf"), b"d")):
        zset.add(score, member)
    inf = float("inf")
    assert zset.score_span(ScoreRange(1.0, 1.0, False, False)) == (0, 2)
    assert zset.score_span(ScoreRange(1.0, 2.0, True, False)) == (2, 3)
    assert zset.score_span(ScoreRange(-inf, inf, False, True)) == (0, 3)
    assert zset.score_span(ScoreRange(inf, inf, False, False)) == (3, 4)
    assert zset.score_span(ScoreRange(2.0, 1.0, False, False)) == (0, 0)
    assert zset.score_span(ScoreRange(-0.0, 0.0, False, False)) == (0, 0)
