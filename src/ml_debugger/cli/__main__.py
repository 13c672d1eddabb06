"""``python -m ml_debugger.cli``."""

import sys

from ml_debugger.cli import main

sys.exit(main())
