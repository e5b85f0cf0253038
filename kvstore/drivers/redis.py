"""RedisDriver: Redis through redis-py's asyncio client (hiredis parser when installed).

URL forms accepted by :meth:`RedisDriver.from_url`:

=================================================  =====================================
``redis://[[user]:password@]host[:port][/db]``     one server over TCP
``rediss://...``                                   the same over TLS
``unix:///path/to/redis.sock[?db=N]``              a local server on a Unix socket
``redis+cluster://host:port[,host:port...]``       a Redis Cluster, from its seed nodes
``rediss+cluster://host:port[,host:port...]``      a Redis Cluster over TLS
=================================================  =====================================

Query parameters (``?socket_timeout=5`` and friends) pass through to redis-py; an unknown
one is refused with ``ValueError`` when the driver is made. Percent-encode a password
(``urllib.parse.quote(password, safe="")``); URL errors never repeat it.

A batch travels as one write of all commands followed by one read of all replies, on one
pooled connection; replies are read raw (no redis-py response callbacks) so that they come
back in the normalised shape of :mod:`kvstore.drivers.base`. On a cluster, redis-py's slot
map routes each command to the primary that owns its hash slot, and a batch becomes one
batch per node, sent concurrently; a command (or a script) whose own keys span slots, or an
atomic batch that does, is refused before anything is sent. ``MOVED``/``ASK`` replies
refresh the slot map and resend the commands they refused (which the server did not run).

Scripts: the first batch that sends a script to a server carries a ``SCRIPT LOAD`` of its
source ahead of it, in the same round trip, so the script runs in its place in the batch
(and ahead of ``MULTI`` in an atomic one). An ``EVALSHA`` that still meets ``NOSCRIPT`` (the
server lost its scripts since, by a restart or ``SCRIPT FLUSH``) is sent again with its
source in one more round trip; commands after it in the same batch ran before it then.

redis-py's asyncio client runs on asyncio only, so this driver does too; under trio use the
memory or Upstash driver.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from kvstore._extras import require
from kvstore.drivers._commandspec import command_keys, command_name
from kvstore.drivers._replies import (
    as_eval,
    label,
    missing_scripts,
    raise_for_errors,
    script_source,
    transaction_aborted,
)
from kvstore.drivers._retry import RetryPolicy
from kvstore.drivers._urls import query_parts, unknown_parameter, url_text_is_safe
from kvstore.drivers.base import Command, Driver, Reply, encode_arg
from kvstore.errors import (
    CommandError,
    ConnectionFailedError,
    CrossSlotError,
    UnsupportedError,
)

require("redis", "redis")

import anyio  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402 - after the friendly import check
from redis.asyncio.cluster import RedisCluster  # noqa: E402
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from redis.exceptions import (  # noqa: E402
    InvalidResponse,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: E402

_hiredis_pack: Callable[..., Any] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    _hiredis_pack = None

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.asyncio.connection import AbstractConnection

__all__ = ["RedisDriver"]

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: Buckets a new store spreads over on a cluster (see kvstore.keys). Every message saved
#: touches its thread's bucket indexes, so a bucket's share of the write traffic is 1/B:
#: at 16 the busiest index took 1.9% of a mixed workload's commands, at 64 it takes 0.7%
#: (``python -m benchmarks --only cluster``). A listing pays for it: one script per bucket,
#: still one batch per node and one round trip.
CLUSTER_BUCKETS = 64
# Replies that mean "this node does not serve the slot (yet)": the command did not run.
_REDIRECT_CODES = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
_REDIRECT_ATTEMPTS = 5
# What redis-py raises when the server cannot be reached or does not speak RESP (say, an
# HTTP server on the port: InvalidResponse): all mean "no usable Redis there".
_TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, InvalidResponse, OSError)
# URL errors (redis-py's and this module's) that quote only query parameters, never a
# credential, so they may be shown whatever the URL holds.
_SAFE_URL_ERROR = re.compile(
    r"Invalid value for '[^']*' in connection URL\.|Port out of range.*"
    r"|bad redis-py (?:cluster|connection) setting \(.*\)"
)
_KNOWN_SETTINGS = "redis-py's connection settings, such as socket_timeout=5"
_MALFORMED_URL = (
    "malformed Redis URL (check the host, port, database number and query parameters; "
    "percent-encode a password: urllib.parse.quote(password, safe=''))"
)


def _error_message(exc: ResponseError) -> str:
    """Redis's own error text: redis-py strips known prefixes such as ``ERR``; put them back."""
    text = str(exc.args[0]) if exc.args else ""
    code = getattr(exc, "status_code", None)
    return f"{code} {text}" if code else text


