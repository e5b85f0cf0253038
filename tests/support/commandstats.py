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


def script_loads(url: str) -> int:
    """How many ``SCRIPT LOAD`` commands the server ran so far."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get("cmdstat_script|load", {})
    finally:
        client.close()
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def reset(url: str) -> None:
    """Zero the server's command statistics."""
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
    finally:
        client.close()
