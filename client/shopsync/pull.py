"""Pull: the shop's change log comes down (``sync_pull``) page by page.

Crash safety: each page's rows and its new cursor are applied in one SQLite transaction; a page that
was not committed is fetched again. While a page is applied, the next one is already being fetched.
Every read and write of the device's file goes through the store (:class:`~shopsync.store.LocalStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .errors import ProtocolError, ShopSyncError
from .schema import Schema
from .status import PullProgress, SyncResult, UnreadableRow
from .store import LocalStore
from .transport import Transport

__all__ = ["Puller", "apply_changes", "needs_schema"]


class Puller:
    """Pulls pages into ``store`` until the server has no more (one sync's worth).

    ``refresh_schema`` is called when a page names a table or column the local schema lacks;
    ``reset_local`` when the server asks for a reset (or says the cursor is ahead of its log).
    ``page_hook`` runs inside each page's transaction, after its rows and before its cursor (a test
    hook); ``listeners`` get a :class:`PullProgress` after every committed page.
    """

    def __init__(self, store: LocalStore, transport: Transport, page_size: int, *,
                 refresh_schema: Callable[[], object], reset_local: Callable[[], None],
                 page_hook: Callable[[dict[str, Any]], None] | None = None,
                 listeners: Sequence[Callable[[PullProgress], None]] = ()) -> None:
        self.store = store
        self.transport = transport
        self.page_size = page_size
        self.refresh_schema = refresh_schema
        self.reset_local = reset_local
        self.page_hook = page_hook
        self.listeners = list(listeners)

    def fetch_page(self, cursor: int) -> Any:
        return self.transport.call("sync_pull", {
            "p_device_id": self.store.device_id, "p_cursor": cursor, "p_limit": self.page_size})

    def pull_all(self, result: SyncResult) -> None:
        """Pull until the last page; count into ``result`` (errors too: this never raises them)."""
        # While a page is applied, the next one (after the cursor the page answered) is already
        # being fetched: the server's work and the local writes overlap. A prefetched page is used
        # only if the store's cursor is still the one it was asked for.
        prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopsync-pull")
        try:
            self._pull_pages(result, prefetch)
        finally:
            prefetch.shutdown(wait=False, cancel_futures=True)

    def _pull_pages(self, result: SyncResult, prefetch: ThreadPoolExecutor) -> None:
        store = self.store
        resets = 0
        ahead: tuple[int, Future[Any]] | None = None
        while True:
            try:
                cursor = store.cursor
                if ahead is not None and ahead[0] == cursor:
                    page = ahead[1].result()
                else:
                    page = self.fetch_page(cursor)
                ahead = None
            except ProtocolError as exc:
                ahead = None
                if exc.reason == "cursor_ahead" and resets == 0:  # the server's log restarted
                    resets += 1
                    result.resets += 1
                    self.reset_local()
                    continue
                result.errors.append(exc)
                return
            except ShopSyncError as exc:
                result.errors.append(exc)
                return
            if page.get("has_more") and not page.get("reset_required"):
                nxt = int(page["cursor"])
                ahead = (nxt, prefetch.submit(self.fetch_page, nxt))
            if page.get("reset_required"):
                if resets:
                    result.errors.append(ProtocolError("sync_pull asked for a reset twice in one sync",
                                                       reason="reset_loop"))
                    return
                resets += 1
                result.resets += 1
                self.reset_local()
                continue
            changes = page.get("changes") or []
            if needs_schema(store.schema, changes):
                try:
                    self.refresh_schema()
                except ShopSyncError as exc:
                    result.errors.append(exc)
                    return
            with store.transaction():
                apply_changes(store, changes, result.unreadable)
                if self.page_hook is not None:
                    self.page_hook(page)
                store.set_meta("cursor", int(page["cursor"]))
                store.set_meta("remaining", int(page.get("remaining") or 0))
                store.set_meta("server_time", page.get("server_time"))
            result.pulled += len(changes)
            progress = PullProgress(result.pulled, 0 if not page.get("has_more") else int(page.get("remaining") or 0),
                                    int(page["cursor"]))
            for cb in list(self.listeners):
                cb(progress)
            if not page.get("has_more"):
                return


def apply_changes(store: LocalStore, changes: list[dict[str, Any]],
                  unreadable: list[UnreadableRow] | None = None) -> None:
    """Apply a pull page (inside its transaction): what ``adopt_server_row`` does for each change,
    set-wise.

    Only the last change of a row in the page counts (versions rise with seq, so it is the one
    ``adopt_server_row`` would keep). Rows with queued events or an open conflict go through
    ``adopt_server_row``; the rest (an initial pull: all of them) are written with one
    ``executemany`` per table and column set, after one query each for what the store holds of them.

    A row holding a value this client cannot read is skipped and appended to ``unreadable`` (the
    rest of the page applies); without a list to report into, it raises InvalidValueError.
    """
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    seqs: dict[tuple[str, str], Any] = {}
    for change in changes:
        by_table.setdefault(change["table"], {})[str(change["row_id"])] = change["row"]
        seqs[(change["table"], str(change["row_id"]))] = change.get("seq")
    for table, rows in by_table.items():
        spec = store.schema.tables.get(table)
        if spec is None:
            continue
        special = store.rows_with_local_changes(table, rows)
        local = store.versions_and_states(table, rows)
        based = store.bases.rows_with_base(table, rows)
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        unbase: list[str] = []
        for row_id, wire in rows.items():
            try:
                values = spec.stored_from_wire(wire)
            except (ShopSyncError, ValueError, TypeError, OverflowError) as exc:
                if unreadable is None:
                    raise
                seq = seqs.get((table, row_id))
                unreadable.append(UnreadableRow(table, row_id, int(seq) if seq is not None else None,
                                                getattr(exc, "message", None) or str(exc)))
                continue
            if row_id in special:
                store.adopt_server_row(table, row_id, values)
                continue
            cur = local.get(row_id)
            version = values.get("version")
            if cur is not None and version is not None:
                if cur[0] is not None and version < cur[0]:
                    continue  # we already hold a newer server version
                if cur[1] == "failed" and version == cur[0]:
                    continue  # a rejected edit stays visible until the server has news
            if row_id in based:
                unbase.append(row_id)
            values["sync_state"] = "synced"
            values["last_error"] = None
            groups.setdefault(tuple(values), []).append(list(values.values()))
        for cols, params in groups.items():
            store.write_rows(table, cols, params)
        if unbase:
            store.bases.drop(table, unbase)


def needs_schema(schema: Schema, changes: list[dict[str, Any]]) -> bool:
    """Does a pulled row name a table or column the local schema lacks?"""
    tables = schema.tables
    known: dict[str, set[str]] = {}
    for change in changes:
        name = change.get("table", "")
        cols = known.get(name)
        if cols is None:
            spec = tables.get(name)
            if spec is None:
                return True
            cols = known[name] = {c.name for c in spec.columns}
        if not (change.get("row") or {}).keys() <= cols:
            return True
    return False
