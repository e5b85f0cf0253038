"""UpstashServer: run the protocol app on uvicorn, in the foreground or on a thread."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import threading
from typing import TYPE_CHECKING, Any, Self

import anyio.to_thread
import uvicorn

from kvstore.upstash_server._app import create_app
from kvstore.upstash_server._faults import FaultPlan
from kvstore.upstash_server._stats import ServerStats

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from kvstore.drivers.base import Driver

__all__ = ["DEFAULT_MAX_REQUEST_SIZE", "DEFAULT_PORT", "UpstashServer"]

DEFAULT_PORT = 8079
DEFAULT_MAX_REQUEST_SIZE = 10 * 1024 * 1024
_START_TIMEOUT = 30.0


class UpstashServer:
    """A local server speaking the Upstash REST protocol, backed by a kvstore driver.

    Run it in the foreground with :meth:`run` (what ``python -m kvstore.upstash_server``
    does), or on a background thread with :meth:`start`/:meth:`stop` or as a (sync or
    async) context manager, which is how tests use it::

        async with UpstashServer() as server:  # memory backing, ephemeral port
            driver = UpstashDriver(server.url, server.token)

    The server always runs its own asyncio event loop (on its thread, or in :meth:`run`),
    so clients may use any event loop, trio included.

    Args:
        backing: What stores the data: ``None`` or ``"memory"`` for a fresh
            :class:`~kvstore.drivers.MemoryDriver`, a storage URL (``redis://``,
            ``rediss://``, ``unix://``, ``memory://<file>``: see
            :func:`~kvstore.storage.driver_from_url`), or a driver you made (used from the
            server's event loop, and left open).
        token: The bearer token clients must send. A random one when None.
        host: The address to listen on; loopback by default, since there is no TLS.
        port: The TCP port; 0 picks a free one (read it back from :attr:`url`).
        max_request_size: Bodies larger than this many bytes get 413.
        log_level: uvicorn's log level.

    Attributes:
        token: The bearer token.
        stats: The request and command counters.
        faults: Faults to inject into the next command requests.
    """

    __slots__ = (
        "_backing",
        "_driver",
        "_error",
        "_host",
        "_max_request_size",
        "_port",
        "_server",
        "_socket",
        "_thread",
        "faults",
        "log_level",
        "stats",
        "token",
    )

    def __init__(
        self,
        *,
        backing: Driver | str | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        log_level: str = "warning",
    ) -> None:
        self._backing = backing
        self.token = token or secrets.token_urlsafe(24)
        self._host = host
        self._port = port
        self._max_request_size = max_request_size
        self.log_level = log_level
        self.stats = ServerStats()
        self.faults = FaultPlan()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._driver: Driver | None = None

    def __repr__(self) -> str:
        where = self.url if self._socket is not None else f"{self._host}:{self._port}"
        return f"{type(self).__name__}({where})"

    @property
    def url(self) -> str:
        """The REST URL, ``http://host:port`` (the port is known once the server started)."""
        if self._socket is None:
            raise RuntimeError("the server has not been started")
        host, port = self._socket.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def driver_url(self) -> str:
        """A URL for ``UpstashDriver.from_url``/``Storage.from_url``, token included."""
        from urllib.parse import quote

        return f"upstash+http://:{quote(self.token, safe='')}@{self.url.removeprefix('http://')}"

    # -- in the foreground ----------------------------------------------------------------

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve until interrupted (Ctrl+C), on this thread's own event loop.

        Args:
            on_started: Called once the server accepts requests (to print its address).

        Raises:
            RuntimeError: the server could not start (e.g. the backing Redis is down).
        """
        server = self._prepare(log_config=uvicorn.config.LOGGING_CONFIG, on_started=on_started)
        try:
            asyncio.run(self._serve(server, self._bound()))
        except (Exception, SystemExit) as exc:
            # uvicorn ends a failed startup with SystemExit; say why instead.
            if server.started:
                raise
            raise RuntimeError(f"the server failed to start: {exc}") from exc
        finally:
            self._close_socket()

    # -- on a background thread -----------------------------------------------------------

    def start(self) -> str:
        """Start serving on a background thread; return :attr:`url` once it accepts requests.

        Raises:
            RuntimeError: the server could not start (e.g. the backing Redis is down).
        """
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        ready = threading.Event()
        server = self._prepare(log_config=None, on_started=ready.set)
        sock = self._bound()
        self._thread = threading.Thread(
            target=self._serve_thread, args=(server, sock, ready), name=repr(self), daemon=True
        )
        self._thread.start()
        ready.wait(_START_TIMEOUT)
        if not server.started:
            self.stop()
            raise RuntimeError(f"the server failed to start: {self._error}") from self._error
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end. Stopping twice is harmless."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._server = None
        self._close_socket()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting waits for the server thread: do it off the caller's event loop.
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    # -- internals ------------------------------------------------------------------------

    def _prepare(
        self, *, log_config: Any, on_started: Callable[[], None] | None = None
    ) -> uvicorn.Server:
        self._error = None
        app = create_app(
            self._opened_driver,
            token=self.token,
            max_request_size=self._max_request_size,
            stats=self.stats,
            faults=self.faults,
        )
        config = uvicorn.Config(
            app,
            http="h11",
            lifespan="on",
            log_level=self.log_level,
            log_config=log_config,
            access_log=False,
            # A request hung by an injected fault must not hold up stop() for long.
            timeout_graceful_shutdown=1,
        )
        self._server = _Uvicorn(config, on_started)
        return self._server

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        """Open the backing store, serve until told to stop, close the store."""
        # Opened here rather than in the app's lifespan: a store that is down then fails
        # with its own message instead of a lifespan traceback logged by uvicorn.
        driver = await _open_driver(self._backing)
        try:
            # Fail at startup, not on the first request, when the backing store is down.
            await driver.execute([("PING",)], idempotent=True)
            self._driver = driver
            await server.serve(sockets=[sock])
        finally:
            self._driver = None
            if not _is_driver(self._backing):
                await driver.aclose()

    async def _opened_driver(self) -> Driver:
        assert self._driver is not None, "the app starts only after the store is open"
        return self._driver

    def _bound(self) -> socket.socket:
        """Bind the listening socket now, so that an ephemeral port is known at once."""
        family = socket.AF_INET6 if _is_ipv6(self._host) else socket.AF_INET
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP, and without it every reply waits out a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        self._socket = sock
        return sock

    def _serve_thread(
        self, server: uvicorn.Server, sock: socket.socket, ready: threading.Event
    ) -> None:
        try:
            asyncio.run(self._serve(server, sock))
        except BaseException as exc:
            # Kept for start() to report (uvicorn ends a failed startup with SystemExit).
            self._error = exc
        finally:
            ready.set()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, announcing when it accepts requests."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


def _is_driver(backing: object) -> bool:
    return backing is not None and not isinstance(backing, str)


async def _open_driver(backing: Driver | str | None) -> Driver:
    if backing is None or backing == "memory":
        from kvstore.drivers.memory import MemoryDriver

        return MemoryDriver()
    if isinstance(backing, str):
        from kvstore.storage import driver_from_url

        return driver_from_url(backing)
    return backing


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
