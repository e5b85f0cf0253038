"""Transport failures: idempotent requests retry with bounded backoff, the rest fail clearly.

No test measures time: retries are counted at the server (faults served, commands run),
and timeouts are forced with a hang fault that outlasts the client's timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from kvstore.drivers._retry import RetryPolicy
from kvstore.drivers.base import Script
from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import BatchError, ConnectionFailedError, TransactionAbortedError
from kvstore.upstash_server import Fault, UpstashServer
from tests.upstash.conftest import FAST_RETRY, HANG, TIMEOUT

pytestmark = pytest.mark.anyio

TRANSPORT_FAULTS = [
    pytest.param(Fault.error(500), id="500"),
    pytest.param(Fault.error(502), id="502"),
    pytest.param(Fault.error(503), id="503"),
    pytest.param(Fault.malformed(), id="malformed-json"),
    pytest.param(Fault.drop(), id="dropped-connection"),
]


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_idempotent_request_is_retried_until_it_succeeds(
    server: UpstashServer, driver: UpstashDriver, fault: Fault
) -> None:
    await driver.execute([("SET", "k", "v")])
    server.faults.inject(fault, times=FAST_RETRY.attempts - 1)
    with server.stats.measure() as usage:
        assert await driver.execute([("GET", "k")], idempotent=True) == [b"v"]
    assert server.faults.struck == FAST_RETRY.attempts - 1
    assert usage.total_requests == 1  # the faulted attempts ran nothing


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_retries_stop_after_the_policy_attempts(
    server: UpstashServer, driver: UpstashDriver, fault: Fault
) -> None:
    server.faults.inject(fault, times=FAST_RETRY.attempts + 2)
    with pytest.raises(ConnectionFailedError) as caught:
        await driver.execute([("GET", "k")], idempotent=True)
    assert server.faults.struck == FAST_RETRY.attempts
    assert server.faults.pending == 2
    assert "not retried" not in str(caught.value)


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_non_idempotent_request_fails_at_once_with_a_clear_error(
    server: UpstashServer, driver: UpstashDriver, fault: Fault
) -> None:
    server.faults.inject(fault, times=2)
    with pytest.raises(ConnectionFailedError) as caught:
        await driver.execute([("INCR", "n")])
    assert server.faults.struck == 1
    message = str(caught.value)
    assert f"{server.url}/pipeline failed" in message
    assert "not retried because the request is not marked idempotent" in message
    assert "may or may not have been applied" in message


async def test_the_messages_say_what_went_wrong(
    server: UpstashServer, driver: UpstashDriver
) -> None:
    expected = {
        Fault.error(503): "HTTP 503 (injected fault: HTTP 503)",
        Fault.malformed(): "a malformed JSON reply",
        Fault.drop(): "RemoteProtocolError",
    }
    for fault, text in expected.items():
        server.faults.inject(fault)
        with pytest.raises(ConnectionFailedError, match=re.escape("failed: " + text)):
            await driver.execute([("GET", "k")])


# -- timeouts (each costs one client timeout of real time, so they are few) ------------------


async def test_a_timeout_is_a_connection_failure(server: UpstashServer) -> None:
    server.faults.inject(Fault.hang(HANG), times=2)
    async with UpstashDriver(server.url, server.token, timeout=TIMEOUT) as driver:
        with pytest.raises(ConnectionFailedError, match=f"no reply within {TIMEOUT} s"):
            await driver.execute([("INCR", "n")])
    assert server.faults.struck == 1


async def test_an_idempotent_request_is_retried_after_a_timeout(server: UpstashServer) -> None:
    server.faults.inject(Fault.hang(HANG))
    async with UpstashDriver(server.url, server.token, timeout=TIMEOUT, retry=FAST_RETRY) as d:
        assert await d.execute([("PING",)], idempotent=True) == [b"PONG"]
    assert server.faults.struck == 1


@pytest.mark.parametrize("applied", [False, True], ids=["before-apply", "after-apply"])
async def test_an_atomic_batch_that_timed_out_is_all_or_nothing(
    server: UpstashServer, applied: bool
) -> None:
    server.faults.inject(Fault.hang(HANG, applied=applied))
    batch = [("SET", "{t}:a", "1"), ("INCR", "{t}:n")]
    async with UpstashDriver(server.url, server.token, timeout=TIMEOUT) as driver:
        with pytest.raises(ConnectionFailedError):
            await driver.execute(batch, atomic=True)
        exists = await driver.execute([("EXISTS", "{t}:a", "{t}:n")])
    assert exists == [2 if applied else 0]


@dataclass(frozen=True, slots=True)
class RecordingRetry(RetryPolicy):
    """The driver's retry policy, noting each wait it asks for."""

    waits: list[float] | None = None

    def delay(self, retry: int) -> float:
        wait = RetryPolicy.delay(self, retry)
        assert self.waits is not None
        self.waits.append(wait)
        return wait


