"""Sorted set commands, with Redis 7.0's option grammar and error order.

Redis parses every argument before it looks the key up, so a malformed range is an error
even on a missing key, while a well-formed one on a key of another type is WRONGTYPE.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from kvstore.drivers.memory._errors import SYNTAX, ReplyError
from kvstore.drivers.memory._parse import (
    format_double,
    option,
    parse_float,
    parse_int,
    parse_lex_range,
    parse_score_range,
)
from kvstore.drivers.memory._zset import ADDED, GT, INCR, LT, NOP, NX, UPDATED, XX, ZSet

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS"]


# --- ZADD / ZINCRBY ---------------------------------------------------------------------

_ZADD_FLAGS = {b"NX": NX, b"XX": XX, b"GT": GT, b"LT": LT, b"INCR": INCR, b"CH": 0}


def _zadd(ks: Keyspace, args: list[bytes], *, incr: bool) -> Reply:
    """Redis's ``zaddGenericCommand``; ZINCRBY is ZADD with INCR forced on.

    Because ZINCRBY shares the option loop, ``ZINCRBY key nx member`` is a syntax error
    in Redis too.
    """
    flags = INCR if incr else 0
    ch = False
    i, size = 1, len(args)
    while i < size:
        # Options are at most 4 letters (up to a NUL, as strcasecmp reads them): a longer
        # word is the first score, no need to look closer.
        arg = args[i]
        word = option(arg) if len(arg) <= 4 or b"\0" in arg else b""
        if word not in _ZADD_FLAGS:
            break
        flags |= _ZADD_FLAGS[word]
        ch = ch or word == b"CH"
        i += 1
    pairs = size - i
    if pairs % 2 or not pairs:
        raise ReplyError(SYNTAX)
    if flags & NX and flags & XX:
        raise ReplyError("ERR XX and NX options at the same time are not compatible")
    if flags & (GT | NX) == GT | NX or flags & (LT | NX) == LT | NX or flags & (GT | LT) == GT | LT:
        raise ReplyError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if flags & INCR and pairs > 2:
        raise ReplyError("ERR INCR option supports a single increment-element pair")
    # Every score is parsed before anything is written: the command applies fully or not.
    scores = [parse_float(args[j]) for j in range(i, size, 2)]
    key = args[0]
    zset = ks.read(key, ZSet)
    if zset is None:
        if flags & XX:
            return None if flags & INCR else 0
        zset = ZSet()
        ks.create(key, zset)
    added = updated = processed = 0
    score = 0.0
    for score_arg, member in zip(scores, args[i + 1 :: 2], strict=True):
        outcome, score = zset.add(score_arg, member, flags)
        if outcome == ADDED:
            added += 1
        elif outcome == UPDATED:
            updated += 1
        if outcome != NOP:
            processed += 1
    if flags & INCR:
        return format_double(score) if processed else None
    return added + updated if ch else added


def zadd(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) == 3:  # "ZADD key score member", the hot write
        try:
            score = parse_float(args[1])
        except ReplyError:
            pass  # an option word, or a bad score: the full parser gives the right error
        else:
            # What _zadd does with one pair and no options (a valid score is never an
            # option word, so Redis's option loop would stop right there too).
            key = args[0]
            zset = ks.read(key, ZSet)
            if zset is None:
                zset = ZSet()
                ks.create(key, zset)
            return 1 if zset.add(score, args[2])[0] == ADDED else 0
    return _zadd(ks, args, incr=False)


def zincrby(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zadd(ks, args, incr=True)


# --- single-member reads and writes -------------------------------------------------------


def zrem(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    zset = ks.read(key, ZSet)
    if zset is None:
        return 0
    removed = sum(zset.remove(member) for member in args[1:])
    if not zset:
        ks.delete(key)
    return removed


def zscore(ks: Keyspace, args: list[bytes]) -> Reply:
    zset = ks.read(args[0], ZSet)
    score = None if zset is None else zset.scores.get(args[1])
    return None if score is None else format_double(score)


def zmscore(ks: Keyspace, args: list[bytes]) -> Reply:
    zset = ks.read(args[0], ZSet)
    scores = {} if zset is None else zset.scores
    return [
        None if (score := scores.get(member)) is None else format_double(score)
        for member in args[1:]
    ]


def zcard(ks: Keyspace, args: list[bytes]) -> Reply:
    zset = ks.read(args[0], ZSet)
    return 0 if zset is None else len(zset)


def zcount(ks: Keyspace, args: list[bytes]) -> Reply:
    spec = parse_score_range(args[1], args[2])
    zset = ks.read(args[0], ZSet)
    if zset is None:
        return 0
    start, stop = zset.score_span(spec)
    return stop - start


def zrank(ks: Keyspace, args: list[bytes]) -> Reply:
    zset = ks.read(args[0], ZSet)
    return None if zset is None else zset.rank(args[1])


def zrevrank(ks: Keyspace, args: list[bytes]) -> Reply:
    zset = ks.read(args[0], ZSet)
    if zset is None:
        return None
    rank = zset.rank(args[1])
    return None if rank is None else len(zset) - 1 - rank


# --- ranges -------------------------------------------------------------------------------


class By(Enum):
    """How a ZRANGE interval is given."""

    RANK = 1
    SCORE = 2
    LEX = 3


def _rank_span(size: int, start: int, end: int) -> tuple[int, int]:
    """Redis's index sanitising for ZRANGE and ZREMRANGEBYRANK: ``[first, stop)``."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return 0, 0
    return start, min(end, size - 1) + 1


