"""shopsync-cli: the ``shopsync`` command (device commands, ``stack``, ``demo``) on top of the
device library (:mod:`shopsync`) and the local stack (:mod:`shopsync_stack`)."""

from .cli import EXIT_CODES, CliError, main

__version__ = "0.1.0"
__all__ = ["__version__", "main", "EXIT_CODES", "CliError"]
