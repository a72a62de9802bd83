"""The stack's one error type."""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(RuntimeError):
    """The stack could not be brought to the state asked for; the message says why and what to do."""
