"""A hypothesis state machine that runs the same commands on MemoryDriver and on an oracle.

The oracle is a real Redis server (the truth) or fakeredis (a second opinion). Every step
sends one command or a small batch, atomic or not, to both drivers and asserts that the
outcomes are identical: the same replies, or the same exception with the same messages,
command names and positions. A few replies are unspecified or time-dependent in Redis
itself and are normalised first (see :func:`normalise`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from anyio.from_thread import BlockingPortal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import Reply
from kvstore.drivers.memory._zset import ZSet
from kvstore.errors import BatchError, CommandError, TransactionAbortedError
from tests.differential import strategies

# An id made by "*" from a wall clock (a 13-digit millisecond count); the two drivers'
# clocks differ, so such ids are compared by shape only.
_AUTO_ID = re.compile(rb"\d{13}-\d+")
_AUTO = b"<auto id>"

# Tolerances for time-dependent replies: the drivers run a few milliseconds apart.
_TTL_SLACK_S = 2
_PTTL_SLACK_MS = 2000


def _name(command: Sequence[object]) -> str:
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def _scan_count(command: Sequence[object]) -> int:
    words = [w.decode() if isinstance(w, bytes) else str(w) for w in command]
    counts = [words[i + 1] for i in range(2, len(words) - 1) if words[i].upper() == "COUNT"]
    return int(counts[-1]) if counts and counts[-1].isdigit() else 10


def _auto_ids(reply: Reply) -> Reply:
    if isinstance(reply, bytes):
        return _AUTO if _AUTO_ID.fullmatch(reply) else reply
    if isinstance(reply, list):
        return [_auto_ids(item) for item in reply]
    return reply


def _flat_pairs_sorted(reply: list[Reply]) -> list[Reply]:
    pairs = sorted(zip(reply[::2], reply[1::2], strict=True))  # type: ignore[type-var]
    return [item for pair in pairs for item in pair]


@dataclass(frozen=True)
class Approx:
    """A TTL or PTTL reply, equal to another within ``slack``."""

    value: int
    slack: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Approx):
            return NotImplemented
        if self.value < 0 or other.value < 0:  # -1 and -2 are exact answers
            return self.value == other.value
        return abs(self.value - other.value) <= self.slack

    def __hash__(self) -> int:
        return 0


def normalise(command: Sequence[object], reply: Reply) -> object:
    """``reply`` in a form where the unspecified and the time-dependent parts compare equal."""
    if isinstance(reply, CommandError):
        return ("error", reply.message, reply.command, reply.index)
    name = _name(command)
    if name in ("SMEMBERS", "HKEYS", "HVALS") and isinstance(reply, list):
        return sorted(reply)  # type: ignore[type-var]  # Redis promises no order
    if name == "HGETALL" and isinstance(reply, list):
        return _flat_pairs_sorted(reply)
    if name == "SCAN" and isinstance(reply, list):
        # One SCAN call returns "about COUNT" keys in an order of the server's choosing;
        # only a call with a COUNT far above the number of keys returns them all (the rule
        # scan_everything compares whole iterations).
        if _scan_count(command) < 100:
            return "a page of keys"
        return [reply[0], sorted(reply[1])]  # type: ignore[type-var]
    if name == "TTL" and isinstance(reply, int):
        return Approx(reply, _TTL_SLACK_S)
    if name == "PTTL" and isinstance(reply, int):
        return Approx(reply, _PTTL_SLACK_MS)
    if name.startswith("X"):
        return _auto_ids(reply)
    return reply


def outcome(commands: Sequence[Sequence[Any]], run: Callable[[], list[Reply]]) -> object:
    """What running ``commands`` led to, normalised: replies or the exception's content."""
    try:
        replies: Sequence[Reply | CommandError] = run()
        kind = "ok"
    except TransactionAbortedError as exc:
        replies, kind = exc.results, "aborted"
    except BatchError as exc:
        replies, kind = exc.results, "failed"
    assert len(replies) == len(commands)
    return kind, [normalise(c, r) for c, r in zip(commands, replies, strict=True)]  # type: ignore[arg-type]


