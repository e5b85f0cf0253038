"""String commands: GET, SET, MGET, MSET and the integer counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers.memory._commands_keys import expiry_deadline
from kvstore.drivers.memory._errors import (
    NOT_INTEGER,
    OVERFLOW,
    SYNTAX,
    WRONGTYPE,
    ReplyError,
    arity_error,
)
from kvstore.drivers.memory._parse import INT64_MAX, INT64_MIN, option, parse_int, string2ll

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS", "parse_set_options"]


def get(ks: Keyspace, args: list[bytes]) -> Reply:
    value = ks.data.get(args[0])
    if value is None or type(value) is bytes:
        return value
    raise ReplyError(WRONGTYPE)


_EXPIRY_UNITS = (b"EX", b"PX", b"EXAT", b"PXAT")


def parse_set_options(args: list[bytes]) -> tuple[bool, bool, bool, bool, bytes | None, int]:
    """SET's options, with Redis's rules about which may be combined.

    Returns:
        ``(nx, xx, get, keepttl, unit, index)``: ``unit`` is ``b"EX"``, ``b"PX"``,
        ``b"EXAT"``, ``b"PXAT"`` or None, and ``args[index]`` is its time argument.
    """
    nx = xx = get = keepttl = False
    unit: bytes | None = None
    at = 0
    i, size = 2, len(args)
    while i < size:
        word = option(args[i])
        if word == b"NX" and not xx:
            nx = True
        elif word == b"XX" and not nx:
            xx = True
        elif word == b"GET":
            get = True
        elif word == b"KEEPTTL" and unit is None:
            keepttl = True
        # A unit may be repeated (the last time wins) but not mixed with another one.
        elif word in _EXPIRY_UNITS and not keepttl and unit in (None, word) and i + 1 < size:
            unit, at = word, i + 1
            i += 1
        else:
            raise ReplyError(SYNTAX)
        i += 1
    return nx, xx, get, keepttl, unit, at


def set_(ks: Keyspace, args: list[bytes]) -> Reply:
    key, value = args[0], args[1]
    if len(args) == 2:  # the common case
        ks.set_string(key, value)
        return b"OK"
    nx, xx, get, keepttl, unit, at = parse_set_options(args)
    deadline = 0
    if unit is not None:
        seconds = unit in (b"EX", b"EXAT")
        amount = parse_int(args[at])
        if amount <= 0 or (seconds and amount > INT64_MAX // 1000):
            raise ReplyError("ERR invalid expire time in 'set' command")
        relative = unit in (b"EX", b"PX")
        deadline = expiry_deadline(ks, "set", amount, seconds=seconds, relative=relative)
    old: Reply = None
    if get:
        old = ks.data.get(key)  # type: ignore[assignment]
        if old is not None and type(old) is not bytes:
            raise ReplyError(WRONGTYPE)
    exists = key in ks.data
    if (nx and exists) or (xx and not exists):
        return old
    ks.set_string(key, value, keep_ttl=keepttl)
    if unit is not None:
        ks.expire_at(key, deadline)
    return old if get else b"OK"


def mget(ks: Keyspace, args: list[bytes]) -> Reply:
    data = ks.data
    return [value if type(value) is bytes else None for value in map(data.get, args)]


def mset(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) % 2:
        raise arity_error("mset")
    for i in range(0, len(args), 2):
        ks.set_string(args[i], args[i + 1])
    return b"OK"


def _increment(ks: Keyspace, key: bytes, delta: int) -> int:
    value = ks.data.get(key)
    if value is None:
        current = 0
    elif type(value) is not bytes:
        raise ReplyError(WRONGTYPE)
    else:
        parsed = string2ll(value)
        if parsed is None:
            raise ReplyError(NOT_INTEGER)
        current = parsed
    result = current + delta
    if not INT64_MIN <= result <= INT64_MAX:
        raise ReplyError(OVERFLOW)
    ks.set_string(key, b"%d" % result, keep_ttl=True)
    return result


def incr(ks: Keyspace, args: list[bytes]) -> Reply:
    return _increment(ks, args[0], 1)


def decr(ks: Keyspace, args: list[bytes]) -> Reply:
    return _increment(ks, args[0], -1)


def incrby(ks: Keyspace, args: list[bytes]) -> Reply:
    return _increment(ks, args[0], parse_int(args[1]))


def decrby(ks: Keyspace, args: list[bytes]) -> Reply:
    delta = parse_int(args[1])
    if delta == INT64_MIN:  # its negation does not fit in 64 bits
        raise ReplyError("ERR decrement would overflow")
    return _increment(ks, args[0], -delta)


HANDLERS = {
    "GET": get,
    "SET": set_,
    "MGET": mget,
    "MSET": mset,
    "INCR": incr,
    "DECR": decr,
    "INCRBY": incrby,
    "DECRBY": decrby,
}
