"""Hypothesis strategies for Redis commands, valid and broken, aimed at the edge cases.

Each data type's commands mostly use that type's own keys, so that they find values of
their type and succeed, but every family also uses a few shared keys, so that WRONGTYPE
errors and cross-type overwrites happen. Numbers come from pools of strings that look like
numbers to some of Redis's parsers and not to others. Each family produces well-formed
commands most of the time and malformed ones (bad options, odd argument counts) the rest
of the time, because matching Redis's *errors* is half of the job. ``st.one_of`` picks its
branches uniformly, so a branch listed twice is drawn twice as often.
"""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from kvstore.drivers.base import Arg

Cmd = tuple[Arg, ...]
Words = st.SearchStrategy[tuple[Arg, ...]]

_SHARED_KEYS: list[Arg] = ["k1", "", "ключ", b"k1"]


def _keys(*own: str) -> st.SearchStrategy[Arg]:
    return st.sampled_from([*own, *own, *_SHARED_KEYS])


#: Every key any strategy uses.
ALL_KEYS: list[Arg] = [
    "s1", "s2", "{t}k", "h1", "h2", "t1", "t2", "z1", "z2", "{t}z", "x1", "x2", *_SHARED_KEYS[:3]
]  # fmt: skip
KEYS = _keys("s1", "h1", "t1", "z1", "x1", "{t}k")
STRING_KEYS = _keys("s1", "s2", "{t}k")
HASH_KEYS = _keys("h1", "h2")
SET_KEYS = _keys("t1", "t2")
ZSET_KEYS = _keys("z1", "z2", "{t}z")
STREAM_KEYS = _keys("x1", "x2")

# Members and fields: a small pool (so sorted sets stay listpack-sized in Redis, see the
# machine), with names that look like numbers, sort in surprising ways or hold a NUL.
NAMES = st.sampled_from(["a", "b", "c", "aa", "", "é", "10", "-0", "A", "b\x00c"])
TEXT = st.one_of(NAMES, st.text(max_size=6), st.binary(max_size=6))

# Strings that some parser in Redis accepts and another refuses.
NUMERIC_TEXT = st.sampled_from(
    [
        "0", "1", "-1", "10", "-0", "+1", "01", " 1", "1 ", "1e3", "0x10", "1.5", "-1.5",
        ".5", "5.", "1_000", "", "abc", "inf", "-inf", "+inf", "nan", "NaN", "Infinity",
        "9223372036854775807", "-9223372036854775808", "9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "1e400", "-1e400", "1e-400",
        "5e-324", "0x1p3", "\u0661", "1e", "+", "-", "\t2", "3\x00",
    ]
)  # fmt: skip
SMALL_INTEGERS = st.integers(-3, 6)
INTEGERS = st.one_of(SMALL_INTEGERS, st.sampled_from([2**63 - 1, -(2**63), 2**31, -(2**31)]))
INTEGER_ARGS = st.one_of(SMALL_INTEGERS, SMALL_INTEGERS, INTEGERS.map(str), NUMERIC_TEXT)
# Ranks for ZRANGE and friends: mostly valid, around the ends of a small set.
RANKS = st.one_of(
    SMALL_INTEGERS, SMALL_INTEGERS, SMALL_INTEGERS, st.sampled_from([-1, -2, 2**63 - 1, -(2**63)]),
    NUMERIC_TEXT,
)  # fmt: skip

SCORES = st.one_of(
    st.integers(-3, 3),
    st.integers(-3, 3),
    st.sampled_from([0.5, -0.0, 1e20, 0.1, float("inf"), float("-inf"), 1 / 3, 2.5]),
    NUMERIC_TEXT,
)
_GOOD_BOUNDS = st.sampled_from(
    ["-inf", "+inf", "inf", "0", "1", "2", "3", "-1", "1.5", "(0", "(1", "(2", "(1.5", "(-inf",
     "(+inf", "(3"]
)  # fmt: skip
_ODD_BOUNDS = st.sampled_from(
    ["(", "", " 1", "1 ", "[1", "( 1", "(abc", "((1", "nan", "1e400", "(-0", "0x2", "-0"]
)
SCORE_BOUNDS = st.one_of(*[_GOOD_BOUNDS] * 6, _ODD_BOUNDS, NUMERIC_TEXT)
_GOOD_LEX = st.sampled_from(["-", "+", "[a", "(a", "[b", "(b", "[aa", "(é", "[", "(", "[c"])
LEX_BOUNDS = st.one_of(*[_GOOD_LEX] * 6, st.sampled_from(["a", "+a", "-a", "", "[\u00e9"]))