def _zrange(ks: Keyspace, args: list[bytes], by: By | None, reverse: bool | None) -> Reply:
    """Redis's ``zrangeGenericCommand``, shared by ZRANGE and its older spellings.

    ``by`` and ``reverse`` are None when options may still set them (ZRANGE); the older
    commands fix them, which makes the corresponding option a syntax error there.
    """
    withscores = False
    offset, limit = 0, -1
    i, size = 3, len(args)
    while i < size:
        word = option(args[i])
        if word == b"WITHSCORES":
            withscores = True
        elif word == b"LIMIT" and size - i - 1 >= 2:
            offset, limit = parse_int(args[i + 1]), parse_int(args[i + 2])
            i += 2
        elif word == b"REV" and reverse is None:
            reverse = True
        elif word == b"BYSCORE" and by is None:
            by = By.SCORE
        elif word == b"BYLEX" and by is None:
            by = By.LEX
        else:
            raise ReplyError(SYNTAX)
        i += 1
    by = by or By.RANK
    reverse = bool(reverse)
    # Redis spots LIMIT by its count differing from the default -1, so "LIMIT 5 -1" with a
    # rank range slips through (and is ignored), as it does here.
    if limit != -1 and by is By.RANK:
        raise ReplyError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and by is By.LEX:
        raise ReplyError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    low, high = (args[2], args[1]) if reverse and by is not By.RANK else (args[1], args[2])
    if by is By.RANK:
        start, end = parse_int(low), parse_int(high)
    elif by is By.SCORE:
        scores = parse_score_range(low, high)
    else:
        lex = parse_lex_range(low, high)

    zset = ks.read(args[0], ZSet)
    if zset is None:
        return []
    if by is By.RANK:
        first, stop = _rank_span(len(zset), start, end)
        if reverse:
            first, stop = len(zset) - stop, len(zset) - first
    else:
        # Redis steps over `offset` members and then takes `limit` (negative: all). A
        # negative offset makes it step off the end, hence nothing.
        if offset < 0:
            return []
        if by is By.SCORE:
            first, stop = zset.score_span(scores)
            if reverse:
                stop = max(first, stop - offset)
            else:
                first = min(stop, first + offset)
        else:
            first, stop = zset.lex_walk(*lex, reverse=reverse, offset=offset)
        if stop <= first:
            return []
        if 0 <= limit < stop - first:
            if reverse:
                first = stop - limit
            else:
                stop = first + limit
    out: list[Reply]
    if withscores:
        out = []
        for member, score in zset.entries(first, stop):
            out += (member, format_double(score))
        if reverse:  # reverse the pairs, keeping each member before its score
            out = [item for i in range(len(out) - 2, -1, -2) for item in out[i : i + 2]]
        return out
    out = zset.members(first, stop)
    if reverse:
        out.reverse()
    return out


