"""Argument parsing exactly as Redis 7 does it: integers, doubles, cursors, ranges.

Redis parses numbers with a handful of C routines whose quirks are part of its observable
behaviour (``"1e3"`` is a valid score but not an integer, ``" 1"`` is a valid range bound
but not a valid score, ``"0x10"`` is a valid score equal to 16, ...). Each helper here names
the Redis routine it mirrors, so the command modules never parse a number by hand.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from kvstore.drivers.memory._errors import NOT_FLOAT, NOT_INTEGER, ReplyError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UINT64_MAX",
    "LexBound",
    "ScoreRange",
    "c_string",
    "format_double",
    "option",
    "parse_cursor",
    "parse_float",
    "parse_int",
    "parse_lex_range",
    "parse_score_range",
    "string2ll",
    "string2ull",
    "strtod",
]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1

#: What C's ``isspace`` accepts in the "C" locale.
_C_SPACE = b" \t\n\v\f\r"


def c_string(raw: bytes) -> bytes:
    """``raw`` as a C string function sees it: up to the first NUL byte."""
    return raw.split(b"\0", 1)[0] if b"\0" in raw else raw


def option(raw: bytes) -> bytes:
    """An option word ready to compare with upper-case literals, as ``strcasecmp`` sees it."""
    return c_string(raw).upper()


# --- integers ---------------------------------------------------------------------------


def string2ll(raw: bytes) -> int | None:
    """Redis's ``string2ll``: a canonical signed 64-bit decimal, or None.

    Canonical means what ``%lld`` would print: no sign but ``-``, no leading zeros or
    spaces, no ``-0``. Comparing with the re-printed value checks all of that at once.
    """
    if len(raw) > 20:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    if INT64_MIN <= value <= INT64_MAX and b"%d" % value == raw:
        return value
    return None


# The integers that commands take most often (counts, ranks, offsets), parsed in advance.
_SMALL_INTS = {b"%d" % i: i for i in range(-1024, 1025)}


def parse_int(raw: bytes) -> int:
    """Redis's ``getLongLongFromObjectOrReply``.

    Raises:
        ReplyError: ``ERR value is not an integer or out of range``.
    """
    value = _SMALL_INTS.get(raw)
    if value is not None:
        return value
    value = string2ll(raw)
    if value is None:
        raise ReplyError(NOT_INTEGER)
    return value


_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def strtoull(raw: bytes) -> tuple[int, int, bool]:
    """C's ``strtoull(raw, &end, 10)``: ``(value, end, overflowed)``.

    Like C it skips leading spaces, takes a sign (a ``-`` negates modulo 2**64) and stops at
    the first non-digit; with no digits at all it returns 0 and ``end == 0``.
    """
    match = _STRTOULL.match(raw)
    if match is None:
        return 0, 0, False
    sign, digits = match.groups()
    if len(digits.lstrip(b"0")) > 20 or int(digits) > UINT64_MAX:
        return UINT64_MAX, match.end(), True
    value = int(digits)
    return ((-value) & UINT64_MAX if sign == b"-" else value), match.end(), False


def string2ull(raw: bytes) -> int | None:
    """Redis's ``string2ull`` (stream ids): an unsigned 64-bit decimal, or None.

    A canonical negative number is refused, anything else goes to ``strtoull``, which is
    more lenient than ``string2ll`` (``"+1"``, ``" 1"`` and ``"01"`` are all accepted).
    """
    value = string2ll(raw)
    if value is not None:
        return value if value >= 0 else None
    value, end, overflowed = strtoull(raw)
    if overflowed or not raw or end != len(raw):
        return None
    return value


def parse_cursor(raw: bytes) -> int:
    """Redis's ``parseScanCursorOrReply`` (``strtoul`` with a few extra checks).

    Raises:
        ReplyError: ``ERR invalid cursor``.
    """
    value, end, overflowed = strtoull(raw)
    if (raw and raw[0] in _C_SPACE) or overflowed or (end < len(raw) and raw[end] != 0):
        raise ReplyError("ERR invalid cursor")
    return value


# --- doubles ----------------------------------------------------------------------------

# The grammar of C's strtod: spaces, a sign, then a hex float, a decimal float, an infinity
# or a NaN. Python's float() is more lenient (underscores, trailing spaces), so the regex
# decides how much C would consume and float() only converts that part.
_STRTOD = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?)(?:"
    rb"(0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?)"
    rb"|((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    rb"|([iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
    rb"|([nN][aA][nN](?:\([0-9A-Za-z_]*\))?)"
    rb")"
)


def _nonzero_mantissa(mantissa: bytes) -> bool:
    return mantissa.strip(b"0.") != b""


def strtod(raw: bytes) -> tuple[float, int, bool]:
    """C's ``strtod(raw, &end)``: ``(value, end, out_of_range)``.

    ``out_of_range`` is C's ``ERANGE`` for the two cases Redis cares about: a finite
    literal that overflows to an infinity, and a non-zero literal that underflows to zero.
    With nothing to convert it returns 0.0 and ``end == 0``, as C does.
    """
    match = _STRTOD.match(raw)
    if match is None:
        return 0.0, 0, False
    sign, hexa, decimal, _infinity, nan = match.groups()
    out_of_range = False
    if decimal is not None:
        value = float(decimal)
        if math.isinf(value):
            out_of_range = True
        elif value == 0.0:
            out_of_range = _nonzero_mantissa(re.split(rb"[eE]", decimal)[0])
    elif hexa is not None:
        try:
            value = float.fromhex(hexa.decode())
        except OverflowError:
            value, out_of_range = math.inf, True
        else:
            if value == 0.0:
                out_of_range = _nonzero_mantissa(re.split(rb"[pP]", hexa[2:])[0])
    elif nan is not None:
        value = math.nan
    else:
        value = math.inf
    return (-value if sign == b"-" else value), match.end(), out_of_range


_SIMPLE_DECIMAL = re.compile(rb"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def parse_float(raw: bytes) -> float:
    """Redis's ``getDoubleFromObjectOrReply`` (scores, increments).

    The whole argument must be one strtod number without leading space; NaN, overflow
    and underflow to zero are refused.

    Raises:
        ReplyError: ``ERR value is not a valid float``.
    """
    if raw.isdigit() and len(raw) < 16:  # ASCII digits only: the commonest scores of all
        return float(raw)
    if _SIMPLE_DECIMAL.fullmatch(raw):  # the common case, and it cannot overflow
        return float(raw)
    value, end, out_of_range = strtod(raw)
    if not raw or raw[0] in _C_SPACE or end != len(raw) or out_of_range or math.isnan(value):
        raise ReplyError(NOT_FLOAT)
    return value


def format_double(value: float) -> bytes:
    """A double as Redis 7.0 replies it (``%.17g``): ``b"1.5"``, ``b"0.10000000000000001"``."""
    return b"%.17g" % value


# --- sorted set ranges ------------------------------------------------------------------


class ScoreRange(NamedTuple):
    """A parsed ``min``/``max`` score interval (Redis's ``zrangespec``)."""

    min: float
    max: float
    minex: bool
    maxex: bool

    def is_empty(self) -> bool:
        """Whether no score can satisfy the interval."""
        return self.min > self.max or (self.min == self.max and (self.minex or self.maxex))


def _score_bound(raw: bytes) -> tuple[float, bool]:
    exclusive = raw[:1] == b"("
    body = raw[1:] if exclusive else raw
    if body.isdigit() or _SIMPLE_DECIMAL.fullmatch(body):
        # The common bounds (times in microseconds), which float() reads as strtod does:
        # correctly rounded, too many digits making an infinity, which is accepted here.
        return float(body), exclusive
    value, end, _ = strtod(body)
    # Redis checks only that strtod stopped at the C string's end and that it is no NaN;
    # spaces in front, "" (zero), overflow to infinity are all accepted.
    if (end < len(body) and body[end] != 0) or math.isnan(value):
        raise ReplyError("ERR min or max is not a float")
    return value, exclusive


def parse_score_range(min_raw: bytes, max_raw: bytes) -> ScoreRange:
    """Redis's ``zslParseRange``: ``1.5``, ``(1.5``, ``-inf``, ``+inf``.

    Raises:
        ReplyError: ``ERR min or max is not a float``.
    """
    low, minex = _score_bound(min_raw)
    high, maxex = _score_bound(max_raw)
    return ScoreRange(low, high, minex, maxex)


class LexBound(NamedTuple):
    """One end of a lexicographic range (Redis's ``zlexrangespec`` half).

    ``infinity`` is -1 for ``-`` (below every string), +1 for ``+`` (above every string)
    and 0 for a real ``[value`` or ``(value`` bound.
    """

    value: bytes
    exclusive: bool
    infinity: int


def _lex_bound(raw: bytes) -> LexBound:
    first = raw[:1]
    if first in (b"+", b"-") and raw[1:2] in (b"", b"\0"):
        return LexBound(b"", True, 1 if first == b"+" else -1)
    if first == b"(":
        return LexBound(raw[1:], True, 0)
    if first == b"[":
        return LexBound(raw[1:], False, 0)
    raise ReplyError("ERR min or max not valid string range item")


def parse_lex_range(min_raw: bytes, max_raw: bytes) -> tuple[LexBound, LexBound]:
    """Redis's ``zslParseLexRange``: ``-``, ``+``, ``[value``, ``(value``.

    Raises:
        ReplyError: ``ERR min or max not valid string range item``.
    """
    return _lex_bound(min_raw), _lex_bound(max_raw)