def _interval(
    low: st.SearchStrategy[Arg], high: st.SearchStrategy[Arg], anything: st.SearchStrategy[Arg]
) -> Words:
    """Two bounds: often an interval that holds something (in either order, since the
    REV forms take the upper bound first), otherwise any two bounds."""
    return st.one_of(
        st.tuples(low, high),
        st.tuples(high, low),
        st.tuples(anything, anything),
    )


SCORE_INTERVALS = _interval(
    st.sampled_from(["-inf", "(-inf", "0", "(0", "-1", "1", "-0"]),
    st.sampled_from(["+inf", "(+inf", "2", "(2", "3", "inf", "2.5"]),
    SCORE_BOUNDS,
)
LEX_INTERVALS = _interval(
    st.sampled_from(["-", "[a", "(a", "[", "(", "[A"]),
    st.sampled_from(["+", "[c", "(c", "[\u00e9", "[b"]),
    LEX_BOUNDS,
)
RANK_INTERVALS = _interval(
    st.sampled_from([0, 1, -3, -100, 2]), st.sampled_from([-1, 2, 5, 100, -2]), RANKS
)
OFFSETS = st.sampled_from([0, 0, 1, 2, 5, -1, -2, 100])
COUNTS = st.sampled_from([1, 2, 3, -1, -5, 0, 100])

# Stream ids: explicit, partial, "<ms>-*", the largest, and broken ones. Auto ids ("*")
# come from the wall clock and are normalised by the machine before comparing.
_GOOD_IDS = st.sampled_from(["1-1", "1-2", "2", "2-0", "3-5", "4-0", "5-*", "1-*", "6-*", "0-1"])
STREAM_IDS = st.one_of(
    _GOOD_IDS,
    _GOOD_IDS,
    st.sampled_from(
        [
            "0-0", "0", "1", "0-*", "18446744073709551615-18446744073709551615",
            "18446744073709551615-*", "18446744073709551615-18446744073709551614", "abc",
            "1-2-3", " 1-1", "01-1", "-1", "1--01", "18446744073709551616-0", "1-", "-", "+",
            "", "1-18446744073709551615", "+7", "2-\t3",
        ]
    ),
)  # fmt: skip
RANGE_IDS = st.one_of(
    st.sampled_from(["-", "+", "0", "1", "2-0", "3", "1-2", "(1-1", "(1", "(2-0", "(3-5"]),
    st.sampled_from(["-", "+"]),
    st.sampled_from(["(0-0", "(-", "(+", "(", "(abc", "(18446744073709551615-18446744073709551615",
                     "(0", "18446744073709551615", "abc", "1-x"]),
)  # fmt: skip

# Relative TTLs stay long, so that no key expires between the two drivers' calls; the
# short and negative ones delete at once in both. Absolute deadlines are far future or past.
RELATIVE_SECONDS = st.sampled_from([100, 5000, 86400, 0, -1, -100, "x", 2**63 - 1])
RELATIVE_MILLIS = st.sampled_from([200_000, 9_000_000, 0, -5, 2**63 - 1, "1.5"])
ABSOLUTE_SECONDS = st.sampled_from([4102444800, 4102444801, 5000000000, 1, 0, -1])
ABSOLUTE_MILLIS = st.sampled_from([4102444800000, 4102444800500, 1, 0, 2**63 - 1])


# --- building blocks ----------------------------------------------------------------------


def _case(word: str) -> st.SearchStrategy[str]:
    """An option word in upper, lower or mixed case (Redis compares options blindly)."""
    return st.sampled_from([word.upper(), word.lower(), word.capitalize()])


def _word(*words: str) -> Words:
    """One option, as a tuple of words (the first in a random case)."""
    return st.tuples(_case(words[0]), *map(st.just, words[1:]))


def _maybe(option: Words) -> Words:
    return st.one_of(st.just(()), option)


def _options(*choices: Words) -> Words:
    """Zero to three options drawn from ``choices``, concatenated in random order."""
    return st.lists(st.one_of(*choices), max_size=3).map(lambda opts: sum(opts, ()))


def _cmd(name: str, *parts: Words | st.SearchStrategy[Arg]) -> st.SearchStrategy[Cmd]:
    """A command: its name (str or bytes, in any case), then each part (a single argument
    or a tuple of arguments)."""

    def flatten(values: tuple[object, ...]) -> Cmd:
        out: list[Arg] = []
        for value in values:
            out.extend(value if isinstance(value, tuple) else (value,))  # type: ignore[arg-type]
        return tuple(out)

    spelling = st.one_of(_case(name), _case(name).map(str.encode))
    return st.tuples(spelling, *parts).map(flatten)


