"""``python -m shopsync``: the ``shopsync`` command when the CLI is installed (``shopsync[cli]``)."""

from __future__ import annotations

import importlib.util
import sys


def main() -> int:
    if importlib.util.find_spec("shopsync_cli") is None:
        print("shopsync: the command line is not installed; pip install 'shopsync[cli]'", file=sys.stderr)
        return 2
    from shopsync_cli.cli import main as cli_main  # the optional distribution shopsync-cli

    return int(cli_main())


if __name__ == "__main__":
    sys.exit(main())
