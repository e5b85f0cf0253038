"""UpstashDriver: Redis over the Upstash REST protocol, on upstash-redis's HTTP layer.

Every batch is one HTTP request, which on Upstash is what costs latency: ``POST /pipeline``,
or ``POST /multi-exec`` when atomic (a single command goes through ``/pipeline`` too, so
every request has one shape). Scripts are ``EVALSHA``, then ``EVAL`` with the source on
``NOSCRIPT``, as on :class:`~kvstore.drivers.redis.RedisDriver`.

URL forms accepted by :meth:`UpstashDriver.from_url` (and so by ``Storage.from_url``):

============================================  ===============================================
``upstash://:TOKEN@host[:port][/path]``       the REST endpoint ``https://host[:port][/path]``
``upstash+https://:TOKEN@host[:port]``        the same, spelled out
``upstash+http://:TOKEN@127.0.0.1:8079``      plain HTTP, for the local server
                                              (``python -m kvstore.upstash_server``)
``upstash://host`` (no token)                 the token from ``UPSTASH_REDIS_REST_TOKEN``
``upstash://`` (no host)                      the endpoint from ``UPSTASH_REDIS_REST_URL``
                                              too: the same as :meth:`from_env`
============================================  ===============================================

The token is the URL's password. Upstash tokens may contain ``/``, ``+`` and ``=``, so
percent-encode it (``urllib.parse.quote(token, safe="")``). A username is not used; a URL
with a username but no password is refused, since that is a token in the wrong place.
Query parameters: ``timeout`` (seconds per request, ``none`` for no limit),
``read_your_writes`` (``true``/``false``) and ``max_request_bytes`` (bytes, ``none`` for no
limit).

What the driver does on top of the SDK
    upstash-redis supplies the HTTP client (httpx), the request headers and the
    read-your-writes sync token; the driver owns each request and its reply, because the
    SDK (1.8) gets these wrong for kvstore's purposes:

    * a pipeline reply with an error entry makes the SDK raise on the first error and drop
      every other result; the driver reports each failed command with its position and
      keeps the rest (:class:`~kvstore.errors.BatchError`);
    * a transaction refused as a whole comes back as one ``{"error": ...}`` object, which
      the SDK iterates as if it were a list and crashes on; the driver raises
      :class:`~kvstore.errors.TransactionAbortedError`;
    * the SDK decodes every reply to ``str``; the driver asks for base64 replies
      (``Upstash-Encoding: base64``) and decodes them to ``bytes`` itself, so replies are
      exact whatever they hold;
    * the SDK retries with ``asyncio.sleep``, which fails under trio; the driver turns SDK
      retries off and retries idempotent requests with :class:`RetryPolicy`, which sleeps
      through anyio;
    * the SDK sends floats as JSON numbers, and ``inf`` is not JSON; the driver sends every
      argument as the text :func:`~kvstore.drivers.base.encode_arg` makes (``+inf``).

Requests carry text only (the REST protocol has no binary request form for pipelines), so
``binary_safe`` is False: a ``bytes`` argument that is not UTF-8 raises
:class:`~kvstore.errors.UnsupportedError` instead of being altered. Replies are exact bytes.

The token never appears in this driver's ``repr`` or in the messages of its exceptions.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import msgspec

from kvstore._extras import require
from kvstore.drivers._commandspec import COMMANDS, command_name
from kvstore.drivers._replies import (
    as_eval,
    label,
    missing_scripts,
    raise_for_errors,
    script_source,
    transaction_aborted,
)
from kvstore.drivers._retry import RetryPolicy
from kvstore.drivers._urls import query_parts, shown_scheme, unknown_parameter
from kvstore.drivers.base import Command, Driver, Reply, encode_arg
from kvstore.errors import (
    BatchError,
    CommandError,
    ConnectionFailedError,
    DriverError,
    UnsupportedError,
    ValidationError,
)

require("upstash_redis", "upstash")

import httpx  # noqa: E402 - upstash-redis's own HTTP client, checked above
from upstash_redis.asyncio import Redis as UpstashClient  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["UpstashDriver"]

URL_ENV = "UPSTASH_REDIS_REST_URL"
TOKEN_ENV = "UPSTASH_REDIS_REST_TOKEN"
SYNC_TOKEN_HEADER = "Upstash-Sync-Token"

_SCHEMES = {"upstash": "https", "upstash+https": "https", "upstash+http": "http"}
_DEFAULT_TIMEOUT = 10.0
#: Upstash's request size limit on its Free and Pay-as-you-go plans ("10MB").
DEFAULT_MAX_REQUEST_BYTES = 10_000_000
# The parts of upstash-redis's client the driver sends its requests through.
_SDK_INTERNALS = ("_headers", "_http", "_maybe_set_sync_token_header", "_update_sync_token")
# Real Upstash tokens are dozens of characters long.
_MIN_SCRUBBED_TOKEN = 8
# Redis names the culprit of a refused transaction in these messages.
_REFUSAL = re.compile(r"(?:wrong number of arguments for|unknown command) '([^']+)'")


class _RefusedError(Exception):
    """The server refused the whole request with one error; nothing ran."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpstashDriver(Driver):
    """A :class:`~kvstore.drivers.base.Driver` on the Upstash REST API (see the module docs).

    Args:
        url: The REST endpoint (``UPSTASH_REDIS_REST_URL``), ``https://...`` or, for the
            local server, ``http://127.0.0.1:PORT``. It must not carry credentials.
        token: The REST token (``UPSTASH_REDIS_REST_TOKEN``).
        timeout: Seconds each HTTP request may take (connect, send, wait, read), or None.
        retry: How idempotent requests are retried after a transport failure.
        read_your_writes: Send Upstash's sync token so that reads observe this driver's
            earlier writes even when served by a replica.
        allow_telemetry: Let the SDK add its telemetry headers (SDK and Python versions).
        max_request_bytes: The largest request body the database accepts (Upstash: 10 MB
            on the Free and Pay-as-you-go plans), or None for no limit. A batch whose
            body would be larger is refused with ``ValidationError`` naming the limit,
            before anything is sent, so nothing of it is written.

    Raises:
        ValueError: for a URL that is not http(s), carries credentials, or an empty token,
            or a ``max_request_bytes`` that is not a positive integer.
    """

    __slots__ = (
        "_client",
        "_closed",
        "_loaded",
        "_retry",
        "_timeout",
        "_token",
        "_url",
        "max_request_bytes",
    )

    binary_safe = False

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float | None = _DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        read_your_writes: bool = True,
        allow_telemetry: bool = False,
        max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        if max_request_bytes is not None and (
            not isinstance(max_request_bytes, int)
            or isinstance(max_request_bytes, bool)
            or max_request_bytes < 1
        ):
            raise ValueError("max_request_bytes must be a positive integer or None")
        self.max_request_bytes = max_request_bytes
        self._url = _check_rest_url(url)
        self._token = _check_token(token)
        if _holds(self._url, self._token):
            # The URL shows in repr() and in error messages; the token must not.
            raise ValueError(
                "the Upstash REST URL holds the token: pass the endpoint alone as the URL, "
                "and the token as the token (or the password of an upstash:// URL)"
            )
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._closed = False
        #: The scripts the server is known to have (see execute).
        self._loaded: set[str] = set()
        # SDK retries off: they sleep with asyncio (broken under trio) and would retry
        # requests that are not idempotent. Callers of .client get no retries either.
        self._client = UpstashClient(
            self._url,
            token,
            rest_encoding="base64",
            rest_retries=0,
            allow_telemetry=allow_telemetry,
            read_your_writes=read_your_writes,
        )
        missing = [name for name in _SDK_INTERNALS if not hasattr(self._client, name)]
        if missing:
            raise ImportError(
                "this version of upstash-redis lacks the client internals UpstashDriver "
                f"uses ({', '.join(missing)}); install a supported one: "
                'pip install "kvstore[upstash]"'
            )

    @classmethod
    def from_env(cls, **kwargs: Any) -> UpstashDriver:
        """Connect with ``UPSTASH_REDIS_REST_URL`` and ``UPSTASH_REDIS_REST_TOKEN``.

        Keyword arguments go to the constructor.

        Raises:
            ValueError: naming the variable that is unset or empty.
        """
        return cls(_from_env(URL_ENV), _from_env(TOKEN_ENV), **kwargs)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> UpstashDriver:
        """Connect to the endpoint that ``url`` names (see the module docstring for forms).

        Keyword arguments go to the constructor and win over the URL's query parameters.

        Raises:
            ValueError: for a malformed URL (the message never repeats the URL, which may
                hold the token) or a missing environment variable.
        """
        rest_url, token, options = _parse_url(url)
        return cls(rest_url, token, **{**options, **kwargs})

    @property
    def url(self) -> str:
        """The REST endpoint."""
        return self._url

    @property
    def client(self) -> UpstashClient:
        """The upstash-redis client underneath, for commands kvstore does not send.

        It shares the driver's HTTP connection pool and sync token, and has SDK retries
        turned off.
        """
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._url!r})"

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        if not commands:
            return []
        # The first batch that sends a script carries its source ahead of it (one request).
        sources = {
            sha: source
            for command in commands
            if (source := script_source(command)) and (sha := str(command[1])) not in self._loaded
        }
        loads = [("SCRIPT", "LOAD", source) for source in sources.values()]
        body = _json_body([*loads, *commands])
        limit = self.max_request_bytes
        if limit is not None and len(body) > limit:
            raise ValidationError(
                f"the request would take {len(body)} bytes, over the {limit}-byte limit of "
                "this Upstash database (max_request_bytes); nothing was sent"
            )
        path = "/multi-exec" if atomic else "/pipeline"

        async def attempt() -> list[Reply | CommandError]:
            results = await self._roundtrip(
                path, body, len(loads) + len(commands), idempotent=idempotent
            )
            if not any(isinstance(r, CommandError) for r in results[: len(loads)]):
                self._loaded.update(sources)
            results = results[len(loads) :]
            missing = missing_scripts(commands, results)
            if missing:
                # The server lost its scripts since: send their source (EVAL caches it
                # again, so later batches send EVALSHA alone).
                again = _json_body([as_eval(commands[i]) for i in missing])
                replies = await self._roundtrip(
                    "/pipeline", again, len(missing), idempotent=idempotent
                )
                for i, reply in zip(missing, replies, strict=True):
                    results[i] = reply
            return results

        try:
            results = await self._retry.call(attempt, idempotent=idempotent)
        except _RefusedError as refused:
            cause = CommandError(refused.message)
            if atomic:
                raise transaction_aborted(commands, _culprits(commands, cause), cause) from None
            # A pipeline refused as a whole ran none of its commands: each carries the error.
            labelled = label(commands, [cause] * len(commands))
            errors = [r for r in labelled if isinstance(r, CommandError)]
            raise BatchError(errors, labelled) from None
        return raise_for_errors(label(commands, results))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    # -- one HTTP request -----------------------------------------------------------------

    async def _roundtrip(
        self, path: str, body: bytes, count: int, *, idempotent: bool
    ) -> list[Reply | CommandError]:
        """POST ``body`` to ``path``; return one reply per command, errors in place.

        Raises:
            ConnectionFailedError: transport trouble (retried by the caller if idempotent).
            DriverError: the server answered, but not in the Upstash protocol.
            _RefusedError: the server refused the request as a whole.
        """
        sdk = self._client
        headers = {**sdk._headers, "Content-Type": "application/json"}
        sdk._maybe_set_sync_token_header(headers)
        try:
            response = await sdk._http._client.post(
                self._url + path, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise self._failure(f"no reply within {self._timeout} s", path, idempotent) from None
        except httpx.HTTPError as exc:
            # Never chain httpx's exception: it holds the request, headers included.
            what = f"{type(exc).__name__}: {self._scrub(str(exc))}"
            raise self._failure(what, path, idempotent) from None
        sync_token = response.headers.get(SYNC_TOKEN_HEADER)
        if sync_token:
            sdk._update_sync_token(sync_token)
        return self._read_reply(response, path, count, idempotent)

    def _read_reply(
        self, response: httpx.Response, path: str, count: int, idempotent: bool
    ) -> list[Reply | CommandError]:
        status = response.status_code
        if status >= 500:
            detail = self._scrub(_error_text(response.content) or response.reason_phrase)
            raise self._failure(f"HTTP {status} ({detail})", path, idempotent)
        if status == 401:
            raise DriverError(
                f"Upstash refused the token (HTTP 401) at {self._url}: check "
                f"{TOKEN_ENV} (the REST token, not the Redis password)"
            )
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            if status == 200:
                raise self._failure("a malformed JSON reply", path, idempotent) from None
            raise self._protocol_error(f"HTTP {status} with a body that is not JSON") from None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            # /multi-exec answers a transaction discarded as a whole with one error object;
            # any endpoint does so for a request it refused outright (HTTP 400, 413).
            raise _RefusedError(self._scrub(payload["error"]))
        if status != 200:
            raise self._protocol_error(f"HTTP {status} without an error message")
        if not isinstance(payload, list) or len(payload) != count:
            raise self._protocol_error(f"a reply that is not a list of {count} results")
        try:
            return [_item(entry, self._scrub) for entry in payload]
        except (TypeError, ValueError, binascii.Error) as exc:
            raise self._protocol_error(f"a malformed result ({self._scrub(str(exc))})") from None

    def _failure(self, what: str, path: str, idempotent: bool) -> ConnectionFailedError:
        message = f"Upstash request to {self._url}{path} failed: {what}"
        if not idempotent:
            message += (
                "; not retried because the request is not marked idempotent, "
                "so it may or may not have been applied"
            )
        return ConnectionFailedError(message)

    def _protocol_error(self, what: str) -> DriverError:
        return DriverError(f"{self._url} does not speak the Upstash REST protocol: it sent {what}")

    def _scrub(self, text: str) -> str:
        """Text from a server or library, with the token masked in case they echoed it.

        A token too short to be a real credential is left alone: masking every ``t`` of a
        local test token ``"t"`` would garble messages and hide nothing.
        """
        if len(self._token) < _MIN_SCRUBBED_TOKEN:
            return text
        return text.replace(self._token, "***")


# -- requests -----------------------------------------------------------------------------


def _json_body(commands: Sequence[Command]) -> bytes:
    """The JSON request body: every argument as text, as :func:`encode_arg` spells it.

    Raises:
        UnsupportedError: for a ``bytes`` argument that is not UTF-8 text.
    """
    return msgspec.json.encode([_text_command(cmd, i) for i, cmd in enumerate(commands)])


def _text_command(command: Command, position: int) -> list[str]:
    text: list[str] = []
    for i, arg in enumerate(command):
        try:
            text.append(encode_arg(arg).decode())
        except UnicodeDecodeError:
            raise UnsupportedError(
                f"argument {i} of command #{position} ({command_name(command)}) is bytes "
                "that are not UTF-8 text, and the Upstash REST protocol carries text only "
                "(UpstashDriver.binary_safe is False); store text, e.g. with the JSON codec"
            ) from None
    return text


# -- replies ------------------------------------------------------------------------------


def _item(entry: Any, scrub: Callable[[str], str]) -> Reply | CommandError:
    """One ``{"result": ...}`` or ``{"error": ...}`` entry of a pipeline reply."""
    if isinstance(entry, dict):
        if isinstance(entry.get("error"), str):
            return CommandError(scrub(entry["error"]))
        if "result" in entry:
            return _decode(entry["result"])
    raise ValueError(f"unexpected entry {entry!r:.80}")


def _decode(value: Any) -> Reply:
    """A base64-encoded result, to the normalised reply shape.

    Upstash encodes every string but the status reply ``OK`` (which is not valid base64,
    so the two cannot be confused).
    """
    if isinstance(value, str):
        return b"OK" if value == "OK" else base64.b64decode(value, validate=True)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    raise TypeError(f"unexpected value {value!r:.80}")


def _error_text(content: bytes) -> str | None:
    try:
        payload = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else None


def _culprits(commands: Sequence[Command], cause: CommandError) -> list[CommandError | None]:
    """The commands a transaction refused as a whole was refused for, where we can tell.

    Upstash answers such a transaction with one error and no position. Redis refuses to
    queue a command for an unknown name or a wrong argument count, and its message names
    the command; the commands of that name whose argument count breaks kvstore's command
    table are the ones refused. Nothing matches for other causes (request too large, daily
    limit), and then the caller blames every position.
    """
    match = _REFUSAL.search(cause.message)
    if match is None:
        return [None] * len(commands)
    name = match[1].upper()
    return [cause if command_name(cmd) == name and not _arity_ok(cmd) else None for cmd in commands]


def _arity_ok(command: Command) -> bool:
    spec = COMMANDS.get(command_name(command))
    if spec is None:
        return False  # unknown to kvstore: as suspect as to the server
    return len(command) == spec.arity if spec.arity > 0 else len(command) >= -spec.arity


# -- configuration ------------------------------------------------------------------------


def _check_rest_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "the Upstash REST URL must be http(s)://host[:port] (UPSTASH_REDIS_REST_URL); "
            "for upstash://... URLs use UpstashDriver.from_url"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError("the Upstash REST URL must not carry credentials: pass the token")
    if parts.query or parts.fragment:
        raise ValueError("the Upstash REST URL must not have a query or fragment")
    return url.rstrip("/")


def _check_token(token: str) -> str:
    if not token:
        raise ValueError(f"the Upstash token is empty ({TOKEN_ENV})")
    # Refuse what httpx would reject as a header value, before its error could echo it.
    if not token.isascii() or not token.isprintable() or token != token.strip():
        raise ValueError(
            "the Upstash token contains characters that cannot travel in an HTTP header "
            "(it should be printable ASCII without surrounding spaces)"
        )
    return token


def _from_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ValueError(
            f"{name} is not set: an Upstash connection needs {URL_ENV} and {TOKEN_ENV} "
            "(from the Upstash console, or as printed by `python -m kvstore.upstash_server`)"
        )
    return value


def _parse_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """Split an ``upstash://`` URL into the REST endpoint, the token and driver options."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(
            f"not an Upstash URL (scheme {shown_scheme(url)}); expected "
            "upstash://:TOKEN@host, upstash+http://:TOKEN@host:port or upstash://"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port now, with our own message below
    except ValueError:
        raise ValueError("malformed Upstash URL (check the host, port and token)") from None
    if parts.fragment:
        raise ValueError("an Upstash URL has no fragment (percent-encode '#' in the token)")
    if "@" in parts.query:
        # A token with an unencoded '?' runs into the query; never quote its pieces as
        # parameter names.
        raise ValueError("malformed Upstash URL query (percent-encode '?' in the token)")
    hostport = parts.netloc.rpartition("@")[2]
    if parts.username and parts.password is None:
        raise ValueError("put the Upstash token in the password position: upstash://:TOKEN@host")
    token = unquote(parts.password) if parts.password else _from_env(TOKEN_ENV)
    if hostport:
        rest_url = f"{_SCHEMES[scheme.lower()]}://{hostport}{parts.path.rstrip('/')}"
    else:
        rest_url = _from_env(URL_ENV)
    return rest_url, token, _url_options(parts.query)


def _url_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for position, (name, value) in enumerate(query_parts(query), 1):
        if name == "timeout":
            options["timeout"] = None if value.lower() == "none" else _positive(value)
        elif name == "read_your_writes":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError("read_your_writes must be true or false")
            options["read_your_writes"] = value.lower() in ("true", "1")
        elif name == "max_request_bytes":
            if value.lower() == "none":
                options["max_request_bytes"] = None
            elif value.isascii() and value.isdigit() and int(value) > 0:
                options["max_request_bytes"] = int(value)
            else:
                raise ValueError("max_request_bytes must be a positive integer, or none")
        else:
            # Never the name: with the token in UPSTASH_REDIS_REST_TOKEN, a token pasted
            # after "?" is parsed as a parameter name.
            raise unknown_parameter(
                "Upstash", position, "timeout, read_your_writes, max_request_bytes"
            )
    return options


def _positive(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError("timeout must be a positive number of seconds, or none")
    return seconds


def _holds(url: str, token: str) -> bool:
    """Whether ``url`` holds ``token`` (a real one, long enough to be told apart)."""
    if len(token) < _MIN_SCRUBBED_TOKEN:
        return False
    return any(form in url for form in (token, quote(token, safe=""), quote(token)))