def zrange(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) == 3:  # "ZRANGE key start stop", the hot query: skip the option machinery
        start, end = parse_int(args[1]), parse_int(args[2])
        zset = ks.read(args[0], ZSet)
        if zset is None:
            return []
        return zset.members(*_rank_span(len(zset.scores), start, end))
    if len(args) == 4 and option(args[3]) == b"BYSCORE":
        # "ZRANGE key min max BYSCORE", a message by its score: _zrange's path, without
        # the option loop and the limits.
        scores = parse_score_range(args[1], args[2])
        zset = ks.read(args[0], ZSet)
        if zset is None:
            return []
        return zset.members(*zset.score_span(scores))
    return _zrange(ks, args, None, None)


def zrevrange(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zrange(ks, args, By.RANK, True)


def zrangebyscore(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zrange(ks, args, By.SCORE, False)


def zrevrangebyscore(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zrange(ks, args, By.SCORE, True)


def zrangebylex(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zrange(ks, args, By.LEX, False)


def zrevrangebylex(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zrange(ks, args, By.LEX, True)


def zlexcount(ks: Keyspace, args: list[bytes]) -> Reply:
    low, high = parse_lex_range(args[1], args[2])
    zset = ks.read(args[0], ZSet)
    if zset is None:
        return 0
    start, stop = zset.lex_span(low, high, reverse=False)
    return stop - start


def _zremrange(ks: Keyspace, args: list[bytes], by: By) -> Reply:
    if by is By.RANK:
        start, end = parse_int(args[1]), parse_int(args[2])
    elif by is By.SCORE:
        scores = parse_score_range(args[1], args[2])
    else:
        lex = parse_lex_range(args[1], args[2])
    key = args[0]
    zset = ks.read(key, ZSet)
    if zset is None:
        return 0
    if by is By.RANK:
        first, stop = _rank_span(len(zset), start, end)
    elif by is By.SCORE:
        first, stop = zset.score_span(scores)
    else:
        first, stop = zset.lex_span(*lex, reverse=False)
    removed = zset.delete_positions(first, stop)
    if not zset:
        ks.delete(key)
    return removed


def zremrangebyrank(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zremrange(ks, args, By.RANK)


def zremrangebyscore(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zremrange(ks, args, By.SCORE)


def zremrangebylex(ks: Keyspace, args: list[bytes]) -> Reply:
    return _zremrange(ks, args, By.LEX)


HANDLERS = {
    "ZADD": zadd,
    "ZINCRBY": zincrby,
    "ZREM": zrem,
    "ZSCORE": zscore,
    "ZMSCORE": zmscore,
    "ZCARD": zcard,
    "ZCOUNT": zcount,
    "ZLEXCOUNT": zlexcount,
    "ZRANK": zrank,
    "ZREVRANK": zrevrank,
    "ZRANGE": zrange,
    "ZREVRANGE": zrevrange,
    "ZRANGEBYSCORE": zrangebyscore,
    "ZREVRANGEBYSCORE": zrevrangebyscore,
    "ZRANGEBYLEX": zrangebylex,
    "ZREVRANGEBYLEX": zrevrangebylex,
    "ZREMRANGEBYRANK": zremrangebyrank,
    "ZREMRANGEBYSCORE": zremrangebyscore,
    "ZREMRANGEBYLEX": zremrangebylex,
}
