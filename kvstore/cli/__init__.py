"""The ``kvstore`` command line: inspect a store, export, import, migrate, serve.

Installed as the ``kvstore`` console script, and behind ``python -m kvstore``. Needs the
``cli`` extra (``pip install "kvstore[cli]"``): click and rich. Importing ``kvstore`` never
imports them; this module only does when a command runs.

Every command that reads a store takes ``--url`` (default: ``$KVSTORE_URL``, else the
local file ``memory://.kvstore/kvstore.aof``) and ``--namespace`` (default:
``$KVSTORE_NAMESPACE``, else ``kv``). Exit status: 0 on success, 1 when the command failed
(one line on stderr says why), 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

_REQUIRED = ("click", "rich")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Args:
        argv: The arguments, without the program name (default: ``sys.argv[1:]``).
    """
    missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"error: the kvstore command line needs {' and '.join(missing)}; "
            'install it with: pip install "kvstore[cli]"',
            file=sys.stderr,
        )
        return 1
    from kvstore.cli._app import main as run

    return run(argv)