def _many(strategy: st.SearchStrategy[Arg], min_size: int = 1) -> Words:
    return st.lists(strategy, min_size=min_size, max_size=4).map(tuple)


def _pairs(first: st.SearchStrategy[Arg], second: st.SearchStrategy[Arg]) -> Words:
    return st.lists(st.tuples(first, second), min_size=1, max_size=3).map(lambda ps: sum(ps, ()))


# --- keys ---------------------------------------------------------------------------------

_EXPIRE_FLAGS = st.one_of(*(_word(w) for w in ("NX", "XX", "GT", "LT", "NX", "FOO")))

KEY_COMMANDS = st.one_of(
    _cmd("DEL", _many(KEYS)),
    _cmd("UNLINK", _many(KEYS)),
    _cmd("EXISTS", _many(KEYS)),
    _cmd("TYPE", KEYS),
    _cmd("TYPE", KEYS),
    # GT/LT compare deadlines, so they only come with absolute times: with relative ones the
    # answer would depend on which millisecond each driver ran in.
    _cmd("EXPIRE", KEYS, RELATIVE_SECONDS, _options(_word("NX"), _word("XX"), _word("FOO"))),
    _cmd("PEXPIRE", KEYS, RELATIVE_MILLIS, _options(_word("NX"), _word("XX"))),
    _cmd("EXPIREAT", KEYS, ABSOLUTE_SECONDS, _options(_EXPIRE_FLAGS)),
    _cmd("PEXPIREAT", KEYS, ABSOLUTE_MILLIS, _options(_EXPIRE_FLAGS)),
    _cmd("TTL", KEYS),
    _cmd("PTTL", KEYS),
    _cmd("PERSIST", KEYS),
    _cmd("PING", _many(TEXT, min_size=0)),
)
# FLUSHDB empties everything, so it comes rarely (see ALL_COMMANDS).
FLUSH_COMMANDS = _cmd(
    "FLUSHDB", st.sampled_from([(), ("ASYNC",), ("sync",), ("x",), ("ASYNC", "x")])
)

# SCAN's order is the implementation's own, so the machine only sends SCANs that return
# every key in one call (cursor 0 and a large COUNT), and malformed ones for the errors;
# its scan_everything rule iterates with small counts.
_SCAN_FILTERS = st.one_of(
    _word("MATCH", "*"),
    st.tuples(_case("MATCH"), st.sampled_from(["k*", "*1", "?1", "[kz]*", "k[^1]", "\\k1",
                                               "*\u043b*", "", "[", "{t}*", "z[0-9]", "*[a-"])),
    st.tuples(_case("TYPE"), st.sampled_from(["string", "HASH", "zset", "set", "stream", "x"])),
)  # fmt: skip
SCAN_COMMANDS = st.one_of(
    _cmd("SCAN", st.just("0"), _options(_SCAN_FILTERS), st.just(("COUNT", "1000"))),
    _cmd("SCAN", st.just("0"), _options(_SCAN_FILTERS), st.just(("COUNT", "1000"))),
    _cmd("SCAN", st.sampled_from(["x", " 0", "-", "18446744073709551616", "1.5"])),
    _cmd("SCAN", st.just("0"), st.sampled_from([("COUNT", 0), ("COUNT", "x"), ("MATCH",),
                                                ("FOO", "1"), ("COUNT", -1), ("TYPE",)])),
)  # fmt: skip

# --- strings ------------------------------------------------------------------------------

