"""Drivers: the narrow waist between the domains and a backend.

:class:`MemoryDriver` needs nothing but the core. :class:`RedisDriver` needs the ``redis``
extra and :class:`UpstashDriver` the ``upstash`` extra; both are imported on first use so
that a missing extra fails with the install command instead of at ``import kvstore``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kvstore.drivers.base import Arg, Command, Driver, Reply, Script, encode_arg
from kvstore.drivers.memory import MemoryDriver

if TYPE_CHECKING:
    from kvstore.drivers.redis import RedisDriver
    from kvstore.drivers.upstash import UpstashDriver

__all__ = [
    "Arg",
    "Command",
    "Driver",
    "MemoryDriver",
    "RedisDriver",
    "Reply",
    "Script",
    "UpstashDriver",
    "encode_arg",
]

_LAZY = {"RedisDriver": "kvstore.drivers.redis", "UpstashDriver": "kvstore.drivers.upstash"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
