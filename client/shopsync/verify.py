"""Verified convergence: once a sync has reached the server's tip, the device checks its synced rows
against the server's per-table checksums (``sync_checksums``) and repairs a table that differs by
re-fetching its rows (``sync_table_rows``), keeping queued edits on top; the server counts each
repair (``sync_report_repair``, shown in ``sync_metrics``).

What the device vouches for is its copy of the server's rows: synced rows, and for rows with local
values on top their base (:mod:`shopsync.bases`). Rows it cannot vouch for (queued edits without a
known server copy, rejected edits still shown) are named to the server, which takes them out of its
answer, and so are rows it could not read (:class:`~shopsync.status.UnreadableRow`). Both sides
count live rows only (tombstones do not count), hashed as
:mod:`shopsync.checksums` describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .checksums import TableChecksum, checksum_hex, sqlite_canonical_sql
from .errors import ProtocolError, ShopSyncError
from .schema import TableSpec, utc_now_iso
from .status import Repair, SyncResult, UnreadableRow
from .store import LocalStore
from .transport import Transport

__all__ = ["Verifier", "MAX_UNVOUCHED"]

#: At most this many rows the device cannot vouch for are named to the server; with more queued
#: rows than that, the check waits for a later sync.
MAX_UNVOUCHED = 5000


@dataclass(frozen=True)
class _Mismatch:
    table: str
    local: TableChecksum
    server: TableChecksum


@dataclass(frozen=True)
class _Held:
    marker: tuple[int, int]
    columns: list[str]
    skipped: set[str]
    checksum: TableChecksum
    unknown: list[str]
    token: int = 0  # store.track_changes' token: the rows written since are known


class Verifier:
    """Compares and repairs after a sync reached the tip. ``pull`` pulls to the tip again (used when
    the server's cursor moved on between the last page and the checksums); it returns False when
    the pull failed."""

    def __init__(self, store: LocalStore, transport: Transport, pull: Callable[[], bool], *,
                 refresh_schema: Callable[[], object], page_size: int = 1000, rounds: int = 3,
                 cache: dict[str, _Held] | None = None,
                 tip_checksums: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.store = store
        self.transport = transport
        self.pull = pull
        self.refresh_schema = refresh_schema
        self.page_size = page_size
        self.rounds = rounds
        self._held: dict[str, tuple[list[str], TableChecksum]] = {}
        #: What the device held per table at the last check, by write marker: a table nothing
        #: wrote since (this store, or any other connection to the file) is not hashed again.
        self.cache: dict[str, _Held] = {} if cache is None else cache
        #: The checksums the last pull's tip page carried (taken once; None: ask sync_checksums).
        self.tip_checksums = tip_checksums or (lambda: None)

    def verify(self, result: SyncResult) -> None:
        """Check (and repair); the outcome goes into ``result`` (``verified``, ``repairs``, errors)."""
        repaired: set[str] = set()
        try:
            for _ in range(self.rounds):
                self.remember_unreadable(result.unreadable)
                answer = self._checksums()
                if answer is None:
                    return  # too many rows to name (a later sync checks), or an older server
                cursor = int(answer.get("cursor") or 0)
                if cursor != self.store.cursor:
                    # The server moved on (or the device is ahead of a restored server: the next
                    # pull resets): pull to the new tip and compare again.
                    if cursor < self.store.cursor or not self.pull():
                        return
                    continue
                mismatches = self._compare(answer)
                if mismatches is None:
                    self.refresh_schema()  # the server hashes columns this device lacks
                    return
                if not mismatches:
                    result.verified = True
                    self.store.set_meta("verified_at", utc_now_iso())
                    return
                again = [m for m in mismatches if m.table in repaired]
                if again:
                    result.verified = False
                    result.errors.append(ProtocolError(
                        f"{again[0].table} still differs from the server after a repair "
                        f"(device {again[0].local.count} rows, server {again[0].server.count})",
                        reason="checksum_mismatch"))
                    return
                for m in mismatches:
                    result.repairs.append(self._repair(m, result))
                    repaired.add(m.table)
                if not self.pull():
                    return
            result.verified = False
        except ShopSyncError as exc:
            result.errors.append(exc)

    # -- steps --------------------------------------------------------------------------------------
    def _checksums(self) -> dict[str, Any] | None:
        # What the device holds is read once per round, before the server is asked, and hashed as
        # it is read (never all rows in memory): an app write in between changes neither what was
        # named nor what is compared.
        exclude: dict[str, list[str]] = {}
        total = 0
        self._held = {}
        unreadable = self._unreadable()
        for name, spec in self.store.schema.tables.items():
            skipped = set(unreadable.get(name, ()))
            columns = [c.name for c in spec.columns]
            # Under the store's lock: no write of this process slips between what is hashed and
            # the start of tracking what is written next.
            with self.store.transaction():
                marker = self.store.write_marker(name)
                held = self.cache.get(name)
                recorded = self.store.take_recorded_checksum(name)
                if recorded is not None:  # known without hashing (a pull's shadow; staging.py)
                    held = _Held(recorded.marker, recorded.columns, set(),
                                 TableChecksum(recorded.count, checksum_hex(recorded.total)), [], recorded.token)
                if held is None or (held.columns, held.skipped) != (columns, skipped) or held.marker[0] != marker[0]:
                    held = None  # nothing held, other columns or rows left out, or another connection wrote
                elif held.marker != marker:
                    held = self._moved(name, held, marker)  # None: the table is hashed whole
                if held is None:
                    unknown: list[str] = []
                    checksum = self._local_checksum(spec, columns, skipped, unknown)
                    held = _Held(marker, columns, skipped, checksum, unknown, self.store.track_changes(name))
                self.cache[name] = held
            self._held[name] = (columns, held.checksum)
            if held.unknown or skipped:
                exclude[name] = sorted(set(held.unknown) | skipped)
                total += len(exclude[name])
        if total > MAX_UNVOUCHED:
            return None
        # The last pull page carried the checksums with nothing excluded (read with its cursor):
        # compared against them, a sync at the tip makes no second call. A device naming rows to
        # leave out asks sync_checksums, which takes them out.
        tip = self.tip_checksums()
        if not exclude and tip is not None and isinstance(tip.get("tables"), list):
            return tip
        try:
            answer = self.transport.call("sync_checksums", {"p_device_id": self.store.device_id,
                                                            "p_exclude": exclude})
        except ShopSyncError as exc:
            if exc.code == "PGRST202":  # a server from before sync_checksums: nothing to compare with
                return None
            raise
        if not isinstance(answer, dict) or not isinstance(answer.get("tables"), list):
            raise ProtocolError("sync_checksums answered an unexpected document", reason="invalid_response")
        return answer

    def _moved(self, name: str, held: _Held, marker: tuple[int, int]) -> _Held | None:
        """The held checksum moved by the rows written since it was taken (each: what it counted
        for then, taken before its first write, and what it counts for now); None when those rows
        are not known (store.tracked_changes)."""
        before = self.store.tracked_changes(name, held.token)
        if before is None:
            return None
        now = self.store.row_views(name, list(before))
        count, total, unknown = held.checksum.count, int(held.checksum.checksum, 16), set(held.unknown)
        for views, sign in ((before, -1), (now, 1)):
            for row_id, (kind, h) in views.items():
                if kind == "h":
                    count += sign
                    total += sign * h
                elif kind == "u":
                    (unknown.add if sign > 0 else unknown.discard)(row_id)
        return _Held(marker, held.columns, held.skipped, TableChecksum(count, checksum_hex(total)), sorted(unknown),
                     self.store.track_changes(name))

    def _local_checksum(self, spec: TableSpec, columns: list[str], skipped: set[str],
                        unknown: list[str]) -> TableChecksum:
        """Count and checksum of what the device holds of the server's live rows of ``spec``'s
        table (SQLite renders synced rows; bases are hashed here), hashed as the rows are read;
        ids it cannot vouch for go to ``unknown``, ids in ``skipped`` are left out."""
        count, total = self.store.synced_row_hashes(spec.name, sqlite_canonical_sql(spec, columns), skipped)
        for row_id, (kind, h) in self.store.unsettled_views(spec.name, columns, skipped).items():
            if kind == "u":
                unknown.append(row_id)
            else:
                count += 1
                total += h
        return TableChecksum(count, checksum_hex(total))

    def _unreadable(self) -> dict[str, list[str]]:
        """Rows this device could not read: it cannot hold them, so they are named to the server
        like unvouched rows (store.unreadable_rows)."""
        return self.store.unreadable_rows()

    def remember_unreadable(self, rows: list[UnreadableRow]) -> None:
        if not rows:
            return
        doc = self._unreadable()
        for r in rows:
            if r.row_id not in doc.setdefault(r.table, []):
                doc[r.table].append(r.row_id)
        self.store.set_meta("unreadable_rows", json.dumps(doc, sort_keys=True))

    def _compare(self, answer: dict[str, Any]) -> list[_Mismatch] | None:
        """The tables whose checksums differ; None when the local schema lacks a hashed column."""
        schema = self.store.schema
        out: list[_Mismatch] = []
        for t in answer["tables"]:
            name = str(t["table"])
            spec = schema.tables.get(name)
            columns = [str(c) for c in t.get("columns") or []]
            if spec is None or not all(spec.has_column(c) for c in columns):
                return None
            held_columns, local = self._held.get(name, ([], TableChecksum(0, checksum_hex(0))))
            if sorted(held_columns) != sorted(columns):  # the server hashes fewer columns: hash again
                local = self._local_checksum(spec, columns, set(self._unreadable().get(name, ())), [])
            server = TableChecksum(int(t["count"]), str(t["checksum"]))
            if local != server:
                out.append(_Mismatch(name, local, server))
        return out

    def _repair(self, m: _Mismatch, result: SyncResult) -> Repair:
        spec = self.store.table(m.table)
        unreadable: list[UnreadableRow] = []
        after: str | None = None
        while True:  # page by page into the file (store.stage_repair_rows): a big table never sits in memory
            page = self.transport.call("sync_table_rows", {
                "p_device_id": self.store.device_id, "p_table": m.table, "p_after": after, "p_limit": self.page_size})
            rows: list[dict[str, Any]] = []
            for wire in page.get("rows") or []:
                try:
                    rows.append(spec.stored_from_wire(wire))
                except (ShopSyncError, ValueError, TypeError, OverflowError) as exc:
                    unreadable.append(UnreadableRow(m.table, str(wire.get("id")), None,
                                                    getattr(exc, "message", None) or str(exc)))
            with self.store.transaction():
                self.store.stage_repair_rows(m.table, rows, first=after is None)
            if not page.get("has_more"):
                break
            after = str(page["next_after"])
        # A row this client cannot read keeps what the device holds of it (as a pull leaves it).
        known = {(u.table, u.row_id) for u in result.unreadable}
        result.unreadable.extend(u for u in unreadable if (u.table, u.row_id) not in known)
        self.remember_unreadable(unreadable)
        fixed = self.store.apply_repair(m.table, keep={u.row_id for u in unreadable})
        with self.store.transaction():
            self.store.set_meta("repairs", int(self.store.get_meta("repairs", "0") or 0) + 1)
            self.store.set_meta("last_repair_at", utc_now_iso())
        self.transport.call("sync_report_repair", {"p_device_id": self.store.device_id, "p_table": m.table,
                                                   "p_rows": fixed})
        return Repair(m.table, fixed, m.local.count, m.server.count)