@dataclass
class Deviation:
    """A known way in which an oracle itself departs from real Redis.

    ``command(command, data)`` says which commands are affected; ``data`` is the memory
    driver's keyspace, for deviations that depend on what a key holds. Without ``replies``,
    a step holding such a command is not run at all, on either driver (for writes: ignoring
    their replies would not do, since the two stores would then differ for every later
    step). With ``replies``, the step runs and a difference in that command's reply is
    forgiven when ``replies(memory_reply, oracle_reply)`` holds, the command being affected
    before or after the step; replies are normalised (errors are
    ``("error", message, command, index)`` tuples, see :func:`error_message`).
    """

    reason: str
    command: Callable[[Sequence[Any], Mapping[bytes, object]], bool]
    replies: Callable[[object, object], bool] | None = None


def error_message(normalised: object) -> str | None:
    """The message of a normalised error reply, None for any other reply."""
    if isinstance(normalised, tuple) and normalised[:1] == ("error",):
        return str(normalised[1])
    return None


@dataclass
class Oracle:
    """The driver MemoryDriver is compared with, and how far to trust it."""

    name: str
    driver: Driver
    deviations: list[Deviation] = field(default_factory=list)

    def skips(self, command: Sequence[Any], data: Mapping[bytes, object]) -> bool:
        """Whether a step holding ``command`` must not run at all."""
        return any(d.replies is None and d.command(command, data) for d in self.deviations)

    def excusing(self, command: Sequence[Any], data: Mapping[bytes, object]) -> list[Deviation]:
        """The deviations that may excuse a difference in ``command``'s reply."""
        return [d for d in self.deviations if d.replies is not None and d.command(command, data)]


