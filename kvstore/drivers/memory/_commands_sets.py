"""Set commands. SMEMBERS order is unspecified, in Redis as here."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from kvstore.drivers.base import Reply

if TYPE_CHECKING:
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS"]


def sadd(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    members = ks.read(key, set)
    if members is None:
        members = set()
        ks.create(key, members)
    before = len(members)
    members.update(args[1:])
    return len(members) - before


def srem(ks: Keyspace, args: list[bytes]) -> Reply:
    key = args[0]
    members = ks.read(key, set)
    if members is None:
        return 0
    before = len(members)
    members.difference_update(args[1:])
    if not members:
        ks.delete(key)
    return before - len(members)


def smembers(ks: Keyspace, args: list[bytes]) -> Reply:
    return cast(Reply, list(ks.read(args[0], set) or ()))


def sismember(ks: Keyspace, args: list[bytes]) -> Reply:
    members = ks.read(args[0], set)
    return int(members is not None and args[1] in members)


def scard(ks: Keyspace, args: list[bytes]) -> Reply:
    return len(ks.read(args[0], set) or ())


HANDLERS = {
    "SADD": sadd,
    "SREM": srem,
    "SMEMBERS": smembers,
    "SISMEMBER": sismember,
    "SCARD": scard,
}
