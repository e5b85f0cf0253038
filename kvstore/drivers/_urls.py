"""What an error message may show of a storage URL that can hold a secret.

Redis URLs hold passwords and Upstash URLs tokens, and a secret pasted in the wrong place
(the query, the path) lands anywhere in the URL. So URL errors show only the scheme, fixed
text, and the names of parameters the driver knows; never an unknown parameter's name,
and never a value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["query_parts", "shown_scheme", "unknown_parameter", "url_text_is_safe"]

# RFC 3986's scheme syntax, and short: anything else before "://" may be a pasted secret
# (Upstash tokens are dozens of characters long), so it is never repeated.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}")
_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def shown_scheme(url: str) -> str:
    """The URL's scheme, quoted, for an error message; never any other part of the URL."""
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "(missing or malformed)"
    return repr(scheme + "://")


def query_parts(query: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a URL query, decoded (``parse_qsl``, blanks kept)."""
    return parse_qsl(query, keep_blank_values=True)


def unknown_parameter(kind: str, position: int, known: str, problem: str = "unknown") -> ValueError:
    """The error for an unknown query parameter: by position, never by name.

    Args:
        kind: The URL's kind, ``"Redis"`` or ``"Upstash"``.
        position: The parameter's position in the query, from 1.
        known: What the known parameters are, for the message.
        problem: What is wrong with it (``"unknown"``, ``"empty"``).
    """
    ordinal = _ORDINALS.get(position, f"{position}th")
    return ValueError(
        f"{problem} {kind} URL parameter: the {ordinal} one (known: {known}). Its name is "
        "not shown, since a URL may hold a secret: check for a password or token pasted "
        "after the '?'"
    )


def url_text_is_safe(text: str, query: str, known: Collection[str]) -> bool:
    """Whether ``text`` (a library's error message) repeats nothing of ``query`` but the
    names in ``known``: no value and no other name."""
    for name, value in query_parts(query):
        if value and value in text:
            return False
        if name and name not in known and name in text:
            return False
    return True
