"""The studio's ASGI app: routes, the safety rules, and error pages.

Safety, enforced here for every request:

* Read-only: every route is GET (or HEAD); anything else gets 405.
* With a token, every request must carry it: ``Authorization: Bearer <token>``, or the
  cookie that a first visit with ``?token=<token>`` sets (the token is then taken out of
  the address by a redirect). Compared in constant time; never logged (uvicorn's access
  log is off and the studio logs paths without their query).
* Without a token (loopback only), the Host header must name loopback (``127.0.0.1``,
  ``localhost``, ``[::1]``), so a web page cannot reach the studio through DNS rebinding.
* Every response carries a strict Content-Security-Policy (no inline script or style:
  the pages load one script and one stylesheet of their own), ``nosniff``, no referrer,
  no framing, and pages are not cached.
* Errors are pages, never tracebacks: 404 for an unknown id or address, 503 when the
  store cannot be reached or opened, 400 for a bad filter, 500 otherwise.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kvstore.errors import (
    ConnectionFailedError,
    KVStoreError,
    PersistenceError,
    ValidationError,
)
from kvstore.studio._pages import BadRequestError, NotFoundPageError, Pages
from kvstore.studio._store import StoreSource, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from kvstore.storage import Storage

__all__ = ["COOKIE", "CSP", "create_app"]

logger = logging.getLogger("kvstore.studio")

#: The cookie that carries the token after a first visit with ``?token=``.
COOKIE = "kvstore_studio_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
STATIC = Path(__file__).parent / "static"


def create_app(
    store: str | Storage,
    *,
    namespace: str = "kv",
    token: str | None = None,
    loopback_only: bool = True,
) -> Starlette:
    """The studio as an ASGI app.

    Args:
        store: A store URL (opened on the first request, on the server's event loop) or a
            :class:`~kvstore.storage.Storage` to read (left open).
        namespace: The namespace to show, for a URL.
        token: If set, every request must carry it (see the module docstring).
        loopback_only: Accept only Host headers naming loopback (when served on
            127.0.0.1 without a token).
    """
    source = StoreSource(store, namespace=namespace)
    pages = Pages(source)
    routes = [
        Route("/", pages.overview),
        Route("/go", pages.go),
        Route("/resource", pages.resource),
        Route("/thread", pages.thread),
        Route("/runs", pages.runs),
        Route("/run", pages.run),
        Route("/run.json", pages.run_json),
        Route("/scores", pages.scores),
        Route("/score", pages.score),
        Route("/traces", pages.traces),
        Route("/trace", pages.trace),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    def error_page(status: int, heading: str, message: str) -> HTMLResponse:
        try:
            return pages.html(
                "error.html", status=status, title=heading, nav="", heading=heading, message=message
            )
        except Exception:  # the error page itself must never fail into a traceback
            logger.exception("the error page failed")
            return HTMLResponse(f"<h1>{status}</h1>", status_code=status)

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, NotFoundPageError):
            return error_page(404, "Not found", str(exc))
        if isinstance(exc, HTTPException) and exc.status_code != 404:
            return error_page(exc.status_code, "Not allowed", _http_message(exc.status_code))
        return error_page(404, "Not found", f"The studio has no page at {request.url.path!r}.")

    async def bad_request(request: Request, exc: Exception) -> Response:
        return error_page(400, "Bad request", str(exc))

    async def unreachable(request: Request, exc: Exception) -> Response:
        logger.warning("the store cannot be reached: %s", exc)
        return error_page(
            503,
            "The store cannot be reached",
            f"The studio could not reach {source.label}: {exc}",
        )

    async def unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("the store cannot be opened: %s", exc)
        return error_page(
            503, "The store cannot be opened", f"The studio could not open {source.label}: {exc}"
        )

    async def store_error(request: Request, exc: Exception) -> Response:
        logger.error("the store failed: %s", exc)
        return error_page(500, "The store failed", f"{type(exc).__name__}: {exc}")

    def crashed() -> Response:
        return error_page(500, "Something went wrong", "The studio failed to show this page.")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await source.aclose()

    middleware = [
        Middleware(_Guard, token=token, crashed=crashed, check_host=loopback_only and token is None)
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPException: not_found,
            NotFoundPageError: not_found,
            BadRequestError: bad_request,
            ValidationError: bad_request,
            ConnectionFailedError: unreachable,
            StoreUnavailableError: unavailable,
            PersistenceError: unavailable,
            KVStoreError: store_error,
        },
        lifespan=lifespan,
    )


def _http_message(status: int) -> str:
    if status == 405:
        return "The studio is read-only: it answers GET requests only."
    return f"HTTP {status}."


class _Guard:
    """Security headers, timing and the token check around every request; a crash
    becomes an error page (logged with its traceback, never sent)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        crashed: Callable[[], Response],
        check_host: bool,
    ) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.crashed = crashed
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers += _HEADERS
                headers.append((b"server-timing", f"app;dur={took:.2f}".encode()))
                if not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        denied = self._check(scope)
        if denied is not None:
            await denied(scope, receive, send_with_headers)
        else:
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception:
                logger.exception("%s %s failed", scope["method"], path)
                if status:  # the response has begun: nothing more can be sent
                    raise
                await self.crashed()(scope, receive, send_with_headers)
        # The path only: a query may hold the token.
        logger.info(
            "%s %s %d %.1f ms",
            scope["method"],
            path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    def _check(self, scope: Scope) -> Response | None:
        """None when the request may pass; else the response that refuses or redirects it."""
        request = Request(scope)
        if self.check_host and _host(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return HTMLResponse(
                "<!doctype html><title>Bad host</title><h1>Bad host</h1><p>Without a token, "
                "the studio answers only to 127.0.0.1, localhost and [::1].</p>",
                status_code=400,
            )
        if self.token is None:
            return None
        given = request.query_params.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.token):
                return _refused()
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                COOKIE, given, httponly=True, samesite="strict", secure=False, path="/"
            )
            return response
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credential.encode(), self.token):
            return None
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), self.token):
            return None
        return _refused()


def _host(header: str) -> str:
    """The host name of a Host header, without its port: ``[::1]:8484`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.partition(":")[0]


def _refused() -> Response:
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Token needed · kvstore studio"
        "</title><h1>Token needed</h1><p>This studio asks for its token: open the address "
        "you were given with <code>?token=&lt;the token&gt;</code> once, and this browser "
        "keeps it in a cookie.</p></html>",
        status_code=401,
    )