class DifferentialMachine(RuleBasedStateMachine):
    """Random command sequences, the same on both drivers, compared after every step."""

    # Set by the test (see make_machine): the portal that runs the async drivers and the
    # oracle to compare with.
    portal: ClassVar[BlockingPortal]
    oracle: ClassVar[Oracle]

    def __init__(self) -> None:
        super().__init__()
        self.memory = MemoryDriver()
        # Both start empty, scripts included (the script cache is the server's, not the
        # database's).
        self.portal.call(self.oracle.driver.execute, [("FLUSHDB",), ("SCRIPT", "FLUSH")])

    def _compare(self, commands: list[tuple[Any, ...]], atomic: bool) -> None:
        data = self.memory._keyspace.data
        if any(self.oracle.skips(c, data) for c in commands):
            return  # the oracle is known to be wrong here: run nothing, on either side
        excuses = [self.oracle.excusing(c, data) for c in commands]
        expected = outcome(
            commands, lambda: self.portal.call(self._oracle_execute, commands, atomic)
        )
        actual = outcome(commands, lambda: self.portal.call(self._memory_execute, commands, atomic))
        if actual == expected:
            return
        excuses = [
            e + self.oracle.excusing(c, data) for c, e in zip(commands, excuses, strict=True)
        ]
        (_, actual_replies), (_, expected_replies) = actual, expected  # type: ignore[misc]
        forgiven = all(
            a == e or any(d.replies(a, e) for d in why)  # type: ignore[misc]
            for a, e, why in zip(actual_replies, expected_replies, excuses, strict=True)
        )
        assert forgiven, (
            f"\ncommands: {commands!r}\natomic: {atomic}"
            f"\nmemory: {actual!r}\n{self.oracle.name}: {expected!r}"
        )

    async def _oracle_execute(self, commands: list[tuple[Any, ...]], atomic: bool) -> list[Reply]:
        return await self.oracle.driver.execute(commands, atomic=atomic)

    async def _memory_execute(self, commands: list[tuple[Any, ...]], atomic: bool) -> list[Reply]:
        return await self.memory.execute(commands, atomic=atomic)

    @initialize(
        zset=st.lists(st.tuples(strategies.SCORES, strategies.NAMES), min_size=1, max_size=10),
        lex=st.lists(strategies.NAMES, min_size=1, max_size=10),
        stream=st.lists(st.sampled_from(["1-1", "1-2", "2", "3-5", "4-*", "*"]), max_size=6),
    )
    def seed(self, zset: list[tuple[Any, Any]], lex: list[Any], stream: list[str]) -> None:
        """Start from a populated store, so that reads have something to find."""
        commands: list[tuple[Any, ...]] = [
            ("ZADD", "z1", *(word for pair in zset for word in pair)),
            ("ZADD", "z2", *(word for name in lex for word in (0, name))),
            ("ZADD", "{t}z", 1, "a", 1, "b", 2, "c", "-inf", "d", "+inf", "e", 1.5, "aa"),
            ("HSET", "h1", "a", "1", "b", "x", "10", "-5", "", "9223372036854775807"),
            ("SADD", "t1", "a", "b", "10", "-0"),
            ("SET", "s1", "10"),
            *(("XADD", "x1", xid, "f", xid) for xid in stream),
        ]
        self._compare(commands, atomic=False)

    @rule(command=strategies.COMMANDS)
    def single(self, command: tuple[Any, ...]) -> None:
        self._compare([command], atomic=False)

    @rule(commands=st.lists(strategies.COMMANDS, min_size=1, max_size=5), atomic=st.booleans())
    def batch(self, commands: list[tuple[Any, ...]], atomic: bool) -> None:
        self._compare(commands, atomic)

    @rule(
        count=st.sampled_from([1, 2, 3, 10]),
        match=st.sampled_from([None, "*", "k*", "*1*"]),
        kind=st.sampled_from([None, "string", "zset", "stream"]),
    )
    def scan_everything(self, count: int, match: str | None, kind: str | None) -> None:
        """Iterate SCAN to the end on each side: the same keys must come out."""
        options: list[Any] = ["COUNT", count]
        if match is not None:
            options += ["MATCH", match]
        if kind is not None:
            options += ["TYPE", kind]
        assert self._scan_all(self.memory, options) == self._scan_all(self.oracle.driver, options)

    def _scan_all(self, driver: Driver, options: list[Any]) -> set[bytes]:
        seen: set[bytes] = set()
        cursor: Reply = b"0"
        for _ in range(10_000):
            cursor, keys = self.portal.call(driver.execute, [("SCAN", cursor, *options)])[0]  # type: ignore[misc]
            seen.update(keys)  # type: ignore[arg-type]
            if cursor == b"0":
                return seen
        raise AssertionError("SCAN did not finish")

    @invariant()
    def sorted_sets_stay_small(self) -> None:
        # BYLEX on a sorted set with mixed scores has a defined answer in Redis only while
        # the set is a listpack (up to 128 members of up to 64 bytes); the member pool of
        # the strategies keeps every set that small, which this checks.
        for value in self.memory._keyspace.data.values():
            assert not isinstance(value, ZSet) or value.compact

    @invariant()
    def same_keys(self) -> None:
        """The same keys exist, with the same types, and DBSIZE agrees.

        Redis's DBSIZE also counts keys whose deadline has passed until something touches
        them (a SET with a past EXAT leaves one), while the memory driver never shows an
        expired key anywhere. EXISTS on every key first makes Redis drop those.
        """
        probe = [("EXISTS", key) for key in strategies.ALL_KEYS] + [
            ("TYPE", key) for key in strategies.ALL_KEYS
        ]
        probe.append(("DBSIZE",))
        expected = self.portal.call(self.oracle.driver.execute, probe)
        assert self.portal.call(self.memory.execute, probe) == expected


def make_machine(portal: BlockingPortal, oracle: Oracle) -> type[DifferentialMachine]:
    """A machine class bound to ``portal`` and ``oracle`` (hypothesis instantiates it)."""
    return type(
        f"DifferentialMachineVs{oracle.name}",
        (DifferentialMachine,),
        {"portal": portal, "oracle": oracle},
    )