class RedisDriver(Driver):
    """A :class:`~kvstore.drivers.base.Driver` on ``redis.asyncio`` (single node or cluster).

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` made with
            ``protocol=2`` and without ``decode_responses``.
        owns_client: Close ``client`` in :meth:`aclose`. :meth:`from_url` sets this; pass
            your own client without it and it stays yours to close.
        retry: How idempotent requests are retried after a connection failure.
    """

    __slots__ = ("_client", "_cluster_ready", "_loaded", "_owns_client", "_retry")

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        owns_client: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        if isinstance(client, RedisCluster):
            kwargs: dict[str, Any] = client.get_connection_kwargs()
        else:
            kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses") or str(kwargs.get("protocol")) != "2":
            raise ValueError(
                "RedisDriver needs a client made with protocol=2 and decode_responses=False "
                "(kvstore reads raw RESP2 replies); from_url() makes one"
            )
        self._client = client
        self._owns_client = owns_client
        self._retry = retry or RetryPolicy()
        self._cluster_ready = False
        #: The scripts each server (by node name; "" for a single server) has loaded.
        self._loaded: dict[str, set[bytes]] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisDriver:
        """Connect to the server or cluster at ``url`` (see the module docstring for forms).

        Extra keyword arguments go to redis-py's ``from_url``.

        Raises:
            ValueError: for a malformed URL, an unknown query parameter or keyword argument.
                The message never repeats the URL's password.
        """
        kwargs["protocol"] = 2
        scheme, sep, rest = url.partition("://")
        if not sep:
            # Never echo the URL: it may be a password pasted in the wrong place.
            raise ValueError(
                "not a Redis URL: expected redis://, rediss://, unix://, redis+cluster:// "
                "or rediss+cluster://"
            )
        query = url.partition("?")[2]
        if "@" in query:
            # A password with an unencoded '?' runs into the query.
            raise ValueError(_MALFORMED_URL)
        for position, (_, value) in enumerate(query_parts(query), 1):
            if not value:
                # redis-py would drop it silently; it may be a password pasted after '?'.
                raise unknown_parameter("Redis", position, _KNOWN_SETTINGS, "empty")
        try:
            client: aioredis.Redis | RedisCluster
            if scheme.lower() in _CLUSTER_SCHEMES:
                client = _cluster_from_url(_CLUSTER_SCHEMES[scheme.lower()], rest, kwargs)
            else:
                client = aioredis.Redis.from_url(url, **kwargs)
                _check_connection_kwargs(client)
        except ValueError as exc:
            # A fresh exception, never chained: the one redis-py or urllib raised first
            # may quote what it could not parse, a password's piece among them.
            raise _url_error(url, str(exc)) from None
        return cls(client, owns_client=True)

    @property
    def client(self) -> aioredis.Redis | RedisCluster:
        """The redis-py client underneath."""
        return self._client

    @property
    def is_cluster(self) -> bool:
        """Whether the backend is a Redis Cluster."""
        return isinstance(self._client, RedisCluster)

    @property
    def default_buckets(self) -> int:
        """64 on a cluster (a namespace spreads over the nodes), else 1."""
        return CLUSTER_BUCKETS if self.is_cluster else 1

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        if not commands:
            return []
        wire = [[encode_arg(a) for a in c] for c in commands]

        async def attempt() -> list[Reply | CommandError]:
            return await self._send(wire, atomic=atomic, idempotent=idempotent)

        return raise_for_errors(await self._retry.call(attempt, idempotent=idempotent))

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        client = self._client
        if not isinstance(client, RedisCluster):
            return await super().execute_steps(steps, idempotent=idempotent)
        wires = [[[encode_arg(a) for a in c] for c in step] for step in steps]
        await self._ensure_cluster(client)
        nodes = {self._node_for(client, _slot(cmd)).name for wire in wires for cmd in wire}
        if len(nodes) <= 1:
            # One node keeps the order of one pipeline: one round trip.
            return await super().execute_steps(steps, idempotent=idempotent)
        out: list[list[Reply]] = []
        for wire in wires:

            async def attempt(wire: list[list[bytes]] = wire) -> list[Reply | CommandError]:
                return await self._send(wire, atomic=False, idempotent=idempotent)

            out.append(raise_for_errors(await self._retry.call(attempt, idempotent=idempotent)))
        return out

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- one round trip -------------------------------------------------------------------

    async def _send(
        self, wire: list[list[bytes]], *, atomic: bool, idempotent: bool
    ) -> list[Reply | CommandError]:
        """One round trip (one per node on a cluster), then one more for scripts the server
        did not have; errors in place, labelled."""
        results = await self._roundtrip(wire, atomic, idempotent)
        missing = missing_scripts(wire, results)
        if missing:
            for scripts in self._loaded.values():
                scripts.difference_update(wire[i][1] for i in missing)
            again = await self._roundtrip(
                [[encode_arg(a) for a in as_eval(wire[i])] for i in missing], False, idempotent
            )
            for i, reply in zip(missing, again, strict=True):
                results[i] = reply
        return label(wire, results)

    async def _roundtrip(
        self, wire: list[list[bytes]], atomic: bool, idempotent: bool
    ) -> list[Reply | CommandError]:
        """Send ``wire`` and read every reply, errors in place.

        Raises:
            ConnectionFailedError: saying whether the request may have been applied: not
                when no connection could be made, else it may, since it was (perhaps
                partly) sent.
        """
        _refuse_trio()
        if not isinstance(self._client, RedisCluster):
            pool = self._client.connection_pool
            conn = await _translate(pool.get_connection())  # type: ignore[no-untyped-call]
            try:
                return await self._exchange(conn, wire, atomic, idempotent, "")
            finally:
                await pool.release(conn)
        return await self._cluster_roundtrip(self._client, wire, atomic, idempotent)

    async def _ensure_cluster(self, cluster: RedisCluster) -> None:
        if not self._cluster_ready:
            await _translate(cluster.initialize())
            self._cluster_ready = True

    @staticmethod
    def _node_for(cluster: RedisCluster, slot: int | None) -> Any:
        try:
            if slot is None:
                return cluster.get_default_node()
            return cluster.nodes_manager.get_node_from_slot(slot)
        except (RedisClusterException, RedisConnectionError) as exc:
            # No node serves the slot (cluster down).
            raise ConnectionFailedError(f"cannot reach Redis: {exc}") from exc

    async def _cluster_roundtrip(
        self, cluster: RedisCluster, wire: list[list[bytes]], atomic: bool, idempotent: bool
    ) -> list[Reply | CommandError]:
        slots = [_slot(cmd) for cmd in wire]
        if atomic:
            _refuse_cross_slot(wire)
        # Keyless commands (PING, a malformed command the server will refuse) travel with
        # the batch's first keyed command, so that an atomic batch stays on one node.
        anchor = next((slot for slot in slots if slot is not None), None)
        slots = [anchor if slot is None else slot for slot in slots]
        await self._ensure_cluster(cluster)
        results: list[Reply | CommandError] = [None] * len(wire)
        pending = list(range(len(wire)))
        for _ in range(_REDIRECT_ATTEMPTS):
            groups: dict[str, tuple[Any, list[int]]] = {}
            for i in pending:
                node = self._node_for(cluster, slots[i])
                groups.setdefault(node.name, (node, []))[1].append(i)

            async def one_node(node: Any, indexes: list[int]) -> None:
                try:
                    conn = node.acquire_connection()
                except (RedisClusterException, RedisConnectionError) as exc:
                    # The node's pool is exhausted, or the node is gone.
                    raise ConnectionFailedError(f"cannot reach Redis: {exc}") from exc
                try:
                    replies = await self._exchange(
                        conn, [wire[i] for i in indexes], atomic, idempotent, node.name
                    )
                finally:
                    node.release(conn)
                for i, reply in zip(indexes, replies, strict=True):
                    results[i] = reply

            if len(groups) == 1:
                ((node, indexes),) = groups.values()
                await one_node(node, indexes)
            else:
                try:
                    async with anyio.create_task_group() as tasks:
                        for node, indexes in groups.values():
                            tasks.start_soon(one_node, node, indexes)
                except BaseExceptionGroup as group:
                    # A transport failure on any node is the batch's failure.
                    failures = group.subgroup(ConnectionFailedError)
                    if failures is not None:
                        raise failures.exceptions[0] from None
                    raise
            pending = [
                i
                for i in pending
                if isinstance(reply := results[i], CommandError) and reply.code in _REDIRECT_CODES
            ]
            if not pending:
                break
            # A slot moved (resharding or failover) and those commands did not run:
            # refresh the map and resend them.
            await _translate(cluster.nodes_manager.initialize())
        return results

    async def _exchange(
        self,
        conn: AbstractConnection,
        wire: list[list[bytes]],
        atomic: bool,
        idempotent: bool,
        server: str,
    ) -> list[Reply | CommandError]:
        loaded = self._loaded.setdefault(server, set())
        sources = {
            cmd[1]: src
            for cmd in wire
            if cmd[1:2] and cmd[1] not in loaded and (src := script_source(cmd))
        }
        loads = [[b"SCRIPT", b"LOAD", src] for src in sources.values()]
        framed = [*loads, [b"MULTI"], *wire, [b"EXEC"]] if atomic else [*loads, *wire]
        replies: list[Reply | CommandError] = []
        if not conn.is_connected:
            # Connect apart from sending, so that a failure here is known to send nothing.
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
            except _TRANSPORT_ERRORS as exc:
                await conn.disconnect()
                raise ConnectionFailedError(f"cannot reach Redis: {exc}") from exc
        try:
            await conn.send_packed_command(_pack(conn, framed))
            for _ in framed:
                try:
                    replies.append(await conn.read_response(disable_decoding=True))
                except ResponseError as exc:
                    replies.append(CommandError(_error_message(exc)))
        except _TRANSPORT_ERRORS as exc:
            await conn.disconnect()
            raise ConnectionFailedError(_in_flight_failure(exc, idempotent)) from exc
        except BaseException:
            # A cancelled read leaves unread replies on the socket: never reuse it.
            await conn.disconnect()
            raise
        if all(not isinstance(r, CommandError) for r in replies[: len(loads)]):
            loaded.update(sources)
        replies = replies[len(loads) :]
        if atomic:
            replies = _unwrap_transaction(wire, replies)
        return replies


