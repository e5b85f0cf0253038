"""StudioServer: the studio app on uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import uvicorn

from kvstore.studio._app import create_app

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from kvstore.storage import Storage

__all__ = ["DEFAULT_PORT", "StudioServer", "is_loopback"]

DEFAULT_PORT = 8484
_START_TIMEOUT = 30.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StudioServer:
    """The studio, served by uvicorn.

    Run it in the foreground with :meth:`run` (what ``kvstore studio`` does), or on a
    background thread with :meth:`start`/:meth:`stop` or as a context manager (tests, the
    screenshot script)::

        with StudioServer("redis://127.0.0.1:6379/0") as studio:
            print(studio.url)

    Args:
        store: A store URL, or a :class:`~kvstore.storage.Storage` to read (its driver must
            work from the server's event loop: the memory driver does; for Redis and
            Upstash give a URL).
        namespace: The namespace, for a URL.
        host: The address to listen on. Anything but loopback needs ``token``.
        port: The TCP port; 0 picks a free one (read it back from :attr:`url`).
        token: If set, every request must carry it.
        log_level: uvicorn's log level.

    Raises:
        ValueError: a non-loopback ``host`` without a token.
    """

    def __init__(
        self,
        store: str | Storage,
        *,
        namespace: str = "kv",
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        log_level: str = "warning",
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"serving on {host} makes the studio reachable from other machines: "
                "give it a --token"
            )
        self._host = host
        self._port = port
        self.token = token
        self.app = create_app(
            store, namespace=namespace, token=token, loopback_only=is_loopback(host)
        )
        self.log_level = log_level
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://host:port/`` (known once started); never with the token."""
        if self._socket is None:
            raise RuntimeError("the studio has not been started")
        host, port = self._socket.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def url_with_token(self) -> str:
        """:attr:`url` with ``?token=`` for a first visit (a browser then keeps a cookie)."""
        return self.url if not self.token else f"{self.url}?token={quote(self.token, safe='')}"

    # -- in the foreground ----------------------------------------------------------------

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve until interrupted, on this thread's own event loop.

        Raises:
            RuntimeError: the server could not start.
        """
        server = self._prepare(on_started)
        try:
            asyncio.run(server.serve(sockets=[self._bound()]))
        except (Exception, SystemExit) as exc:
            if server.started:
                raise
            raise RuntimeError(f"the studio failed to start: {exc}") from exc
        finally:
            self._close_socket()

    # -- on a background thread -----------------------------------------------------------

    def start(self) -> str:
        """Serve on a background thread; return :attr:`url` once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the studio is already running")
        ready = threading.Event()
        server = self._prepare(ready.set)
        sock = self._bound()

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=serve, name="kvstore-studio", daemon=True)
        self._thread.start()
        ready.wait(_START_TIMEOUT)
        if not server.started:
            self.stop()
            raise RuntimeError(f"the studio failed to start: {self._error}") from self._error
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread. Stopping twice is harmless."""
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

    def _prepare(self, on_started: Callable[[], None] | None) -> uvicorn.Server:
        self._error = None
        config = uvicorn.Config(
            self.app,
            http="h11",
            lifespan="on",
            log_level=self.log_level,
            log_config=None,
            # The access log would write each address, and a first visit's has the token.
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = _Uvicorn(config, on_started)
        return self._server

    def _bound(self) -> socket.socket:
        host = self._host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
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

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()
