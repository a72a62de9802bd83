"""``python -m shopsync``: the ``shopsync`` command when the CLI is installed (``shopsync[cli]``).

The library never imports the CLI: the optional distribution ``shopsync-cli`` is looked up by name
at run time only.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

CLI = "shopsync_cli.cli"


def main() -> int:
    if importlib.util.find_spec(CLI.split(".")[0]) is None:
        print("shopsync: the command line is not installed; pip install 'shopsync[cli]'", file=sys.stderr)
        return 2
    return int(importlib.import_module(CLI).main())


if __name__ == "__main__":
    sys.exit(main())
