"""MemoryDriver against real Redis and against fakeredis: random command sequences."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kvstore.drivers.base import encode_arg
from kvstore.drivers.memory._parse import option
from kvstore.drivers.memory._table import TABLE
from kvstore.drivers.memory._zset import ZSet
from kvstore.drivers.redis import RedisDriver
from tests.differential.machine import Deviation, Oracle, error_message, make_machine

SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    # redis-py's asyncio client needs asyncio; MemoryDriver runs under trio in tests/unit.
    with start_blocking_portal("asyncio") as portal:
        yield portal


def _words(command: Sequence[Any]) -> tuple[str, list[bytes]]:
    """The command's upper-case name and its arguments as bytes."""
    name, *args = (encode_arg(word) for word in command)  # type: ignore[arg-type]
    return name.decode(errors="replace").upper(), args


def _unknown_command(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    del data
    return _words(command)[0].encode() not in TABLE


# C's strtod reads hex floats ("0x10", "0x1p3") and refuses digit separators ("1_000");
# Python's float(), which fakeredis parses scores with, does the opposite.
_NOT_PYTHON_FLOAT = re.compile(rb"0[xX]|[0-9]_[0-9]")


def _strtod_only_number(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    return name.startswith("Z") and any(_NOT_PYTHON_FLOAT.search(arg) for arg in args)


# The exclusive bounds that have no next (or previous) id.
_UNSTEPPABLE = {b"(0-0", b"(18446744073709551615-18446744073709551615"}


def _unsteppable_interval(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    return name in ("XRANGE", "XREVRANGE") and any(arg in _UNSTEPPABLE for arg in args[1:3])


def _odd_cursor(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    return name == "SCAN" and bool(args) and not re.fullmatch(rb"[0-9]{1,18}", args[0])


def _missing_value(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    if name == "MSET":
        return len(args) % 2 == 1
    if name == "HSET":
        return len(args) % 2 == 0
    if name == "SCAN":
        return len(args) % 2 == 0 and option(args[-1]) in (b"COUNT", b"MATCH", b"TYPE")
    return False


def _zrank_with_more(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    return name in ("ZRANK", "ZREVRANK") and len(args) > 2


def _xdel(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    return _words(command)[0] == "XDEL"


def _xrange_family(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    return _words(command)[0] in ("XRANGE", "XREVRANGE")


def _zrange_family(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name = _words(command)[0]
    return name.startswith(("ZRANGE", "ZREVRANGE"))


def _either_failed(memory: object, fakeredis: object) -> bool:
    return error_message(memory) is not None or error_message(fakeredis) is not None


def _bylex_on_mixed_scores(command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
    name, args = _words(command)
    if not (name.endswith("BYLEX") or any(option(a) == b"BYLEX" for a in args[3:])):
        return False
    zset = data.get(args[0]) if args else None
    return isinstance(zset, ZSet) and len(zset) > 0 and zset.order[0][0] != zset.order[-1][0]


# fakeredis departs from real Redis in these ways. When fakeredis is the oracle, a step
# that holds such a command is skipped. Real Redis is the truth: MemoryDriver is never
# bent towards fakeredis, and each entry here was checked against Redis 7.0.
FAKEREDIS_DEVIATIONS = [
    Deviation(
        "unknown command: fakeredis lower-cases the name and leaves out the arguments",
        _unknown_command,
    ),
    Deviation(
        "scores: fakeredis parses with Python's float(), so it refuses hex floats and "
        "accepts digit separators, where Redis's strtod does the opposite",
        _strtod_only_number,
    ),
    Deviation(
        "XRANGE/XREVRANGE: an exclusive bound with no next id, such as (0-0 as the end, "
        "gives an empty reply in fakeredis, 'ERR invalid end ID for the interval' in Redis",
        _unsteppable_interval,
    ),
    Deviation(
        "SCAN cursor: fakeredis parses it as a signed integer ('ERR value is not an integer "
        "or out of range'); Redis uses strtoul, so '', '+0' and '-1' are cursors and junk is "
        "'ERR invalid cursor'",
        _odd_cursor,
    ),
    Deviation(
        "a value missing (MSET or HSET with an odd pair, SCAN with an option and no "
        "value): fakeredis says 'ERR Wrong number of args calling Redis command from "
        "script', and at queue time, aborting a transaction; Redis runs the command and "
        "gives its arity or syntax error",
        _missing_value,
    ),
    Deviation(
        "ZRANGE and its older forms: fakeredis checks the key's type before the options "
        "(WRONGTYPE where Redis says 'ERR syntax error'), accepts a repeated REV, refuses "
        "'LIMIT <offset> -1' on a rank range (Redis lets it through), and words two errors "
        "differently ('ERR syntax error' alone for WITHSCORES with BYLEX; 'not a valid "
        "string range item'). Only replies where one side failed are forgiven",
        _zrange_family,
        _either_failed,
    ),
    Deviation(
        "ZRANK and ZREVRANK with a third argument: fakeredis follows Redis 7.2, which added "
        "WITHSCORE; Redis 7.0 refuses it as a wrong number of arguments (at queue time, "
        "which aborts a transaction)",
        _zrank_with_more,
    ),
    Deviation(
        "XDEL on a missing key: fakeredis checks the ids first and fails on a bad one, "
        "Redis answers 0 before looking at them",
        _xdel,
        lambda memory, fakeredis: memory == 0 and error_message(fakeredis) is not None,
    ),
    Deviation(
        "XRANGE/XREVRANGE with COUNT 0 or below on a stream: Redis replies a null array "
        "(None), fakeredis an empty one",
        _xrange_family,
        lambda memory, fakeredis: memory is None and fakeredis == [],
    ),
    Deviation(
        "BYLEX on a sorted set whose scores differ (unspecified by Redis's documentation, "
        "but a fixed listpack walk in Redis for small sets, mirrored by MemoryDriver): "
        "fakeredis filters by member instead",
        _bylex_on_mixed_scores,
        lambda memory, fakeredis: True,
    ),
]


@pytest.mark.redis
def test_memory_driver_matches_redis(portal: BlockingPortal, differential_redis_url: str) -> None:
    driver = RedisDriver.from_url(differential_redis_url)
    try:
        machine = make_machine(portal, Oracle("Redis", driver))
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        portal.call(driver.aclose)


def test_memory_driver_matches_fakeredis(portal: BlockingPortal) -> None:
    import fakeredis

    driver = RedisDriver(fakeredis.FakeAsyncRedis(protocol=2), owns_client=True)
    try:
        machine = make_machine(portal, Oracle("fakeredis", driver, FAKEREDIS_DEVIATIONS))
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        portal.call(driver.aclose)
