"""The token never shows: not in a repr, a log line, an exception message or its traceback."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import pytest

from kvstore import Storage
from kvstore.drivers.upstash import TOKEN_ENV, UpstashDriver
from kvstore.errors import KVStoreError
from kvstore.upstash_server import Fault, UpstashServer
from tests.upstash.conftest import FAST_RETRY, HANG, TIMEOUT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

pytestmark = pytest.mark.anyio

TOKEN = "AYNgAS2553feg6a2d9842h2a0gcdb5f8e/+fe9934DQ="


@pytest.fixture(scope="module")
def secret_server() -> Iterator[UpstashServer]:
    """A server with a realistic token (base64 with '/' and '+')."""
    with UpstashServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def driver(secret_server: UpstashServer) -> AsyncIterator[UpstashDriver]:
    secret_server.faults.clear()
    async with UpstashDriver(secret_server.url, TOKEN, retry=FAST_RETRY, timeout=TIMEOUT) as d:
        yield d


def assert_secret(exc: BaseException) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    assert TOKEN not in shown
    assert quote(TOKEN, safe="") not in shown
    # Nor any part of it: a message that quotes a URL's first 20 characters leaks half a token.
    for secret in (TOKEN, quote(TOKEN, safe="")):
        for i in range(len(secret) - 7):
            assert secret[i : i + 8] not in shown, f"part of the token shows in {shown!r}"


def test_repr_hides_the_token(secret_server: UpstashServer) -> None:
    driver = UpstashDriver(secret_server.url, TOKEN)
    assert TOKEN not in repr(driver)
    assert TOKEN not in repr(secret_server)
    assert TOKEN not in repr(driver.client)


async def test_transport_failures_do_not_show_the_token(
    secret_server: UpstashServer, driver: UpstashDriver
) -> None:
    for fault in [Fault.error(503), Fault.malformed(), Fault.drop(), Fault.hang(HANG)]:
        secret_server.faults.inject(fault)
        with pytest.raises(KVStoreError) as caught:
            await driver.execute([("GET", "k")])
        assert_secret(caught.value)


async def test_command_errors_do_not_show_the_token(driver: UpstashDriver) -> None:
    with pytest.raises(KVStoreError) as caught:
        await driver.execute([("SET", "a", "1"), ("GET",)], atomic=True)
    assert_secret(caught.value)


async def test_a_wrong_token_is_refused_without_echoing_either(
    secret_server: UpstashServer,
) -> None:
    wrong = TOKEN[::-1]
    async with UpstashDriver(secret_server.url, wrong) as driver:
        with pytest.raises(KVStoreError, match="HTTP 401") as caught:
            await driver.execute([("PING",)])
    assert_secret(caught.value)
    assert wrong not in str(caught.value)


async def test_an_unreachable_server_does_not_show_the_token() -> None:
    async with UpstashDriver("http://127.0.0.1:9", TOKEN, retry=FAST_RETRY) as driver:
        with pytest.raises(KVStoreError) as caught:
            await driver.execute([("PING",)], idempotent=True)
    assert_secret(caught.value)


# -- servers and libraries that echo what they were sent ----------------------------------


def _echoing(reply: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(reply))


def _header(request: httpx.Request) -> str:
    return request.headers["authorization"]


ECHOES: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "5xx body": lambda r: httpx.Response(502, json={"error": f"bad gateway for {_header(r)}"}),
    "refusal": lambda r: httpx.Response(400, json={"error": f"ERR no such token {_header(r)}"}),
    "command error": lambda r: httpx.Response(200, json=[{"error": f"ERR {_header(r)}"}]),
    "text body": lambda r: httpx.Response(418, text=_header(r)),
}


def _raise_echo(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot connect with headers {dict(request.headers)}")


ECHOES["httpx error"] = _raise_echo


@pytest.mark.parametrize("reply", list(ECHOES.values()), ids=list(ECHOES))
async def test_an_echoed_token_is_masked(
    reply: Callable[[httpx.Request], httpx.Response],
) -> None:
    driver = UpstashDriver("https://example.invalid", TOKEN, retry=FAST_RETRY)
    # The SDK's HTTP client, swapped for one whose server echoes the request's headers.
    await driver.client._http._client.aclose()
    driver.client._http._client = _echoing(reply)
    async with driver:
        with pytest.raises(KVStoreError) as caught:
            await driver.execute([("GET", "k")], idempotent=True)
    assert_secret(caught.value)
    for error in getattr(caught.value, "errors", []):
        assert_secret(error)


# -- logs ----------------------------------------------------------------------------------


async def test_no_log_line_shows_the_token(
    secret_server: UpstashServer, driver: UpstashDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await driver.execute([("SET", "k", "v"), ("GET", "k")])
    for fault in [Fault.error(503), Fault.malformed(), Fault.drop()]:
        secret_server.faults.inject(fault, times=FAST_RETRY.attempts)
        with pytest.raises(KVStoreError):
            await driver.execute([("GET", "k")], idempotent=True)
    assert caplog.records, "expected httpx and httpcore to log at DEBUG"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.args)


# -- configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"upstash://:{quote(TOKEN, safe='')}@host:notaport",
        f"redis://:{quote(TOKEN, safe='')}@host",
        f"upstash://{quote(TOKEN, safe='')}@host",
        f"upstash://:{quote(TOKEN, safe='')}@host?timeout=-1",
        f"upstash://:{quote(TOKEN, safe='')}@host#frag",
        f":{quote(TOKEN, safe='')}@host",
        TOKEN,
        f"upstash://:1234?{quote(TOKEN, safe='')}@host",
        f"upstash://:{TOKEN}@host",
    ],
    ids=[
        "bad-port",
        "wrong-scheme",
        "token-as-username",
        "bad-timeout",
        "fragment",
        "no-scheme",
        "bare-token",
        "unencoded-question-mark",
        "unencoded-token",
    ],
)
def test_url_errors_do_not_show_the_token(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Set, so that a URL whose token position looks empty does not stop at the variable.
    monkeypatch.setenv(TOKEN_ENV, "token-from-the-environment")
    with pytest.raises(ValueError) as caught:
        UpstashDriver.from_url(url)
    assert_secret(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"upstash+htps://:{quote(TOKEN, safe='')}@host",
        f"upstash:/:{quote(TOKEN, safe='')}@host",
        f"https://:{quote(TOKEN, safe='')}@host",
        TOKEN,
        f"{TOKEN}://host",
    ],
    ids=["typo-in-scheme", "no-scheme", "rest-url", "bare-token", "token-as-scheme"],
)
def test_storage_url_errors_do_not_show_the_token(url: str) -> None:
    # Storage.from_url picks the driver by the scheme; an unknown one names only that.
    with pytest.raises(ValueError, match="unsupported storage URL scheme") as caught:
        Storage.from_url(url)
    assert_secret(caught.value)


def test_an_unknown_storage_url_scheme_is_named() -> None:
    with pytest.raises(ValueError, match=r"scheme 'upstash\+htps://'"):
        Storage.from_url(f"upstash+htps://:{quote(TOKEN, safe='')}@host")


def test_a_rest_url_with_credentials_is_refused_without_echo() -> None:
    with pytest.raises(ValueError) as caught:
        UpstashDriver(f"https://user:{quote(TOKEN, safe='')}@host", TOKEN)
    assert_secret(caught.value)


def test_a_token_that_cannot_be_a_header_is_refused_without_echo() -> None:
    with pytest.raises(ValueError) as caught:
        UpstashDriver("https://host", TOKEN + "\n")
    assert_secret(caught.value)
