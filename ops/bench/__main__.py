"""``python -m ops.bench [--quick]``."""

from __future__ import annotations

import sys

from ops.bench.run import main

sys.exit(main())
