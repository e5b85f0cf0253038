"""Making an UpstashDriver: constructor, from_env, from_url, and what it sends."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import pytest

from kvstore.drivers.upstash import TOKEN_ENV, URL_ENV, UpstashDriver
from kvstore.errors import DriverError, KVStoreError, ValidationError

if TYPE_CHECKING:
    from kvstore.upstash_server import UpstashServer

TOKEN = "AX/tok+en=="


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "https://eu1-example.upstash.io")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    driver = UpstashDriver.from_env(timeout=3)
    assert driver.url == "https://eu1-example.upstash.io"


@pytest.mark.parametrize("missing", [URL_ENV, TOKEN_ENV])
def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv(URL_ENV, "https://eu1-example.upstash.io")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError, match=f"^{missing} is not set"):
        UpstashDriver.from_env()


@pytest.mark.parametrize(
    ("url", "rest_url"),
    [
        (
            f"upstash://:{quote(TOKEN, safe='')}@eu1-example.upstash.io",
            "https://eu1-example.upstash.io",
        ),
        (f"upstash+https://:{quote(TOKEN, safe='')}@host:8443", "https://host:8443"),
        (f"upstash+http://:{quote(TOKEN, safe='')}@127.0.0.1:8079", "http://127.0.0.1:8079"),
        (f"upstash+http://:{quote(TOKEN, safe='')}@[::1]:8079/", "http://[::1]:8079"),
        (f"upstash://:{quote(TOKEN, safe='')}@proxy.local/upstash/", "https://proxy.local/upstash"),
        (f"UPSTASH://:{quote(TOKEN, safe='')}@host", "https://host"),
    ],
)
def test_from_url_forms(url: str, rest_url: str) -> None:
    driver = UpstashDriver.from_url(url)
    assert driver.url == rest_url
    assert driver._token == TOKEN


def test_from_url_reads_a_missing_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    driver = UpstashDriver.from_url("upstash://eu1-example.upstash.io")
    assert (driver.url, driver._token) == ("https://eu1-example.upstash.io", TOKEN)
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ValueError, match=f"^{TOKEN_ENV} is not set"):
        UpstashDriver.from_url("upstash://eu1-example.upstash.io")


def test_a_bare_upstash_url_means_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "https://eu1-example.upstash.io")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert UpstashDriver.from_url("upstash://").url == "https://eu1-example.upstash.io"


def test_from_url_options() -> None:
    driver = UpstashDriver.from_url("upstash://:t@host?timeout=2.5&read_your_writes=false")
    assert driver._timeout == 2.5
    assert driver.client._read_your_writes is False
    assert UpstashDriver.from_url("upstash://:t@host?timeout=none")._timeout is None
    assert UpstashDriver.from_url("upstash://:t@host?timeout=2", timeout=7)._timeout == 7


def test_max_request_bytes_defaults_to_upstash_s_limit_and_can_be_set() -> None:
    assert UpstashDriver("https://host", "t").max_request_bytes == 10_000_000
    assert UpstashDriver("https://host", "t", max_request_bytes=None).max_request_bytes is None
    url = "upstash://:t@host?max_request_bytes=100000000"
    assert UpstashDriver.from_url(url).max_request_bytes == 100_000_000
    url = "upstash://:t@host?max_request_bytes=none"
    assert UpstashDriver.from_url(url).max_request_bytes is None
    for bad in (0, -1, True, 2.5, "10"):
        with pytest.raises(ValueError, match="max_request_bytes must be a positive integer"):
            UpstashDriver("https://host", "t", max_request_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_request_bytes must be a positive integer"):
        UpstashDriver.from_url("upstash://:t@host?max_request_bytes=-5")


@pytest.mark.anyio
async def test_a_request_over_max_request_bytes_is_refused_before_it_is_sent(
    server: UpstashServer,
) -> None:
    async with UpstashDriver(server.url, server.token, max_request_bytes=1_000) as driver:
        assert await driver.execute([("SET", "small", "x" * 900)]) == [b"OK"]
        with server.stats.measure() as usage:
            with pytest.raises(ValidationError, match="over the 1000-byte limit"):
                await driver.execute([("SET", "big", "x" * 1_000)])
            with pytest.raises(ValidationError, match="over the 1000-byte limit"):
                await driver.execute([("SET", "a", "x" * 600), ("SET", "b", "x" * 600)])
        assert usage.total_requests == 0
        assert await driver.execute([("EXISTS", "big", "a", "b")]) == [0]
    # Without a limit of its own, the driver sends it, and the server's 413 is an error.
    async with UpstashDriver(server.url, server.token, max_request_bytes=None) as driver:
        with pytest.raises(KVStoreError):
            await driver.execute([("SET", "huge", "x" * 11 * 1024 * 1024)])
        assert await driver.execute([("EXISTS", "huge")]) == [0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://:t@host", "not an Upstash URL"),
        ("upstash:host", "not an Upstash URL"),
        ("upstash://token@host", "password position"),
        ("upstash://:t@host:port", "malformed Upstash URL"),
        ("upstash://:t@host?timeout=0", "timeout must be a positive number"),
        ("upstash://:t@host?read_your_writes=maybe", "read_your_writes must be true or false"),
        # By position, never by name: a token pasted after '?' would be the name.
        ("upstash://:t@host?timeout=2&colour=blue", "unknown Upstash URL parameter: the 2nd"),
    ],
)
def test_from_url_refuses_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UpstashDriver.from_url(url)


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        ("ftp://host", "t", "must be http"),
        ("host:8079", "t", "must be http"),
        ("https://user:pw@host", "t", "must not carry credentials"),
        ("https://host?_token=t", "t", "query"),
        ("https://host", "", "token is empty"),
        ("https://host", "tok en\r\n", "cannot travel in an HTTP header"),
    ],
)
def test_the_constructor_checks_its_arguments(url: str, token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UpstashDriver(url, token)


@pytest.mark.anyio
async def test_a_wrong_token_is_a_driver_error_naming_the_variable(
    server: UpstashServer,
) -> None:
    async with UpstashDriver(server.url, "wrong") as driver:
        with pytest.raises(DriverError, match=f"HTTP 401.*{TOKEN_ENV}"):
            await driver.execute([("PING",)])


@pytest.mark.anyio
async def test_a_server_that_is_not_upstash_is_a_clear_error() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    driver = UpstashDriver("https://example.invalid", "t")
    await driver.client._http._client.aclose()
    driver.client._http._client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    async with driver:
        with pytest.raises(DriverError, match="does not speak the Upstash REST protocol"):
            await driver.execute([("PING",)])


@pytest.mark.anyio
async def test_requests_carry_the_sync_token_and_base64_encoding() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json=[{"result": "OK"}], headers={"Upstash-Sync-Token": f"sync-{len(seen)}"}
        )

    driver = UpstashDriver("https://example.invalid", "t")
    await driver.client._http._client.aclose()
    driver.client._http._client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    async with driver:
        await driver.execute([("SET", "k", 1.5)])
        await driver.execute([("SET", "k", float("-inf"))], atomic=True)
    first, second = seen
    assert first.url.path == "/pipeline"
    assert second.url.path == "/multi-exec"
    assert first.headers["Authorization"] == "Bearer t"
    assert first.headers["Upstash-Encoding"] == "base64"
    assert first.content == b'[["SET","k","1.5"]]'
    assert second.content == b'[["SET","k","-inf"]]'
    # Read-your-writes: each request sends back the last sync token the server gave.
    assert second.headers["Upstash-Sync-Token"] == "sync-1"
    # The SDK client underneath shares it, so its reads see the driver's writes too.
    assert driver.client._sync_token == "sync-2"


@pytest.mark.anyio
async def test_the_sdk_client_underneath_is_usable(server: UpstashServer) -> None:
    async with UpstashDriver(server.url, server.token) as driver:
        await driver.execute([("SET", "k", "v")])
        assert await driver.client.get("k") == "v"


@pytest.mark.anyio
async def test_closing_twice_is_harmless(server: UpstashServer) -> None:
    driver = UpstashDriver(server.url, server.token)
    await driver.aclose()
    await driver.aclose()


def test_the_driver_is_exported_lazily() -> None:
    import kvstore.drivers

    assert kvstore.drivers.UpstashDriver is UpstashDriver
    assert "UpstashDriver" in kvstore.drivers.__all__


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        ("upstash_redis", "kvstore.drivers.upstash", "upstash"),
        ("starlette", "kvstore.upstash_server", "server"),
        ("uvicorn", "kvstore.upstash_server", "server"),
    ],
)
def test_a_missing_extra_names_the_install_command(blocked: str, module: str, extra: str) -> None:
    code = f"import sys; sys.modules[{blocked!r}] = None; import {module}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert f'pip install "kvstore[{extra}]"' in result.stderr


@pytest.mark.anyio
async def test_the_server_offers_a_url_for_from_url(server: UpstashServer) -> None:
    async with UpstashDriver.from_url(server.driver_url) as driver:
        assert driver.url == server.url
        assert await driver.execute([("PING",)]) == [b"PONG"]
