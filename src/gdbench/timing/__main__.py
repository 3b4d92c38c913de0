"""``python -m gdbench.timing ARGS`` is ``gdbench timing ARGS``."""

import sys

from gdbench.cli import main

sys.exit(main(["timing", *sys.argv[1:]]))
