"""Where fakeredis (2.41, the second oracle) departs from real Redis 7.0.

Real Redis is the truth: MemoryDriver is never bent towards fakeredis. Each entry was
checked against a Redis 7.0 server and narrows only what is compared when fakeredis is the
oracle. An entry without a reply predicate makes the machine skip any step holding such a
command (needed when fakeredis would change its data differently, or abort a transaction
where Redis does not); one with a reply predicate forgives just that difference in the
reply of just those commands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kvstore.drivers.base import encode_arg
from kvstore.drivers.memory._commands_streams import parse_add_or_trim
from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._parse import option
from kvstore.drivers.memory._table import TABLE
from kvstore.drivers.memory._zset import ZSet
from tests.differential.machine import Deviation, error_message

__all__ = ["FAKEREDIS_DEVIATIONS"]

Data = Mapping[bytes, object]


def _words(command: Sequence[Any]) -> tuple[str, list[bytes]]:
    """The command's upper-case name and its arguments as bytes."""
    name, *args = (encode_arg(word) for word in command)
    return name.decode(errors="replace").upper(), args


def _named(*names: str) -> Any:
    """A command predicate: the command is one of ``names``."""
    return lambda command, data: _words(command)[0] in names


# --- commands to skip -------------------------------------------------------------------


def _unknown_command(command: Sequence[Any], data: Data) -> bool:
    return _words(command)[0].encode() not in TABLE


# C's strtod reads hex floats ("0x10", "0x1p3") and refuses digit separators ("1_000");
# Python's float(), which fakeredis parses scores with, does the opposite.
_NOT_PYTHON_FLOAT = re.compile(rb"0[xX]|[0-9]_[0-9]")


