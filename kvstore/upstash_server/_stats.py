"""Request and command counters, read by tests and benchmarks."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ServerStats", "Usage"]


@dataclass(slots=True)
class Usage:
    """What the server received during one :meth:`ServerStats.measure` block.

    Attributes:
        requests: HTTP requests that ran commands, per endpoint (``"/"``, ``"/pipeline"``,
            ``"/multi-exec"``).
        commands: Commands received, per endpoint.
        by_command: Commands received, per command name (``"HSET"``).
    """

    requests: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    by_command: Counter[str] = field(default_factory=Counter)

    @property
    def total_requests(self) -> int:
        """HTTP requests that ran commands, all endpoints together."""
        return sum(self.requests.values())

    @property
    def total_commands(self) -> int:
        """Commands received, all endpoints together."""
        return sum(self.commands.values())


class ServerStats:
    """Counts what the server is asked to run, as Upstash bills it: requests and commands.

    A request counts when its commands are handed to the backing store, whatever they
    reply (a command that fails still ran). Requests answered without running anything
    (bad token, oversized or malformed body) count under ``rejected`` by HTTP status;
    injected faults are counted by :attr:`FaultPlan.struck
    <kvstore.upstash_server.FaultPlan.struck>`. A script call is one command: the commands a script
    runs inside the backing store are not visible here.

    Safe to read from any thread while the server runs in another.
    """

    __slots__ = ("_lock", "_rejected", "_usage")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()
        self._rejected: Counter[int] = Counter()

    def record(self, endpoint: str, names: list[str]) -> None:
        """Count one request to ``endpoint`` that ran the commands ``names``."""
        with self._lock:
            self._usage.requests[endpoint] += 1
            self._usage.commands[endpoint] += len(names)
            self._usage.by_command.update(names)

    def reject(self, status: int) -> None:
        """Count one request answered with ``status`` before any command ran."""
        with self._lock:
            self._rejected[status] += 1

    def usage(self) -> Usage:
        """A copy of the counters so far."""
        with self._lock:
            return Usage(
                Counter(self._usage.requests),
                Counter(self._usage.commands),
                Counter(self._usage.by_command),
            )

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data (what ``GET /_kvstore/stats`` returns)."""
        usage = self.usage()
        with self._lock:
            rejected = {str(status): n for status, n in sorted(self._rejected.items())}
        return {
            "requests": dict(usage.requests),
            "commands": dict(usage.commands),
            "by_command": dict(sorted(usage.by_command.items())),
            "total_requests": usage.total_requests,
            "total_commands": usage.total_commands,
            "rejected": rejected,
        }

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._usage = Usage()
            self._rejected.clear()

    @contextlib.contextmanager
    def measure(self) -> Iterator[Usage]:
        """Count what the server receives inside the block.

        The yielded :class:`Usage` is filled in when the block ends::

            with server.stats.measure() as usage:
                await store.memory.append(thread_id, message)
            assert usage.total_requests == 1
        """
        before = self.usage()
        measured = Usage()
        try:
            yield measured
        finally:
            after = self.usage()
            measured.requests = after.requests - before.requests
            measured.commands = after.commands - before.commands
            measured.by_command = after.by_command - before.by_command
