"""What an error message may show of a storage URL: its scheme, never the rest."""

from __future__ import annotations

import re

__all__ = ["shown_scheme"]

# RFC 3986's scheme syntax, and short: anything else before "://" may be a pasted secret
# (Upstash tokens are dozens of characters long), so it is never repeated.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}")


def shown_scheme(url: str) -> str:
    """The URL's scheme, quoted, for an error message; never any other part of the URL."""
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "(missing or malformed)"
    return repr(scheme + "://")
