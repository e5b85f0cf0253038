"""Count the commands a Redis server ran (scripts' inner calls included), from INFO."""

from __future__ import annotations

import redis

# What a new redis-py connection sends before INFO: not the code under measurement.
_BOOKKEEPING = {"cmdstat_info", "cmdstat_select", "cmdstat_client|setinfo", "cmdstat_hello"}


def total_calls(url: str) -> int:
    """The server's count of commands run so far, bookkeeping of this function excluded."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(v["calls"] for k, v in stats.items() if k not in _BOOKKEEPING)


def reset(url: str) -> None:
    """Zero the server's command statistics."""
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
    finally:
        client.close()