def _in_flight_failure(exc: BaseException, idempotent: bool) -> str:
    """What a failure after (part of) a request was sent means: it may have been applied.

    The Upstash driver says the same: a write that failed in flight may have run, and a
    caller must not assume otherwise.
    """
    message = f"Redis request failed after it was sent: {exc}"
    if not idempotent:
        return message + (
            "; not retried because the request is not marked idempotent, "
            "so it may or may not have been applied"
        )
    return message + "; it may or may not have been applied"


def _url_error(url: str, text: str) -> ValueError:
    """A URL error that repeats no part of a password, or of anything in the query.

    urllib and int() quote what they could not parse, which is part of the password when
    it holds an unencoded '/', '?' or '#'; a '?' also puts the password's tail in the
    query, where redis-py would take it for a parameter name. A secret pasted in the
    query is refused as an unknown parameter by position, never by name.
    """
    query = url.partition("?")[2]
    for position, (name, _) in enumerate(query_parts(query), 1):
        if "@" not in query and f"'{name}'" in text and name not in URL_QUERY_ARGUMENT_PARSERS:
            # redis-py's "unexpected keyword argument 'NAME'": an unknown parameter.
            return unknown_parameter("Redis", position, _KNOWN_SETTINGS)
    if (
        "@" in query
        or not _SAFE_URL_ERROR.fullmatch(text)
        or not url_text_is_safe(text, query, URL_QUERY_ARGUMENT_PARSERS)
    ):
        return ValueError(_MALFORMED_URL)
    return ValueError(text)


