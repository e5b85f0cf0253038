"""Glob matching for ``SCAN ... MATCH``: a faithful port of Redis's ``stringmatchlen``.

A translation to :mod:`re` or :mod:`fnmatch` would disagree with Redis on the corners that
users do hit: an unterminated ``[``, a backslash at the end, reversed ranges such as
``[z-a]``, and bytes above 0x7f, which C compares as *signed* chars in ranges.
"""

from __future__ import annotations

__all__ = ["glob_match"]

_SPECIAL = frozenset(b"*?[\\")


def _signed(byte: int) -> int:
    # Redis's pattern bytes are `char`, signed on the platforms it runs on.
    return byte - 256 if byte >= 128 else byte


def glob_match(pattern: bytes, string: bytes) -> bool:
    """Whether ``string`` matches the Redis glob ``pattern`` (case-sensitive)."""
    if not _SPECIAL.intersection(pattern):
        return pattern == string
    # "*" alone would also match b"" here, which Redis's loop does not (SCAN special-cases
    # a lone "*" before it gets here), so the shortcut wants a literal prefix.
    if len(pattern) > 1 and pattern.endswith(b"*") and not _SPECIAL.intersection(pattern[:-1]):
        return string.startswith(pattern[:-1])
    return _match(pattern, 0, string, 0, [False])


def _match(pattern: bytes, p: int, string: bytes, s: int, give_up: list[bool]) -> bool:
    """Match ``pattern[p:]`` against ``string[s:]``.

    ``give_up`` is Redis's ``skipLongerMatches``: once the rest of the pattern after a
    ``*`` failed at every position, no earlier ``*`` can help, so the search stops there
    (this keeps patterns like ``a*a*a*a*b`` linear instead of exponential).
    """
    plen, slen = len(pattern), len(string)
    while p < plen and s < slen:
        char = pattern[p]
        if char == 0x2A:  # '*'
            while p + 1 < plen and pattern[p + 1] == 0x2A:
                p += 1
            if p + 1 == plen:
                return True
            while s < slen:
                if _match(pattern, p + 1, string, s, give_up):
                    return True
                if give_up[0]:
                    return False
                s += 1
            give_up[0] = True
            return False
        if char == 0x3F:  # '?'
            s += 1
        elif char == 0x5B:  # '['
            p, matched = _match_class(pattern, p + 1, string[s])
            if not matched:
                return False
            s += 1
        else:
            if char == 0x5C and p + 1 < plen:  # '\\' escapes the next byte
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
        if s == slen:
            while p < plen and pattern[p] == 0x2A:
                p += 1
            break
    return p == plen and s == slen


def _match_class(pattern: bytes, p: int, target: int) -> tuple[int, bool]:
    """Match one byte against the ``[...]`` class starting at ``pattern[p]``.

    Returns the index of the class's closing ``]`` (or of its last byte when unterminated,
    as Redis does) and whether the byte matched.
    """
    plen = len(pattern)
    negate = p < plen and pattern[p] == 0x5E  # '^'
    if negate:
        p += 1
    matched = False
    while True:
        if p < plen and pattern[p] == 0x5C and plen - p >= 2:  # escaped byte
            p += 1
            matched |= pattern[p] == target
        elif p < plen and pattern[p] == 0x5D:  # ']'
            break
        elif p >= plen:  # unterminated: Redis steps back onto the last byte
            p -= 1
            break
        elif plen - p >= 3 and pattern[p + 1] == 0x2D:  # a range such as a-z
            start, end = _signed(pattern[p]), _signed(pattern[p + 2])
            if start > end:
                start, end = end, start
            matched |= start <= _signed(target) <= end
            p += 2
        else:
            matched |= pattern[p] == target
        p += 1
    return p, matched != negate