STRING_VALUES = st.one_of(NUMERIC_TEXT, TEXT, INTEGERS)
_SET_OPTIONS = _options(
    _word("NX"),
    _word("XX"),
    _word("GET"),
    _word("KEEPTTL"),
    st.tuples(_case("EX"), RELATIVE_SECONDS),
    st.tuples(_case("PX"), RELATIVE_MILLIS),
    st.tuples(_case("EXAT"), ABSOLUTE_SECONDS),
    st.tuples(_case("PXAT"), ABSOLUTE_MILLIS),
    _word("BOGUS"),
)
STRING_COMMANDS = st.one_of(
    _cmd("GET", STRING_KEYS),
    _cmd("GET", STRING_KEYS),
    _cmd("SET", STRING_KEYS, STRING_VALUES),
    _cmd("SET", STRING_KEYS, STRING_VALUES, _SET_OPTIONS),
    _cmd("SET", STRING_KEYS, STRING_VALUES, _SET_OPTIONS),
    _cmd("SET", STRING_KEYS, STRING_VALUES, _SET_OPTIONS, _word("EX")),  # EX without a time
    # The layout record's write: set if missing, and say what was there.
    _cmd("SET", STRING_KEYS, STRING_VALUES, _word("NX"), _word("GET")),
    _cmd(
        "SET",
        STRING_KEYS,
        STRING_VALUES,
        _word("GET"),
        _word("NX"),
        _maybe(st.tuples(_case("PX"), st.just(200_000))),
    ),
    _cmd("MGET", _many(STRING_KEYS)),
    _cmd("MSET", _pairs(STRING_KEYS, STRING_VALUES)),
    _cmd("MSET", STRING_KEYS, STRING_VALUES, STRING_KEYS),  # odd: an arity error at run time
    _cmd("INCR", STRING_KEYS),
    _cmd("DECR", STRING_KEYS),
    _cmd("INCRBY", STRING_KEYS, INTEGER_ARGS),
    _cmd("DECRBY", STRING_KEYS, INTEGER_ARGS),
)

# --- hashes -------------------------------------------------------------------------------

HASH_VALUES = st.one_of(NUMERIC_TEXT, TEXT, INTEGERS)
HASH_COMMANDS = st.one_of(
    _cmd("HSET", HASH_KEYS, _pairs(NAMES, HASH_VALUES)),
    _cmd("HSET", HASH_KEYS, _pairs(NAMES, HASH_VALUES)),
    _cmd("HSET", HASH_KEYS, NAMES, HASH_VALUES, NAMES),  # odd
    _cmd("HSETNX", HASH_KEYS, NAMES, HASH_VALUES),
    _cmd("HGET", HASH_KEYS, NAMES),
    _cmd("HMGET", HASH_KEYS, _many(NAMES)),
    _cmd("HGETALL", HASH_KEYS),
    _cmd("HKEYS", HASH_KEYS),
    _cmd("HVALS", HASH_KEYS),
    _cmd("HDEL", HASH_KEYS, _many(NAMES)),
    _cmd("HEXISTS", HASH_KEYS, NAMES),
    _cmd("HLEN", HASH_KEYS),
    _cmd("HINCRBY", HASH_KEYS, NAMES, INTEGER_ARGS),
    _cmd("HINCRBY", HASH_KEYS, NAMES, INTEGER_ARGS),
)

# --- sets ---------------------------------------------------------------------------------

SET_COMMANDS = st.one_of(
    _cmd("SADD", SET_KEYS, _many(NAMES)),
    _cmd("SADD", SET_KEYS, _many(NAMES)),
    _cmd("SREM", SET_KEYS, _many(NAMES)),
    _cmd("SMEMBERS", SET_KEYS),
    _cmd("SISMEMBER", SET_KEYS, NAMES),
    _cmd("SCARD", SET_KEYS),
)

# --- sorted sets --------------------------------------------------------------------------

