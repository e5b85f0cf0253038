"""One uvicorn app served in the foreground or on a background thread.

The local Upstash-protocol server and the studio share this: a listening socket bound
before serving (so an ephemeral port is known at once), :meth:`UvicornServer.run` until
interrupted, or :meth:`~UvicornServer.start`/:meth:`~UvicornServer.stop` on a thread of
its own with its own event loop (so callers may use any event loop, trio included).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

import uvicorn

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["UvicornServer"]

_START_TIMEOUT = 30.0


class UvicornServer(ABC):
    """A uvicorn server of one app, bound to ``host:port`` (0: a free port).

    Subclasses give the app's configuration (:meth:`_config`) and may wrap the serving
    (:meth:`_serve`); ``_what`` names the server in errors ("the studio").
    """

    __slots__ = ("_error", "_host", "_port", "_server", "_socket", "_thread")

    _what = "the server"

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @abstractmethod
    def _config(self, *, foreground: bool) -> uvicorn.Config:
        """The uvicorn configuration of the app (``foreground``: served by :meth:`run`)."""

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        """Serve until told to stop."""
        await server.serve(sockets=[sock])

    def _address(self) -> str:
        """``host:port`` as bound (an IPv6 host in brackets)."""
        if self._socket is None:
            raise RuntimeError(f"{self._what} has not been started")
        host, port = self._socket.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    # -- in the foreground ----------------------------------------------------------------

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve until interrupted (Ctrl+C), on this thread's own event loop.

        Args:
            on_started: Called once the server accepts requests (to print its address).

        Raises:
            RuntimeError: the server could not start.
        """
        server = self._prepare(on_started, foreground=True)
        try:
            asyncio.run(self._serve(server, self._bound()))
        except (Exception, SystemExit) as exc:
            # uvicorn ends a failed startup with SystemExit; say why instead.
            if server.started:
                raise
            raise RuntimeError(f"{self._what} failed to start: {exc}") from exc
        finally:
            self._close_socket()

    # -- on a background thread -----------------------------------------------------------

    def start(self) -> str:
        """Serve on a background thread; return :attr:`url` once it accepts requests.

        Raises:
            RuntimeError: the server could not start.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._what} is already running")
        ready = threading.Event()
        server = self._prepare(ready.set, foreground=False)
        sock = self._bound()

        def serve() -> None:
            try:
                asyncio.run(self._serve(server, sock))
            except BaseException as exc:
                # Kept for start() to report (uvicorn ends a failed startup with SystemExit).
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=serve, name=repr(self), daemon=True)
        self._thread.start()
        ready.wait(_START_TIMEOUT)
        if not server.started:
            self.stop()
            raise RuntimeError(f"{self._what} failed to start: {self._error}") from self._error
        return self.url

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the server answers (known once started)."""

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

    # -- internals ------------------------------------------------------------------------

    def _prepare(
        self, on_started: Callable[[], None] | None, *, foreground: bool
    ) -> uvicorn.Server:
        self._error = None
        self._server = _Uvicorn(self._config(foreground=foreground), on_started)
        return self._server

    def _bound(self) -> socket.socket:
        """Bind the listening socket now, so that an ephemeral port is known at once."""
        host = self._host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP, and without it every reply waits out a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        self._socket = sock
        return sock

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
