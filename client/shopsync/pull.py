"""Pull: the shop's change log comes down (``sync_pull_v2``) page by page, and the device shows only
states the server had.

Each page says whether it ends at a consistent point (``consistent``: a server transaction ends
there and no retention compaction is still being crossed). Pages are staged in the device's file
(:class:`~shopsync.staging.PullStage`) until such a page arrives; then everything staged is applied
and the cursor moves, in one SQLite transaction. Crash safety: a staged page and the staging cursor
are written in one transaction too, so a restart goes on where staging stood. While a page is
written, the next one is already being fetched. Every read and write of the device's file goes
through the store (:class:`~shopsync.store.LocalStore`).
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

__all__ = ["Puller", "apply_changes", "needs_schema", "PULL_RPC"]

#: The RPC the client pulls with (``sync_pull`` is v1: pages cut at a row count).
PULL_RPC = "sync_pull_v2"
#: A pull asks for a WAL checkpoint (on another thread) after about this many committed changes.
_CHECKPOINT_ROWS = 8000


class Puller:
    """Pulls pages into ``store`` until the server has no more (one sync's worth).

    ``refresh_schema`` is called when a page names a table or column the local schema lacks;
    ``reset_local`` when the server asks for a reset (or says the cursor is ahead of its log).
    ``page_hook`` runs inside each page's transaction, after its rows and before its cursor (a test
    hook); ``listeners`` get a :class:`PullProgress` after every committed page (applied or staged).
    Against a server without ``sync_pull_v2`` (a rolling upgrade) it pulls with ``sync_pull``, each
    page applied on its own as before.
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
        self.v1 = False  # set when the server has no sync_pull_v2 (then pages are v1's)
        #: The shop's checksums the last page carried (a page at the tip, from a server with
        #: 20261203002100), applied with it: what the verification compares against without
        #: calling ``sync_checksums``. None when the last page had none.
        self.tip_checksums: dict[str, Any] | None = None

    def fetch_page(self, cursor: int, applied: int) -> Any:
        if not self.v1:
            try:
                return self.transport.call(PULL_RPC, {
                    "p_device_id": self.store.device_id, "p_cursor": cursor, "p_limit": self.page_size,
                    "p_applied": applied})
            except ProtocolError as exc:
                if exc.code != "PGRST202":
                    raise
                self.v1 = True  # a server from before sync_pull_v2 (20261202002000): v1's semantics
        page = self.transport.call("sync_pull", {
            "p_device_id": self.store.device_id, "p_cursor": cursor, "p_limit": self.page_size})
        if isinstance(page, dict):
            page["consistent"] = True  # v1: each page applies on its own, as it always did
        return page

    def pull_all(self, result: SyncResult) -> None:
        """Pull until the last page; count into ``result`` (errors too: this never raises them)."""
        # While a page is written, the next one (after the cursor the page answered) is already
        # being fetched: the server's work and the local writes overlap. A prefetched page is used
        # only if it was asked for where the store stands now.
        prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopsync-pull")
        # The WAL is checkpointed on another thread, never inside a page's commit (store.checkpoints_aside).
        aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopsync-checkpoint")
        try:
            with self.store.checkpoints_aside() as checkpoint:
                running: Future[None] | None = None

                def checkpoint_soon() -> None:  # unless one is still running
                    nonlocal running
                    if running is None or running.done():
                        running = aside.submit(checkpoint)

                self._pull_pages(result, prefetch, checkpoint_soon)
                checkpoint_soon()
        finally:
            prefetch.shutdown(wait=False, cancel_futures=True)
            aside.shutdown(wait=False)

    def _reset(self) -> None:
        with self.store.transaction():
            self.store.stage.clear()
        self.reset_local()

    def _pull_pages(self, result: SyncResult, prefetch: ThreadPoolExecutor, checkpoint_soon: Callable[[], None]) -> None:
        store = self.store
        resets = 0
        staged = 0  # changes staged in this sync and not applied yet
        unchecked = 0  # changes committed since the last checkpoint was asked for
        ahead: tuple[tuple[int, int], Future[Any]] | None = None
        while True:
            try:
                with store.transaction():
                    applied = store.cursor
                    stage_cursor = store.stage.cursor()
                where = (stage_cursor if stage_cursor is not None else applied, applied)
                if ahead is not None and ahead[0] == where:
                    page = ahead[1].result()
                else:
                    page = self.fetch_page(*where)
                ahead = None
            except ProtocolError as exc:
                ahead = None
                if exc.reason == "cursor_ahead" and resets == 0:  # the server's log restarted
                    resets += 1
                    result.resets += 1
                    self._reset()
                    continue
                result.errors.append(exc)
                return
            except ShopSyncError as exc:
                result.errors.append(exc)
                return
            if page.get("reset_required"):
                if resets:
                    result.errors.append(ProtocolError("sync_pull asked for a reset twice in one sync",
                                                       reason="reset_loop"))
                    return
                resets += 1
                result.resets += 1
                self._reset()
                continue
            if "consistent" not in page:
                result.errors.append(ProtocolError("the pull page has no consistent flag (a v1 answer?)",
                                                   reason="bad_response"))
                return
            new_cursor = int(page["cursor"])
            consistent = bool(page["consistent"])
            if page.get("has_more"):
                nxt = (new_cursor, new_cursor if consistent else applied)
                ahead = (nxt, prefetch.submit(self.fetch_page, *nxt))
            changes = page.get("changes") or []
            columns = page.get("tables") or {}
            if needs_schema(store.schema, changes, columns):
                try:
                    self.refresh_schema()
                except ShopSyncError as exc:
                    result.errors.append(exc)
                    return
                if store.cursor != applied:  # the schema grew under rows: the file fills again
                    with store.transaction():
                        store.stage.clear()
                    continue
            with store.transaction():
                if consistent and store.stage.cursor() is None:  # nothing staged: straight to the tables
                    store.stage.apply(store, store.schema.tables, changes, result.unreadable, columns)
                else:
                    store.stage.add(store.schema.tables, changes, result.unreadable, columns)
                    if consistent:
                        store.stage.merge(store)
                if self.page_hook is not None:
                    self.page_hook(page)
                if consistent:
                    store.set_meta("cursor", new_cursor)
                    store.set_meta("remaining", int(page.get("remaining") or 0))
                    store.set_meta("server_time", page.get("server_time"))
                else:
                    store.stage.set_cursor(new_cursor)
            staged = 0 if consistent else staged + len(changes)
            result.pulled += len(changes)
            unchecked += len(changes)
            if unchecked >= _CHECKPOINT_ROWS:
                unchecked = 0
                checkpoint_soon()
            progress = PullProgress(result.pulled, 0 if not page.get("has_more") else int(page.get("remaining") or 0),
                                    store.cursor, staged)
            for cb in list(self.listeners):
                cb(progress)
            if not page.get("has_more"):
                tip = page.get("checksums")
                self.tip_checksums = tip if consistent and isinstance(tip, dict) else None
                if not consistent:
                    result.errors.append(ProtocolError("the last pull page is not consistent",
                                                       reason="bad_response"))
                return


