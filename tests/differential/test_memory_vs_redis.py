"""MemoryDriver against real Redis and against fakeredis: random command sequences.

The state machine (see machine.py) sends the same commands, alone and in batches, atomic
and not, to MemoryDriver and to the oracle, and compares every reply and every error.
"""

from __future__ import annotations

import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kvstore.drivers.base import _REGISTRY
from kvstore.drivers.redis import RedisDriver
from tests.differential.fakeredis_deviations import FAKEREDIS_DEVIATIONS
from tests.differential.machine import Oracle, make_machine

SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.redis
def test_memory_driver_matches_redis(portal: BlockingPortal, differential_redis_url: str) -> None:
    driver = RedisDriver.from_url(differential_redis_url)
    try:
        machine = make_machine(portal, Oracle("Redis", driver))
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        # The machine flushes the server's script cache: leave kvstore's scripts loaded, as
        # other tests on this server found them.
        portal.call(
            driver.execute, [("SCRIPT", "LOAD", script.lua) for script in _REGISTRY.values()]
        )
        portal.call(driver.aclose)


def test_memory_driver_matches_fakeredis(portal: BlockingPortal) -> None:
    import fakeredis

    driver = RedisDriver(fakeredis.FakeAsyncRedis(protocol=2), owns_client=True)
    try:
        machine = make_machine(portal, Oracle("fakeredis", driver, FAKEREDIS_DEVIATIONS))
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        portal.call(driver.aclose)
