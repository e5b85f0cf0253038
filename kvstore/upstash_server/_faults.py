"""Faults the server can be told to inject, to test how clients survive a bad network."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultPlan"]

FaultKind = Literal["error", "hang", "malformed", "drop"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One misbehaviour, in place of the reply to one request to a command endpoint.

    Build faults with the class methods. ``applied`` says whether the request's commands
    run before the fault strikes: a client that sees the fault cannot tell, which is the
    point of testing both.

    Attributes:
        kind: ``"error"`` (an HTTP error status), ``"hang"`` (no reply for a while, then a
            dropped connection), ``"malformed"`` (a 200 with broken JSON) or ``"drop"``
            (the connection closes in the middle of the reply).
        applied: Run the commands first.
        status: The HTTP status of an ``"error"`` fault.
        seconds: How long a ``"hang"`` fault waits at most before dropping the connection.
    """

    kind: FaultKind
    applied: bool = False
    status: int = 503
    seconds: float = 0.0

    @classmethod
    def error(cls, status: int = 503, *, applied: bool = False) -> Fault:
        """Answer with HTTP ``status`` and a JSON error body."""
        return cls("error", applied, status=status)

    @classmethod
    def hang(cls, seconds: float, *, applied: bool = False) -> Fault:
        """Say nothing until the client disconnects or ``seconds`` pass, then drop the connection.

        Give it more time than the client's timeout: the client then sees a timeout.
        """
        return cls("hang", applied, seconds=seconds)

    @classmethod
    def malformed(cls, *, applied: bool = False) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls("malformed", applied)

    @classmethod
    def drop(cls, *, applied: bool = False) -> Fault:
        """Start a 200 reply, then close the connection before it is complete."""
        return cls("drop", applied)


class FaultPlan:
    """The faults the next requests to the command endpoints get, first in first out.

    Requests beyond the plan are served normally. Safe to change from the test's thread
    while the server runs in its own.
    """

    __slots__ = ("_lock", "_queue", "_struck")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._struck = 0

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Give the next ``times`` requests (after those already planned) ``fault``."""
        with self._lock:
            self._queue.extend([fault] * times)

    def clear(self) -> None:
        """Drop every planned fault and zero :attr:`struck`."""
        with self._lock:
            self._queue.clear()
            self._struck = 0

    @property
    def pending(self) -> int:
        """Faults planned and not yet served."""
        with self._lock:
            return len(self._queue)

    @property
    def struck(self) -> int:
        """Faults served so far."""
        with self._lock:
            return self._struck

    def take(self) -> Fault | None:
        """The fault for the request being served, if one is planned."""
        with self._lock:
            if not self._queue:
                return None
            self._struck += 1
            return self._queue.popleft()
