"""RedisDriver beyond the conformance suite: URL forms, errors, cluster routing, ownership.

The conformance suite (tests/conformance) runs the driver contract on Redis and on a
cluster; these tests pin down what only RedisDriver does. Tests that need no server build
drivers without connecting; the others use a private server or the 3-node cluster fixture,
never the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.crc import key_slot

from kvstore import Storage
from kvstore.drivers.base import Script
from kvstore.drivers.redis import RedisDriver
from kvstore.errors import ConnectionFailedError, CrossSlotError, KVStoreError
from kvstore.storage import driver_from_url
from tests.conftest import _unreachable
from tests.support.commandstats import total_calls

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

pytestmark = pytest.mark.anyio

PASSWORD = "Zq7/Xw9?Kp2#Vt4@Hm6:Rj8+Gb5"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's asyncio client runs on asyncio only


INCR_ALL = Script(
    "redis-driver-incr-all",
    """
    local out = {}
    for i, key in ipairs(KEYS) do out[i] = redis.call('INCRBY', key, ARGV[1]) end
    return out
    """,
)


def _shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _pieces(secret: str, size: int = 4) -> list[str]:
    """Every ``size``-character piece of ``secret``: none may show, not even in part."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


# -- URL forms (no server: building a driver does not connect) ------------------------------


async def test_rediss_url_builds_tls_connections() -> None:
    async with RedisDriver.from_url(f"rediss://:{quote(PASSWORD, safe='')}@db.example:6380/2") as d:
        pool = d.client.connection_pool  # type: ignore[union-attr]
        assert pool.connection_class is SSLConnection
        kwargs = pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("db.example", 6380, 2)
        assert kwargs["password"] == PASSWORD
        assert kwargs["protocol"] == 2
        assert not d.is_cluster


async def test_unix_url_takes_the_socket_path_and_db() -> None:
    async with RedisDriver.from_url("unix:///run/redis/redis.sock?db=4") as d:
        pool = d.client.connection_pool  # type: ignore[union-attr]
        assert pool.connection_class is UnixDomainSocketConnection
        assert pool.connection_kwargs["path"] == "/run/redis/redis.sock"
        assert pool.connection_kwargs["db"] == 4


@pytest.mark.parametrize(
    ("scheme", "connection_class"),
    [
        ("redis+cluster", Connection),
        ("rediss+cluster", SSLConnection),
        ("Redis+Cluster", Connection),
    ],
)
async def test_cluster_url_lists_every_seed_node(
    scheme: str, connection_class: type[Connection]
) -> None:
    url = f"{scheme}://:{quote(PASSWORD, safe='')}@h1:7000,h2:7001,h3?socket_timeout=3"
    async with RedisDriver.from_url(url) as d:
        assert d.is_cluster
        cluster = d.client
        assert isinstance(cluster, RedisCluster)
        assert list(cluster.nodes_manager.startup_nodes) == ["h1:7000", "h2:7001", "h3:6379"]
        kwargs = cluster.get_connection_kwargs()
        assert kwargs["connection_class"] is connection_class
        assert kwargs["password"] == PASSWORD
        assert kwargs["socket_timeout"] == 3.0


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?no_such_setting=1",
        "redis+cluster://127.0.0.1:7000?no_such_setting=1",
    ],
    ids=["single", "cluster"],
)
def test_an_unknown_query_parameter_is_refused_when_the_driver_is_made(url: str) -> None:
    # Not at the first command, as a TypeError that no caller of execute() expects; and
    # by position, never by name, since a password pasted after '?' would be the name.
    with pytest.raises(ValueError, match="unknown Redis URL parameter: the 1st") as caught:
        RedisDriver.from_url(url)
    assert "no_such_setting" not in str(caught.value)


# -- URL errors never show the password ---------------------------------------------------------


ENCODED = quote(PASSWORD, safe="")
# A password with '/', '?' or '#' left unencoded breaks the URL apart: urllib and int()
# then quote pieces of it as the port, or redis-py takes them for query parameter names.
BAD_URLS = {
    "bad-port": (f"redis://:{ENCODED}@host:notaport", PASSWORD),
    "unencoded-slash": ("redis://:Qz81/Wv37@host:6379", "Qz81/Wv37"),
    "unencoded-question-mark": ("redis://:1234?Wv37=Jk55@host", "1234?Wv37=Jk55"),
    "bad-query-value": (f"redis://:{ENCODED}@host?socket_timeout=soon", PASSWORD),
    "unknown-parameter": (f"redis://:{ENCODED}@host?no_such_setting=1", PASSWORD),
    "cluster-bad-port": (f"redis+cluster://:{ENCODED}@h1:7000,h2:notaport", PASSWORD),
    "cluster-unencoded-slash": ("redis+cluster://:Qz81/Wv37@h1:7000", "Qz81/Wv37"),
    "cluster-unknown-parameter": (f"redis+cluster://:{ENCODED}@h1:7000?no_such=1", PASSWORD),
    "no-scheme": (f":{ENCODED}@host", PASSWORD),
    "unknown-scheme": (f"rediz://:{ENCODED}@host", PASSWORD),
}


