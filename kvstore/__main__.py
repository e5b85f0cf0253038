"""``python -m kvstore``: the ``kvstore`` command line (see :mod:`kvstore.cli`)."""

from __future__ import annotations

import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m kvstore <command>``; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["demo"] and importlib.util.find_spec("click") is None:
        # The demo is the newcomer's first command: it runs without the cli extra too.
        from kvstore.demo import main as demo

        demo()
        return 0
    from kvstore.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
