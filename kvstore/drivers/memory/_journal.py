"""The write journal: every applied write, in a form that replays to the same state.

This is the hook of the append-only file (``._aof``), which collects a batch's writes from
it and appends them as one record. The driver calls its journal, if one is attached, at
exactly one place: right after a write command succeeded (and, like Redis, with a ``DEL``
for every key it expires). Commands are rewritten as Redis rewrites them for its AOF, so
that replaying the journal later gives the same data:

* relative expiries become absolute: ``EXPIRE``/``PEXPIRE``/``EXPIREAT`` become
  ``PEXPIREAT`` (or ``DEL`` when the deadline was not in the future and the key went),
  and ``SET ... EX/PX/EXAT/PXAT`` becomes ``SET key value [NX|XX] [GET] PXAT <ms>``;
* ``XADD`` with ``*`` or ``<ms>-*`` records the id it actually generated.

Everything else is recorded as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from kvstore.drivers.memory._commands_streams import parse_add_or_trim
from kvstore.drivers.memory._commands_strings import parse_set_options
from kvstore.drivers.memory._parse import parse_int

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply

__all__ = ["Journal", "absolute_form"]

#: Receives each applied write as the list of its words (the name first).
Journal: TypeAlias = Callable[[list[bytes]], None]

_EXPIRES = {
    # name: (milliseconds per unit, relative to the clock)
    "EXPIRE": (1000, True),
    "PEXPIRE": (1, True),
    "EXPIREAT": (1000, False),
}
_SET_UNITS = {
    b"EX": (1000, True),
    b"PX": (1, True),
    b"EXAT": (1000, False),
    b"PXAT": (1, False),
}


def absolute_form(name: str, args: list[bytes], now: int, reply: Reply) -> list[bytes]:
    """The write ``name args``, applied at ``now`` with ``reply``, as the journal records it.

    Only called for commands that succeeded, so their arguments are known to parse.
    """
    if name in _EXPIRES or name == "PEXPIREAT":
        scale, relative = _EXPIRES.get(name, (1, False))
        when = parse_int(args[1]) * scale + (now if relative else 0)
        if reply == 1 and when <= now:
            # The key went at once (a deadline not in the future): as in Redis, record the
            # deletion, which replays the same at any time.
            return [b"DEL", args[0]]
        return [b"PEXPIREAT", args[0], b"%d" % when, *args[2:]]
    if name == "SET" and len(args) > 2:
        nx, xx, get, _keepttl, unit, at = parse_set_options(args)
        if unit is not None:
            # One PXAT in place of every time option (SET takes a unit more than once).
            scale, relative = _SET_UNITS[unit]
            when = parse_int(args[at]) * scale + (now if relative else 0)
            flags = [word for word, on in ((b"NX", nx), (b"XX", xx), (b"GET", get)) if on]
            return [b"SET", args[0], args[1], *flags, b"PXAT", b"%d" % when]
    if name == "XADD" and isinstance(reply, bytes):
        words = [b"XADD", *args]
        words[parse_add_or_trim(args, xadd=True).at + 1] = reply
        return words
    return [name.encode(), *args]