_ZADD_FLAGS = _options(*(_word(w) for w in ("NX", "XX", "GT", "LT", "CH", "INCR", "CH")))
_LIMIT = st.tuples(_case("LIMIT"), OFFSETS, COUNTS)
_WITHSCORES = _maybe(_word("WITHSCORES"))
_REV = _maybe(_word("REV"))
_ANY_ZRANGE_OPTIONS = _options(
    _word("WITHSCORES"), _word("REV"), _word("BYSCORE"), _word("BYLEX"), _LIMIT, _word("LIMIT"),
    st.tuples(_case("LIMIT"), st.just("x"), st.just(1)), _word("BOGUS"),
)  # fmt: skip
ZSET_COMMANDS = st.one_of(
    _cmd("ZADD", ZSET_KEYS, _pairs(SCORES, NAMES)),
    _cmd("ZADD", ZSET_KEYS, _ZADD_FLAGS, _pairs(SCORES, NAMES)),
    _cmd("ZADD", ZSET_KEYS, _ZADD_FLAGS, _pairs(SCORES, NAMES)),
    _cmd("ZADD", ZSET_KEYS, _pairs(st.just(0), NAMES)),  # one score: BYLEX's documented case
    _cmd("ZADD", ZSET_KEYS, _ZADD_FLAGS, SCORES),  # a score without a member
    _cmd("ZINCRBY", ZSET_KEYS, SCORES, NAMES),
    _cmd("ZREM", ZSET_KEYS, _many(NAMES)),
    _cmd("ZSCORE", ZSET_KEYS, NAMES),
    _cmd("ZMSCORE", ZSET_KEYS, _many(NAMES)),
    _cmd("ZCARD", ZSET_KEYS),
    _cmd("ZCOUNT", ZSET_KEYS, SCORE_INTERVALS),
    _cmd("ZRANK", ZSET_KEYS, NAMES),
    _cmd("ZREVRANK", ZSET_KEYS, NAMES),
    # ZRANGE, well-formed in each of its three kinds...
    _cmd("ZRANGE", ZSET_KEYS, RANK_INTERVALS, _REV, _WITHSCORES),
    _cmd("ZRANGE", ZSET_KEYS, RANK_INTERVALS, _REV, _WITHSCORES),
    _cmd("ZRANGE", ZSET_KEYS, SCORE_INTERVALS, _word("BYSCORE"), _REV,
         _maybe(_LIMIT), _WITHSCORES),
    _cmd("ZRANGE", ZSET_KEYS, SCORE_INTERVALS, _word("BYSCORE"), _REV,
         _maybe(_LIMIT), _WITHSCORES),
    _cmd("ZRANGE", ZSET_KEYS, LEX_INTERVALS, _word("BYLEX"), _REV, _maybe(_LIMIT)),
    _cmd("ZRANGE", ZSET_KEYS, LEX_INTERVALS, _word("BYLEX"), _REV, _maybe(_LIMIT)),
    _cmd("ZREVRANGE", ZSET_KEYS, RANK_INTERVALS, _WITHSCORES),
    _cmd("ZRANGEBYSCORE", ZSET_KEYS, SCORE_INTERVALS, _WITHSCORES, _maybe(_LIMIT)),
    _cmd("ZREVRANGEBYSCORE", ZSET_KEYS, SCORE_INTERVALS, _maybe(_LIMIT), _WITHSCORES),
    _cmd("ZRANGEBYLEX", ZSET_KEYS, LEX_INTERVALS, _maybe(_LIMIT)),
    _cmd("ZREVRANGEBYLEX", ZSET_KEYS, LEX_INTERVALS, _maybe(_LIMIT)),
    # ... and any options in any order, on any of the range commands.
    _cmd("ZRANGE", ZSET_KEYS, st.one_of(RANKS, SCORE_BOUNDS, LEX_BOUNDS),
         st.one_of(RANKS, SCORE_BOUNDS, LEX_BOUNDS), _ANY_ZRANGE_OPTIONS),
    st.tuples(
        st.sampled_from(["ZREVRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX",
                         "zrevrangebylex"]),
        ZSET_KEYS, st.one_of(RANKS, SCORE_BOUNDS, LEX_BOUNDS),
        st.one_of(RANKS, SCORE_BOUNDS, LEX_BOUNDS), _ANY_ZRANGE_OPTIONS,
    ).map(lambda t: (*t[:4], *t[4])),
    _cmd("ZREMRANGEBYSCORE", ZSET_KEYS, SCORE_INTERVALS),
    _cmd("ZREMRANGEBYRANK", ZSET_KEYS, RANK_INTERVALS),
    # What layout 2's lex indexes use: counts, pages from an offset (REV too), and trims.
    _cmd("ZLEXCOUNT", ZSET_KEYS, LEX_INTERVALS),
    _cmd("ZLEXCOUNT", ZSET_KEYS, LEX_INTERVALS),
    _cmd("ZREMRANGEBYLEX", ZSET_KEYS, LEX_INTERVALS),
    _cmd("ZRANGE", ZSET_KEYS, LEX_INTERVALS, _word("BYLEX"), _word("REV"), _LIMIT),
    _cmd("ZRANGE", ZSET_KEYS, LEX_INTERVALS, _word("BYLEX"), _LIMIT),
)  # fmt: skip

# --- streams ------------------------------------------------------------------------------

