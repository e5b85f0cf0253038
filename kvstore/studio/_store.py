"""The store the studio reads: opened on first use, on the server's event loop."""

from __future__ import annotations

import anyio

from kvstore._local import describe_url
from kvstore.errors import KVStoreError
from kvstore.storage import Storage

__all__ = ["StoreSource", "StoreUnavailableError"]


class StoreUnavailableError(Exception):
    """The store could not be opened (a file held by another process, a missing extra)."""


class StoreSource:
    """Where pages get their :class:`~kvstore.storage.Storage`.

    Given a URL, the store is made on the first request, on the server's own event loop
    (drivers bind to the loop they first run on); if that fails, the page says why and the
    next request tries again. Given a Storage, it is used as it is and never closed.

    Args:
        store: A store URL, or a Storage to use.
        namespace: The namespace, for a URL.
    """

    __slots__ = ("_lock", "_namespace", "_owned", "_store", "_url", "label")

    def __init__(self, store: str | Storage, *, namespace: str = "kv") -> None:
        self._url = store if isinstance(store, str) else None
        self._store = None if isinstance(store, str) else store
        self._owned = isinstance(store, str)
        self._namespace = namespace if isinstance(store, str) else store.namespace
        self._lock: anyio.Lock | None = None
        #: How pages name the store: a password or token in the URL is hidden.
        self.label = describe_url(store) if isinstance(store, str) else repr(store)

    @property
    def namespace(self) -> str:
        return self._namespace

    async def get(self) -> Storage:
        """The store, opened now if need be.

        Raises:
            StoreUnavailableError: it could not be made (the message says why).
        """
        if self._store is not None:
            return self._store
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._store is None:
                assert self._url is not None
                try:
                    self._store = Storage.from_url(self._url, namespace=self._namespace)
                except (ValueError, ImportError, KVStoreError) as exc:
                    raise StoreUnavailableError(str(exc)) from None
        return self._store

    async def aclose(self) -> None:
        """Close the store if this object made it."""
        store, self._store = self._store, None
        if store is not None and self._owned:
            await store.aclose()
        elif store is not None:
            self._store = store
