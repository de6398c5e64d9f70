"""``python -m bluegreen.plugin``: the same as ``kubectl bluegreen``."""

import sys

from bluegreen.plugin.cli import main

sys.exit(main())
