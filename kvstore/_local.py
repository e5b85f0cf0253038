"""Where the demo and the command line keep data unless told otherwise.

The default is a file under ``.kvstore/`` in the working directory, held by the memory
driver (``memory://.kvstore/kvstore.aof``), so an agent's data survives restarts with no
server to run; :func:`describe_url` says where data lives wherever the URL is shown.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["LOCAL_FILE", "LOCAL_URL", "URL_ENV", "default_url", "describe_url"]

#: The environment variable that names the store to use.
URL_ENV = "KVSTORE_URL"
#: The local file, relative to the working directory.
LOCAL_FILE = ".kvstore/kvstore.aof"
#: The URL of the local file: everything after ``memory://`` is a file path.
LOCAL_URL = "memory://" + LOCAL_FILE


def default_url() -> str:
    """The local file's URL."""
    return LOCAL_URL


def describe_url(url: str) -> str:
    """``url`` as shown to people: a password hidden, a memory URL saying where data lives."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() == "memory" and sep:
        if not rest.strip("/"):
            return f"{url} (in this process only: nothing is kept after it exits)"
        return f"{url} (the file {Path(rest.partition('?')[0]).absolute()})"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