def _strtod_only_number(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name.startswith("Z") and any(_NOT_PYTHON_FLOAT.search(arg) for arg in args)


# The exclusive interval bounds that have no next (or previous) id.
_UNSTEPPABLE = {b"(0-0", b"(18446744073709551615-18446744073709551615"}


def _unsteppable_interval(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name in ("XRANGE", "XREVRANGE") and any(arg in _UNSTEPPABLE for arg in args[1:3])


def _odd_cursor(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name == "SCAN" and bool(args) and not re.fullmatch(rb"[0-9]{1,18}", args[0])


def _missing_value(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    if name == "MSET":
        return len(args) % 2 == 1
    if name == "HSET":
        return len(args) % 2 == 0
    if name == "SCAN":  # the cursor, then option words that come in pairs
        return len(args) % 2 == 0
    if name == "XADD":
        try:
            fields = args[parse_add_or_trim(args, xadd=True).at + 1 :]
        except ReplyError:
            return False
        return len(fields) % 2 == 1
    return False


def _huge_expiry(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    if name not in ("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT") or len(args) < 2:
        return False
    try:
        return abs(int(args[1])) > 2**60
    except ValueError:
        return False


def _stream_write_arity(command: Sequence[Any], data: Data) -> bool:
    name = _words(command)[0]
    impl = TABLE.get(name.encode())
    return (
        name in ("XADD", "XDEL", "XTRIM")
        and impl is not None
        and not impl.accepts(len(command) - 1)
    )


def _expire_now(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name in ("EXPIRE", "PEXPIRE") and args[1:2] == [b"0"]


def _decrby_min(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name == "DECRBY" and args[1:2] == [b"-9223372036854775808"]


def _flushdb_sync(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name == "FLUSHDB" and [option(a) for a in args] == [b"SYNC"]


# Stream ids that Redis's strtoull-based parser takes and a strict one refuses: spaces,
# a "+" sign, a "-" sign inside the sequence ("1--01").
_LENIENT_ID = re.compile(rb"[ \t\n\v\f\r]|.\+|^\+.|--")


def _stream_ids(name: str, args: list[bytes]) -> list[bytes]:
    """The arguments of a stream command that are ids (as far as they can be told)."""
    if name == "XDEL":
        return args[1:]
    if name in ("XRANGE", "XREVRANGE"):
        return [arg[1:] if arg[:1] == b"(" else arg for arg in args[1:3]]
    ids = [args[i + 1] for i, arg in enumerate(args[:-1]) if option(arg) in (b"MINID", b"=")]
    if name == "XADD":
        try:
            ids.append(args[parse_add_or_trim(args, xadd=True).at])
        except (ReplyError, IndexError):
            ids.extend(args)
    return ids


def _lenient_stream_id(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name.startswith("X") and any(_LENIENT_ID.search(i) for i in _stream_ids(name, args))


def _zrank_with_more(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    return name in ("ZRANK", "ZREVRANK") and len(args) > 2


# --- replies to forgive -----------------------------------------------------------------


def _any_command(command: Sequence[Any], data: Data) -> bool:
    return True


def _zrange_family(command: Sequence[Any], data: Data) -> bool:
    return _words(command)[0].startswith(("ZRANGE", "ZREVRANGE"))


def _bylex_on_mixed_scores(command: Sequence[Any], data: Data) -> bool:
    name, args = _words(command)
    lex = name.endswith("BYLEX") or name == "ZLEXCOUNT"
    if not (lex or any(option(a) == b"BYLEX" for a in args[3:])):
        return False
    zset = data.get(args[0]) if args else None
    return isinstance(zset, ZSet) and len(set(zset.scores.values())) > 1


def _lex_trim_on_mixed_scores(command: Sequence[Any], data: Data) -> bool:
    return _words(command)[0] == "ZREMRANGEBYLEX" and _bylex_on_mixed_scores(
        ("ZRANGEBYLEX", *command[1:]), data
    )


def _both_failed(memory: object, fakeredis: object) -> bool:
    return error_message(memory) is not None and error_message(fakeredis) is not None


def _either_failed(memory: object, fakeredis: object) -> bool:
    return error_message(memory) is not None or error_message(fakeredis) is not None


def _wrongtype_instead(memory: object, fakeredis: object) -> bool:
    message = error_message(memory)
    return (
        message is not None
        and not message.startswith("WRONGTYPE")
        and (error_message(fakeredis) or "").startswith("WRONGTYPE")
    )


FAKEREDIS_DEVIATIONS = [
    # Steps skipped.
    Deviation(
        "scripts: fakeredis's Lua is not Redis 7.0's sandbox. Errors raised in a script lack "
        "'script: <sha1>, on @user_script:<line>.' (or say 'Error running script (call to "
        "f_<sha1>)'), globals and library tables are writable ('Script attempted to set "
        "global variables' only for new names), os, io, print, require and debug are there "
        "and unknown globals read as nil, redis.sha1hex is missing, math.random is another "
        "generator, and pcall does not turn an error table into its message (69 of the 131 "
        "programs of tests/unit/test_memory_scripting.py differ); SCRIPT LOAD caches a "
        "script that does not compile. Script commands are compared with real Redis only",
        _named("EVAL", "EVALSHA", "SCRIPT"),
    ),
    Deviation(
        "unknown command: fakeredis lower-cases the name and leaves out the arguments",
        _unknown_command,
    ),
    Deviation(
        "scores: fakeredis parses with Python's float(), so it refuses hex floats ('0x10') "
        "and accepts digit separators ('1_000'), where Redis's strtod does the opposite",
        _strtod_only_number,
    ),
    Deviation(
        "stream ids: Redis parses their numbers with strtoull, so ' 1-1', '+2' and '1--01' "
        "(a sequence of -01, wrapped to 2**64-1) are ids; fakeredis refuses them",
        _lenient_stream_id,
    ),
    Deviation(
        "XRANGE/XREVRANGE: an exclusive bound with no next id, such as (0-0 as the end, "
        "gives an empty reply in fakeredis, 'ERR invalid end ID for the interval' in Redis",
        _unsteppable_interval,
    ),
    Deviation(
        "SCAN cursor: fakeredis parses it as a signed integer ('ERR value is not an integer "
        "or out of range'); Redis uses strtoul, so '', '+0' and '-1' are cursors and junk "
        "is 'ERR invalid cursor'",
        _odd_cursor,
    ),
    Deviation(
        "a value missing (MSET, HSET or XADD with an odd pair, SCAN with an option word "
        "left without its value): fakeredis says 'ERR Wrong number of args calling Redis "
        "command from script', at queue time, aborting a transaction; Redis runs the "
        "command and gives its arity or syntax error",
        _missing_value,
    ),
    Deviation(
        "XADD, XDEL and XTRIM with too few arguments: fakeredis finds out when it runs "
        "them, Redis at queue time (which aborts a transaction)",
        _stream_write_arity,
    ),
    Deviation(
        "ZRANK and ZREVRANK with a third argument: fakeredis follows Redis 7.2, which added "
        "WITHSCORE; Redis 7.0 refuses it as a wrong number of arguments (at queue time, "
        "which aborts a transaction)",
        _zrank_with_more,
    ),
    Deviation(
        "EXPIRE and friends with a time that overflows once made absolute milliseconds: "
        "Redis refuses it ('ERR invalid expire time in 'expire' command'), fakeredis sets "
        "some deadline (or answers 0 for EXPIREAT)",
        _huge_expiry,
    ),
    Deviation(
        "EXPIRE or PEXPIRE of 0 (a deadline of right now) inside a transaction: Redis "
        "deletes the key at once, fakeredis still shows it to the next commands",
        _expire_now,
    ),
    Deviation(
        "ZREMRANGEBYLEX on a sorted set whose scores differ: fakeredis removes by member, "
        "Redis walks its listpack (see the BYLEX entry below), so the sets would differ",
        _lex_trim_on_mixed_scores,
    ),
    Deviation(
        "FLUSHDB SYNC (added in Redis 6.2): fakeredis refuses it as a syntax error",
        _flushdb_sync,
    ),
    Deviation(
        "DECRBY -9223372036854775808: Redis refuses it whatever the value ('ERR decrement "
        "would overflow'); fakeredis does the subtraction, so it succeeds on a negative "
        "value and words the error differently otherwise",
        _decrby_min,
    ),
    # Replies forgiven.
    Deviation(
        "a key of another type and a bad argument: fakeredis reports WRONGTYPE, Redis checks "
        "the arguments first (ZADD, ZRANGE, SET GET and others)",
        _any_command,
        _wrongtype_instead,
    ),
    Deviation(
        "ZRANGE and its older forms: fakeredis accepts a repeated REV, refuses "
        "'LIMIT <offset> -1' on a rank range (Redis lets it through), and words two errors "
        "differently ('ERR syntax error' alone for WITHSCORES with BYLEX; 'not a valid "
        "string range item'). Only replies where one side failed are forgiven",
        _zrange_family,
        _either_failed,
    ),
    Deviation(
        "BYLEX and ZLEXCOUNT on a sorted set whose scores differ (unspecified by Redis's "
        "documentation, but a fixed listpack walk in Redis for small sets, mirrored by "
        "MemoryDriver): fakeredis filters by member instead",
        _bylex_on_mixed_scores,
        lambda memory, fakeredis: True,
    ),
    Deviation(
        "ZLEXCOUNT and ZREMRANGEBYLEX with a bad bound: fakeredis says 'ERR min or max not "
        "a valid string range item', Redis 'ERR min or max not valid string range item'",
        _named("ZLEXCOUNT", "ZREMRANGEBYLEX"),
        lambda memory, fakeredis: (
            error_message(memory) == "ERR min or max not valid string range item"
            and error_message(fakeredis) == "ERR min or max not a valid string range item"
        ),
    ),
    Deviation(
        "SET with a bad time: fakeredis says 'ERR invalid expire time in set' (Redis: "
        "'ERR invalid expire time in 'set' command'), and checks the time before the "
        "options, where Redis reports conflicting options first. Only replies where both "
        "sides failed are forgiven",
        _named("SET"),
        _both_failed,
    ),
    Deviation(
        "EXPIRE and friends with bad arguments: fakeredis checks the time before the "
        "options and reports GT with LT as 'NX and XX, GT or LT options at the same time "
        "are not compatible'; Redis checks the options first and has a message for GT with "
        "LT. Only replies where both sides failed are forgiven",
        _named("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"),
        _both_failed,
    ),
    Deviation(
        "an increment that yields -0 (ZINCRBY, ZADD INCR): Redis replies the double it "
        "computed, '-0', fakeredis '0'",
        _named("ZADD", "ZINCRBY"),
        lambda memory, fakeredis: memory == b"-0" and fakeredis == b"0",
    ),
    Deviation(
        "XDEL on a missing key: fakeredis checks the ids first and fails on a bad one, "
        "Redis answers 0 before looking at them",
        _named("XDEL"),
        lambda memory, fakeredis: memory == 0 and error_message(fakeredis) is not None,
    ),
    Deviation(
        "XRANGE/XREVRANGE with COUNT 0 or below on a stream: Redis replies a null array "
        "(None), fakeredis an empty one",
        _named("XRANGE", "XREVRANGE"),
        lambda memory, fakeredis: memory is None and fakeredis == [],
    ),
]
