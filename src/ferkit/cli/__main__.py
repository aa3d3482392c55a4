"""``python -m ferkit.cli``: the ``ferkit`` command."""

import sys

from .main import main

sys.exit(main())
