"""The ASGI application: the Upstash REST protocol in front of any kvstore driver.

Protocol, as Upstash documents it (https://upstash.com/docs/redis/features/restapi):

* ``POST /`` with a JSON array ``["SET", "k", "v"]`` runs one command: ``200
  {"result": ...}``, or ``400 {"error": "..."}`` when the command fails.
* ``POST /pipeline`` with an array of such arrays: ``200 [{"result": ...}, {"error": ...}]``,
  one entry per command, in order.
* ``POST /multi-exec``: the same, atomically. A transaction refused as a whole (a command
  Redis refuses to queue, an unsupported command) runs nothing and gets ``400 {"error":
  "..."}``; a command that fails while the transaction runs gets its own error entry and
  the others still apply, as on Redis.
* ``Authorization: Bearer <token>`` (or ``?_token=<token>``) on every request, else ``401
  {"error": "Unauthorized"}``.
* ``Upstash-Encoding: base64``: every string in a result is base64, except the status reply
  ``OK``. Without it, strings are UTF-8 text, invalid bytes replaced with U+FFFD.
* Every command reply carries an ``Upstash-Sync-Token`` header. Clients send the last one
  back for read-your-writes; one local store is always consistent, so it is only echoed.

Arguments may be JSON strings, numbers (a float keeps the text it was sent as) or booleans
(``"true"``/``"false"``, as upstash-redis documents). Commands that would change the state of
a shared backing connection or block it (``SELECT``, ``MULTI``, ``SUBSCRIBE``, ``BLPOP``, ...)
are refused, as Upstash refuses them; ``FLUSHALL`` empties only the backing database, which
is what it means on Upstash (one database per endpoint).

Beyond the protocol: ``GET /_kvstore/stats`` returns the request and command counters
(:class:`~kvstore.upstash_server.ServerStats`), and a :class:`FaultPlan` can make command
requests misbehave.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from kvstore.errors import (
    BatchError,
    CommandError,
    ConnectionFailedError,
    KVStoreError,
    TransactionAbortedError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from kvstore.drivers.base import Arg, Driver, Reply
    from kvstore.upstash_server._faults import Fault, FaultPlan
    from kvstore.upstash_server._stats import ServerStats

__all__ = ["STATS_PATH", "create_app"]

logger = logging.getLogger("kvstore.upstash_server")

STATS_PATH = "/_kvstore/stats"
SYNC_TOKEN_HEADER = "Upstash-Sync-Token"
_COMMAND_METHODS = ["POST", "PUT"]

# Connection state, blocking and server administration: a REST client has no connection of
# its own, and these would change or stall the backing store's shared ones.
_REFUSED = frozenset(
    {
        "ACL",
        "AUTH",
        "BGREWRITEAOF",
        "BGSAVE",
        "BLMOVE",
        "BLMPOP",
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BZMPOP",
        "BZPOPMAX",
        "BZPOPMIN",
        "CLIENT",
        "CLUSTER",
        "CONFIG",
        "DEBUG",
        "DISCARD",
        "EXEC",
        "FAILOVER",
        "HELLO",
        "MIGRATE",
        "MODULE",
        "MONITOR",
        "MOVE",
        "MULTI",
        "PSUBSCRIBE",
        "PSYNC",
        "PUNSUBSCRIBE",
        "QUIT",
        "READONLY",
        "READWRITE",
        "REPLICAOF",
        "RESET",
        "SAVE",
        "SELECT",
        "SHUTDOWN",
        "SLAVEOF",
        "SSUBSCRIBE",
        "SUBSCRIBE",
        "SUNSUBSCRIBE",
        "SWAPDB",
        "SYNC",
        "UNSUBSCRIBE",
        "UNWATCH",
        "WAIT",
        "WAITAOF",
        "WATCH",
    }
)


class _BadRequestError(Exception):
    """A request refused before any command ran; ``message`` becomes its JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    backing: Callable[[], Awaitable[Driver]],
    *,
    token: str,
    max_request_size: int,
    stats: ServerStats,
    faults: FaultPlan,
    release: Callable[[Driver], Awaitable[None]] | None = None,
) -> Starlette:
    """Build the ASGI app, to serve with any ASGI server.

    Args:
        backing: Returns the backing driver; awaited once, at startup, on the server's
            event loop.
        token: The bearer token every request must carry.
        max_request_size: Larger request bodies get 413 before they are read in full.
        stats: Counts requests and commands.
        faults: Faults to inject into command requests.
        release: Closes the backing driver at shutdown (None: leave it open).
    """
    state: dict[str, Driver] = {}
    sync_tokens = itertools.count(1)
    expected = token.encode()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        driver = await backing()
        state["driver"] = driver
        try:
            yield
        finally:
            if release is not None:
                await release(driver)

    def authorized(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = request.query_params.get("_token", "")
        return hmac.compare_digest(given.strip().encode(), expected)

    async def command_endpoint(request: Request) -> Response:
        endpoint = request.url.path
        try:
            if not authorized(request):
                raise _BadRequestError(401, "Unauthorized")
            body = await _read_body(request, max_request_size)
            commands = _parse(body, batch=endpoint != "/")
        except _BadRequestError as exc:
            stats.reject(exc.status)
            return _json(exc.status, {"error": exc.message}, close=exc.status == 413)
        fault = faults.take()
        if fault is not None and not fault.applied:
            return await _misbehave(fault, request)
        status, payload = await _run(state["driver"], endpoint, commands, request)
        stats.record(endpoint, [str(c[0]).upper() for c in commands])
        if fault is not None:
            return await _misbehave(fault, request)
        response = _json(status, payload)
        response.headers[SYNC_TOKEN_HEADER] = str(next(sync_tokens))
        return response

    async def stats_endpoint(request: Request) -> Response:
        if not authorized(request):
            stats.reject(401)
            return _json(401, {"error": "Unauthorized"})
        return _json(200, stats.snapshot())

    async def http_error(request: Request, exc: Exception) -> Response:
        # Upstash answers with JSON everywhere; Starlette's default is plain text.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
        return _json(status, {"error": detail})

    return Starlette(
        routes=[
            Route("/", command_endpoint, methods=_COMMAND_METHODS),
            Route("/pipeline", command_endpoint, methods=_COMMAND_METHODS),
            Route("/multi-exec", command_endpoint, methods=_COMMAND_METHODS),
            Route(STATS_PATH, stats_endpoint, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


# -- requests -----------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _BadRequestError(400, "ERR invalid Content-Length")
        if int(declared) > limit:
            raise _BadRequestError(413, f"ERR max request size exceeded (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BadRequestError(413, f"ERR max request size exceeded (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, *, batch: bool) -> list[list[Arg]]:
    """The commands of a request body: one array, or an array of arrays when ``batch``."""
    try:
        # Floats stay the text they were sent as: "1.50" must not become "1.5".
        payload = json.loads(body, parse_float=str, parse_constant=_no_constant)
    except ValueError:
        raise _BadRequestError(400, "ERR the request body is not valid JSON") from None
    if not batch:
        return [_command(payload)]
    if not isinstance(payload, list) or not payload:
        raise _BadRequestError(400, "ERR expected a JSON array of commands (arrays)")
    return [_command(item) for item in payload]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid argument")


def _command(item: Any) -> list[Arg]:
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise _BadRequestError(400, "ERR a command is a JSON array starting with the command name")
    name = item[0].upper()
    if name in _REFUSED:
        raise _BadRequestError(400, f"ERR Command is not available: '{item[0].lower()}'")
    args: list[Arg] = ["FLUSHDB" if name == "FLUSHALL" else item[0]]
    for arg in item[1:]:
        if isinstance(arg, bool):
            args.append("true" if arg else "false")
        elif isinstance(arg, str | int):
            args.append(arg)
        else:
            raise _BadRequestError(400, "ERR command arguments must be strings or numbers")
    return args


# -- replies ------------------------------------------------------------------------------


async def _run(
    driver: Driver, endpoint: str, commands: list[list[Arg]], request: Request
) -> tuple[int, Any]:
    """Run ``commands`` on the backing driver; the status and JSON payload of the reply."""
    encode = _base64 if request.headers.get("upstash-encoding", "").lower() == "base64" else _text
    atomic = endpoint == "/multi-exec"
    try:
        results: list[Reply | CommandError] = list(await driver.execute(commands, atomic=atomic))
    except TransactionAbortedError as exc:
        return 400, {"error": exc.errors[0].message}
    except BatchError as exc:
        results = exc.results
    except ConnectionFailedError as exc:
        logger.warning("backing store unreachable: %s", exc)
        return 503, {"error": f"ERR backing store unreachable: {exc}"}
    except KVStoreError as exc:
        return 400, {"error": f"ERR {exc}"}
    entries = [_entry(r, encode) for r in results]
    if endpoint == "/":
        return (400 if "error" in entries[0] else 200), entries[0]
    return 200, entries


def _entry(reply: Reply | CommandError, encode: Callable[[bytes], str]) -> dict[str, Any]:
    if isinstance(reply, CommandError):
        return {"error": reply.message}
    return {"result": _encode(reply, encode)}


def _encode(reply: Reply | CommandError, encode: Callable[[bytes], str]) -> Any:
    if isinstance(reply, bytes):
        return encode(reply)
    if isinstance(reply, list):
        return [_encode(r, encode) for r in reply]
    if isinstance(reply, CommandError):
        # An error nested in an array (a script may return one): its text, as a string.
        return reply.message
    return reply


def _base64(value: bytes) -> str:
    # Upstash leaves the status reply OK as it is, and its clients expect exactly that.
    return "OK" if value == b"OK" else base64.b64encode(value).decode()


def _text(value: bytes) -> str:
    return value.decode(errors="replace")


def _json(status: int, payload: Any, *, close: bool = False) -> Response:
    headers = {"Connection": "close"} if close else None
    return Response(
        msgspec.json.encode(payload),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# -- faults -------------------------------------------------------------------------------


async def _misbehave(fault: Fault, request: Request) -> Response:
    if fault.kind == "error":
        return _json(fault.status, {"error": f"injected fault: HTTP {fault.status}"})
    if fault.kind == "malformed":
        return Response(b'[{"result": "T0', media_type="application/json")
    if fault.kind == "hang":
        # Hang until the client gives up (or the time runs out), so that a client's timeout
        # does not leave a sleeping request behind to hold up the server's shutdown.
        with anyio.move_on_after(fault.seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass
    return _DroppedResponse()


class _DroppedResponse(Response):
    """Starts a 200 reply and stops halfway: the server then closes the connection."""

    def __init__(self) -> None:
        super().__init__(media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'[{"result"', "more_body": True})
        # Returning with the body incomplete makes the ASGI server drop the connection.
