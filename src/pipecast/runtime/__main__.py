"""``python -m pipecast.runtime``: see :mod:`pipecast.runtime.cli`."""

import sys

from pipecast.runtime.cli import main

sys.exit(main())
