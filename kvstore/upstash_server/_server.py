"""UpstashServer: run the protocol app on uvicorn, in the foreground or on a thread."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Self

import anyio.to_thread
import uvicorn

from kvstore._uvicorn_server import UvicornServer
from kvstore.upstash_server._app import create_app
from kvstore.upstash_server._faults import FaultPlan
from kvstore.upstash_server._stats import ServerStats

if TYPE_CHECKING:
    import socket
    from types import TracebackType

    from kvstore.drivers.base import Driver

__all__ = ["DEFAULT_MAX_REQUEST_SIZE", "DEFAULT_PORT", "UpstashServer"]

DEFAULT_PORT = 8079
DEFAULT_MAX_REQUEST_SIZE = 10 * 1024 * 1024


class UpstashServer(UvicornServer):
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
        "_max_request_size",
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
        super().__init__(host, port)
        self._backing = backing
        self.token = token or secrets.token_urlsafe(24)
        self._max_request_size = max_request_size
        self.log_level = log_level
        self.stats = ServerStats()
        self.faults = FaultPlan()
        self._driver: Driver | None = None

    def __repr__(self) -> str:
        where = self.url if self._socket is not None else f"{self._host}:{self._port}"
        return f"{type(self).__name__}({where})"

    @property
    def url(self) -> str:
        """The REST URL, ``http://host:port`` (the port is known once the server started)."""
        return f"http://{self._address()}"

    @property
    def driver_url(self) -> str:
        """A URL for ``UpstashDriver.from_url``/``Storage.from_url``, token included."""
        from urllib.parse import quote

        return f"upstash+http://:{quote(self.token, safe='')}@{self.url.removeprefix('http://')}"

    # -- as an async context manager ---------------------------------------------------

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

    def _config(self, *, foreground: bool) -> uvicorn.Config:
        app = create_app(
            self._opened_driver,
            token=self.token,
            max_request_size=self._max_request_size,
            stats=self.stats,
            faults=self.faults,
        )
        return uvicorn.Config(
            app,
            http="h11",
            lifespan="on",
            log_level=self.log_level,
            log_config=uvicorn.config.LOGGING_CONFIG if foreground else None,
            access_log=False,
            # A request hung by an injected fault must not hold up stop() for long.
            timeout_graceful_shutdown=1,
        )

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
