"""``python -m streamem``: the same as the ``streamem`` command."""

import sys

from streamem.cli import main

sys.exit(main())
