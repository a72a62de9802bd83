"""SyncClient: moves the outbox up (``sync_push``) and the change log down (``sync_pull``).

Crash safety: each push batch's results, and each pull page with its new cursor, are applied in
one SQLite transaction. A push whose answer was lost is sent again with the same event ids and
comes back ``duplicate``; a pull page that was not committed is fetched again.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from .background import BackgroundSync
from .conflicts import Conflict
from .errors import (
    DeviceError,
    ForbiddenError,
    LicenceError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ShopSyncError,
)
from .outbox import OutboxEntry
from .schema import TableSpec, utc_now_iso
from .status import PullProgress, Rejection, SyncResult, SyncStatus
from .store import LocalStore, _q
from .transport import SupabaseTransport, TokenSource, Transport

__all__ = ["SyncClient"]

Keep = str | dict[str, Any]


def _rate_window_end() -> str:
    """The server counts pushes per calendar minute: a 429 lifts at the next one."""
    return (datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)).isoformat()


class SyncClient:
    """Syncs one :class:`LocalStore` with the server.

    Build it from a supabase-py client (``SyncClient(store, client)``; the client's auth session
    supplies tokens, or pass ``access_token=`` a token or a callable returning a fresh one), from
    ``url=``, ``anon_key=`` and ``access_token=``, or from any ``transport=``.
    """

    def __init__(
        self,
        store: LocalStore,
        client: Any = None,
        *,
        url: str | None = None,
        anon_key: str | None = None,
        access_token: TokenSource | None = None,
        transport: Transport | None = None,
        device_name: str | None = None,
        platform: str | None = "python",
        batch_size: int = 500,
        page_size: int = 500,
        interval: float = 30.0,
        debounce: float = 1.0,
        backoff_base: float = 5.0,
        backoff_cap: float = 300.0,
    ) -> None:
        if transport is None:
            if client is not None:
                transport = SupabaseTransport(client, access_token)
            elif url and anon_key and access_token:
                transport = SupabaseTransport.from_url(url, anon_key, access_token)
            else:
                raise ValueError("SyncClient needs a supabase client, url + anon_key + access_token, or a transport")
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be 1..1000 (the server takes at most 1000 events a call)")
        self.store = store
        self.transport = transport
        self.device_name = device_name or f"shopsync-{store.device_prefix}"
        self.platform = platform
        self.batch_size = batch_size
        self.page_size = page_size
        self._sync_lock = threading.Lock()
        self._is_syncing = False
        self._schema_checked = False
        self._listeners: list[Callable[[SyncResult], None]] = []
        self._pull_listeners: list[Callable[[PullProgress], None]] = []
        #: Test hook: called inside a pull page's transaction after its rows, before its cursor.
        self.pull_page_hook: Callable[[dict[str, Any]], None] | None = None
        self._background = BackgroundSync(self.sync, interval=interval, debounce=debounce,
                                          backoff_base=backoff_base, backoff_cap=backoff_cap)

    # -- registration and schema ------------------------------------------------------------------
    def register(self) -> dict[str, Any]:
        """Register this device in the user's shop (idempotent) and load the synced schema."""
        info = self.transport.call("sync_register_device", {
            "p_device_id": self.store.device_id, "p_name": self.device_name, "p_platform": self.platform})
        with self.store.transaction():
            self.store.set_meta("shop_id", info.get("shop_id"))
            self.store.set_meta("role", info.get("role"))
            self.store.set_meta("registered_at", info.get("registered_at"))
        self.refresh_schema()
        return dict(info)

    def refresh_schema(self) -> bool:
        """Fetch ``sync_schema()`` and extend the local tables; True when anything changed."""
        changed = self.store.apply_schema(self.transport.call("sync_schema", {}))
        self._schema_checked = True
        return changed

    # -- sync ---------------------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[SyncResult], None]) -> None:
        """Call ``callback(result)`` after every sync (from the thread that ran it)."""
        self._listeners.append(callback)

    def add_pull_listener(self, callback: Callable[[PullProgress], None]) -> None:
        """Call ``callback(progress)`` after every committed pull page (a progress bar's feed)."""
        self._pull_listeners.append(callback)

    def remove_pull_listener(self, callback: Callable[[PullProgress], None]) -> None:
        if callback in self._pull_listeners:
            self._pull_listeners.remove(callback)

    def sync(self) -> SyncResult:
        """Push the outbox in batches, then pull pages until the server has no more.

        Never two at once: a second caller waits for the running sync, then runs its own.
        Whole-call failures do not raise; they are in ``result.errors`` (see ``raise_for_errors``).
        """
        return self._run(push=True, pull=True)

    def push(self) -> SyncResult:
        """Only push the outbox (no pull)."""
        return self._run(push=True, pull=False)

    def pull(self) -> SyncResult:
        """Only pull (pending local edits stay on top of the pulled rows)."""
        return self._run(push=False, pull=True)

    def _run(self, *, push: bool, pull: bool) -> SyncResult:
        with self._sync_lock:
            self._is_syncing = True
            try:
                result = self._sync(push, pull)
            finally:
                self._is_syncing = False
        for cb in list(self._listeners):
            cb(result)
        return result

    def _sync(self, push: bool, pull: bool) -> SyncResult:
        result = SyncResult()
        for attempt in (1, 2):
            try:
                if self.store.get_meta("registered_at") is None:
                    self.register()
                elif not self._schema_checked or not self.store.has_schema:
                    self.refresh_schema()
            except ShopSyncError as exc:
                return self._finish(result, exc)
            push_error = self._push_all(result) if push else None
            if pull and (push_error is None or isinstance(push_error, (LicenceError, RateLimitedError, ForbiddenError))):
                self._pull_all(result)  # a refused push does not stop pulls
            forgotten = [e for e in result.errors if isinstance(e, DeviceError) and e.reason == "device_not_registered"]
            if attempt == 1 and forgotten:
                # The server does not know this device any more (restored from a backup taken before it
                # registered, or a reset development stack): register again (idempotent; refused if
                # revoked or over the licence) and run once more. A cursor the server never handed
                # out then comes back cursor_ahead and the pull resets, keeping queued events.
                result.errors = [e for e in result.errors if e not in forgotten]
                self.store.set_meta("registered_at", None)
                continue
            break
        return self._finish(result, None)

    def _finish(self, result: SyncResult, error: ShopSyncError | None) -> SyncResult:
        if error is not None:
            result.errors.append(error)
        now = utc_now_iso()
        with self.store.transaction():
            if result.ok:
                self.store.set_meta("last_sync", now)
                self.store.set_meta("last_error", None)
                self.store.set_meta("licence_state", "ok")
            else:
                self.store.set_meta("last_error", str(result.errors[-1]))
            for exc in result.errors:
                if isinstance(exc, LicenceError):
                    self.store.set_meta("licence_state", exc.reason or "licence_expired")
                if isinstance(exc, RateLimitedError):
                    self.store.set_meta("rate_limited_until", _rate_window_end())
        return result

    # -- push ---------------------------------------------------------------------------------------
    def _push_all(self, result: SyncResult) -> ShopSyncError | None:
        after = 0
        while True:
            with self.store.transaction():
                entries = self.store.outbox.batch(self.batch_size, after)
            if not entries:
                return None
            try:
                answer = self.transport.call("sync_push", {
                    "p_device_id": self.store.device_id, "p_events": [e.to_event() for e in entries]})
                results = answer["results"]
                if len(results) != len(entries):
                    raise ProtocolError(f"sync_push answered {len(results)} results for {len(entries)} events")
            except ShopSyncError as exc:
                retry_at = _rate_window_end() if isinstance(exc, RateLimitedError) else None
                with self.store.transaction():
                    self.store.outbox.note_failed_call([e.event_id for e in entries], str(exc), retry_at)
                result.errors.append(exc)
                return exc
            with self.store.transaction():
                self._apply_results(entries, results, result)
            after = entries[-1].seq

    def _apply_results(self, entries: list[OutboxEntry], results: list[dict[str, Any]], result: SyncResult) -> None:
        """Apply a push batch's answer (inside its transaction): what ``_apply_result`` does for each
        event, set-wise for the common case.

        A row whose every event in the batch was applied or merged, that has no other queued event,
        no open conflict and no stored base, simply becomes ``synced`` at the server's version: those
        rows take one ``executemany`` per table. Every other event goes through ``_apply_result``
        in order (the two sets of rows are disjoint, so the order between them does not matter).
        """
        store = self.store
        conn = store._conn
        tables = store.schema.tables
        ok: dict[tuple[str, str], int] = {}  # (table, row) -> events of the row in this batch, all applied
        bad: set[tuple[str, str]] = set()
        for entry, res in zip(entries, results):
            status = res.get("status")
            effective = res.get("original_status") if status == "duplicate" else status
            key = (entry.table, entry.row_id)
            if effective in ("applied", "merged") and entry.table in tables and key not in bad:
                ok[key] = ok.get(key, 0) + 1
            else:
                bad.add(key)
                ok.pop(key, None)
        by_table: dict[str, list[str]] = {}
        for table, row_id in ok:
            by_table.setdefault(table, []).append(row_id)
        fast: set[tuple[str, str]] = set()
        for table, row_ids in by_table.items():
            ids = json.dumps(row_ids)
            queued = {r[0]: r[1] for r in conn.execute(
                "select row_id, count(*) from _outbox where table_name = ? and row_id in (select value from json_each(?))"
                " group by row_id", (table, ids))}
            busy = {r[0] for r in conn.execute(
                "select row_id from _conflicts where table_name = ? and resolved_at is null"
                " and row_id in (select value from json_each(?))"
                " union select row_id from _bases where table_name = ? and row_id in (select value from json_each(?))",
                (table, ids, table, ids))}
            fast.update((table, r) for r in row_ids if r not in busy and queued.get(r, 0) == ok[(table, r)])
        versions: dict[tuple[str, str], int] = {}
        done: list[tuple[str]] = []
        for entry, res in zip(entries, results):
            key = (entry.table, entry.row_id)
            if key not in fast:
                self._apply_result(entry, res, result)
                continue
            status = res.get("status")
            result.pushed += 1
            if status == "duplicate":
                result.duplicates += 1
            else:
                setattr(result, status, getattr(result, status) + 1)
            done.append((entry.event_id,))
            versions[key] = max(versions.get(key, 0), int(res.get("version") or 0))
        conn.executemany("delete from _outbox where event_id = ?", done)
        by_table_v: dict[str, list[tuple[int, str]]] = {}
        for (table, row_id), version in versions.items():
            by_table_v.setdefault(table, []).append((version, row_id))
        for table, params in by_table_v.items():
            conn.executemany(
                f"update {_q(table)} set version = nullif(max(coalesce(version, 0), ?), 0), sync_state = 'synced',"
                " last_error = null where id = ?", params)

    def _apply_result(self, entry: OutboxEntry, res: dict[str, Any], result: SyncResult) -> None:
        status = res.get("status")
        effective = res.get("original_status") if status == "duplicate" else status
        result.pushed += 1
        if status == "duplicate":
            result.duplicates += 1
        store = self.store
        store.outbox.remove(entry.event_id)
        spec = store.schema.tables.get(entry.table)
        if spec is None:
            return
        if effective in ("applied", "merged"):
            if status != "duplicate":
                setattr(result, effective, getattr(result, effective) + 1)
            row = store._row(entry.table, entry.row_id)
            base = store._base(entry.table, entry.row_id)
            if base is not None and int(base.get("version") or 0) >= int(res.get("version") or 0):
                # A pull already brought a server row that includes this event's effect (e.g. its
                # first answer was lost): adopt it rather than keep our values over it.
                self._adopt(spec, entry.row_id, base)
            elif row is not None:
                version = max(row["version"] or 0, int(res.get("version") or 0)) or None
                state = store._row_state(entry.table, entry.row_id)
                store._write_row(entry.table, {"id": entry.row_id, "version": version, "sync_state": state,
                                               "last_error": row["last_error"] if state != "synced" else None})
                if state == "synced":
                    store._set_base(entry.table, entry.row_id, None)
        elif effective == "conflict":
            if status != "duplicate":
                result.conflicts += 1
            self._on_conflict(spec, entry, res)
        else:
            result.rejected += 1
            reason = str(res.get("reason") or "rejected")
            result.rejections.append(Rejection(entry.event_id, entry.table, entry.row_id, entry.op, reason,
                                               res.get("message")))
            if store._row(entry.table, entry.row_id) is not None:
                message = res.get("message")
                # An open conflict on the row stays what the row shows until it is resolved.
                state = "conflict" if store.conflict_log.open_for_row(entry.table, entry.row_id) else "failed"
                store._write_row(entry.table, {"id": entry.row_id, "sync_state": state,
                                               "last_error": f"{reason}: {message}" if message else reason})

    def _on_conflict(self, spec: TableSpec, entry: OutboxEntry, res: dict[str, Any]) -> None:
        store = self.store
        reason = str(res.get("reason") or "conflict")
        server_row = spec.stored_from_wire(res["server_row"]) if res.get("server_row") else None
        if entry.op == "delete":
            local_values = {"deleted_at": spec.column("deleted_at").to_stored(entry.client_ts)}
        else:
            local_values = spec.stored_from_wire(entry.data)
        now = utc_now_iso()
        if spec.policy == "manual" and reason == "concurrent_update":
            # Both versions kept: the row shows the server's row with our values on top until resolved.
            existing = store.conflict_log.open_for_row(spec.name, entry.row_id)
            if existing:
                store.conflict_log.update_open(existing["id"], local_values={**existing["local_values"],
                                                                             **local_values})
            else:
                store.conflict_log.add(spec.name, entry.row_id, local_values, server_row, entry.base_version,
                                       reason, spec.policy, now)
        else:
            # server_wins / last_write_wins (and deleted or taken rows): adopt the server's row, log it.
            store.conflict_log.add(spec.name, entry.row_id, local_values, server_row, entry.base_version,
                                   reason, spec.policy, now, resolution="auto:remote")
        if server_row is not None:
            self._adopt(spec, entry.row_id, server_row)
        elif store._row(spec.name, entry.row_id) is not None:
            store._write_row(spec.name, {"id": entry.row_id, "sync_state": store._row_state(spec.name, entry.row_id)})

    def _adopt(self, spec: TableSpec, row_id: str, server_row: dict[str, Any]) -> None:
        """Make ``server_row`` the row's base; queued local values and open-conflict values stay on top."""
        store = self.store
        cur = store._row(spec.name, row_id)
        version = server_row.get("version")
        if cur is not None and cur["version"] is not None and version is not None and version < cur["version"]:
            return  # we already hold a newer server version
        if cur is not None and cur["sync_state"] == "failed" and version == cur["version"]:
            return  # a rejected edit stays visible (failed, last_error) until the server has news
        values = dict(server_row)
        conflict = store.conflict_log.open_for_row(spec.name, row_id)
        if conflict:
            store.conflict_log.update_open(conflict["id"], server_row=server_row)
            values.update(conflict["local_values"])
        overlay = store._pending_overlay(spec.name, row_id)
        values.update(overlay)
        store._set_base(spec.name, row_id, server_row if conflict or overlay else None)
        state = store._row_state(spec.name, row_id)
        values["sync_state"] = state
        values["last_error"] = None if state == "synced" else (cur or {}).get("last_error")
        store._write_row(spec.name, values)

    # -- pull ---------------------------------------------------------------------------------------
    def _fetch_page(self, cursor: int) -> Any:
        return self.transport.call("sync_pull", {
            "p_device_id": self.store.device_id, "p_cursor": cursor, "p_limit": self.page_size})

    def _pull_all(self, result: SyncResult) -> None:
        # While a page is applied, the next one (after the cursor the page answered) is already
        # being fetched: the server's work and the local writes overlap. A prefetched page is used
        # only if the store's cursor is still the one it was asked for.
        prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopsync-pull")
        try:
            self._pull_pages(result, prefetch)
        finally:
            prefetch.shutdown(wait=False, cancel_futures=True)

    def _pull_pages(self, result: SyncResult, prefetch: ThreadPoolExecutor) -> None:
        resets = 0
        ahead: tuple[int, Future[Any]] | None = None
        while True:
            try:
                cursor = self.store.cursor
                if ahead is not None and ahead[0] == cursor:
                    page = ahead[1].result()
                else:
                    page = self._fetch_page(cursor)
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
                ahead = (nxt, prefetch.submit(self._fetch_page, nxt))
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
            if self._needs_schema(changes):
                try:
                    self.refresh_schema()
                except ShopSyncError as exc:
                    result.errors.append(exc)
                    return
            with self.store.transaction():
                self._apply_changes(changes)
                if self.pull_page_hook is not None:
                    self.pull_page_hook(page)
                self.store.set_meta("cursor", int(page["cursor"]))
                self.store.set_meta("remaining", int(page.get("remaining") or 0))
                self.store.set_meta("server_time", page.get("server_time"))
            result.pulled += len(changes)
            progress = PullProgress(result.pulled, 0 if not page.get("has_more") else int(page.get("remaining") or 0),
                                    int(page["cursor"]))
            for cb in list(self._pull_listeners):
                cb(progress)
            if not page.get("has_more"):
                return

    def _apply_changes(self, changes: list[dict[str, Any]]) -> None:
        """Apply a pull page (inside its transaction): what ``_adopt`` does for each change, set-wise.

        Only the last change of a row in the page counts (versions rise with seq, so it is the one
        ``_adopt`` would keep). Rows with queued events or an open conflict go through ``_adopt``;
        the rest (an initial pull: all of them) are written with one ``executemany`` per table
        after one query for what the store holds of them.
        """
        store = self.store
        conn = store._conn
        by_table: dict[str, dict[str, dict[str, Any]]] = {}
        for change in changes:
            by_table.setdefault(change["table"], {})[str(change["row_id"])] = change["row"]
        for table, rows in by_table.items():
            spec = store.schema.tables.get(table)
            if spec is None:
                continue
            ids = json.dumps(list(rows))
            t = _q(table)
            special = {r[0] for r in conn.execute(
                "select row_id from _outbox where table_name = ? and row_id in (select value from json_each(?))"
                " union select row_id from _conflicts where table_name = ? and resolved_at is null"
                " and row_id in (select value from json_each(?))", (table, ids, table, ids))}
            local = {r[0]: (r[1], r[2]) for r in conn.execute(
                f"select id, version, sync_state from {t} where id in (select value from json_each(?))", (ids,))}
            based = {r[0] for r in conn.execute(
                "select row_id from _bases where table_name = ? and row_id in (select value from json_each(?))",
                (table, ids))}
            groups: dict[tuple[str, ...], list[list[Any]]] = {}
            unbase: list[tuple[str, str]] = []
            for row_id, wire in rows.items():
                values = spec.stored_from_wire(wire)
                if row_id in special:
                    self._adopt(spec, row_id, values)
                    continue
                cur = local.get(row_id)
                version = values.get("version")
                if cur is not None and version is not None:
                    if cur[0] is not None and version < cur[0]:
                        continue  # we already hold a newer server version
                    if cur[1] == "failed" and version == cur[0]:
                        continue  # a rejected edit stays visible until the server has news
                if row_id in based:
                    unbase.append((table, row_id))
                values["sync_state"] = "synced"
                values["last_error"] = None
                groups.setdefault(tuple(values), []).append(list(values.values()))
            for cols, params in groups.items():
                sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in cols if c != "id")
                conn.executemany(
                    f"insert into {t} ({', '.join(_q(c) for c in cols)}) values ({', '.join('?' * len(cols))})"
                    f" on conflict (id) do update set {sets}", params)
            if unbase:
                conn.executemany("delete from _bases where table_name = ? and row_id = ?", unbase)

    def _needs_schema(self, changes: list[dict[str, Any]]) -> bool:
        """Does a pulled row name a table or column the local schema lacks?"""
        tables = self.store.schema.tables
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

    def reset_local(self) -> None:
        """Drop synced rows, keep every pending outbox entry (and rows in conflict), pull from zero."""
        store = self.store
        with store.transaction():
            for name in store.schema.tables:
                store._conn.execute(
                    f"delete from {_q(name)} where sync_state in ('synced', 'failed')"
                    " and id not in (select row_id from _outbox where table_name = ?)"
                    " and id not in (select row_id from _conflicts where table_name = ? and resolved_at is null)",
                    (name, name))
            store._conn.execute(
                "delete from _bases where row_id not in (select row_id from _outbox)"
                " and row_id not in (select row_id from _conflicts where resolved_at is null)")
            store.set_meta("cursor", 0)

    # -- conflicts ----------------------------------------------------------------------------------
    def conflicts(self, include_resolved: bool = False) -> list[Conflict]:
        """Open conflicts (and, with ``include_resolved``, the resolved and auto-resolved log)."""
        return self.store.conflicts(include_resolved)

    def resolve(self, conflict_id: int, keep: Keep = "local") -> dict[str, Any] | None:
        """Settle an open conflict on top of the server's version and queue the result.

        ``keep="remote"``: the server's row stands, nothing is queued. ``keep="local"``: this
        device's values are queued as an update based on the server version. A dict: those values
        (app form) are queued the same way. Returns the row.
        """
        store = self.store
        with store.transaction():
            c = store.conflict_log.get(int(conflict_id))
            if c is None or c["resolved_at"] is not None:
                raise NotFoundError(f"no open conflict {conflict_id}", reason="not_found")
            spec = store.table(c["table"])
            server = c["server_row"] or {}
            if keep == "remote":
                values: dict[str, Any] = {}
                label = "remote"
            elif keep == "local":
                values = dict(c["local_values"])
                label = "local"
            elif isinstance(keep, dict):
                values = spec.stored_from_app(keep)
                label = "custom"
            else:
                raise ValueError('keep must be "local", "remote" or a dict of column values')
            now = utc_now_iso()
            store.conflict_log.resolve(c["id"], label, now)
            base = server.get("version")
            if values.get("deleted_at") is not None:
                store.outbox.enqueue(spec.name, "delete", c["row_id"], base, {}, now)
            else:
                diff = {k: v for k, v in values.items() if k != "deleted_at" and server.get(k) != v}
                if diff:
                    store.outbox.enqueue(spec.name, "update", c["row_id"], base, spec.wire_from_stored(diff), now)
            if server:
                self._adopt(spec, c["row_id"], server)
        store._notify()
        return store.get(spec.name, c["row_id"], include_deleted=True)

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> SyncStatus:
        store = self.store
        with store._lock:  # reads only: no write lock on the file
            pending = store.outbox.count()
            by_table = store.outbox.count_by_table()
            oldest = store.outbox.oldest_created_at()
            open_conflicts = store.conflict_log.count_open()
        now = datetime.now(timezone.utc)
        last_sync = store.get_meta("last_sync")
        limited = store.get_meta("rate_limited_until")
        limited_until = datetime.fromisoformat(limited) if limited else None
        return SyncStatus(
            last_sync=datetime.fromisoformat(last_sync.replace("Z", "+00:00")) if last_sync else None,
            pending_uploads=pending,
            pending_downloads=int(store.get_meta("remaining", "0") or 0),
            is_syncing=self._is_syncing,
            last_error=store.get_meta("last_error"),
            pending_by_table=by_table,
            oldest_pending_age=(now - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds()
            if oldest else None,
            open_conflicts=open_conflicts,
            licence_state=store.get_meta("licence_state", "ok") or "ok",
            rate_limited_until=limited_until if limited_until and limited_until > now else None,
            next_sync_at=self._background.next_sync_at(),
            cursor=store.cursor,
        )

    # -- background -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Sync in a background thread: now, every ``interval`` s, shortly after writes, on ``sync_now()``."""
        self.store.add_write_listener(self._background.notify_write)
        self._background.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the background thread (waits for a running sync to finish)."""
        self.store.remove_write_listener(self._background.notify_write)
        self._background.stop(timeout)

    def sync_now(self) -> threading.Event:
        """Ask the background thread for a sync now; the event is set once one has finished.
        Without a running thread, syncs in the calling thread."""
        if not self._background.running:
            self.sync()
            done = threading.Event()
            done.set()
            return done
        return self._background.sync_now()

    @property
    def background(self) -> BackgroundSync:
        return self._background
