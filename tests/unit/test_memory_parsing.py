"""The memory driver's ports of Redis's number parsing and glob matching.

Expected values are what Redis 7.0 (and C's strtod/strtoull under glibc) do; the
differential suite checks the same corners against a live server.
"""

from __future__ import annotations

import math

import pytest

from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._glob import glob_match
from kvstore.drivers.memory._parse import (
    format_double,
    parse_cursor,
    parse_float,
    parse_int,
    parse_lex_range,
    parse_score_range,
    string2ll,
    string2ull,
    strtod,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"0", 0),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"+1", None),
        (b"01", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1_000", None),
        (b"1e3", None),
        (b"", None),
        (b"-", None),
        ("\u0661".encode(), None),
    ],
)
def test_string2ll(raw: bytes, value: int | None) -> None:
    assert string2ll(raw) == value


def test_parse_int_error() -> None:
    with pytest.raises(ReplyError, match=r"^ERR value is not an integer or out of range$"):
        parse_int(b"1.0")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"7", 7),
        (b"+7", 7),  # strtoull takes a sign
        (b" 7", 7),  # and leading spaces
        (b"007", 7),
        (b"18446744073709551615", 2**64 - 1),
        (b"18446744073709551616", None),
        (b"-1", None),  # a canonical negative number is refused first
        (b"-01", 2**64 - 1),  # but strtoull wraps a non-canonical one
        (b"", None),
        (b"7 ", None),
        (b"0x7", None),
    ],
)
def test_string2ull(raw: bytes, value: int | None) -> None:
    assert string2ull(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"0", 0), (b"", 0), (b"+5", 5), (b"-1", 2**64 - 1), (b"12\x00junk", 12)],
)
def test_scan_cursor(raw: bytes, value: int) -> None:
    assert parse_cursor(raw) == value


@pytest.mark.parametrize("raw", [b" 0", b"x", b"1.5", b"18446744073709551616", b"-"])
def test_bad_scan_cursor(raw: bytes) -> None:
    with pytest.raises(ReplyError, match=r"^ERR invalid cursor$"):
        parse_cursor(raw)


@pytest.mark.parametrize(
    ("raw", "value", "end", "out_of_range"),
    [
        (b"1.5", 1.5, 3, False),
        (b"  -2e3x", -2000.0, 6, False),
        (b"0x10", 16.0, 4, False),
        (b"0x1p-2", 0.25, 6, False),
        (b"0x", 0.0, 1, False),  # C reads the 0 and stops at the x
        (b"1e", 1.0, 1, False),
        (b"inf", math.inf, 3, False),
        (b"-Infinity", -math.inf, 9, False),
        (b"infin", math.inf, 3, False),
        (b"1e400", math.inf, 5, True),
        (b"1e-400", 0.0, 6, True),
        (b"0e-400", 0.0, 6, False),
        (b"5e-324", 5e-324, 6, False),
        (b"", 0.0, 0, False),
        (b" ", 0.0, 0, False),  # nothing converted: end stays at the very start
        (b"1_0", 1.0, 1, False),
    ],
)
def test_strtod(raw: bytes, value: float, end: int, out_of_range: bool) -> None:
    assert strtod(raw) == (value, end, out_of_range)


def test_strtod_nan() -> None:
    value, end, _ = strtod(b"nan(123)x")
    assert math.isnan(value)
    assert end == 8


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"1", 1.0), (b"-0", -0.0), (b".5", 0.5), (b"5.", 5.0), (b"0x10", 16.0), (b"+inf", math.inf)],
)
def test_parse_float(raw: bytes, value: float) -> None:
    assert parse_float(raw) == value


@pytest.mark.parametrize(
    "raw", [b"", b" 1", b"1 ", b"nan", b"1e400", b"1e-400", b"1_0", b"abc", b"3\x00"]
)
def test_parse_float_refuses(raw: bytes) -> None:
    with pytest.raises(ReplyError, match=r"^ERR value is not a valid float$"):
        parse_float(raw)


def test_score_range_is_lenient_like_zslparserange() -> None:
    spec = parse_score_range(b"( 1", b"")  # spaces, and "" reads as 0
    assert (spec.min, spec.minex, spec.max, spec.maxex) == (1.0, True, 0.0, False)
    assert parse_score_range(b"-1e400", b"(") == (-math.inf, 0.0, False, True)
    with pytest.raises(ReplyError, match=r"^ERR min or max is not a float$"):
        parse_score_range(b"1 ", b"2")
    with pytest.raises(ReplyError, match=r"^ERR min or max is not a float$"):
        parse_score_range(b"nan", b"2")


def test_lex_range() -> None:
    low, high = parse_lex_range(b"[a", b"+")
    assert (low.value, low.exclusive, low.infinity) == (b"a", False, 0)
    assert high.infinity == 1
    with pytest.raises(ReplyError, match=r"^ERR min or max not valid string range item$"):
        parse_lex_range(b"a", b"+")
    with pytest.raises(ReplyError):
        parse_lex_range(b"-", b"+x")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, b"1.5"),
        (0.1, b"0.10000000000000001"),
        (1e20, b"1e+20"),
        (100.0, b"100"),
        (1e16, b"10000000000000000"),
        (-0.0, b"-0"),
        (math.inf, b"inf"),
        (-math.inf, b"-inf"),
        (5e-324, b"4.9406564584124654e-324"),
    ],
)
def test_format_double_is_redis_7_0(value: float, text: bytes) -> None:
    assert format_double(value) == text


@pytest.mark.parametrize(
    ("pattern", "string", "matches"),
    [
        (b"*", b"anything", True),
        (b"*", b"", False),  # SCAN never asks: it treats a lone * as "no pattern"
        (b"", b"", True),
        (b"k*", b"k", True),
        (b"k*", b"xk", False),
        (b"*1", b"k1", True),
        (b"?1", b"k1", True),
        (b"?1", b"1", False),
        (b"h?llo", b"hallo", True),
        (b"h[ae]llo", b"hello", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hallo", True),  # a reversed range still matches
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hallo", False),
        (b"[", b"x", False),
        (b"[a", b"a", True),  # an unterminated class still matches its bytes
        (b"*[a-", b"xa", True),
        (b"a\\", b"a\\", True),  # a trailing backslash matches itself
        (b"[\\]]", b"]", True),
        (b"*\xd0\xbb*", "ключ".encode(), True),
        (b"[\x80-\xff]", b"\x90", True),
        (b"[\x00-\x7f]", b"\x90", False),
        (b"[\x7f-\x80]", b"\x90", True),  # signed chars: the range wraps over all highs
        (b"a*a*a*a*a*a*a*a*a*a*b", b"a" * 60, False),  # no exponential blow-up
    ],
)
def test_glob(pattern: bytes, string: bytes, matches: bool) -> None:
    assert glob_match(pattern, string) is matches
