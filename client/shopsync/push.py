"""Push: the outbox goes up (``sync_push``) in batches, in the order it was written.

Crash safety: each batch's results are applied in one SQLite transaction. A push whose answer was
lost is sent again with the same event ids and comes back ``duplicate``. Every read and write of the
device's file goes through the store (:class:`~shopsync.store.LocalStore`).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone
from typing import Any

from .errors import ProtocolError, RateLimitedError, ShopSyncError
from .outbox import OutboxEntry
from .schema import TableSpec, unsendable, utc_now_iso
from .status import Rejection, SyncResult, UnreadableRow
from .store import LocalStore
from .transport import Transport

__all__ = ["push_all", "rate_window_end"]


_RETRY_AFTER = re.compile(r"retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


def rate_window_end(hint: str | None = None) -> str:
    """When a 429 lifts. The server counts calls in windows that last a minute from their first
    call, and its hint names the window's end (``retry after <UTC time>``); without it, a minute
    from now (the latest the window can end)."""
    found = _RETRY_AFTER.search(hint or "")
    if found:
        return datetime.fromisoformat(found.group(1)).replace(tzinfo=timezone.utc).isoformat()
    return (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()


def push_all(store: LocalStore, transport: Transport, batch_size: int, result: SyncResult) -> ShopSyncError | None:
    """Push every queued event, ``batch_size`` a call; count the answers into ``result``.

    Returns the whole-call failure that stopped the push (also appended to ``result.errors``), or None.

    A backlog is pushed in a pipeline: while a call is on the wire, the next batch is read and
    checked, and once its answer is in, the next call goes out before that answer is applied to
    the file. The server still sees one call at a time, in outbox order, each after the previous
    one committed, so it answers exactly as it would to calls sent one after another. The device
    applies the answers in order, each in its own transaction; outbox entries never change once
    queued, so applying an answer cannot change a batch already sent. A device that stops between
    a call and the applying of its answer sends those events again, and they come back
    ``duplicate``, as after any lost answer. A push of one batch runs on the calling thread.
    """
    size = batch_size
    current = _prepare(store, size, 0)
    if current is None:
        return None
    pool: ThreadPoolExecutor | None = None
    flight: Future[list[dict[str, Any]]] | None = None
    try:
        while current is not None:
            nxt: _Batch | None = None
            try:
                if flight is None and len(current.entries) < size:
                    results = _send(transport, store.device_id, current)  # the last batch: no pipeline
                else:
                    if flight is None:
                        if pool is None:
                            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopsync-push")
                        flight = pool.submit(_send, transport, store.device_id, current)
                    nxt = _prepare(store, size, current.entries[-1].seq)  # while the call is on the wire
                    try:
                        results = flight.result()
                    finally:
                        flight = None
            except ShopSyncError as exc:
                if too_large(exc):
                    if len(current.sent) > 1:  # the body is over the server's limit: the same events, half as many a call
                        size = max(1, len(current.entries) // 2)
                        current = _prepare(store, size, current.after)
                        continue
                    # One event alone is over the limit: no call can ever carry it. It is rejected here
                    # (the row stays shown, failed, as for any rejection) and the rest goes on.
                    results = [_rejected(e, "invalid_value", current.poison[i]) if i in current.poison else _rejected(
                        e, "payload_too_large", f"this event alone is larger than the server takes in one call ({exc.message})")
                        for i, e in enumerate(current.entries)]
                    with store.transaction():
                        _apply_results(store, current.entries, results, result)
                    current = _prepare(store, size, current.entries[-1].seq)
                    continue
                # push_in_progress (another push of this device still running) is retried at once.
                limited = isinstance(exc, RateLimitedError) and exc.reason != "push_in_progress"
                retry_at = rate_window_end(exc.hint) if limited else None
                with store.transaction():
                    store.outbox.note_failed_call([e.event_id for e in current.entries], str(exc), retry_at)
                result.errors.append(exc)
                return exc
            if nxt is not None and pool is not None:
                flight = pool.submit(_send, transport, store.device_id, nxt)  # before this answer is applied
            with store.transaction():
                _apply_results(store, current.entries, results, result)
            current = nxt if nxt is not None else _prepare(store, size, current.entries[-1].seq)
        return None
    finally:
        if flight is not None:
            # Only when applying an answer failed (the exception goes on): the call in flight ends
            # before the push returns; its answer is not applied, so its events go again next time.
            wait([flight])
        if pool is not None:
            pool.shutdown(wait=True)


class _Batch:
    """A batch read from the outbox: its entries, the events sent, those refused on the device."""

    __slots__ = ("after", "entries", "events", "poison", "sent")

    def __init__(self, after: int, entries: list[OutboxEntry]) -> None:
        self.after = after
        self.entries = entries
        # An event holding text Postgres cannot take (NUL, a lone surrogate: queued by an older
        # client) would make the server refuse the whole body, for good: it is rejected here instead.
        events = [e.to_event() for e in entries]
        self.poison = _poison(events)
        self.sent = [e for i, e in enumerate(entries) if i not in self.poison]
        self.events = [ev for i, ev in enumerate(events) if i not in self.poison]


def _prepare(store: LocalStore, size: int, after: int) -> _Batch | None:
    """The next batch after outbox seq ``after``, or None when nothing is queued after it."""
    with store.transaction():
        entries = store.outbox.batch(size, after)
    return _Batch(after, entries) if entries else None


def _send(transport: Transport, device_id: str, batch: _Batch) -> list[dict[str, Any]]:
    """One ``sync_push`` call for the batch; the answer with the device's rejections put in place."""
    results: list[dict[str, Any]] = []
    if batch.sent:
        answer = transport.call("sync_push", {"p_device_id": device_id, "p_events": batch.events})
        results = answer["results"]
        if len(results) != len(batch.sent):
            raise ProtocolError(f"sync_push answered {len(results)} results for {len(batch.sent)} events")
    if batch.poison:
        answered = iter(results)
        results = [_rejected(e, "invalid_value", batch.poison[i]) if i in batch.poison else next(answered)
                   for i, e in enumerate(batch.entries)]
    return results


