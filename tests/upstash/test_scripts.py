"""Scripts through the REST protocol: a script's first request carries its ``SCRIPT LOAD``,
later ones ``EVALSHA`` alone, and a server that lost it gets the source by ``EVAL``.

The memory backing runs the same Lua as Redis (in its embedded Lua 5.1).
"""

from __future__ import annotations

import pytest

from kvstore.drivers.base import Script, registered_script
from kvstore.drivers.memory import _commands_scripting
from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import CommandError
from kvstore.upstash_server import UpstashServer

pytestmark = pytest.mark.anyio


APPEND = Script(
    "scripts-append",
    """
    local id = redis.call('XADD', KEYS[1], '*', 'body', ARGV[1])
    return {redis.call('XLEN', KEYS[1]), id and 1 or 0}
    """,
)


WRONGTYPE = Script(
    "scripts-wrongtype",
    "redis.call('SET', KEYS[1], 'text') return redis.call('HGET', KEYS[1], 'f')",
)


async def test_a_cached_script_costs_one_request_and_one_command(
    any_server: UpstashServer,
) -> None:
    async with UpstashDriver(any_server.url, any_server.token) as driver:
        with any_server.stats.measure() as first:
            assert await driver.run(APPEND, ["{s}:log"], ["hello"]) == [1, 1]
        with any_server.stats.measure() as second:
            assert await driver.run(APPEND, ["{s}:log"], ["again"]) == [2, 1]
    assert first.requests == {"/pipeline": 1}  # SCRIPT LOAD travels with the first EVALSHA
    assert first.by_command == {"SCRIPT": 1, "EVALSHA": 1}
    assert second.requests == {"/pipeline": 1}
    assert second.by_command == {"EVALSHA": 1}


async def test_a_script_the_server_lost_is_sent_once_with_its_source(
    server: UpstashServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The memory backing finds a script registered in its process by itself: hide this one
    # from it, so that after the flush it answers NOSCRIPT as a restarted server would.
    def known_to_the_server(sha: str) -> Script | None:
        return None if sha == APPEND.sha else registered_script(sha)

    monkeypatch.setattr(_commands_scripting, "registered_script", known_to_the_server)
    async with UpstashDriver(server.url, server.token) as driver:
        assert await driver.run(APPEND, ["{s}:log"], ["hello"]) == [1, 1]
        # As a restart would: the driver still thinks the server has the script.
        assert await driver.execute([("SCRIPT", "FLUSH")]) == [b"OK"]
        with server.stats.measure() as usage:
            assert await driver.run(APPEND, ["{s}:log"], ["again"]) == [2, 1]
        with server.stats.measure() as after:
            assert await driver.run(APPEND, ["{s}:log"], ["more"]) == [3, 1]
    assert usage.requests == {"/pipeline": 2}
    assert usage.by_command == {"EVALSHA": 1, "EVAL": 1}
    assert after.by_command == {"EVALSHA": 1}  # EVAL loaded it again


async def test_a_failing_script_is_a_command_error_naming_it(any_server: UpstashServer) -> None:
    async with UpstashDriver(any_server.url, any_server.token) as driver:
        with pytest.raises(CommandError) as caught:
            await driver.run(WRONGTYPE, ["{s}:k"])
        assert caught.value.command == "script scripts-wrongtype"
        assert "WRONGTYPE" in caught.value.message
        assert await driver.execute([("GET", "{s}:k")]) == [b"text"]


async def test_a_script_call_refused_whole_is_a_command_error() -> None:
    async with (
        UpstashServer(max_request_size=256) as server,
        UpstashDriver(server.url, server.token) as driver,
    ):
        with pytest.raises(CommandError, match="max request size exceeded") as caught:
            await driver.run(APPEND, ["{s}:log"], ["x" * 1000])
        assert caught.value.command == "script scripts-append"
