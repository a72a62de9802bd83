"""``python -m shopsync_cli``: the ``shopsync`` command."""

import sys

from .cli import main

sys.exit(main())
