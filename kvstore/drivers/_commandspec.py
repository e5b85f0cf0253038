"""What kvstore knows about each Redis command it uses, copied from Redis 7's ``COMMAND INFO``.

One table serves two readers: the memory driver (arity errors, which commands write) and
the cluster router (which arguments are keys, to refuse a batch that spans hash slots).
"""

from __future__ import annotations

from typing import NamedTuple

from kvstore.drivers.base import Command, encode_arg

__all__ = ["COMMANDS", "CommandSpec", "command_keys", "command_name"]


class CommandSpec(NamedTuple):
    """Arity (negative: at least that many), key positions and whether the command writes."""

    arity: int
    first_key: int
    last_key: int
    step: int
    write: bool


COMMANDS: dict[str, CommandSpec] = {
    # keys
    "DEL": CommandSpec(-2, 1, -1, 1, True),
    "UNLINK": CommandSpec(-2, 1, -1, 1, True),
    "EXISTS": CommandSpec(-2, 1, -1, 1, False),
    "TYPE": CommandSpec(2, 1, 1, 1, False),
    "EXPIRE": CommandSpec(-3, 1, 1, 1, True),
    "PEXPIRE": CommandSpec(-3, 1, 1, 1, True),
    "EXPIREAT": CommandSpec(-3, 1, 1, 1, True),
    "PEXPIREAT": CommandSpec(-3, 1, 1, 1, True),
    "TTL": CommandSpec(2, 1, 1, 1, False),
    "PTTL": CommandSpec(2, 1, 1, 1, False),
    "PERSIST": CommandSpec(2, 1, 1, 1, True),
    "SCAN": CommandSpec(-2, 0, 0, 0, False),
    # strings
    "GET": CommandSpec(2, 1, 1, 1, False),
    "SET": CommandSpec(-3, 1, 1, 1, True),
    "MGET": CommandSpec(-2, 1, -1, 1, False),
    "MSET": CommandSpec(-3, 1, -1, 2, True),
    "INCR": CommandSpec(2, 1, 1, 1, True),
    "INCRBY": CommandSpec(3, 1, 1, 1, True),
    "DECR": CommandSpec(2, 1, 1, 1, True),
    "DECRBY": CommandSpec(3, 1, 1, 1, True),
    # hashes
    "HSET": CommandSpec(-4, 1, 1, 1, True),
    "HGET": CommandSpec(3, 1, 1, 1, False),
    "HMGET": CommandSpec(-3, 1, 1, 1, False),
    "HGETALL": CommandSpec(2, 1, 1, 1, False),
    "HDEL": CommandSpec(-3, 1, 1, 1, True),
    "HEXISTS": CommandSpec(3, 1, 1, 1, False),
    "HLEN": CommandSpec(2, 1, 1, 1, False),
    "HINCRBY": CommandSpec(4, 1, 1, 1, True),
    "HSETNX": CommandSpec(4, 1, 1, 1, True),
    "HKEYS": CommandSpec(2, 1, 1, 1, False),
    "HVALS": CommandSpec(2, 1, 1, 1, False),
    # sorted sets
    "ZADD": CommandSpec(-4, 1, 1, 1, True),
    "ZREM": CommandSpec(-3, 1, 1, 1, True),
    "ZSCORE": CommandSpec(3, 1, 1, 1, False),
    "ZMSCORE": CommandSpec(-3, 1, 1, 1, False),
    "ZCARD": CommandSpec(2, 1, 1, 1, False),
    "ZCOUNT": CommandSpec(4, 1, 1, 1, False),
    "ZLEXCOUNT": CommandSpec(4, 1, 1, 1, False),
    "ZINCRBY": CommandSpec(4, 1, 1, 1, True),
    "ZRANK": CommandSpec(3, 1, 1, 1, False),
    "ZREVRANK": CommandSpec(3, 1, 1, 1, False),
    "ZRANGE": CommandSpec(-4, 1, 1, 1, False),
    "ZREVRANGE": CommandSpec(-4, 1, 1, 1, False),
    "ZRANGEBYSCORE": CommandSpec(-4, 1, 1, 1, False),
    "ZREVRANGEBYSCORE": CommandSpec(-4, 1, 1, 1, False),
    "ZRANGEBYLEX": CommandSpec(-4, 1, 1, 1, False),
    "ZREVRANGEBYLEX": CommandSpec(-4, 1, 1, 1, False),
    "ZREMRANGEBYSCORE": CommandSpec(4, 1, 1, 1, True),
    "ZREMRANGEBYRANK": CommandSpec(4, 1, 1, 1, True),
    "ZREMRANGEBYLEX": CommandSpec(4, 1, 1, 1, True),
    # sets
    "SADD": CommandSpec(-3, 1, 1, 1, True),
    "SREM": CommandSpec(-3, 1, 1, 1, True),
    "SMEMBERS": CommandSpec(2, 1, 1, 1, False),
    "SISMEMBER": CommandSpec(3, 1, 1, 1, False),
    "SCARD": CommandSpec(2, 1, 1, 1, False),
    # streams
    "XADD": CommandSpec(-5, 1, 1, 1, True),
    "XRANGE": CommandSpec(-4, 1, 1, 1, False),
    "XREVRANGE": CommandSpec(-4, 1, 1, 1, False),
    "XLEN": CommandSpec(2, 1, 1, 1, False),
    "XDEL": CommandSpec(-3, 1, 1, 1, True),
    "XTRIM": CommandSpec(-4, 1, 1, 1, True),
    # scripting and server (EVAL/EVALSHA keys are found from numkeys)
    "EVAL": CommandSpec(-3, 0, 0, 0, False),
    "EVALSHA": CommandSpec(-3, 0, 0, 0, False),
    "SCRIPT": CommandSpec(-2, 0, 0, 0, False),
    "PING": CommandSpec(-1, 0, 0, 0, False),
    "FLUSHDB": CommandSpec(-1, 0, 0, 0, True),
    "DBSIZE": CommandSpec(1, 0, 0, 0, False),
}


def command_name(command: Command) -> str:
    """The command's name, upper-case."""
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def command_keys(command: Command) -> list[bytes]:
    """The key arguments of ``command``, as bytes.

    A malformed command (too few arguments, a bad ``numkeys``) yields the keys it has: the
    server will refuse it with its own error message.

    Raises:
        KeyError: for a command missing from :data:`COMMANDS`.
    """
    name = command_name(command)
    if name in ("EVAL", "EVALSHA"):
        try:
            numkeys = int(command[2])
        except (IndexError, ValueError):
            return []
        return [encode_arg(k) for k in command[3 : 3 + max(numkeys, 0)]]
    spec = COMMANDS[name]
    if spec.first_key == 0:
        return []
    last = len(command) - 1 if spec.last_key == -1 else min(spec.last_key, len(command) - 1)
    return [encode_arg(command[i]) for i in range(spec.first_key, last + 1, spec.step)]
