"""``python -m kvstore demo``: the newcomer's first command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``python -m kvstore <command>``."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["demo"]:
        from kvstore.demo import main as demo

        demo()
        return 0
    print("usage: python -m kvstore demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