@pytest.mark.parametrize(("url", "password"), list(BAD_URLS.values()), ids=list(BAD_URLS))
def test_url_errors_do_not_show_the_password(url: str, password: str) -> None:
    with pytest.raises(ValueError) as caught:
        driver_from_url(url)
    shown = _shown(caught.value)
    for piece in [*_pieces(password), ENCODED]:
        assert piece not in shown, f"{piece!r} of the password shows in {shown!r}"


def test_a_safe_url_error_keeps_its_helpful_message() -> None:
    with pytest.raises(ValueError, match="Invalid value for 'socket_timeout'"):
        RedisDriver.from_url(f"redis://:{ENCODED}@host?socket_timeout=soon")


# -- errors that must arrive as kvstore errors ----------------------------------------------------


@pytest.mark.redis
async def test_a_cluster_url_naming_a_plain_server_is_a_connection_failure(
    private_redis_url: str,
) -> None:
    hostport = urlsplit(private_redis_url).netloc
    async with RedisDriver.from_url(f"redis+cluster://{hostport}") as d:
        with pytest.raises(ConnectionFailedError, match="Cluster mode is not enabled"):
            await d.execute([("GET", "k")], idempotent=True)


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[int]:
    """A loopback server that answers anything with an HTTP error, as a web server on the
    wrong port would; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read(65536)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            # Stay until the client hangs up, so that it reads the answer rather than
            # failing on a reset connection while it is still writing.
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:{}", "redis://127.0.0.1:{}/3", "redis+cluster://127.0.0.1:{}"]
)
@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_server_that_does_not_speak_resp_is_a_connection_failure(
    url: str, idempotent: bool
) -> None:
    async with http_server() as port, RedisDriver.from_url(url.format(port)) as d:
        with pytest.raises(ConnectionFailedError, match="Protocol error"):
            await d.execute([("GET", "k")], idempotent=idempotent)
        with pytest.raises(ConnectionFailedError):
            await d.run(INCR_ALL, ["k"], [1])


async def test_a_store_on_a_server_that_does_not_speak_resp_raises_kvstore_errors() -> None:
    async with http_server() as port, Storage.from_url(f"redis://127.0.0.1:{port}") as store:
        with pytest.raises(KVStoreError):
            await store.memory.get_thread("t1")


# -- cluster: a batch goes to every node it names; only atomic work must share a slot ------------


@pytest.fixture
async def cluster(cluster_nodes: list[tuple[str, int]]) -> AsyncIterator[RedisDriver]:
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster_nodes)
    async with RedisDriver.from_url(url) as driver:
        yield driver


def _cluster_calls(nodes: list[tuple[str, int]]) -> int:
    return sum(total_calls(f"redis://{host}:{port}/0") for host, port in nodes)


A, B = "xslot:{a}", "xslot:{b}"


@pytest.mark.redis
@pytest.mark.cluster
async def test_a_pipeline_across_slots_reaches_each_owner_in_order(cluster: RedisDriver) -> None:
    assert key_slot(A.encode()) != key_slot(B.encode())
    await cluster.execute([("DEL", A)])
    await cluster.execute([("DEL", B)])
    replies = await cluster.execute(
        [("SET", A, "1"), ("INCR", B), ("GET", A), ("INCR", B)], idempotent=False
    )
    assert replies == [b"OK", 1, b"1", 2]  # replies come back in the order of the batch
    await cluster.execute([("DEL", A)])
    await cluster.execute([("DEL", B)])


@pytest.mark.redis
@pytest.mark.cluster
async def test_an_atomic_batch_across_slots_is_refused_before_anything_is_sent(
    cluster: RedisDriver, cluster_nodes: list[tuple[str, int]]
) -> None:
    await cluster.execute([("DEL", A)])
    await cluster.execute([("DEL", B)])
    before = _cluster_calls(cluster_nodes)
    with pytest.raises(CrossSlotError) as caught:
        await cluster.execute([("SET", A, "1"), ("SET", B, "2")], atomic=True)
    assert _cluster_calls(cluster_nodes) == before  # no node saw a command
    assert caught.value.slots == {key_slot(A.encode()): [A], key_slot(B.encode()): [B]}
    assert repr(A) in str(caught.value)
    assert repr(B) in str(caught.value)
    assert await cluster.execute([("EXISTS", A)]) == [0]
    assert await cluster.execute([("EXISTS", B)]) == [0]


@pytest.mark.redis
@pytest.mark.cluster
async def test_a_script_across_slots_is_refused_before_anything_is_sent(
    cluster: RedisDriver, cluster_nodes: list[tuple[str, int]]
) -> None:
    before = _cluster_calls(cluster_nodes)
    with pytest.raises(CrossSlotError):
        await cluster.run(INCR_ALL, [A, B], [1])
    assert _cluster_calls(cluster_nodes) == before
    assert await cluster.execute([("EXISTS", A)]) == [0]


@pytest.mark.redis
@pytest.mark.cluster
async def test_a_script_flushed_from_every_node_is_loaded_again(
    cluster: RedisDriver, cluster_nodes: list[tuple[str, int]]
) -> None:
    key = "noscript:{c}"
    await cluster.execute([("DEL", key)])
    assert await cluster.run(INCR_ALL, [key], [1]) == [1]
    for host, port in cluster_nodes:
        with redis.Redis(host=host, port=port) as admin:
            admin.script_flush()
    assert await cluster.run(INCR_ALL, [key], [2]) == [3]
    client = cluster.client
    assert isinstance(client, RedisCluster)
    owner = client.nodes_manager.get_node_from_slot(key_slot(key.encode()))
    with redis.Redis(host=owner.host, port=int(owner.port)) as admin:
        assert admin.script_exists(INCR_ALL.sha) == [True]  # loaded again, by EVAL
    await cluster.execute([("DEL", key)])


# -- scripts: NOSCRIPT falls back to EVAL once, then EVALSHA again ------------------------------


def _calls(url: str, command: str) -> int:
    with redis.Redis.from_url(url) as admin:
        stats = admin.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


@pytest.mark.redis
async def test_a_flushed_script_is_sent_once_with_its_source(private_redis_url: str) -> None:
    async with RedisDriver.from_url(private_redis_url) as d:
        await d.execute([("DEL", "noscript")])
        assert await d.run(INCR_ALL, ["noscript"], [1]) == [1]
        await d.execute([("SCRIPT", "FLUSH")])
        evals = _calls(private_redis_url, "eval")
        assert await d.run(INCR_ALL, ["noscript"], [2]) == [3]
        assert _calls(private_redis_url, "eval") == evals + 1  # the fallback ran
        assert await d.run(INCR_ALL, ["noscript"], [3]) == [6]
        assert _calls(private_redis_url, "eval") == evals + 1  # then cached: EVALSHA only
        await d.execute([("DEL", "noscript")])


# -- who closes what ----------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_driver_leaves_the_callers_client_open(private_redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(private_redis_url, protocol=2)
    try:
        async with RedisDriver(client) as driver:
            assert await driver.execute([("PING",)]) == [b"PONG"]
        await driver.aclose()
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_store_leaves_the_callers_driver_open(private_redis_url: str) -> None:
    async with RedisDriver.from_url(private_redis_url) as driver:
        async with Storage(driver) as store:
            assert await store.memory.get_thread("ownership") is None
        assert await driver.execute([("PING",)]) == [b"PONG"]


@pytest.mark.redis
@pytest.mark.parametrize("via", ["driver", "storage"])
async def test_a_driver_from_a_url_closes_its_own_pool(private_redis_url: str, via: str) -> None:
    if via == "driver":
        driver = RedisDriver.from_url(private_redis_url)
        closing: RedisDriver | Storage = driver
    else:
        closing = Storage.from_url(private_redis_url)
        driver = closing.driver  # type: ignore[assignment]
    assert await driver.execute([("PING",)]) == [b"PONG"]
    pool = driver.client.connection_pool  # type: ignore[union-attr]
    conn = await pool.get_connection()
    await pool.release(conn)
    assert conn.is_connected
    await closing.aclose()
    assert not conn.is_connected


# -- a Unix socket, for real ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def unix_socket() -> Iterator[str]:
    """A private Redis server that also listens on a Unix socket; yields the socket's path."""
    from tests.support.servers import _free_port_block, _servers

    # A short directory: Unix socket paths are limited to about a hundred bytes.
    with (
        tempfile.TemporaryDirectory(prefix="kvs-") as workdir,
        contextlib.ExitStack() as stack,
    ):
        path = str(Path(workdir) / "redis.sock")
        try:
            stack.enter_context(_servers([_free_port_block(1, first=18000)], "--unixsocket", path))
        except RuntimeError as exc:
            _unreachable(f"cannot start a Redis server on a Unix socket: {exc}")
        yield path


@pytest.mark.redis
async def test_a_unix_socket_url_reaches_the_server_and_its_db(unix_socket: str) -> None:
    async with RedisDriver.from_url(f"unix://{unix_socket}?db=3") as d:
        await d.execute([("SET", "unix-key", "v")])
    with redis.Redis(unix_socket_path=unix_socket, db=3) as db3:
        assert db3.get("unix-key") == b"v"
    with redis.Redis(unix_socket_path=unix_socket, db=0) as db0:
        assert db0.exists("unix-key") == 0