_GOOD_TRIM = st.one_of(
    st.tuples(_case("MAXLEN"), st.sampled_from([0, 1, 2, 3, 10])),
    st.tuples(_case("MAXLEN"), st.just("="), st.sampled_from([0, 1, 2, 5])),
    st.tuples(_case("MINID"), st.sampled_from(["1-2", "2", "3-5", "0", "4"])),
    st.tuples(_case("MINID"), st.just("="), st.sampled_from(["1-1", "2-0"])),
)
# "~" trims differently by design (see the memory driver's streams module), so it only
# comes in combinations that fail before anything is trimmed.
_BAD_TRIM = st.one_of(
    st.tuples(_case("MAXLEN"), st.sampled_from([-1, "x", "1.5"])),
    st.tuples(_case("MINID"), st.sampled_from(["x", "5-*", "-", "+"])),
    st.tuples(_case("MAXLEN"), st.just("~"), st.sampled_from([-1, "x"])),
    st.tuples(_case("LIMIT"), st.sampled_from([0, 5, -1, "x"])),
    _word("MAXLEN"),
)
_XADD_OPTIONS = st.one_of(
    st.just(()),
    st.just(()),
    _options(_word("NOMKSTREAM"), _GOOD_TRIM),
    _options(_word("NOMKSTREAM"), _GOOD_TRIM, _BAD_TRIM),
)
_FIELDS = _pairs(NAMES, TEXT)
_COUNT = st.tuples(_case("COUNT"), COUNTS)
STREAM_COMMANDS = st.one_of(
    _cmd("XADD", STREAM_KEYS, _XADD_OPTIONS, STREAM_IDS, _FIELDS),
    _cmd("XADD", STREAM_KEYS, _XADD_OPTIONS, STREAM_IDS, _FIELDS),
    _cmd("XADD", STREAM_KEYS, _XADD_OPTIONS, st.just("*"), _FIELDS),
    _cmd("XADD", STREAM_KEYS, _XADD_OPTIONS, STREAM_IDS, NAMES),  # a field without a value
    _cmd("XADD", STREAM_KEYS, _XADD_OPTIONS, STREAM_IDS, _FIELDS, NAMES),
    _cmd("XTRIM", STREAM_KEYS, _GOOD_TRIM),
    _cmd("XTRIM", STREAM_KEYS, _options(_GOOD_TRIM, _BAD_TRIM)),
    _cmd("XRANGE", STREAM_KEYS, RANGE_IDS, RANGE_IDS, _maybe(_COUNT)),
    _cmd("XRANGE", STREAM_KEYS, RANGE_IDS, RANGE_IDS, _options(_COUNT, _word("COUNT"),
                                                               _word("FOO"))),
    _cmd("XREVRANGE", STREAM_KEYS, RANGE_IDS, RANGE_IDS, _maybe(_COUNT)),
    _cmd("XLEN", STREAM_KEYS),
    _cmd("XDEL", STREAM_KEYS, _many(STREAM_IDS)),
)  # fmt: skip

# --- scripts ------------------------------------------------------------------------------
#
# Small random Lua programs over the keys they declare: commands through redis.call and
# redis.pcall (valid, failing and malformed), values of every Lua type returned or passed as
# arguments, and errors raised every way a script can. A key is only ever named as KEYS[i]
# (the memory driver refuses undeclared keys), values that Redis leaves in an unspecified
# order (HGETALL, SMEMBERS) are not returned, and nothing depends on time or randomness
# (math.random only after math.randomseed). ``error({})`` is never raised: it crashes Redis
# 7.0 (a NULL message).


def lua_string(value: str | bytes) -> str:
    """A Lua string literal for ``value``: every byte but letters and digits escaped."""
    raw = value.encode() if isinstance(value, str) else value
    return (
        "'" + "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\{b:03d}" for b in raw) + "'"
    )


_LUA_VALUES = st.one_of(
    NAMES.map(lua_string),
    st.sampled_from(["'10'", "'-1'", "'x'", "''", "'1.5'", "'b\\0c'"]),
    st.sampled_from(["1", "0", "-3", "2.5", "0.1", "1e17", "2^53", "-(2^63)", "1/0", "7"]),
    st.sampled_from(["ARGV[1]", "ARGV[2]", "#ARGV"]),
)
# Argument types Redis refuses in a command.
_LUA_BAD_VALUES = st.sampled_from(["{}", "true", "nil", "false"])


def _key(index: int) -> str:
    return f"KEYS[{index}]"


