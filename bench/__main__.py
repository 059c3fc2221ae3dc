"""``python -m bench`` (``make bench``): run every benchmark and print one table. See bench/README.md."""

from __future__ import annotations

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