async def test_backoff_between_retries_is_bounded(server: UpstashServer) -> None:
    policy = RecordingRetry(attempts=4, base_delay=0.001, max_delay=0.003, waits=[])
    server.faults.inject(Fault.error(503), times=10)
    async with UpstashDriver(server.url, server.token, retry=policy) as driver:
        with pytest.raises(ConnectionFailedError):
            await driver.execute([("GET", "k")], idempotent=True)
    assert policy.waits is not None
    assert len(policy.waits) == policy.attempts - 1
    assert all(0 <= wait <= policy.max_delay for wait in policy.waits)


async def test_an_unreachable_server_is_a_connection_failure() -> None:
    # Port 9 (discard) has no listener on a test machine: the connection is refused.
    async with UpstashDriver("http://127.0.0.1:9", "token", retry=FAST_RETRY) as driver:
        with pytest.raises(ConnectionFailedError, match="ConnectError"):
            await driver.execute([("PING",)], idempotent=True)


# -- what a failure may have done ----------------------------------------------------------


async def test_a_failed_non_idempotent_request_may_have_been_applied(
    server: UpstashServer, driver: UpstashDriver
) -> None:
    # The reason the driver does not retry it: a retry would increment twice.
    server.faults.inject(Fault.drop(applied=True))
    with pytest.raises(ConnectionFailedError, match="may or may not have been applied"):
        await driver.execute([("INCR", "n")])
    assert await driver.execute([("GET", "n")]) == [b"1"]


async def test_an_idempotent_request_applied_before_the_failure_is_retried_harmlessly(
    server: UpstashServer, driver: UpstashDriver
) -> None:
    server.faults.inject(Fault.error(503, applied=True))
    with server.stats.measure() as usage:
        assert await driver.execute([("SET", "k", "v")], idempotent=True) == [b"OK"]
    assert usage.total_requests == 2  # applied twice, same outcome
    assert await driver.execute([("GET", "k")]) == [b"v"]


@pytest.mark.parametrize("applied", [False, True], ids=["before-apply", "after-apply"])
@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_a_failed_atomic_batch_is_all_or_nothing(
    server: UpstashServer, driver: UpstashDriver, fault: Fault, applied: bool
) -> None:
    server.faults.inject(Fault(fault.kind, applied, fault.status, fault.seconds))
    batch = [("SET", "{t}:a", "1"), ("HSET", "{t}:h", "f", "v"), ("INCR", "{t}:n")]
    with pytest.raises(ConnectionFailedError):
        await driver.execute(batch, atomic=True)
    exists = await driver.execute([("EXISTS", "{t}:a", "{t}:h", "{t}:n")])
    assert exists == [3 if applied else 0]


async def test_an_oversized_atomic_batch_is_refused_whole() -> None:
    big = "x" * 2048
    async with (
        UpstashServer(max_request_size=1024) as server,
        UpstashDriver(server.url, server.token) as driver,
    ):
        with pytest.raises(TransactionAbortedError, match="max request size exceeded"):
            await driver.execute([("SET", "a", "1"), ("SET", "b", big)], atomic=True)
        assert await driver.execute([("EXISTS", "a", "b")]) == [0]


async def test_a_pipeline_refused_whole_fails_every_command(driver: UpstashDriver) -> None:
    # A pipeline is not atomic, but one the server refuses outright ran nothing at all.
    with pytest.raises(BatchError) as caught:
        await driver.execute([("SET", "a", "1"), ("SELECT", "1")])
    assert not isinstance(caught.value, TransactionAbortedError)
    assert [e.index for e in caught.value.errors] == [0, 1]
    assert caught.value.results == caught.value.errors
    assert await driver.execute([("EXISTS", "a")]) == [0]


# -- scripts -----------------------------------------------------------------------------


INCR_BY = Script("faults-incrby", "return redis.call('INCRBY', KEYS[1], ARGV[1])")


async def test_idempotent_script_call_is_retried(any_server: UpstashServer) -> None:
    # Declared idempotent only for the test's sake: the driver trusts the caller.
    async with UpstashDriver(any_server.url, any_server.token, retry=FAST_RETRY) as driver:
        any_server.faults.inject(Fault.error(503), times=2)
        assert await driver.run(INCR_BY, ["n"], [5], idempotent=True) == 5
        assert any_server.faults.struck == 2


async def test_non_idempotent_script_call_is_not_retried(any_server: UpstashServer) -> None:
    async with UpstashDriver(any_server.url, any_server.token, retry=FAST_RETRY) as driver:
        any_server.faults.inject(Fault.error(503), times=2)
        with pytest.raises(ConnectionFailedError, match="not retried"):
            await driver.run(INCR_BY, ["n"], [5])
        assert any_server.faults.struck == 1