def _script_command(numkeys: int) -> st.SearchStrategy[str]:
    """The arguments of one redis.call, as Lua source."""
    key = st.integers(1, numkeys + 1).map(_key)  # sometimes past the last key: nil
    value = st.one_of(*[_LUA_VALUES] * 8, _LUA_BAD_VALUES)
    lex = st.sampled_from(["'-'", "'+'", "'[a'", "'(a'", "'[b'", "'(c'", "'x'"])
    forms = [
        st.just("'PING'"),
        st.sampled_from(["'NOPE', 1", "'GET'", "'SET'", "'EVAL', 'return 1', 0"]),
        st.tuples(
            st.sampled_from(
                [
                    "'GET'",
                    "'INCR'",
                    "'TYPE'",
                    "'EXISTS'",
                    "'DEL'",
                    "'UNLINK'",
                    "'HLEN'",
                    "'ZCARD'",
                    "'XLEN'",
                    "'SCARD'",
                ]
            ),
            key,
        ),
        st.tuples(
            st.just("'SET'"),
            key,
            value,
            st.sampled_from(
                ["", ", 'NX'", ", 'XX'", ", 'GET'", ", 'NX', 'GET'", ", 'EX', 1000", ", 'BAD'"]
            ),
        ),
        st.tuples(st.sampled_from(["'INCRBY'", "'DECRBY'"]), key, value),
        st.tuples(
            st.sampled_from(["'HSET'", "'HSETNX'", "'HINCRBY'"]), key, NAMES.map(lua_string), value
        ),
        st.tuples(st.sampled_from(["'HGET'", "'HEXISTS'", "'HDEL'"]), key, NAMES.map(lua_string)),
        st.tuples(st.just("'ZADD'"), key, value, NAMES.map(lua_string)),
        st.tuples(st.sampled_from(["'ZSCORE'", "'ZRANK'", "'ZREM'"]), key, NAMES.map(lua_string)),
        st.tuples(
            st.just("'ZRANGE'"),
            key,
            st.sampled_from(["0, -1", "0, -1, 'WITHSCORES'", "1, 2", "'x', 1"]),
        ),
        st.tuples(
            st.sampled_from(["'ZLEXCOUNT'", "'ZREMRANGEBYLEX'", "'ZRANGEBYLEX'"]), key, lex, lex
        ),
        st.tuples(
            st.just("'ZRANGE'"),
            key,
            lex,
            lex,
            st.sampled_from(
                [
                    ", 'BYLEX'",
                    ", 'BYLEX', 'LIMIT', 1, 2",
                    ", 'BYLEX', 'REV', 'LIMIT', 0, 1",
                    ", 'BYLEX', 'WITHSCORES'",
                ]
            ),
        ),
        st.tuples(st.sampled_from(["'SADD'", "'SREM'", "'SISMEMBER'"]), key, NAMES.map(lua_string)),
        st.tuples(
            st.just("'XADD'"),
            key,
            st.sampled_from(["'1-1'", "'2-0'", "'0-0'", "'x'"]),
            NAMES.map(lua_string),
            value,
        ),
        st.tuples(st.just("'MGET'"), key, key),
        st.tuples(st.just("'EXPIRE'"), key, st.sampled_from(["1000", "'x'", "0"])),
    ]
    return (
        st.one_of(*forms)
        .map(lambda parts: parts if isinstance(parts, str) else ", ".join(p for p in parts if p))
        .map(lambda text: text.replace(", , ", ", ").replace(", ,", ","))
    )


_ERRORS = st.sampled_from([
    "error('boom')", "error('boom', 0)", "error({err = 'CODE here'})", "error({err = 'low x'})",
    "error(12)", "error()", "error('two\\nlines', 0)", "return nope", "x = 1",
    "string.len = nil", "redis.call = nil", "rawset(_G, 'y', 1)", "local t = nil; return t.x",
    "return 1 + {}", "return redis.error_reply('My message')", "return redis.error_reply('one')",
    "return {err = 'EXPLICIT no suffix'}", "return redis.status_reply('FINE')",
    "return {ok = 'STATUS'}",
])  # fmt: skip


def _script(numkeys: int) -> st.SearchStrategy[str]:
    """A program: a few statements, then a return (or an error)."""
    command = _script_command(numkeys)
    statement = st.one_of(
        command.map(lambda c: f"redis.call({c})"),
        command.map(lambda c: f"redis.pcall({c})"),
        command.map(lambda c: f"local ok, e = pcall(redis.call, {c})"),
    )
    value = st.one_of(
        command.map(lambda c: f"redis.call({c})"),
        command.map(lambda c: f"redis.pcall({c})"),
        command.map(lambda c: f"type(redis.pcall({c}))"),
        command.map(lambda c: f"redis.pcall({c}).err"),
        command.map(lambda c: f"redis.pcall({c}).ok"),
        command.map(lambda c: f"{{pcall(redis.call, {c})}}"),
        _LUA_VALUES,
        st.sampled_from(["true", "false", "nil", "{1, nil, 2}", "{1.9, -1.9, {'a', {}}}", "2^63",
                         "0/0", "{KEYS[1], ARGV[1]}", "{a = 1}", "#KEYS", "_VERSION",
                         "redis.sha1hex('x')", "table.concat({1, 'a', 2.5}, '-')",
                         "string.format('%5.1f', 2.25)"]),
    )  # fmt: skip
    ending = st.one_of(*[value.map(lambda v: f"return {v}")] * 4, _ERRORS)
    return st.tuples(st.lists(statement, max_size=3), ending).map(
        lambda t: "\n".join([*t[0], t[1]])
    )


