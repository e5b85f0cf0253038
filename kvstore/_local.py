"""Where the demo and the command line keep data unless told otherwise.

The default is a file under ``.kvstore/`` in the working directory, held by the memory
driver (``memory://.kvstore/kvstore.aof``), so an agent's data survives restarts with no
server to run. A kvstore whose memory driver cannot keep a file yet falls back to plain
``memory://``, and :func:`describe_url` says so wherever the URL is shown.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kvstore.drivers.memory import MemoryDriver

__all__ = ["LOCAL_FILE", "LOCAL_URL", "URL_ENV", "default_url", "describe_url", "memory_files"]

#: The environment variable that names the store to use.
URL_ENV = "KVSTORE_URL"
#: The local file, relative to the working directory.
LOCAL_FILE = ".kvstore/kvstore.aof"
#: The URL of the local file: everything after ``memory://`` is a file path.
LOCAL_URL = "memory://" + LOCAL_FILE


def memory_files() -> bool:
    """Whether the memory driver can keep its data in a file (``memory://<path>``)."""
    # A capability check: the driver grows a ``path`` argument with file persistence.
    return "path" in inspect.signature(MemoryDriver).parameters


def default_url() -> str:
    """The local file's URL, or ``memory://`` where the memory driver keeps no files."""
    return LOCAL_URL if memory_files() else "memory://"


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
