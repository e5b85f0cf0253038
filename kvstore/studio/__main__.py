"""``python -m kvstore.studio``: serve the studio (see :mod:`kvstore.studio`)."""

from __future__ import annotations

import sys

from kvstore.studio import main

if __name__ == "__main__":
    sys.exit(main())
