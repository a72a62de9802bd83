"""Watching the local store: listeners called after each committed local write or pull page with
the tables and row ids that changed, so a UI re-renders without polling SQLite.

:class:`ChangeFeed` collects the rows a transaction touches (:meth:`LocalStore.write_row` and
friends report them) and hands them to the listeners once the outermost transaction has committed,
outside the store's lock; a rolled-back transaction reports nothing. Listeners run in the thread
that committed (the app's for its own writes, the sync thread for pulls); one that raises is
logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

__all__ = ["ChangeFeed", "Changes", "ALL_ROWS"]

log = logging.getLogger("shopsync")

#: Changes of one commit: table name -> the row ids that changed.
Changes = Mapping[str, frozenset[str]]
#: Stands for "every row of the table may have changed" (a local reset drops synced rows).
ALL_ROWS = "*"


class ChangeFeed:
    """The store's registry of change listeners (see the module docstring)."""

    def __init__(self) -> None:
        self._pending: dict[str, set[str]] = {}
        self._listeners: list[Callable[[Changes], None]] = []
        self._lock = threading.Lock()

    def add_listener(self, callback: Callable[[Changes], None]) -> Callable[[], None]:
        """Call ``callback(changes)`` after every commit that changed rows; returns the remover."""
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def watch(self, table: str, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(row_ids)`` after every commit that changed rows of ``table``."""

        def on_changes(changes: Changes) -> None:
            ids = changes.get(table)
            if ids:
                callback(ids)

        return self.add_listener(on_changes)

    # -- the store's side (called under the store's lock) -----------------------------------------
    def touch(self, table: str, row_ids: Iterable[str]) -> None:
        self._pending.setdefault(table, set()).update(row_ids)

    def take(self) -> dict[str, frozenset[str]]:
        """What the committed transaction changed; the pending set starts empty again."""
        pending, self._pending = self._pending, {}
        return {t: frozenset(ids) for t, ids in pending.items() if ids}

    def discard(self) -> None:
        self._pending = {}

    def emit(self, changes: dict[str, frozenset[str]]) -> None:
        if not changes:
            return
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(changes)
            except Exception:
                log.exception("shopsync change listener failed")
