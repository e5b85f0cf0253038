"""Generic key commands (DEL, EXISTS, TYPE, expiry, SCAN) and the few server commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers.memory._errors import SYNTAX, ReplyError, arity_error
from kvstore.drivers.memory._glob import glob_match
from kvstore.drivers.memory._keyspace import TYPE_NAMES, Keyspace
from kvstore.drivers.memory._parse import (
    INT64_MAX,
    INT64_MIN,
    c_string,
    option,
    parse_cursor,
    parse_int,
)

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply

__all__ = ["HANDLERS", "expiry_deadline"]


def delete(ks: Keyspace, args: list[bytes]) -> Reply:
    return sum(ks.delete(key) for key in args)


def exists(ks: Keyspace, args: list[bytes]) -> Reply:
    data = ks.data
    return sum(key in data for key in args)


def type_(ks: Keyspace, args: list[bytes]) -> Reply:
    value = ks.data.get(args[0])
    return b"none" if value is None else TYPE_NAMES[type(value)]


def _invalid_expire(name: str) -> ReplyError:
    return ReplyError(f"ERR invalid expire time in '{name}' command")


def expiry_deadline(ks: Keyspace, name: str, when: int, *, seconds: bool, relative: bool) -> int:
    """A parsed EXPIRE-family time argument as an absolute deadline in milliseconds.

    Mirrors ``expireGenericCommand``: any 64-bit integer is accepted (negative ones mean
    "already expired") unless converting it to milliseconds or adding the clock overflows.

    Raises:
        ReplyError: ``ERR invalid expire time in '<name>' command``.
    """
    if seconds:
        # C's LLONG_MIN / 1000 truncates toward zero.
        if when > INT64_MAX // 1000 or when < -(-INT64_MIN // 1000):
            raise _invalid_expire(name)
        when *= 1000
    if relative:
        if when > INT64_MAX - ks.now:
            raise _invalid_expire(name)
        when += ks.now
    return when


def _expire(ks: Keyspace, args: list[bytes], name: str, *, seconds: bool, relative: bool) -> int:
    nx = xx = gt = lt = False
    for raw in args[2:]:
        word = option(raw)
        if word == b"NX":
            nx = True
        elif word == b"XX":
            xx = True
        elif word == b"GT":
            gt = True
        elif word == b"LT":
            lt = True
        else:
            text = c_string(raw).decode("utf-8", errors="replace")
            raise ReplyError(f"ERR Unsupported option {text}")
    if nx and (xx or gt or lt):
        raise ReplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise ReplyError("ERR GT and LT options at the same time are not compatible")
    key = args[0]
    deadline = expiry_deadline(ks, name, parse_int(args[1]), seconds=seconds, relative=relative)
    if key not in ks.data:
        return 0
    current = ks.expires.get(key)
    if (
        (nx and current is not None)
        or (xx and current is None)
        # No deadline counts as an infinite one: GT always fails, LT always passes.
        or (gt and (current is None or deadline <= current))
        or (lt and current is not None and deadline >= current)
    ):
        return 0
    if deadline <= ks.now:  # Redis deletes at once when the deadline is not in the future
        ks.delete(key)
    else:
        ks.expire_at(key, deadline)
    return 1


def expire(ks: Keyspace, args: list[bytes]) -> Reply:
    return _expire(ks, args, "expire", seconds=True, relative=True)


def pexpire(ks: Keyspace, args: list[bytes]) -> Reply:
    return _expire(ks, args, "pexpire", seconds=False, relative=True)


def expireat(ks: Keyspace, args: list[bytes]) -> Reply:
    return _expire(ks, args, "expireat", seconds=True, relative=False)


def pexpireat(ks: Keyspace, args: list[bytes]) -> Reply:
    return _expire(ks, args, "pexpireat", seconds=False, relative=False)


def ttl(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    if key not in ks.data:
        return -2
    deadline = ks.expires.get(key)
    if deadline is None:
        return -1
    return (max(deadline - ks.now, 0) + 500) // 1000  # rounded to the nearest second


def pttl(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    if key not in ks.data:
        return -2
    deadline = ks.expires.get(key)
    return -1 if deadline is None else max(deadline - ks.now, 0)


def persist(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    return int(key in ks.data and ks.persist(key))


def scan(ks: Keyspace, args: list[bytes]) -> Reply:
    cursor = parse_cursor(args[0])
    count = 10
    pattern: bytes | None = None
    kind: bytes | None = None
    i, size = 1, len(args)
    while i < size:
        word = option(args[i])
        if word == b"COUNT" and i + 1 < size:
            count = parse_int(args[i + 1])
            if count < 1:
                raise ReplyError(SYNTAX)
        elif word == b"MATCH" and i + 1 < size:
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        elif word == b"TYPE" and i + 1 < size:
            kind = option(args[i + 1]).lower()
        else:
            raise ReplyError(SYNTAX)
        i += 2
    cursor, found = ks.scan(cursor, count)
    data = ks.data
    keys: list[Reply] = [
        key
        for key in found
        if (pattern is None or glob_match(pattern, key))
        and (kind is None or TYPE_NAMES[type(data[key])] == kind)
    ]
    return [b"%d" % cursor, keys]


def dbsize(ks: Keyspace, args: list[bytes]) -> Reply:
    return len(ks.data)


def flushdb(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) > 1 or (args and option(args[0]) not in (b"SYNC", b"ASYNC")):
        raise ReplyError(SYNTAX)
    ks.flush()
    return b"OK"


def ping(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) > 1:
        raise arity_error("ping")
    return args[0] if args else b"PONG"


HANDLERS = {
    "DEL": delete,
    "UNLINK": delete,
    "EXISTS": exists,
    "TYPE": type_,
    "EXPIRE": expire,
    "PEXPIRE": pexpire,
    "EXPIREAT": expireat,
    "PEXPIREAT": pexpireat,
    "TTL": ttl,
    "PTTL": pttl,
    "PERSIST": persist,
    "SCAN": scan,
    "DBSIZE": dbsize,
    "FLUSHDB": flushdb,
    "PING": ping,
}