def _rejected(entry: OutboxEntry, reason: str, message: str) -> dict[str, Any]:
    """A rejection decided on the device, in the shape of a server result."""
    return {"event_id": entry.event_id, "status": "rejected", "reason": reason, "message": message,
            "version": None, "server_row": None}


def too_large(exc: ShopSyncError) -> bool:
    """Did the server refuse the call as too big: a body over the limit (HTTP 413; the local
    gateway answers ``REQUEST_TOO_LARGE``, PostgREST ``PGRST413``, other proxies only say so in
    the message) or more events than a push takes (``batch_too_large``)?"""
    if exc.reason == "batch_too_large" or exc.status == 413 or exc.code in ("REQUEST_TOO_LARGE", "PGRST413"):
        return True
    return exc.reason is None and "too large" in (exc.message or "").lower()


def _poison(events: list[dict[str, Any]]) -> dict[int, str]:
    """The events that cannot be sent, by index, with the reason (see ``unsendable``).

    The whole batch is checked at once first: JSON text with no NaN or infinity, encodable as UTF-8
    (no lone surrogate) and without the escape JSON writes a NUL as is what nearly every batch is,
    and one ``json.dumps`` costs far less than walking every value in Python. Anything else (a NUL,
    a literal backslash-u0000 in some text, a value JSON cannot hold) is checked event by event."""
    try:
        text = json.dumps(events, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        pass
    else:
        if "\\u0000" not in text:
            return {}
    return {i: why for i, ev in enumerate(events) if (why := unsendable(ev)) is not None}


def _apply_results(store: LocalStore, entries: list[OutboxEntry], results: list[dict[str, Any]],
                   result: SyncResult) -> None:
    """Apply a push batch's answer (inside its transaction): what ``_apply_result`` does for each
    event, set-wise for the common case.

    A row whose every event in the batch was applied or merged, that has no other queued event,
    no open conflict and no stored base, simply becomes ``synced`` at the server's version: those
    rows take one ``executemany`` per table. Every other event goes through ``_apply_result``
    in order (the two sets of rows are disjoint, so the order between them does not matter).
    """
    tables = store.schema.tables
    written: dict[str, list[str]] = {}
    for entry in entries:
        if entry.table in tables:
            written.setdefault(entry.table, []).append(entry.row_id)
    for table, row_ids in written.items():  # before any queued event, base or row of them changes
        store.note_write(table, ids=row_ids)
    ok: dict[tuple[str, str], int] = {}  # (table, row) -> events of the row in this batch, all applied
    bad: set[tuple[str, str]] = set()
    for entry, res in zip(entries, results, strict=True):
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
        queued = store.outbox.queued_counts(table, row_ids)
        busy = store.rows_with_conflict_or_base(table, row_ids)
        fast.update((table, r) for r in row_ids if r not in busy and queued.get(r, 0) == ok[(table, r)])
    versions: dict[tuple[str, str], int] = {}
    done: list[str] = []
    for entry, res in zip(entries, results, strict=True):
        key = (entry.table, entry.row_id)
        if key not in fast:
            _apply_result(store, entry, res, result)
            continue
        status = res.get("status")
        result.pushed += 1
        if status == "duplicate":
            result.duplicates += 1
        else:
            setattr(result, str(status), getattr(result, str(status)) + 1)
        done.append(entry.event_id)
        versions[key] = max(versions.get(key, 0), int(res.get("version") or 0))
    store.outbox.remove_many(done)
    by_table_v: dict[str, list[tuple[int, str]]] = {}
    for (table, row_id), version in versions.items():
        by_table_v.setdefault(table, []).append((version, row_id))
    for table, params in by_table_v.items():
        store.mark_synced(table, params)


def _apply_result(store: LocalStore, entry: OutboxEntry, res: dict[str, Any], result: SyncResult) -> None:
    status = res.get("status")
    effective = res.get("original_status") if status == "duplicate" else status
    result.pushed += 1
    if status == "duplicate":
        result.duplicates += 1
    store.outbox.remove(entry.event_id)
    spec = store.schema.tables.get(entry.table)
    if spec is None:
        return
    if effective in ("applied", "merged"):
        if status != "duplicate":
            setattr(result, str(effective), getattr(result, str(effective)) + 1)
        row = store.stored_row(entry.table, entry.row_id)
        base = store.bases.get(entry.table, entry.row_id)
        if base is not None and int(base.get("version") or 0) >= int(res.get("version") or 0):
            # A pull already brought a server row that includes this event's effect (e.g. its
            # first answer was lost): adopt it rather than keep our values over it.
            store.adopt_server_row(spec.name, entry.row_id, base)
        elif row is not None:
            version = max(row["version"] or 0, int(res.get("version") or 0)) or None
            state = store.row_state(entry.table, entry.row_id)
            store.write_row(entry.table, {"id": entry.row_id, "version": version, "sync_state": state,
                                          "last_error": row["last_error"] if state != "synced" else None})
            if state == "synced":
                store.bases.put(entry.table, entry.row_id, None)
    elif effective == "conflict":
        if status != "duplicate":
            result.conflicts += 1
        _on_conflict(store, spec, entry, res, result)
    else:
        result.rejected += 1
        reason = str(res.get("reason") or "rejected")
        result.rejections.append(Rejection(entry.event_id, entry.table, entry.row_id, entry.op, reason,
                                           res.get("message")))
        if store.stored_row(entry.table, entry.row_id) is not None:
            message = res.get("message")
            # An open conflict on the row stays what the row shows until it is resolved.
            state = "conflict" if store.conflict_log.open_for_row(entry.table, entry.row_id) else "failed"
            store.write_row(entry.table, {"id": entry.row_id, "sync_state": state,
                                          "last_error": f"{reason}: {message}" if message else reason})


def _on_conflict(store: LocalStore, spec: TableSpec, entry: OutboxEntry, res: dict[str, Any],
                 result: SyncResult) -> None:
    reason = str(res.get("reason") or "conflict")
    try:
        server_row = spec.stored_from_wire(res["server_row"]) if res.get("server_row") else None
    except (ShopSyncError, ValueError, TypeError, OverflowError) as exc:
        # A server row this client cannot read: the conflict is logged without it, and reported.
        server_row = None
        result.unreadable.append(UnreadableRow(spec.name, entry.row_id, None, getattr(exc, "message", str(exc))))
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
        store.adopt_server_row(spec.name, entry.row_id, server_row)
    elif store.stored_row(spec.name, entry.row_id) is not None:
        store.write_row(spec.name, {"id": entry.row_id, "sync_state": store.row_state(spec.name, entry.row_id)})