def _cluster_from_url(scheme: str, rest: str, kwargs: dict[str, Any]) -> RedisCluster:
    """A RedisCluster from the seed nodes of ``scheme://[auth@]host:port[,host:port...]``."""
    parts = urlsplit(f"{scheme}://{rest}")
    hosts = parts.netloc.rsplit("@", 1)[-1].split(",")
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    seeds = [_seed(hostport) for hostport in hosts]
    first = urlunsplit(parts._replace(netloc=auth + hosts[0]))
    try:
        return RedisCluster.from_url(first, startup_nodes=seeds, **kwargs)
    except TypeError as exc:
        raise ValueError(f"bad redis-py cluster setting ({exc})") from None


def _seed(hostport: str) -> aioredis.cluster.ClusterNode:
    """One seed node, ``host[:port]`` (6379 by default)."""
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, ""
    return aioredis.cluster.ClusterNode(host, int(port or 6379))


def _check_connection_kwargs(client: aioredis.Redis) -> None:
    """Refuse an unknown query parameter now: redis-py only finds out at the first command,
    with a TypeError that no caller expects from a command."""
    pool = client.connection_pool
    try:
        # Building a connection does not connect; it only checks the settings.
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, RedisError) as exc:
        # RedisError: a known setting with a bad value (ssl_cert_reqs=bogus).
        raise ValueError(f"bad redis-py connection setting ({exc})") from None


