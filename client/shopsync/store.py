"""LocalStore: the device's SQLite file. The app reads and writes here and never waits for the network.

Every write changes the row and queues its outbox event in one SQLite transaction. Local tables
are built from the server's ``sync_schema()`` (cached in the file, so later runs start offline) and
grow additively when the server's schema version rises.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import invoice
from .bases import BASES_DDL, Bases
from .checksums import SQLITE_AGGREGATES, SQLITE_FUNCTIONS, hash_canonical, hash_sum, row_hasher, sqlite_canonical_sql
from .conflicts import CONFLICTS_DDL, Conflict, ConflictLog
from .errors import InvalidValueError, NotFoundError, SchemaError
from .outbox import OUTBOX_DDL, Outbox
from .schema import Schema, TableSpec, utc_now_iso
from .staging import AWAITING_PULL_DDL, AWAITING_PULL_TABLES, PullStage
from .watch import ALL_ROWS, ChangeFeed, Changes

#: A table with more rows than this written since the last check is hashed whole at the next.
_TRACK_MAX = 1000
#: Rows a check hashes per fetch (the rest stream: a big table is never in memory at once).
_HASH_CHUNK = 5000
#: The store connection's page cache, KiB (it grows to this as pages are used).
_CACHE_KIB = 16384
#: SQLite's default: a commit that takes the WAL past this many pages checkpoints it.
_WAL_AUTOCHECKPOINT = 1000
#: Meta keys read without the store's lock once read (they change only through set_meta).
_CACHED_META = frozenset({"device_id", "device_secret"})
_UNCACHED: Any = object()
#: A repair holds this many fetched server rows in memory at a time (the rest wait in the file).
_REPAIR_CHUNK = 1000
#: Server rows a repair has fetched, until it applies them (see LocalStore.apply_repair).
REPAIR_ROWS_DDL = ("create table if not exists _repair_rows (table_name text not null, row_id text not null,"
                   " row text not null, primary key (table_name, row_id))")

__all__ = ["LocalStore", "QueueSummary", "RecordedChecksum", "SYNC_STATES", "DISPLAY_CODES"]

SYNC_STATES = ("synced", "pending_create", "pending_update", "pending_delete", "conflict", "failed")
# The check on a synced table's sync_state, as equalities: SQLite builds a `sync_state in (...)`
# list anew at every execution of a statement, and an executemany of a pull page executes its
# insert once per row (13 -> 7 us a row for customers). Tables created before keep the `in` form.
_SYNC_STATE_CHECK = " or ".join(f"sync_state = '{s}'" for s in SYNC_STATES)
PENDING_STATES = ("pending_create", "pending_update", "pending_delete")
# Display codes made offline: table -> (column, letter). Never keys; unique per shop because the
# device prefix is.
DISPLAY_CODES: dict[str, tuple[str, str]] = {"customers": ("customer_code", "C"), "orders": ("order_code", "O")}
LOCAL_COLUMNS = ("sync_state", "last_error")

META_DDL = "create table if not exists _meta (key text primary key, value text)"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class RecordedChecksum:
    """A table's verified checksum known without hashing it (see :meth:`LocalStore.record_checksum`):
    over ``columns``, valid at write marker ``marker``; ``token`` is :meth:`LocalStore.track_changes`'
    (the rows written since are known)."""

    marker: tuple[int, int]
    columns: list[str]
    count: int
    total: int
    token: int


@dataclass(frozen=True)
class QueueSummary:
    """What waits on this device: queued events (in all and per table), the oldest one's time, and
    the open conflicts."""

    pending: int
    pending_by_table: dict[str, int]
    oldest_pending_at: str | None
    open_conflicts: int


def _uuid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidValueError(f"{what} must be a UUID, not {value!r}") from None


class LocalStore:
    """The local SQLite store of one device.

    ``LocalStore(path)`` opens (or creates) the file in WAL mode with foreign keys on. The synced
    tables exist once a schema was applied: by :meth:`SyncClient.register` / :meth:`SyncClient.sync`,
    or by passing ``schema=`` (a ``sync_schema()`` document). Thread-safe: one connection guarded by
    a re-entrant lock.
    """

    def __init__(self, path: str | Path, *, schema: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        # The device's identity as committed (device_id, device_secret): read on every RPC, from
        # the pull's prefetch thread too, which must not wait for a page's transaction to end.
        self._meta_cache: dict[str, str | None] = {}
        self._listeners: list[Callable[[], None]] = []
        self._writes: dict[str, int] = {}  # per table: writes by this connection (see write_marker)
        # Per table, since the last check (track_changes): what each row written since counted for
        # before its first write (row_views), or None when not tracked (see note_write).
        self._tracked: dict[str, dict[str, tuple[str, int]] | None] = {}
        self._track_tokens: dict[str, int] = {}
        self._track_seq = 0
        # Checksums known without hashing (record_checksum): recorded in a transaction, kept once
        # it commits.
        self._recording: dict[str, RecordedChecksum] = {}
        self._recorded: dict[str, RecordedChecksum] = {}
        #: Change listeners (:meth:`watch`, :meth:`add_change_listener`; :mod:`shopsync.watch`).
        self.changes = ChangeFeed()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("pragma journal_mode = wal")
        self._conn.execute("pragma synchronous = normal")
        # 16 MiB of page cache (SQLite's default is 2 MiB): a pull writes rows at random places
        # of a table's id index, and with the default cache most of those pages are read again
        # from the file (100,000 rows pulled: 1.40 -> 1.05 s of CPU staging and merging them).
        self._conn.execute(f"pragma cache_size = -{_CACHE_KIB}")
        self._conn.execute("pragma foreign_keys = on")
        self._conn.execute("pragma busy_timeout = 30000")
        for name, (n_args, fn) in SQLITE_FUNCTIONS.items():  # the row hash's helpers (checksums.py)
            self._conn.create_function(name, n_args, fn, deterministic=True)
        for name, (n_args, agg) in SQLITE_AGGREGATES.items():
            self._conn.create_aggregate(name, n_args, agg)  # type: ignore[arg-type]  # (finalize: text)
        self.outbox = Outbox(self._conn)
        self.conflict_log = ConflictLog(self._conn)
        self.bases = Bases(self._conn)
        self.stage = PullStage(self._conn)
        self._schema: Schema | None = None
        with self.transaction():
            self._conn.execute(META_DDL)
            self._ddl(OUTBOX_DDL)
            self._ddl(CONFLICTS_DDL)
            self._conn.execute(BASES_DDL)
            self._conn.execute(AWAITING_PULL_DDL)
            self._conn.execute(REPAIR_ROWS_DDL)
            if self.get_meta("device_id") is None:
                self.set_meta("device_id", str(uuid.uuid4()))
            if self.get_meta("awaiting_pull_seeded") is None:  # a file from before _awaiting_pull
                if self._conn.execute("select 1 from sqlite_master where name = 'stock_movements'").fetchone():
                    self._conn.execute("insert or ignore into _awaiting_pull (table_name, row_id) select"
                                       " 'stock_movements', id from stock_movements where sync_state = 'pending_create'")
                self.set_meta("awaiting_pull_seeded", 1)
            cached = self.get_meta("schema_json")
            if cached:
                self._schema = Schema.from_json(json.loads(cached))
        if schema is not None:
            self.apply_schema(schema)

    # -- plumbing ---------------------------------------------------------------------------------
    def _ddl(self, script: str) -> None:
        for stmt in script.split(";"):
            if stmt.strip():
                self._conn.execute(stmt)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction (``BEGIN IMMEDIATE``), re-entrant within a thread."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("begin immediate")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("rollback")
                self.changes.discard()
                self._recording.clear()
                raise
            else:
                try:
                    self._conn.execute("commit")
                except BaseException:
                    self._recording.clear()
                    raise
                changed = self.changes.take()
                self._recorded.update(self._recording)
                self._recording.clear()
            finally:
                self._depth = 0
        self.changes.emit(changed)  # watchers run after the commit, outside the lock

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- WAL checkpoints ------------------------------------------------------------------------------
    # SQLite checkpoints the WAL inside the commit that takes it past wal_autocheckpoint pages, on
    # the committing thread. A pull commits page after page (and a big transaction's merge at once):
    # there the checkpoints cost a third of the pull's SQLite time, on the thread the pull waits for.
    @contextmanager
    def checkpoints_aside(self) -> Iterator[Callable[[], None]]:
        """While inside: no checkpoint in this store's commits; the callable it yields checkpoints
        (passive: never waits for a reader or a writer) on a connection of its own, so another thread
        can do it. On leaving, automatic checkpoints are back (nothing is lost either way: WAL frames
        wait in the WAL until some checkpoint copies them)."""
        with self._lock:
            self._conn.execute("pragma wal_autocheckpoint = 0")
        try:
            yield self.checkpoint
        finally:
            with self._lock:
                self._conn.execute(f"pragma wal_autocheckpoint = {_WAL_AUTOCHECKPOINT}")

    def checkpoint(self) -> None:
        """A passive WAL checkpoint on a connection of its own (any thread; no store lock). It never
        creates the file (``mode=rw``): a checkpoint still queued after the file was removed fails."""
        if str(self.path) == ":memory:":
            return
        conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None, timeout=30)
        try:
            conn.execute("pragma wal_checkpoint(passive)")
        finally:
            conn.close()

    def add_write_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every committed local write (the background sync's debounce)."""
        self._listeners.append(callback)

    def remove_write_listener(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self) -> None:  # after a committed local write
        for cb in list(self._listeners):
            cb()

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        cached = self._meta_cache.get(key, _UNCACHED) if key in _CACHED_META else _UNCACHED
        if cached is not _UNCACHED:
            return cached if cached is not None else default
        with self._lock:
            row = self._conn.execute("select value from _meta where key = ?", (key,)).fetchone()
            value = row[0] if row else None
            if key in _CACHED_META and not self._depth:  # committed: what every thread may see
                self._meta_cache[key] = value
        return value if value is not None else default

    def set_meta(self, key: str, value: str | int | None) -> None:
        with self.transaction():
            if key in _CACHED_META:
                self._meta_cache.pop(key, None)
            self._conn.execute(
                "insert into _meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
                (key, None if value is None else str(value)),
            )

    @property
    def device_id(self) -> str:
        return str(self.get_meta("device_id"))

    # -- device credential ------------------------------------------------------------------------
    # The secret the server issued to this device (registration or rotation), sent with every
    # device RPC. It is this device's alone: whoever is signed in on it uses it.
    @property
    def device_secret(self) -> str | None:
        return self.get_meta("device_secret")

    def set_device_secret(self, secret: str | None) -> None:
        """Keep the device's secret (inside the caller's transaction when there is one)."""
        self.set_meta("device_secret", secret)

    def record_registration(self, info: dict[str, Any]) -> None:
        """What ``sync_register_device`` answered, in one transaction: shop, role, registration time
        and, when the server issued one, the device's secret (it is returned only once)."""
        with self.transaction():
            self.set_meta("shop_id", info.get("shop_id"))
            self.set_meta("role", info.get("role"))
            self.set_meta("registered_at", info.get("registered_at"))
            secret = info.get("device_secret")
            if isinstance(secret, str) and secret:
                self.set_device_secret(secret)

    @property
    def device_prefix(self) -> str:
        """The short prefix of this device's display codes (6 hex digits of its id)."""
        return self.device_id.replace("-", "")[:6].upper()

    @property
    def cursor(self) -> int:
        return int(self.get_meta("cursor", "0") or 0)

    # -- schema -----------------------------------------------------------------------------------
    @property
    def schema(self) -> Schema:
        if self._schema is None:
            raise SchemaError("no synced schema yet: run SyncClient.register() or sync() once online",
                              reason="no_schema")
        return self._schema

    @property
    def has_schema(self) -> bool:
        return self._schema is not None

    def table(self, name: str) -> TableSpec:
        return self.schema.table(name)

    def apply_schema(self, doc: dict[str, Any]) -> bool:
        """Create or extend the local tables from a ``sync_schema()`` document.

        Additive only: new tables are created, new columns added, nothing dropped. When columns
        were added to a table that already held rows, the cursor goes back to 0 so the next pull
        fills them (rows with pending edits keep them on top). Returns True when anything changed.
        """
        new = Schema.from_json(doc)
        for t in new.tables.values():
            clash = [c.name for c in t.columns if c.name in LOCAL_COLUMNS]
            if clash:
                raise SchemaError(f"{t.name} has columns the client reserves: {clash}")
        with self.transaction():
            if self._schema is not None and self._schema.version == new.version and self._schema.raw == new.raw:
                return False
            refill = False
            for t in sorted(new.tables.values(), key=lambda x: (x.apply_order, x.name)):
                existing = {r[1] for r in self._conn.execute(f"pragma table_info({_q(t.name)})")}
                if not existing:
                    cols = ", ".join(
                        f"{_q(c.name)} {c.sqlite_type}{' primary key' if c.name == 'id' else ''}" for c in t.columns)
                    self._conn.execute(
                        f"create table {_q(t.name)} ({cols}, sync_state text not null default 'synced'"
                        f" check ({_SYNC_STATE_CHECK}), last_error text)")
                    self._conn.execute(
                        f"create index {_q(t.name + '_sync_state_idx')} on {_q(t.name)} (sync_state)")
                    continue
                for c in t.columns:
                    if c.name not in existing:
                        self._conn.execute(f"alter table {_q(t.name)} add column {_q(c.name)} {c.sqlite_type}")
                        if self._conn.execute(f"select 1 from {_q(t.name)} limit 1").fetchone():
                            refill = True
            self._writes = {t: self._writes.get(t, 0) + 1 for t in {*new.tables, *self._writes}}
            self.set_meta("schema_json", json.dumps(new.raw, sort_keys=True))
            self.set_meta("schema_version", new.version)
            if refill:
                self.set_meta("cursor", 0)
                self.stage.clear()
            self._schema = new
        return True

    # -- rows (stored form: what the sync engine reads and writes) ---------------------------------------
    def stored_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        """One row in stored form (local columns included), or None."""
        with self._lock:
            cur = self._conn.execute(f"select * from {_q(table)} where id = ?", (row_id,))
            r = cur.fetchone()
            if r is None:
                return None
            return dict(zip([d[0] for d in cur.description], r, strict=True))

    def stored_rows(self, table: str, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every row of ``table`` (given ``ids``: those rows) in stored form (tombstones and local
        columns included)."""
        self.table(table)
        with self._lock:
            cur = (self._conn.execute(f"select * from {_q(table)}") if ids is None else self._conn.execute(
                f"select * from {_q(table)} where id in (select value from json_each(?))", (json.dumps(list(ids)),)))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def note_write(self, *tables: str, ids: Iterable[str] | None = None) -> None:
        """Count a write to ``tables`` (every table when none is named) for :meth:`write_marker`.
        Every method here that writes a synced table calls it; so must any other writer.

        ``ids`` (one table): the rows about to be written, called BEFORE anything about them
        changes (the row, its queued events, its base, its conflict): what each counted for the
        verified checksum before is kept, so the next check hashes these rows, not the table
        (:meth:`tracked_changes`). Without ``ids`` the table is hashed whole at the next check."""
        targets = tables or (*self.schema.tables, *self._writes)
        for t in targets:
            self._writes[t] = self._writes.get(t, 0) + 1
        if ids is None or len(targets) != 1:
            for t in targets:
                self._tracked[t] = None
            return
        table = targets[0]
        tracked = self._tracked.get(table)
        if tracked is None:
            return
        new = [i for i in dict.fromkeys(ids) if i not in tracked]
        if len(tracked) + len(new) > _TRACK_MAX:
            self._tracked[table] = None  # hashing the table whole is cheaper than this many rows
        elif new:
            tracked.update(self.row_views(table, new))

    def track_changes(self, table: str) -> int:
        """Start keeping what rows of ``table`` counted before they are written (the verification
        has just hashed the table); returns the token :meth:`tracked_changes` wants."""
        with self._lock:
            self._track_seq += 1
            self._tracked[table] = {}
            self._track_tokens[table] = self._track_seq
            return self._track_seq

    def tracked_changes(self, table: str, token: int) -> dict[str, tuple[str, int]] | None:
        """The rows of ``table`` written through this store since :meth:`track_changes` returned
        ``token``, each with what it counted for before (see :meth:`row_views`); None when that is
        not known (another check started since, or a write without ``ids``, or too many rows)."""
        with self._lock:
            if self._track_tokens.get(table) != token:
                return None
            tracked = self._tracked.get(table)
            return None if tracked is None else dict(tracked)

    def row_views(self, table: str, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """What each row counts for in the verified checksum of ``table``, as the verification
        computes it (all columns, leaving out rows the device could not read): ``("h", hash)``
        (a synced live row, or the live base of a row with local values on top), ``("u", 0)``
        (local values on top and no base: named to the server as unvouched), ``("0", 0)`` (not
        counted: absent, deleted, unreadable)."""
        spec = self.table(table)
        columns = [c.name for c in spec.columns]
        skip = set(self.unreadable_rows().get(table, ()))
        out: dict[str, tuple[str, int]] = {str(i): ("0", 0) for i in ids}
        with self._lock:
            rows = self._synced_rows(table, sqlite_canonical_sql(spec, columns), skip, only=list(out)).fetchall()
        for row_id, text in rows:
            out[str(row_id)] = ("h", hash_canonical(text))
        out.update(self.unsettled_views(table, columns, skip, only=list(out)))
        return out

    def unsettled_views(self, table: str, columns: Sequence[str], skip: Iterable[str],
                        only: Sequence[str] | None = None) -> dict[str, tuple[str, int]]:
        """What the rows :meth:`unsettled_rows` returns count for in the verified checksum (as
        :meth:`row_views` says it): a live base is ``("h", its hash)`` unless its id is in ``skip``,
        a row the device cannot vouch for ``("u", 0)``; rows that count for nothing are left out."""
        spec = self.table(table)
        skipped = set(skip)
        hasher = None
        out: dict[str, tuple[str, int]] = {}
        for base, row_id in self.unsettled_rows(table, only=only):
            if base is None:
                out[row_id] = ("u", 0)
            elif row_id not in skipped and base.get("deleted_at") is None:
                hasher = hasher or row_hasher(spec, list(columns))
                out[row_id] = ("h", hasher(base))
        return out

    def record_checksum(self, table: str, columns: Sequence[str], count: int, total: int) -> None:
        """Inside a transaction that has just written ``table``: its verified checksum over
        ``columns`` is ``count`` live rows summing to ``total`` (a shadow merged into a table the
        device held nothing of: staging.py). Kept for :meth:`take_recorded_checksum` once the
        transaction commits, at the table's write marker of now, tracking the rows written next."""
        with self._lock:
            token = self.track_changes(table)
            self._recording[table] = RecordedChecksum(self.write_marker(table), list(columns), count, total, token)

    def take_recorded_checksum(self, table: str) -> RecordedChecksum | None:
        """The checksum :meth:`record_checksum` kept for ``table`` (once; None when there is none)."""
        with self._lock:
            return self._recorded.pop(table, None)

    def write_marker(self, table: str) -> tuple[int, int]:
        """Changes when ``table`` may have changed: writes through this store (:meth:`note_write`),
        and commits by any other connection to the file (``pragma data_version``: a hand edit)."""
        with self._lock:
            version = int(self._conn.execute("pragma data_version").fetchone()[0])
        return version, self._writes.get(table, 0)

    def watch(self, table: str, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(row_ids)`` after each committed local write or pull page that changed rows
        of ``table`` (``{"*"}``: all may have, after a local reset); returns a function that stops it."""
        return self.changes.watch(table, callback)

    def add_change_listener(self, callback: Callable[[Changes], None]) -> Callable[[], None]:
        """Call ``callback({table: row_ids})`` after each commit that changed rows; returns the remover."""
        return self.changes.add_listener(callback)

    def write_row(self, table: str, values: dict[str, Any]) -> None:
        """Insert or update one row from stored values (the columns given; ``id`` required)."""
        self.note_write(table, ids=(values["id"],))
        self.changes.touch(table, (values["id"],))
        cols = list(values)
        sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in cols if c != "id")
        self._conn.execute(
            f"insert into {_q(table)} ({', '.join(_q(c) for c in cols)}) values ({', '.join('?' * len(cols))})"
            f" on conflict (id) do update set {sets}",
            [values[c] for c in cols],
        )

    def write_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert or update many rows with the same ``columns`` (``id`` among them): one ``executemany``."""
        rows = list(rows)
        at = list(columns).index("id")
        self.note_write(table, ids=[r[at] for r in rows])
        self.changes.touch(table, (r[at] for r in rows))
        sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns if c != "id")
        self._conn.executemany(
            f"insert into {_q(table)} ({', '.join(_q(c) for c in columns)}) values ({', '.join('?' * len(columns))})"
            f" on conflict (id) do update set {sets}", rows)

    def mark_synced(self, table: str, versions: Iterable[tuple[int, str]]) -> None:
        """Rows whose pushed events were all applied: ``synced`` at ``max(version, their version)``,
        no error (``versions``: ``(version, row_id)`` pairs; one ``executemany``)."""
        versions = list(versions)
        self.note_write(table, ids=[v[1] for v in versions])
        self.changes.touch(table, (v[1] for v in versions))
        self._conn.executemany(
            f"update {_q(table)} set version = nullif(max(coalesce(version, 0), ?), 0), sync_state = 'synced',"
            " last_error = null where id = ?", versions)

    def versions_and_states(self, table: str, row_ids: Iterable[str]) -> dict[str, tuple[int | None, str]]:
        """``row_id -> (version, sync_state)`` of those of ``row_ids`` this device holds."""
        return {r[0]: (r[1], r[2]) for r in self._conn.execute(
            f"select id, version, sync_state from {_q(table)} where id in (select value from json_each(?))",
            (json.dumps(list(row_ids)),))}

    def has_local_values(self, table: str) -> bool:
        """Has any row of ``table`` queued events or an open conflict (local values on top)? A one-row
        probe: callers skip building a list of 2,000 ids (a pull page) when nothing is."""
        return self._conn.execute(
            "select 1 from _outbox where table_name = ? union all"
            " select 1 from _conflicts where table_name = ? and resolved_at is null limit 1",
            (table, table)).fetchone() is not None

    def has_bases(self, table: str) -> bool:
        """Has any row of ``table`` a stored base? A one-row probe, as :meth:`has_local_values`."""
        return self._conn.execute("select 1 from _bases where table_name = ? limit 1", (table,)).fetchone() is not None

    def rows_with_local_changes(self, table: str, row_ids: Iterable[str]) -> set[str]:
        """Which of ``row_ids`` have queued events or an open conflict (local values on top): one query
        (none when nothing of the table is: :meth:`has_local_values`)."""
        if not self.has_local_values(table):
            return set()
        ids = json.dumps(list(row_ids))
        return {r[0] for r in self._conn.execute(
            "select row_id from _outbox where table_name = ? and row_id in (select value from json_each(?))"
            " union select row_id from _conflicts where table_name = ? and resolved_at is null"
            " and row_id in (select value from json_each(?))", (table, ids, table, ids))}

    def rows_with_conflict_or_base(self, table: str, row_ids: Iterable[str]) -> set[str]:
        """Which of ``row_ids`` have an open conflict or a stored base: one query."""
        ids = json.dumps(list(row_ids))
        return {r[0] for r in self._conn.execute(
            "select row_id from _conflicts where table_name = ? and resolved_at is null"
            " and row_id in (select value from json_each(?))"
            " union select row_id from _bases where table_name = ? and row_id in (select value from json_each(?))",
            (table, ids, table, ids))}

    def pending_overlay(self, table: str, row_id: str) -> dict[str, Any]:
        """The stored values this device's queued events put on top of the server's row."""
        spec = self.table(table)
        out: dict[str, Any] = {}
        for e in self.outbox.for_row(table, row_id):
            if e.op == "delete":
                out["deleted_at"] = spec.column("deleted_at").to_stored(e.client_ts)
            else:
                out.update(spec.stored_from_wire(e.data))
        return out

    def row_state(self, table: str, row_id: str, *, default: str = "synced") -> str:
        """What a row's sync_state should be, from its queued events and open conflict."""
        if self.conflict_log.open_for_row(table, row_id):
            return "conflict"
        ops = [e.op for e in self.outbox.for_row(table, row_id)]
        if not ops:
            return default
        if "insert" in ops:
            return "pending_create"
        if "delete" in ops:
            return "pending_delete"
        return "pending_update"

    def adopt_server_row(self, table: str, row_id: str, server_row: dict[str, Any]) -> None:
        """Make ``server_row`` (stored form) the row's base; queued local values and open-conflict
        values stay on top. Nothing changes if the device holds a newer server version, or a rejected
        edit at this version (it stays visible, failed, until the server has news)."""
        self.note_write(table, ids=(row_id,))
        cur = self.stored_row(table, row_id)
        version = server_row.get("version")
        if cur is not None and cur["version"] is not None and version is not None and version < cur["version"]:
            return  # we already hold a newer server version
        if cur is not None and cur["sync_state"] == "failed" and version == cur["version"]:
            return  # a rejected edit stays visible (failed, last_error) until the server has news
        values = dict(server_row)
        conflict = self.conflict_log.open_for_row(table, row_id)
        if conflict:
            self.conflict_log.update_open(conflict["id"], server_row=server_row)
            values.update(conflict["local_values"])
        overlay = self.pending_overlay(table, row_id)
        values.update(overlay)
        self.bases.put(table, row_id, server_row if conflict or overlay else None)
        state = self.row_state(table, row_id)
        values["sync_state"] = state
        values["last_error"] = None if state == "synced" else (cur or {}).get("last_error")
        self.write_row(table, values)

    # -- verification (checksums.py, verify.py) ------------------------------------------------------
    def synced_row_hashes(self, table: str, canonical_sql: str, skip: Iterable[str] = ()) -> tuple[int, int]:
        """Count and sum (not reduced) of the row hashes of the synced live rows without local values
        on top (queued events, open conflict), leaving out ``skip``: SQLite renders each row
        (``canonical_sql``, from :func:`shopsync.checksums.sqlite_canonical_sql` over alias ``t``)
        and the rows' texts are hashed as they stream (never all in memory). One statement."""
        count = total = 0
        with self._lock:
            rows = self._synced_rows(table, canonical_sql, skip)
            while chunk := rows.fetchmany(_HASH_CHUNK):
                count += len(chunk)
                total += hash_sum([text for _, text in chunk])
        return count, total

    def _synced_rows(self, table: str, canonical_sql: str, skip: Iterable[str],
                     only: Sequence[str] | None = None) -> sqlite3.Cursor:
        """(id, canonical text) of the rows the verified checksum counts as synced: synced, live, no
        local values on top, not in ``skip``; given ``only``, those rows alone, looked up by id
        (``+`` keeps SQLite off the sync_state index, which would walk every synced row)."""
        self.table(table)
        state = "t.sync_state" if only is None else "+t.sync_state"
        return self._conn.execute(
            f"select t.id, {canonical_sql} from {_q(table)} as t"
            f" where {state} = 'synced' and t.deleted_at is null"
            " and t.id not in (select o.row_id from _outbox as o where o.table_name = ?)"
            " and t.id not in (select c.row_id from _conflicts as c where c.table_name = ? and c.resolved_at is null)"
            " and t.id not in (select value from json_each(?))"
            + ("" if only is None else " and t.id in (select value from json_each(?))"),
            (table, table, json.dumps(sorted(set(skip))), *(() if only is None else (json.dumps(list(only)),))))

    def unreadable_rows(self) -> dict[str, list[str]]:
        """Rows this device could not read (skipped by a pull or a repair; see UnreadableRow), per
        table, as kept in the file (meta ``unreadable_rows``)."""
        doc = json.loads(self.get_meta("unreadable_rows", "{}") or "{}")
        return {str(k): [str(r) for r in v] for k, v in doc.items()} if isinstance(doc, dict) else {}

    def unsettled_rows(self, table: str, only: Sequence[str] | None = None) -> list[tuple[dict[str, Any] | None, str]]:
        """The rest of what :meth:`synced_row_hashes` leaves out: rows with local values on top (queued
        events, open conflict) as their base (stored form), and rows this device cannot vouch for
        (local values on top and no base, or a rejected edit shown) as ``None``; with their ids (given
        ``only``: of those rows alone, looked up by id)."""
        self.table(table)
        with self._lock:
            rows = self._conn.execute(
                f"select t.id, b.row,"
                " exists (select 1 from _outbox as o where o.table_name = ? and o.row_id = t.id)"
                " or exists (select 1 from _conflicts as c where c.table_name = ? and c.row_id = t.id"
                " and c.resolved_at is null)"
                f" from {_q(table)} as t left join _bases as b on b.table_name = ? and b.row_id = t.id"
                " where (t.sync_state <> 'synced'"
                " or t.id in (select o.row_id from _outbox as o where o.table_name = ?)"
                " or t.id in (select c.row_id from _conflicts as c where c.table_name = ? and c.resolved_at is null))"
                + ("" if only is None else " and t.id in (select value from json_each(?))"),
                (table, table, table, table, table, *(() if only is None else (json.dumps(list(only)),)))).fetchall()
        return [(json.loads(base) if local and base is not None else None, str(row_id))
                for row_id, base, local in rows]

    def repair_table(self, table: str, server_rows: dict[str, dict[str, Any]], *,
                     keep: Iterable[str] = ()) -> int:
        """Make this device's copy of ``table`` the server's live rows ``server_rows`` (id -> stored
        row): :meth:`stage_repair_rows` then :meth:`apply_repair`. Returns how many rows changed."""
        with self.transaction():
            self.stage_repair_rows(table, server_rows.values(), first=True)
        return self.apply_repair(table, keep=keep)

    def stage_repair_rows(self, table: str, rows: Iterable[dict[str, Any]], *, first: bool = False) -> None:
        """Keep fetched server rows (stored form) of ``table`` for :meth:`apply_repair` in the file
        (``_repair_rows``), not in memory: a repair re-fetches a whole table page by page.
        ``first``: forget what an interrupted repair of the table kept."""
        if first:
            self._conn.execute("delete from _repair_rows where table_name = ?", (table,))
        self._conn.executemany(
            "insert or replace into _repair_rows (table_name, row_id, row) values (?, ?, ?)",
            [(table, str(r["id"]), json.dumps(r, separators=(",", ":"))) for r in rows])

    def apply_repair(self, table: str, *, keep: Iterable[str] = ()) -> int:
        """Make this device's copy of ``table`` the server's live rows kept by
        :meth:`stage_repair_rows`, in one transaction, :data:`_REPAIR_CHUNK` rows in memory at a
        time: rows with local values on top get the server row as their base (queued events and
        open conflicts stay on top); the others are overwritten; live rows the server does not
        have are dropped (unless they carry local values or a rejected edit, or are in ``keep``).
        Returns how many rows changed."""
        spec = self.table(table)
        names = [c.name for c in spec.columns]
        fixed = 0
        self.note_write(table)
        with self.transaction():
            after = ""
            while True:
                chunk = [(row_id, json.loads(row)) for row_id, row in self._conn.execute(
                    "select row_id, row from _repair_rows where table_name = ? and row_id > ? order by row_id limit ?",
                    (table, after, _REPAIR_CHUNK)).fetchall()]
                if not chunk:
                    break
                after = chunk[-1][0]
                ids = [row_id for row_id, _ in chunk]
                local = {r["id"]: r for r in self.stored_rows(table, ids)}
                busy = self.rows_with_local_changes(table, ids)
                for row_id, server in chunk:
                    fixed += self._repair_row(table, names, row_id, server, local.get(row_id), row_id in busy)
            # Live synced rows the server does not have (without local values on top, not kept).
            kept = json.dumps(sorted(set(keep)))
            gone = [r[0] for r in self._conn.execute(
                f"select t.id from {_q(table)} as t where t.deleted_at is null and t.sync_state = 'synced'"
                " and t.id not in (select r.row_id from _repair_rows as r where r.table_name = ?)"
                " and t.id not in (select o.row_id from _outbox as o where o.table_name = ?)"
                " and t.id not in (select c.row_id from _conflicts as c where c.table_name = ? and c.resolved_at is null)"
                " and t.id not in (select value from json_each(?))", (table, table, table, kept))]
            self._conn.executemany(f"delete from {_q(table)} where id = ?", [(r,) for r in gone])
            self.changes.touch(table, gone)
            self.bases.drop(table, gone)
            fixed += len(gone)
            self._conn.execute("delete from _repair_rows where table_name = ?", (table,))
        return fixed

    def _repair_row(self, table: str, names: list[str], row_id: str, server: dict[str, Any],
                    cur: dict[str, Any] | None, busy: bool) -> int:
        """One fetched server row into the device's copy (see :meth:`apply_repair`); 1 if it changed."""
        if busy:
            changed = int(self.bases.get(table, row_id) != server)
            values = dict(server)
            conflict = self.conflict_log.open_for_row(table, row_id)
            if conflict:
                values.update(conflict["local_values"])
            values.update(self.pending_overlay(table, row_id))
            self.bases.put(table, row_id, server)
            state = self.row_state(table, row_id)
            values["sync_state"] = state
            values["last_error"] = (cur or {}).get("last_error") if state != "synced" else None
            self.write_row(table, values)
            return changed
        if cur is not None and cur["sync_state"] == "failed" and cur["version"] == server.get("version"):
            return 0  # a rejected edit stays visible until the server has news
        if cur is None or any(cur.get(c) != server.get(c) for c in names):
            self.write_row(table, {**{c: server.get(c) for c in names}, "sync_state": "synced", "last_error": None})
            return 1
        return 0

    def forget_synced_rows(self) -> None:
        """Drop synced and failed rows, keep every row with queued events or an open conflict (and
        their bases), and set the cursor to 0: the next pull fills the file again."""
        self.note_write()
        with self.transaction():
            for name in self.schema.tables:
                self.changes.touch(name, (ALL_ROWS,))
                self._conn.execute(
                    f"delete from {_q(name)} where sync_state in ('synced', 'failed')"
                    " and id not in (select row_id from _outbox where table_name = ?)"
                    " and id not in (select row_id from _conflicts where table_name = ? and resolved_at is null)",
                    (name, name))
            self._conn.execute(
                "delete from _bases where row_id not in (select row_id from _outbox)"
                " and row_id not in (select row_id from _conflicts where resolved_at is null)")
            self.stage.clear()
            self.set_meta("cursor", 0)

    def queue_summary(self) -> QueueSummary:
        """Queued events and open conflicts, read without taking the file's write lock."""
        with self._lock:
            return QueueSummary(self.outbox.count(), self.outbox.count_by_table(), self.outbox.oldest_created_at(),
                                self.conflict_log.count_open())

    def _next_code(self, table: str, letter: str) -> str:
        key = f"code_counter:{table}"
        n = int(self.get_meta(key, "0") or 0) + 1
        self.set_meta(key, n)
        return f"{letter}-{self.device_prefix}-{n:04d}"

    # -- the app's API ----------------------------------------------------------------------------
    def _writable(self, table: str, op: str) -> TableSpec:
        """The table's spec, if its policy lets devices ``op`` it (roles are checked by the server)."""
        spec = self.table(table)
        if spec.policy == "server_only":
            raise SchemaError(f"{table} is written by the server only", reason="read_only_table")
        if spec.policy == "append_only" and op != "insert":
            raise SchemaError(f"{table} is append-only: rows are never changed or deleted", reason="append_only")
        return spec

    def insert(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a row (id generated unless given) and queue it; returns the row."""
        spec = self._writable(table, "insert")
        values = dict(values)
        row_id = _uuid(values.pop("id", None) or uuid.uuid4(), "id")
        with self.transaction():
            self.note_write(table, ids=(row_id,))
            code = DISPLAY_CODES.get(table)
            if code and spec.has_column(code[0]) and values.get(code[0]) is None:
                values[code[0]] = self._next_code(table, code[1])
            stored = spec.stored_from_app(values)
            if self.stored_row(table, row_id) is not None:
                raise InvalidValueError(f"{table} already has a row {row_id}", reason="id_exists")
            now = utc_now_iso()
            row = {"id": row_id, "shop_id": self.get_meta("shop_id"), "version": None, "created_at": now,
                   "updated_at": now, "deleted_at": None, "client_changed_at": now,
                   "last_device_id": self.device_id, **stored, "sync_state": "pending_create", "last_error": None}
            self.write_row(table, {k: v for k, v in row.items() if spec.has_column(k) or k in LOCAL_COLUMNS})
            self.outbox.enqueue(table, "insert", row_id, None, spec.wire_from_stored(stored), now)
            if table in AWAITING_PULL_TABLES:
                self._conn.execute("insert or ignore into _awaiting_pull (table_name, row_id) values (?, ?)",
                                   (table, row_id))
        self._notify()
        return self.get(table, row_id, include_deleted=True) or {}

    def _live_row(self, table: str, row_id: str) -> dict[str, Any]:
        cur = self.stored_row(table, row_id)
        if cur is None or cur.get("deleted_at") is not None:
            raise NotFoundError(f"{table} has no live row {row_id}", reason="not_found")
        return cur

    def update(self, table: str, row_id: str, changes: dict[str, Any], *, override: bool = False) -> dict[str, Any]:
        """Change some columns of a row and queue only those that differ. ``override`` is the owner's
        explicit order-status rollback."""
        spec = self._writable(table, "update")
        row_id = _uuid(row_id, "row_id")
        stored = spec.stored_from_app({k: v for k, v in changes.items() if k != "id"})
        with self.transaction():
            self.note_write(table, ids=(row_id,))
            cur = self._live_row(table, row_id)
            diff = {k: v for k, v in stored.items() if cur.get(k) != v}
            if not diff:
                return spec.app_from_stored(cur)
            now = utc_now_iso()
            base = cur["version"] if cur["version"] is not None else 1  # our own insert made version 1
            self.outbox.enqueue(table, "update", row_id, base, spec.wire_from_stored(diff), now, override=override)
            self.write_row(table, {**cur, **diff, "client_changed_at": now,
                                    "sync_state": self.row_state(table, row_id)})
        self._notify()
        return self.get(table, row_id) or {}

    def delete(self, table: str, row_id: str) -> None:
        """Soft-delete a row (``deleted_at`` set) and queue the delete."""
        spec = self._writable(table, "delete")
        row_id = _uuid(row_id, "row_id")
        with self.transaction():
            self.note_write(table, ids=(row_id,))
            cur = self._live_row(table, row_id)
            now = utc_now_iso()
            base = cur["version"] if cur["version"] is not None else 1
            self.outbox.enqueue(table, "delete", row_id, base, {}, now)
            self.write_row(table, {**cur, "deleted_at": spec.column("deleted_at").to_stored(now),
                                    "client_changed_at": now, "sync_state": self.row_state(table, row_id)})
        self._notify()

    def get(self, table: str, row_id: str, *, include_deleted: bool = False) -> dict[str, Any] | None:
        """One row in app form (with ``sync_state`` and ``last_error``), or None."""
        spec = self.table(table)
        with self._lock:
            row = self.stored_row(table, str(row_id))
        if row is None or (row.get("deleted_at") is not None and not include_deleted):
            return None
        return spec.app_from_stored(row)

    def query(self, table: str, where: dict[str, Any] | None = None, *, include_deleted: bool = False,
              order_by: str | list[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows matching equality filters ``where`` (app values; None matches null), in app form."""
        spec = self.table(table)
        clauses: list[str] = []
        params: list[Any] = []
        for col, value in (where or {}).items():
            if col in LOCAL_COLUMNS:
                stored = value
            else:
                stored = spec.column(col).to_stored(value)
            if stored is None:
                clauses.append(f"{_q(col)} is null")
            else:
                clauses.append(f"{_q(col)} = ?")
                params.append(stored)
        if not include_deleted:
            clauses.append("deleted_at is null")
        sql = f"select * from {_q(table)}"
        if clauses:
            sql += " where " + " and ".join(clauses)
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        for o in orders:
            name = o[1:] if o.startswith("-") else o
            if name not in LOCAL_COLUMNS:
                spec.column(name)
        sql += " order by " + ", ".join(
            [f"{_q(o[1:])} desc" if o.startswith("-") else _q(o) for o in orders] + ["id"])
        if limit is not None:
            sql += f" limit {int(limit)}"
        with self._lock:
            cur = self._conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [spec.app_from_stored(dict(zip(names, r))) for r in rows]

    def count(self, table: str, *, include_deleted: bool = False) -> int:
        self.table(table)
        where = "" if include_deleted else " where deleted_at is null"
        with self._lock:
            return int(self._conn.execute(f"select count(*) from {_q(table)}{where}").fetchone()[0])

    def conflicts(self, include_resolved: bool = False) -> list[Conflict]:
        """Conflicts in app form; open ones only unless ``include_resolved``."""
        with self._lock:
            raws = self.conflict_log.list(include_resolved)
        out = []
        for c in raws:
            spec = self.schema.tables.get(c["table"])
            conv = spec.app_from_stored if spec else (lambda v: v)
            out.append(Conflict(c["id"], c["table"], c["row_id"], conv(c["local_values"]),
                                conv(c["server_row"]) if c["server_row"] is not None else None,
                                c["base_version"], c["reason"], c["policy"], c["created_at"], c["resolved_at"],
                                c["resolution"]))
        return out

    def resolve_conflict(self, conflict_id: int, keep: str | dict[str, Any] = "local") -> dict[str, Any] | None:
        """Settle an open conflict on top of the server's version and queue the result (see
        :meth:`SyncClient.resolve`). Returns the row in app form."""
        with self.transaction():
            c = self.conflict_log.get(int(conflict_id))
            if c is None or c["resolved_at"] is not None:
                raise NotFoundError(f"no open conflict {conflict_id}", reason="not_found")
            spec = self.table(c["table"])
            self.note_write(spec.name, ids=(c["row_id"],))
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
            self.conflict_log.resolve(c["id"], label, now)
            base = server.get("version")
            if values.get("deleted_at") is not None:
                self.outbox.enqueue(spec.name, "delete", c["row_id"], base, {}, now)
            else:
                diff = {k: v for k, v in values.items() if k != "deleted_at" and server.get(k) != v}
                if diff:
                    self.outbox.enqueue(spec.name, "update", c["row_id"], base, spec.wire_from_stored(diff), now)
            if server:
                self.adopt_server_row(spec.name, c["row_id"], server)
        self._notify()
        return self.get(spec.name, c["row_id"], include_deleted=True)

    def pending_counts(self) -> dict[str, int]:
        with self._lock:
            return self.outbox.count_by_table()

    # -- fiscal invoices and stock --------------------------------------------------------------------
    @property
    def invoice_series(self) -> str:
        """This device's own invoice series (a series is numbered by exactly one device)."""
        return "T" + self.device_id.replace("-", "")[:16].upper()

    def issue_invoice(self, lines: list[dict[str, Any]], *, series: str | None = None,
                      customer_id: str | None = None, currency: str = "EUR", kind: str = "invoice",
                      refers_to: str | None = None, issued_at: str | None = None) -> dict[str, Any]:
        """Issue the next invoice of ``series`` offline: number, previous hash, totals and hash are
        assigned here, in the same SQLite transaction as the row and its outbox entry.

        ``lines``: ``[{description, quantity, unit_price, tax_rate[, product_id]}]``. A cancellation
        is ``kind="credit_note"`` with ``refers_to`` the original invoice's id. Invoices are never
        changed afterwards, here or on the server (see README, "Invoices")."""
        series = series or self.invoice_series
        for line in lines:
            if extra := sorted(set(line) - invoice.LINE_KEYS):
                raise InvalidValueError(f"invoice lines carry only {sorted(invoice.LINE_KEYS)}, not {extra}",
                                        reason="invalid_lines")
        clean = [{k: (str(v) if k in ("quantity", "unit_price", "tax_rate") else v)
                  for k, v in line.items() if v is not None} for line in lines]
        t = invoice.totals(clean)
        with self.transaction():
            self.table("invoices")
            last = self._conn.execute(
                'select number, hash from invoices where series = ? order by number desc limit 1', (series,)
            ).fetchone()
            number, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, invoice.GENESIS_HASH)
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()), "shop_id": self.get_meta("shop_id"), "device_id": self.device_id,
                "series": series, "number": number, "issued_at": issued_at or utc_now_iso(),
                "customer_id": customer_id, "lines": clean, "subtotal": t.subtotal, "tax": t.tax,
                "total": t.total, "currency": currency, "kind": kind, "refers_to": refers_to,
                "prev_hash": prev_hash, "hash_version": invoice.HASH_VERSION,
            }
            row["hash"] = invoice.invoice_hash(row)
            row.pop("shop_id")
            return self.insert("invoices", row)

    def verify_invoice_chain(self, series: str | None = None) -> invoice.ChainCheck:
        """The server's chain rules on this device's copy of ``series`` (default: its own)."""
        rows = self.query("invoices", {"series": series or self.invoice_series}, include_deleted=True)
        for r in rows:
            r.setdefault("shop_id", self.get_meta("shop_id"))
        return invoice.verify_chain(rows)

    def record_movement(self, product_id: str, delta: Any, reason: str, *, ref_id: str | None = None) -> dict[str, Any]:
        """Append a stock movement (``sale`` negative; ``restock``/``return`` positive; ``adjustment``)."""
        return self.insert("stock_movements", {"product_id": product_id, "delta": delta, "reason": reason,
                                               "ref_id": ref_id, "device_id": self.device_id})

    def on_hand(self, product_id: str) -> Decimal:
        """Stock on hand as this device sees it: the pulled level plus this device's own movements
        whose server entry has not been pulled yet, queued or already acknowledged (a rejected one
        does not count). A pulled page is applied only where a server transaction ends, and the
        server writes a movement and its level in one transaction, so the pulled level includes
        exactly the movements whose entries were pulled: none counts twice or not at all."""
        with self._lock:
            level = self._conn.execute("select on_hand from inventory_levels where id = ?", (product_id,)).fetchone()
            pending = self._conn.execute(
                "select m.delta from stock_movements as m"
                " inner join _awaiting_pull as a on a.table_name = 'stock_movements' and a.row_id = m.id"
                " where m.product_id = ? and m.sync_state <> 'failed'",
                (product_id,)).fetchall()
        total = Decimal(str(level[0])) if level and level[0] is not None else Decimal(0)
        return total + sum((Decimal(str(d[0])) for d in pending), Decimal(0))
