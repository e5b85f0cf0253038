"""Redis's error replies, word for word, and the cheap exception that carries them.

Command handlers raise :class:`ReplyError` with one of these texts; the driver turns it into
a :class:`~kvstore.errors.CommandError` that knows the command's name and batch position.
Keeping the handlers ignorant of names and positions keeps them small and the error path
allocation-free until something actually fails.
"""

from __future__ import annotations

__all__ = [
    "NOT_FLOAT",
    "NOT_INTEGER",
    "OVERFLOW",
    "SYNTAX",
    "WRONGTYPE",
    "ReplyError",
    "arity_error",
    "unknown_command_error",
]

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
OVERFLOW = "ERR increment or decrement would overflow"


class ReplyError(Exception):
    """An error reply, as Redis would send it (``"ERR ..."``, ``"WRONGTYPE ..."``)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def arity_error(name: str) -> ReplyError:
    """Redis's wrong-arity error; ``name`` is spelled lower-case as in its command table."""
    return ReplyError(f"ERR wrong number of arguments for '{name.lower()}' command")


def _c_string(raw: bytes, limit: int) -> bytes:
    """``raw`` as C's ``%.<limit>s`` prints an sds string: cut at a NUL, then at ``limit``."""
    return raw.split(b"\0", 1)[0][:limit]


def unknown_command_error(name: bytes, args: list[bytes]) -> ReplyError:
    """Redis 7's unknown-command error, including its odd truncation rules.

    Redis quotes the arguments one by one while the quoted text is shorter than 128 bytes,
    each cut to the room left, and replaces CR and LF in the whole message by spaces.
    """
    quoted = b""
    for arg in args:
        if len(quoted) >= 128:
            break
        quoted += b"'" + _c_string(arg, 128 - len(quoted)) + b"' "
    raw = b"unknown command '" + _c_string(name, 128) + b"', with args beginning with: " + quoted
    text = raw.replace(b"\r", b" ").replace(b"\n", b" ").decode("utf-8", errors="replace")
    return ReplyError("ERR " + text)