def _refuse_trio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise UnsupportedError(
            "RedisDriver runs on asyncio only (redis-py's limitation); "
            "under trio use MemoryDriver or UpstashDriver"
        ) from None


async def _translate(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (*_TRANSPORT_ERRORS, RedisClusterException) as exc:
        # RedisClusterException: no seed node answered as a cluster member (e.g. a
        # redis+cluster:// URL naming a server with cluster mode off).
        raise ConnectionFailedError(f"cannot reach Redis: {exc}") from exc


def _pack(conn: AbstractConnection, commands: list[list[bytes]]) -> list[bytes]:
    """The commands in RESP, by hiredis's C packer when it is there (several times faster
    than redis-py's, which re-encodes arguments that are bytes already)."""
    if _hiredis_pack is None:
        return conn.pack_commands(commands)
    return [_hiredis_pack(tuple(command)) for command in commands]


def _unwrap_transaction(
    wire: list[list[bytes]], replies: list[Reply | CommandError]
) -> list[Reply | CommandError]:
    """Turn the replies to MULTI, the queued commands and EXEC into one reply per command."""
    queued, exec_reply = replies[1:-1], replies[-1]
    if isinstance(exec_reply, list):
        # The only place errors nest: a command that failed inside the transaction.
        return [
            CommandError(_error_message(r)) if isinstance(r, ResponseError) else r
            for r in exec_reply
        ]
    # EXECABORT: Redis refused to queue some commands and ran none of them.
    refused = [r if isinstance(r, CommandError) else None for r in queued]
    cause = exec_reply if isinstance(exec_reply, CommandError) else None
    raise transaction_aborted(wire, refused, cause)


def _slot(cmd: list[bytes]) -> int | None:
    """The one hash slot of a command's keys (None for a keyless command).

    Raises:
        CrossSlotError: the command's own keys span slots (a multi-key command or a script).
        UnsupportedError: the command is not in kvstore's table, so it cannot be routed.
    """
    try:
        keys = command_keys(cmd)
    except KeyError:
        raise UnsupportedError(
            f"{command_name(cmd)} is not in kvstore's command table, so it cannot be "
            "routed on a Redis Cluster"
        ) from None
    if not keys:
        return None
    slot = key_slot(keys[0])
    if any(key_slot(key) != slot for key in keys[1:]):
        _refuse_cross_slot([cmd])
    return slot


def _refuse_cross_slot(wire: list[list[bytes]]) -> None:
    """Raise CrossSlotError naming the keys of ``wire`` by slot, if they span several."""
    by_slot: dict[int, list[str]] = {}
    for cmd in wire:
        for key in command_keys(cmd):
            by_slot.setdefault(key_slot(key), []).append(key.decode(errors="replace"))
    if len(by_slot) > 1:
        raise CrossSlotError(by_slot)