def apply_changes(store: LocalStore, changes: list[Any], unreadable: list[UnreadableRow] | None = None,
                  columns: dict[str, list[str]] | None = None) -> None:
    """Apply pulled changes at once (one transaction): what ``adopt_server_row`` does for each
    change, set-wise, through the stage (see :mod:`shopsync.staging`).

    Only the last change of a row counts (versions rise with seq). A row holding a value this
    client cannot read is skipped and appended to ``unreadable`` (the rest applies); without a list
    to report into, it raises InvalidValueError. ``changes``: v1 entries, or v2 entries with the
    page's ``columns``.
    """
    with store.transaction():
        store.stage.add(store.schema.tables, changes, unreadable, columns)
        store.stage.merge(store)


def needs_schema(schema: Schema, changes: list[Any], columns: dict[str, list[str]] | None = None) -> bool:
    """Does a pulled row name a table or column the local schema lacks? (``changes``: v2 entries
    with the page's ``columns``, or v1 entries.)"""
    tables = schema.tables
    known: dict[str, set[str]] = {}
    for name, cols in (columns or {}).items():
        spec = tables.get(name)
        if spec is None or not all(spec.has_column(c) for c in cols):
            return True
    for change in changes:
        if change.__class__ is list:
            if change[5].__class__ is list:
                continue  # in the page's columns, checked above
            name, row = change[1], change[5]
        else:
            name, row = change.get("table", ""), change.get("row")
        cols_known = known.get(name)
        if cols_known is None:
            spec = tables.get(name)
            if spec is None:
                return True
            cols_known = known[name] = {c.name for c in spec.columns}
        if not (row or {}).keys() <= cols_known:
            return True
    return False
