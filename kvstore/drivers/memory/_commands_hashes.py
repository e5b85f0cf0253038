"""Hash commands. A hash is a ``dict``, which keeps insertion order as a small Redis hash
(a listpack) does; Redis does not promise any order for large ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from kvstore.drivers.base import Reply
from kvstore.drivers.memory._errors import OVERFLOW, ReplyError, arity_error
from kvstore.drivers.memory._parse import INT64_MAX, INT64_MIN, parse_int, string2ll

if TYPE_CHECKING:
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS"]


def hset(ks: Keyspace, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:  # the key and then field/value pairs
        raise arity_error("hset")
    key = args[0]
    fields = ks.read(key, dict)
    if fields is None:
        fields = {}
        ks.create(key, fields)
    added = 0
    for i in range(1, len(args), 2):
        field = args[i]
        if field not in fields:
            added += 1
        fields[field] = args[i + 1]
    return added


def hsetnx(ks: Keyspace, args: list[bytes]) -> Reply:
    key, field = args[0], args[1]
    fields = ks.read(key, dict)
    if fields is None:
        ks.create(key, {field: args[2]})
        return 1
    if field in fields:
        return 0
    fields[field] = args[2]
    return 1


def hget(ks: Keyspace, args: list[bytes]) -> Reply:
    fields = ks.read(args[0], dict)
    return None if fields is None else fields.get(args[1])


def hmget(ks: Keyspace, args: list[bytes]) -> Reply:
    fields = ks.read(args[0], dict) or {}
    return [fields.get(field) for field in args[1:]]


def hgetall(ks: Keyspace, args: list[bytes]) -> Reply:
    fields = ks.read(args[0], dict)
    out: list[Reply] = []
    if fields:
        for pair in fields.items():
            out.extend(pair)
    return out


def hkeys(ks: Keyspace, args: list[bytes]) -> Reply:
    return cast(Reply, list(ks.read(args[0], dict) or ()))


def hvals(ks: Keyspace, args: list[bytes]) -> Reply:
    fields = ks.read(args[0], dict)
    return cast(Reply, list(fields.values())) if fields else []


def hdel(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    fields = ks.read(key, dict)
    if fields is None:
        return 0
    deleted = 0
    for field in args[1:]:
        if fields.pop(field, None) is not None:
            deleted += 1
    if not fields:
        ks.delete(key)
    return deleted


def hexists(ks: Keyspace, args: list[bytes]) -> Reply:
    fields = ks.read(args[0], dict)
    return int(fields is not None and args[1] in fields)


def hlen(ks: Keyspace, args: list[bytes]) -> Reply:
    return len(ks.read(args[0], dict) or ())


def hincrby(ks: Keyspace, args: list[bytes]) -> Reply:
    key, field = args[0], args[1]
    delta = parse_int(args[2])
    fields = ks.read(key, dict)
    current = 0
    if fields is not None and field in fields:
        parsed = string2ll(fields[field])
        if parsed is None:
            raise ReplyError("ERR hash value is not an integer")
        current = parsed
    result = current + delta
    if not INT64_MIN <= result <= INT64_MAX:
        raise ReplyError(OVERFLOW)
    if fields is None:
        fields = {}
        ks.create(key, fields)
    fields[field] = b"%d" % result
    return result


HANDLERS = {
    "HSET": hset,
    "HSETNX": hsetnx,
    "HGET": hget,
    "HMGET": hmget,
    "HGETALL": hgetall,
    "HKEYS": hkeys,
    "HVALS": hvals,
    "HDEL": hdel,
    "HEXISTS": hexists,
    "HLEN": hlen,
    "HINCRBY": hincrby,
}
