"""upstash-redis (1.8) quirks that UpstashDriver works around.

Each test first shows the SDK's own behaviour against the local server, so that the day the
SDK changes, the test says which workaround may go; then shows what the driver does.
"""

from __future__ import annotations

import pytest
import redis
from upstash_redis.asyncio import Redis as UpstashClient
from upstash_redis.errors import UpstashError

from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import BatchError, TransactionAbortedError, UnsupportedError
from kvstore.upstash_server import Fault, UpstashServer

pytestmark = pytest.mark.anyio


def sdk_client(
    server: UpstashServer, *, rest_retries: int = 0, rest_retry_interval: float = 0.0
) -> UpstashClient:
    # No retries unless a test asks: the SDK retries any exception, its own included.
    return UpstashClient(
        server.url,
        server.token,
        rest_retries=rest_retries,
        rest_retry_interval=rest_retry_interval,
        allow_telemetry=False,
    )


# (1) A pipeline with an error entry --------------------------------------------------------


async def test_sdk_pipeline_raises_on_the_first_error_and_loses_the_other_results(
    server: UpstashServer,
) -> None:
    async with sdk_client(server) as sdk:
        pipe = sdk.pipeline()
        pipe.set("a", "text")
        pipe.hget("a", "f")
        pipe.set("b", "after")
        with pytest.raises(UpstashError, match="WRONGTYPE"):
            await pipe.exec()
        # The commands ran, but their results died with the exception.
        assert await sdk.get("b") == "after"


async def test_driver_reports_every_failed_command_and_keeps_the_other_results(
    driver: UpstashDriver,
) -> None:
    with pytest.raises(BatchError) as caught:
        await driver.execute(
            [("SET", "a", "text"), ("HGET", "a", "f"), ("SET", "b", "after"), ("INCR", "a")]
        )
    assert [(e.index, e.command) for e in caught.value.errors] == [(1, "HGET"), (3, "INCR")]
    assert caught.value.results[0] == b"OK"
    assert caught.value.results[2] == b"OK"


# (2) A transaction refused as a whole ---------------------------------------------------


async def test_sdk_crashes_on_a_refused_transaction(server: UpstashServer) -> None:
    async with sdk_client(server) as sdk:
        tx = sdk.multi()
        tx.set("a", "1")
        tx.execute(["GET"])  # wrong arity: refused at queue time, so nothing runs
        # /multi-exec answers {"error": ...}; the SDK iterates that dict as if it were the
        # list of results and fails on its first key.
        with pytest.raises(AttributeError):
            await tx.exec()


async def test_driver_turns_a_refused_transaction_into_transaction_aborted(
    driver: UpstashDriver,
) -> None:
    with pytest.raises(TransactionAbortedError) as caught:
        await driver.execute([("SET", "a", "1"), ("GET",), ("SET", "b", "2")], atomic=True)
    assert caught.value.index == 1
    assert caught.value.command == "GET"
    assert caught.value.message == "ERR wrong number of arguments for 'get' command"
    assert caught.value.results == [None, caught.value.errors[0], None]
    assert await driver.execute([("EXISTS", "a", "b")]) == [0]


async def test_a_refusal_that_names_no_command_blames_the_whole_transaction(
    driver: UpstashDriver,
) -> None:
    # SELECT is refused (as Upstash refuses connection commands), and the error names no
    # arity problem: every position carries it rather than a guessed one.
    with pytest.raises(TransactionAbortedError) as caught:
        await driver.execute([("SET", "a", "1"), ("SELECT", "1")], atomic=True)
    assert [e.index for e in caught.value.errors] == [0, 1]
    assert "not available" in caught.value.message
    assert await driver.execute([("EXISTS", "a")]) == [0]


# (3) Bytes: the SDK cannot send them and decodes every reply to str ----------------------


async def test_sdk_cannot_send_bytes(server: UpstashServer) -> None:
    async with sdk_client(server) as sdk:
        with pytest.raises(TypeError, match="bytes"):
            await sdk.set("k", b"\x00\xff")  # type: ignore[arg-type]


async def test_driver_refuses_bytes_that_are_not_text_and_sends_nothing(
    server: UpstashServer, driver: UpstashDriver
) -> None:
    with (
        server.stats.measure() as usage,
        pytest.raises(UnsupportedError, match=r"argument 2 of command #1 \(SET\).*not UTF-8"),
    ):
        await driver.execute([("SET", "a", "x"), ("SET", "k", b"\x00\xff")])
    assert usage.total_requests == 0
    assert driver.binary_safe is False


async def test_driver_sends_utf8_bytes_as_text(driver: UpstashDriver) -> None:
    await driver.execute([(b"SET", b"k", "héllo".encode())])
    assert await driver.execute([("GET", "k")]) == ["héllo".encode()]


@pytest.mark.redis
async def test_sdk_fails_on_stored_bytes_that_are_not_text_and_the_driver_reads_them(
    redis_backed_server: UpstashServer, upstash_redis_url: str
) -> None:
    # Another client (redis-py here) may store any bytes; replies must survive the trip.
    writer = redis.Redis.from_url(upstash_redis_url)
    writer.set("raw", b"\x00\xff\xfe")
    writer.close()
    async with sdk_client(redis_backed_server) as sdk:
        with pytest.raises(UnicodeDecodeError):
            await sdk.get("raw")
    async with UpstashDriver(redis_backed_server.url, redis_backed_server.token) as driver:
        assert await driver.execute([("GET", "raw")]) == [b"\x00\xff\xfe"]


# (4) Retries under trio ----------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_sdk_retry_fails_under_trio(server: UpstashServer) -> None:
    server.faults.inject(Fault.malformed())
    async with sdk_client(server, rest_retries=1, rest_retry_interval=0.001) as sdk:
        # The SDK's retry sleeps with asyncio.sleep, which needs an asyncio loop.
        with pytest.raises(RuntimeError, match="no running event loop"):
            await sdk.get("k")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_driver_retries_idempotent_requests_under_trio(
    server: UpstashServer, driver: UpstashDriver
) -> None:
    await driver.execute([("SET", "k", "v")])
    server.faults.inject(Fault.malformed())
    assert await driver.execute([("GET", "k")], idempotent=True) == [b"v"]
    assert server.faults.struck == 1


# (5) Infinity is not JSON --------------------------------------------------------------


async def test_sdk_cannot_send_infinity(server: UpstashServer) -> None:
    async with sdk_client(server) as sdk:
        with pytest.raises(ValueError, match="JSON"):
            await sdk.zadd("z", {"top": float("inf")})


async def test_driver_sends_infinity_as_text(driver: UpstashDriver) -> None:
    replies = await driver.execute(
        [
            ("ZADD", "z", float("inf"), "top", float("-inf"), "bottom"),
            ("ZSCORE", "z", "top"),
            ("ZSCORE", "z", "bottom"),
            ("ZCOUNT", "z", float("-inf"), float("inf")),
        ]
    )
    assert replies == [2, b"inf", b"-inf", 2]
