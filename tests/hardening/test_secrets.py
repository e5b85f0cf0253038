"""Item 9: an Upstash token or a Redis password never shows, whole or in part.

Every error message (with its whole traceback, chained exceptions included), every
``repr`` and every log line that the URL and connection paths produce is searched for any
8-character slice of the secret, as typed and percent-encoded.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from kvstore import Storage, SyncStorage
from kvstore.drivers.redis import RedisDriver
from kvstore.drivers.upstash import TOKEN_ENV, URL_ENV, UpstashDriver
from kvstore.errors import KVStoreError
from kvstore.storage import driver_from_url

TOKEN = "AYNgAS2553feg6a2d9842h2a0gcdb5f8e/+fe9934DQ="
PASSWORD = "Zq7/Xw9?Kp2#Vt4@Hm6:Rj8+Gb5"
Q_TOKEN = quote(TOKEN, safe="")
Q_PASSWORD = quote(PASSWORD, safe="")


def slices(*secrets: str) -> set[str]:
    return {s[i : i + 8] for s in secrets for i in range(len(s) - 7)}


SECRET_SLICES = slices(TOKEN, Q_TOKEN, quote(TOKEN), PASSWORD, Q_PASSWORD, quote(PASSWORD))


def assert_nothing_shows(text: str) -> None:
    shown = sorted(s for s in SECRET_SLICES if s in text)
    assert not shown, f"{shown[0]!r}, part of a secret, shows in {text!r}"


def shown_by(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        assert_nothing_shows(record.getMessage())
        assert_nothing_shows(str(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            assert_nothing_shows(shown_by(record.exc_info[1]))


@pytest.fixture
def token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(URL_ENV, "https://example.invalid")


UPSTASH_URLS = {
    "the issue's example": f"upstash://host?{TOKEN}",
    "encoded, as a name": f"upstash://host?{Q_TOKEN}",
    "second parameter": f"upstash://host?timeout=1&{Q_TOKEN}",
    "no host": f"upstash://?{Q_TOKEN}",
    "with a token too": f"upstash://:{Q_TOKEN}@host?{Q_TOKEN}",
    "as a value": f"upstash://host?colour={Q_TOKEN}",
    "as the timeout": f"upstash://host?timeout={Q_TOKEN}",
    "as read_your_writes": f"upstash://host?read_your_writes={Q_TOKEN}",
    "in the path": f"upstash://host/{Q_TOKEN}",
    "in the path, unencoded": f"upstash://host/{TOKEN}",
    "as the port": f"upstash://host:{Q_TOKEN}",
    "as the username": f"upstash://{Q_TOKEN}@host",
    "unencoded": f"upstash://:{TOKEN}@host",
    "unencoded question mark": f"upstash://:ab?{Q_TOKEN}@host",
    "fragment": f"upstash://host#{Q_TOKEN}",
    "as the scheme": f"{Q_TOKEN}://host",
    "bare": TOKEN,
    "http, as a name": f"upstash+http://127.0.0.1:1?{Q_TOKEN}",
}

REDIS_URLS = {
    "as a name": f"redis://:{Q_PASSWORD}@host/0?{Q_PASSWORD}",
    "as a name, no password": f"redis://host/0?{Q_PASSWORD}",
    "as a name with a value": f"redis://:{Q_PASSWORD}@host/0?{Q_PASSWORD}=1",
    "as a value": f"redis://:{Q_PASSWORD}@host/0?socket_timeout={Q_PASSWORD}",
    "as the db": f"redis://:{Q_PASSWORD}@host/0?db={Q_PASSWORD}",
    "as the protocol": f"redis://:{Q_PASSWORD}@host/0?protocol={Q_PASSWORD}",
    "as an ssl setting": f"rediss://:{Q_PASSWORD}@host/0?ssl_cert_reqs={Q_PASSWORD}",
    "in the path": f"redis://:{Q_PASSWORD}@host/{Q_PASSWORD}",
    "as the port": f"redis://:{Q_PASSWORD}@host:{Q_PASSWORD}",
    "unencoded": f"redis://:{PASSWORD}@host/0",
    "cluster, as a name": f"redis+cluster://:{Q_PASSWORD}@h1:7000?{Q_PASSWORD}",
    "cluster, as a value": f"redis+cluster://:{Q_PASSWORD}@h1:7000?socket_timeout={Q_PASSWORD}",
    "cluster, as a port": f"redis+cluster://:{Q_PASSWORD}@h1:7000,h2:{Q_PASSWORD}",
    "unix, as a name": f"unix://:{Q_PASSWORD}@/tmp/kvstore-none.sock?{Q_PASSWORD}",
}

MAKERS: dict[str, Callable[[str], Any]] = {
    "Storage.from_url": Storage.from_url,
    "driver_from_url": driver_from_url,
}


def _make(make: Callable[[str], Any], url: str) -> None:
    """Make a store (or driver) from ``url``: what it raises, or shows once made."""
    try:
        made = make(url)
    except ValueError as exc:
        assert_nothing_shows(shown_by(exc))
        return
    shown = repr(made)
    driver = getattr(made, "driver", made)
    shown += repr(driver) + repr(getattr(driver, "client", None)) + str(getattr(driver, "url", ""))
    assert_nothing_shows(shown)


@pytest.mark.usefixtures("token_in_environment", "logs")
@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize("url", list(UPSTASH_URLS.values()), ids=list(UPSTASH_URLS))
def test_upstash_urls_never_show_the_token(make: Callable[[str], Any], url: str) -> None:
    _make(make, url)


@pytest.mark.usefixtures("token_in_environment", "logs")
def test_the_issue_example_is_refused_with_a_useful_message() -> None:
    with pytest.raises(ValueError, match="unknown Upstash URL parameter") as caught:
        Storage.from_url(f"upstash://host?{TOKEN}")
    assert "the 1st" in str(caught.value)
    with pytest.raises(ValueError, match="unknown Upstash URL parameter"):
        SyncStorage.from_url(f"upstash://host?{Q_TOKEN}")
    with pytest.raises(ValueError, match="holds the token"):
        UpstashDriver.from_url(f"upstash://host/{Q_TOKEN}")


@pytest.mark.usefixtures("logs")
@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize("url", list(REDIS_URLS.values()), ids=list(REDIS_URLS))
def test_redis_urls_never_show_the_password(make: Callable[[str], Any], url: str) -> None:
    _make(make, url)


def test_an_unknown_redis_url_parameter_is_refused_by_position() -> None:
    with pytest.raises(ValueError, match="unknown Redis URL parameter: the 2nd") as caught:
        RedisDriver.from_url(f"redis://:{Q_PASSWORD}@host/0?socket_timeout=1&{Q_PASSWORD}=1")
    assert_nothing_shows(shown_by(caught.value))
    # redis-py would drop a parameter without a value silently: it is refused too.
    with pytest.raises(ValueError, match="empty Redis URL parameter: the 2nd") as caught:
        RedisDriver.from_url(f"redis://:{Q_PASSWORD}@host/0?socket_timeout=1&{Q_PASSWORD}")
    assert_nothing_shows(shown_by(caught.value))
    # A known parameter with a bad value is named (its value is not shown).
    with pytest.raises(ValueError, match="Invalid value for 'socket_timeout'") as caught:
        RedisDriver.from_url(f"redis://:{Q_PASSWORD}@host/0?socket_timeout={Q_PASSWORD}")
    assert_nothing_shows(shown_by(caught.value))


@pytest.mark.anyio
@pytest.mark.usefixtures("logs")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_connection_errors_never_show_the_password(anyio_backend: str) -> None:
    del anyio_backend
    async with Storage.from_url(f"redis://:{Q_PASSWORD}@127.0.0.1:9/0") as store:
        with pytest.raises(KVStoreError) as caught:
            await store.memory.get_thread("t")
        assert_nothing_shows(shown_by(caught.value) + repr(store) + repr(store.driver))


@pytest.mark.anyio
@pytest.mark.redis
@pytest.mark.usefixtures("logs")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_refused_password_is_not_shown(
    hardening_redis_url: str, anyio_backend: str
) -> None:
    del anyio_backend
    url = hardening_redis_url.replace("redis://", f"redis://:{Q_PASSWORD}@", 1)
    async with Storage.from_url(url) as store:
        with pytest.raises(KVStoreError) as caught:
            await store.memory.get_thread("t")
    assert_nothing_shows(shown_by(caught.value))


@pytest.mark.anyio
@pytest.mark.usefixtures("logs")
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_upstash_connection_errors_never_show_the_token(anyio_backend: str) -> None:
    del anyio_backend
    async with Storage.from_url(f"upstash+http://:{Q_TOKEN}@127.0.0.1:9") as store:
        with pytest.raises(KVStoreError) as caught:
            await store.memory.get_thread("t")
        assert_nothing_shows(shown_by(caught.value) + repr(store) + repr(store.driver))


def test_the_grep_finds_a_slice() -> None:
    """The check itself: a message quoting 8 characters of the token fails it."""
    with pytest.raises(AssertionError):
        assert_nothing_shows(f"unknown parameter {TOKEN[10:18]!r}")
    with pytest.raises(AssertionError):
        assert_nothing_shows(f"bad {Q_PASSWORD[3:11]}")
    assert_nothing_shows(TOKEN[:7])
