"""StudioServer: the studio app on uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import quote

import uvicorn

from kvstore._uvicorn_server import UvicornServer
from kvstore.studio._app import create_app

if TYPE_CHECKING:
    from kvstore.storage import Storage

__all__ = ["DEFAULT_PORT", "StudioServer", "is_loopback"]

DEFAULT_PORT = 8484


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StudioServer(UvicornServer):
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

    _what = "the studio"

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
        super().__init__(host, port)
        self.token = token
        self.app = create_app(
            store, namespace=namespace, token=token, loopback_only=is_loopback(host)
        )
        self.log_level = log_level

    @property
    def url(self) -> str:
        """``http://host:port/`` (known once started); never with the token."""
        return f"http://{self._address()}/"

    def url_with_token(self) -> str:
        """:attr:`url` with ``?token=`` for a first visit (a browser then keeps a cookie)."""
        return self.url if not self.token else f"{self.url}?token={quote(self.token, safe='')}"

    def _config(self, *, foreground: bool) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            http="h11",
            lifespan="on",
            log_level=self.log_level,
            log_config=None,
            # The access log would write each address, and a first visit's has the token.
            access_log=False,
            timeout_graceful_shutdown=1,
        )
