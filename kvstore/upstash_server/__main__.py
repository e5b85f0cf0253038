"""``python -m kvstore.upstash_server``: see :func:`kvstore.upstash_server.main`."""

import sys

from kvstore.upstash_server import main

sys.exit(main())