@st.composite
def _eval(draw: st.DrawFn) -> Cmd:
    numkeys = draw(st.integers(0, 3))
    keys = draw(st.lists(st.sampled_from(ALL_KEYS), min_size=numkeys, max_size=numkeys))
    argv = draw(st.lists(st.one_of(NUMERIC_TEXT, TEXT), max_size=2))
    name = draw(st.sampled_from(["EVAL", "eval", b"EVAL"]))
    return (name, draw(_script(numkeys)), numkeys, *keys, *argv)


# A few fixed programs, so that SCRIPT LOAD, EVALSHA, SCRIPT EXISTS and SCRIPT FLUSH meet.
_FIXED = [
    "return redis.call('INCR', KEYS[1])",
    "return {KEYS[1], ARGV[1], redis.call('TYPE', KEYS[1]).ok}",
    "return redis.call('ZLEXCOUNT', KEYS[1], '-', '+')",
    "error('fixed')",
]
_FIXED_SHAS = [hashlib.sha1(p.encode()).hexdigest() for p in _FIXED]

SCRIPT_COMMANDS = st.one_of(
    _eval(),
    _eval(),
    _eval(),
    _cmd("EVAL", st.sampled_from(_FIXED), st.just(1), KEYS, _many(TEXT, min_size=0)),
    _cmd("SCRIPT", st.just("LOAD"), st.sampled_from([*_FIXED, "return (", "return 1 +"])),
    _cmd("EVALSHA", st.sampled_from([*_FIXED_SHAS, "0" * 40, "x"]), st.just(1), KEYS, TEXT),
    _cmd("EVALSHA", st.sampled_from(_FIXED_SHAS).map(str.upper), st.just(1), KEYS),
    _cmd("EVALSHA", st.sampled_from(_FIXED_SHAS), st.sampled_from([-1, 2, "x"]), KEYS),
    _cmd("SCRIPT", st.just("EXISTS"), _many(st.sampled_from([*_FIXED_SHAS, "0" * 40]))),
    _cmd("EVAL", st.sampled_from(["return 1", "return ("]), st.sampled_from([0, -1, 5, "x"])),
)
# SCRIPT FLUSH empties the server's script cache, so it comes rarely (see ALL_COMMANDS).
SCRIPT_FLUSH_COMMANDS = _cmd(
    "SCRIPT", st.just("FLUSH"), st.sampled_from([(), ("SYNC",), ("async",), ("NOW",)])
)

# --- anything else ------------------------------------------------------------------------

# Names Redis does not know, with arguments that exercise the error's truncation rules.
UNKNOWN_COMMANDS = st.tuples(
    st.sampled_from(["FOO", "foo", "GETT", "", "Z\nADD", "x" * 130]),
    st.lists(st.one_of(TEXT, st.just("a" * 140), st.just("new\nline")), max_size=3),
).map(lambda t: (t[0], *t[1]))

# Sorted sets and streams have the most intricate replies, so they come most often; the
# first branch is what hypothesis falls back to when it simplifies, so it is a useful one.
ALL_COMMANDS = st.one_of(
    *[ZSET_COMMANDS] * 4,
    *[STREAM_COMMANDS] * 3,
    *[STRING_COMMANDS] * 2,
    *[HASH_COMMANDS] * 2,
    *[SCRIPT_COMMANDS] * 2,
    SET_COMMANDS,
    KEY_COMMANDS,
    SCAN_COMMANDS,
    UNKNOWN_COMMANDS,
    FLUSH_COMMANDS,
    SCRIPT_FLUSH_COMMANDS,
)


def _mangle(command: Cmd, how: int) -> Cmd:
    # One command in ten loses its last argument or gains one: Redis's arity errors.
    if how == 18 and len(command) > 1:
        return command[:-1]
    if how == 19:
        return (*command, "extra")
    return command


COMMANDS = st.tuples(ALL_COMMANDS, st.integers(0, 19)).map(lambda t: _mangle(*t))
