"""PullStage: pulled rows wait here until they make a state the server had, then apply at once.

A pull page of ``sync_pull_v2`` says whether it ends at a consistent point (``consistent``): where
a server transaction ends and, after retention dropped entries below the device's cursor, past the
tip the shop had at that run. Until such a page arrives, the device keeps the pulled rows in
staging tables (``_stage_<table>``: the table's columns, one row per id, the last pulled version)
in the same SQLite file, so a long initial sync or a transaction bigger than a page costs disk, not
memory, and survives a restart (the meta key ``stage_cursor`` says how far it got). At the
consistent page everything staged is applied in one SQLite transaction, the way a pull page always
was: rows with queued edits or an open conflict through ``adopt_server_row``, rows the device
holds at a newer server version (or a rejected edit at this version) left alone, the rest with one
``insert ... select`` per table.

A table the device holds nothing of when its first rows of a staging run come (the initial sync,
mostly) is staged into its shadow (``_shadow_<table>``) instead: the table's own column types, and
a running checksum of the staged live rows kept in ``_meta`` with each page. If the table still
holds nothing at the merge, the shadow is copied in as it is and its checksum is the table's: the
store keeps it for the check at the tip (``LocalStore.record_checksum``), which then does not hash
the table; the hashing happened page by page, while the next page was fetched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .checksums import hash_sum, sqlite_canonical_sql
from .errors import ShopSyncError
from .status import UnreadableRow
from .watch import ALL_ROWS

if TYPE_CHECKING:
    from .schema import ColumnSpec, TableSpec
    from .store import LocalStore

__all__ = ["PullStage", "STAGE_PREFIX", "SHADOW_PREFIX", "AWAITING_PULL_DDL", "AWAITING_PULL_TABLES"]

STAGE_PREFIX = "_stage_"
#: A table the device held nothing of when a staging run began is staged into its shadow
#: (``_shadow_<table>``: the table's own column types), with a running checksum in ``_meta``
#: (``shadow_sum:<table>``) kept page by page.
SHADOW_PREFIX = "_shadow_"
SUM_KEY = "shadow_sum:"
_MOD = 1 << 64
#: Tables whose rows feed a value the server derives (stock movements -> inventory_levels): a row
#: this device wrote is counted on top of the pulled derived value until its own server entry is
#: pulled (and with it, in the same consistent page, the derived value that includes it).
AWAITING_PULL_TABLES = frozenset({"stock_movements"})
AWAITING_PULL_DDL = ("create table if not exists _awaiting_pull (table_name text not null, row_id text not null,"
                     " primary key (table_name, row_id))")


#: Above this many rows of one table in one apply, watchers are told "every row" (ALL_ROWS).
_TOUCH_LIMIT = 10_000

# Kinds whose wire values are stored as they come when their type is right (checked by SQLite).
_BOUND_AS_IS = {"text": "'text'", "integer": "'integer'"}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stage_column(col: ColumnSpec) -> str:
    # (`typeof(x) in ('text', 'null')` before: the same check, an `in` list built per executed row)
    allowed = _BOUND_AS_IS.get(col.kind)
    name = _q(col.name)
    return f"{name} check (typeof({name}) = {allowed} or {name} is null)" if allowed else name


class PullStage:
    """The staging tables of one store (every statement runs on the store's connection, inside
    the caller's transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._columns: dict[str, list[str]] = {}

    # -- where staging stands -----------------------------------------------------------------------
    def cursor(self) -> int | None:
        """The cursor of the last staged page, or None when nothing is staged."""
        row = self._conn.execute("select value from _meta where key = 'stage_cursor'").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def set_cursor(self, cursor: int | None) -> None:
        self._conn.execute(
            "insert into _meta (key, value) values ('stage_cursor', ?)"
            " on conflict (key) do update set value = excluded.value", (None if cursor is None else str(cursor),))

    def _stages(self) -> list[tuple[str, str, bool]]:
        """(table, its stage table, whether it is a shadow) of every stage table, the untyped ones first."""
        out = []
        for (name,) in self._conn.execute(
                "select name from sqlite_master where type = 'table' and (name like '\\_stage\\_%' escape '\\'"
                " or name like '\\_shadow\\_%' escape '\\') order by name like '\\_shadow\\_%' escape '\\', name"):
            shadow = name.startswith(SHADOW_PREFIX)
            out.append((name[len(SHADOW_PREFIX if shadow else STAGE_PREFIX):], name, shadow))
        return out

    def staged_tables(self) -> list[str]:
        """The tables with a stage table (untyped or shadow), each once."""
        return list(dict.fromkeys(t for t, _, _ in self._stages()))

    def count(self) -> int:
        """Rows staged now (distinct rows: a row pulled twice counts once)."""
        return sum(int(self._conn.execute(f"select count(*) from {_q(name)}").fetchone()[0])
                   for _, name, _ in self._stages())

    def clear(self) -> None:
        """Forget everything staged (a reset, or a schema refill: the rows are pulled again)."""
        for _, name, shadow in self._stages():
            self._conn.execute(f"drop table {_q(name)}" if shadow else f"delete from {_q(name)}")
        self._conn.execute("delete from _meta where key like 'shadow\\_sum:%' escape '\\'")
        self.set_cursor(None)

    # -- staging ------------------------------------------------------------------------------------
    def _stage_table(self, spec: TableSpec) -> list[str]:
        """Create or extend ``_stage_<table>`` to the table's columns; its column names. The columns
        have no declared type (a staged value keeps the type it was bound with, and text and
        integer columns check it: ``typeof``) and no key: rows are appended in pull order, and
        the merge keeps the last one of each id."""
        name = STAGE_PREFIX + spec.name
        cols = self._columns.get(spec.name)
        if cols is not None and len(cols) == len(spec.columns):
            return cols
        existing = [r[1] for r in self._conn.execute(f"pragma table_info({_q(name)})")]
        if not existing:
            self._conn.execute(f"create table {_q(name)} ({', '.join(_stage_column(c) for c in spec.columns)})")
            existing = [c.name for c in spec.columns]
        for c in spec.columns:
            if c.name not in existing:
                self._conn.execute(f"alter table {_q(name)} add column {_stage_column(c)}")
                existing.append(c.name)
        self._columns[spec.name] = existing
        return existing

    def add(self, tables: dict[str, TableSpec], changes: list[Any], unreadable: list[UnreadableRow] | None,
            columns: dict[str, list[str]] | None = None) -> int:
        """Stage pulled rows (the last change of a row wins: versions rise with seq). A row this
        client cannot read is skipped and reported into ``unreadable`` (without a list: raised).
        Returns the rows staged.

        ``changes``: ``sync_pull_v2`` entries ``[seq, table, op, row_id, version, values]`` with
        ``values`` in the order of ``columns[table]`` (or the row as an object), or v1 entries
        (``{"seq", "table", "row_id", "row"}``). Text and integer values, most of a page, are
        bound as they came and checked by SQLite (the staging table's ``typeof`` checks); only the other kinds
        (timestamps, numerics, json, ...) are converted in Python. A page SQLite refuses takes the
        full conversion, row by row.

        A table that holds nothing on this device (no rows, nothing queued, in conflict, based or
        awaited) when its first rows of a staging run come is staged into its shadow instead
        (:meth:`_add_shadow`)."""
        staged = 0
        for spec, rows, refuse in _by_table(tables, changes, unreadable):
            page_cols = (columns or {}).get(spec.name)
            shadow = self._shadow_table(spec)
            staged += (self._add_table(spec, rows, page_cols, refuse) if shadow is None
                       else self._add_shadow(spec, shadow, rows, page_cols, refuse))
        return staged

    # -- shadows --------------------------------------------------------------------------------------
    def _untouched(self, table: str) -> bool:
        """Does the device hold nothing of ``table``: no row, no queued event, no open conflict, no
        base, no row awaiting its pull?"""
        return not self._conn.execute(
            f"select exists (select 1 from {_q(table)})"
            " or exists (select 1 from _outbox where table_name = ?)"
            " or exists (select 1 from _conflicts where table_name = ? and resolved_at is null)"
            " or exists (select 1 from _bases where table_name = ?)"
            " or exists (select 1 from _awaiting_pull where table_name = ?)", (table,) * 4).fetchone()[0]

    def _running_sum(self, table: str) -> dict[str, Any] | None:
        """The shadow's running checksum (``{"columns", "count", "sum"}``), None when not kept."""
        row = self._conn.execute("select value from _meta where key = ?", (SUM_KEY + table,)).fetchone()
        held = json.loads(row[0]) if row and row[0] is not None else None
        return held if isinstance(held, dict) else None

    def _set_running_sum(self, table: str, held: dict[str, Any] | None) -> None:
        self._conn.execute(
            "insert into _meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
            (SUM_KEY + table, None if held is None else json.dumps(held)))

    def _shadow_table(self, spec: TableSpec) -> list[str] | None:
        """The column names of the table's shadow (``_shadow_<table>``), made when the table's rows
        should go there: the staging run has a shadow of it already, or the table has no untyped
        stage rows and the device holds nothing of it (:meth:`_untouched`). None: the untyped stage.

        The shadow stores each value as the table will: its text and integer columns are the
        untyped stage's (no affinity, a ``typeof`` check: only a str or an int gets in, which the
        table's TEXT or INTEGER column keeps as it is), the others have the table's own types (same
        affinities). Like the untyped stage it has no key: rows are appended in pull order (an
        index on id, written at random places page after page, cost more than the check it saves).
        Its running checksum starts at nothing. Columns added mid-run (the schema grew) are added to
        it too; its checksum is no longer kept."""
        conn = self._conn
        table = spec.name
        name = _q(SHADOW_PREFIX + table)
        existing = [r[1] for r in conn.execute(f"pragma table_info({name})")]
        declared: dict[str, str] = {}  # the table's column types, read when a column is declared

        def column(c: ColumnSpec) -> str:
            # Text and integer columns as the untyped stage has them (no affinity, a typeof check:
            # a value of the wrong type is refused, not converted; the right type is stored as the
            # table's TEXT or INTEGER column stores it); the other kinds with the table's own type.
            if c.kind in _BOUND_AS_IS:
                return _stage_column(c)
            if not declared:
                declared.update((r[1], r[2]) for r in conn.execute(f"pragma table_info({_q(table)})"))
            return f"{_q(c.name)} {declared.get(c.name, c.sqlite_type)}"
        if not existing:
            stage = STAGE_PREFIX + table
            if conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", (stage,)).fetchone() \
                    and conn.execute(f"select 1 from {_q(stage)} limit 1").fetchone():
                return None  # this run stages the table untyped already
            if not spec.has_column("id") or not self._untouched(table):
                return None
            conn.execute(f"create table {name} ({', '.join(column(c) for c in spec.columns)})")
            names = [c.name for c in spec.columns]
            self._set_running_sum(table, {"columns": names, "count": 0, "sum": 0})
            return names
        missing = [c for c in spec.columns if c.name not in existing]
        for c in missing:
            conn.execute(f"alter table {name} add column {column(c)}")
        if missing:
            self._set_running_sum(table, None)  # the rows before were hashed without these columns
        return existing + [c.name for c in missing]

    def _add_shadow(self, spec: TableSpec, names: list[str], rows: dict[str, tuple[Any, Any]],
                    page_cols: list[str] | None, refuse: Callable[[str, Exception], None]) -> int:
        """Stage a page's rows of a table into its shadow as :meth:`_add_table` stages them (text and
        integer values as they came, checked by SQLite: a wrong type takes the full conversion; the
        other kinds converted in Python and stored with the table's own column types; the columns
        the page lacks null), and move the shadow's running checksum in the same transaction by the
        page's live rows, read back as stored and rendered as the
        verification renders them. A row pulled again is counted again: the merge takes the
        earlier versions out (:meth:`_shadow_checksum`). A refused row stops the checksum (the
        verification then hashes the table)."""
        conn = self._conn
        table = spec.name
        refused: list[str] = []

        def refuse_here(row_id: str, exc: Exception) -> None:
            refused.append(row_id)
            refuse(row_id, exc)
        shadow = _q(SHADOW_PREFIX + table)
        before = conn.execute(f"select coalesce(max(rowid), 0) from {shadow}").fetchone()[0]
        staged = self._add_table(spec, rows, page_cols, refuse_here, into=(SHADOW_PREFIX + table, names))
        held = self._running_sum(table)
        if held is not None and (refused or held.get("columns") != [c.name for c in spec.columns]):
            held = None
        if held is not None and staged:
            texts = [r[0] for r in conn.execute(
                f"select {sqlite_canonical_sql(spec, held['columns'])} from {shadow} as t"
                " where t.rowid > ? and t.deleted_at is null", (before,))]
            held["count"] = int(held["count"]) + len(texts)
            held["sum"] = (int(held["sum"]) + hash_sum(texts)) % _MOD
        if (held is not None and staged) or refused:
            self._set_running_sum(table, held)
        return staged

    def _shadow_checksum(self, spec: TableSpec, stage: str, held: dict[str, Any]) -> tuple[int, int]:
        """Right after a shadow was merged into a table that held nothing: the table's verified
        checksum (count, sum) from the shadow's running one. Each staged row made one row of the
        table with its values as staged, so when the table has as many rows as the shadow, no row
        was pulled twice and the running checksum is the table's; otherwise the staged versions of
        the rows pulled more than once are taken out and what the table holds of them put in."""
        conn = self._conn
        count, total = int(held["count"]), int(held["sum"])
        table = _q(spec.name)
        if conn.execute(f"select count(*) from {stage}").fetchone()[0] == \
                conn.execute(f"select count(*) from {table}").fetchone()[0]:
            return count, total
        again = json.dumps([r[0] for r in conn.execute(f"select id from {stage} group by id having count(*) > 1")])
        canonical = sqlite_canonical_sql(spec, held["columns"])
        pick = " as t where t.id in (select value from json_each(?)) and t.deleted_at is null"
        staged = [r[0] for r in conn.execute(f"select {canonical} from {stage}" + pick, (again,))]
        held_now = [r[0] for r in conn.execute(f"select {canonical} from {table}" + pick, (again,))]
        return count - len(staged) + len(held_now), (total - hash_sum(staged) + hash_sum(held_now)) % _MOD

    def _add_table(self, spec: TableSpec, rows: dict[str, tuple[Any, Any]], page_cols: list[str] | None,
                   refuse: Callable[[str, Exception], None], *, into: tuple[str, list[str]] | None = None) -> int:
        """Append a page's rows of a table to its untyped stage, or to ``into`` (a shadow's name and
        columns; its text and integer columns check types as the untyped stage's do)."""
        conn = self._conn
        stage_name, names = into if into is not None else (STAGE_PREFIX + spec.name, self._stage_table(spec))
        stage = _q(stage_name)
        full = [(n, spec.column(n).from_wire) for n in names]
        insert_full = (f"insert into {stage} ({', '.join(_q(n) for n in names)})"
                       f" values ({', '.join('?' * len(names))})")

        refused: set[str] = set()

        def slow(row_id: str, wire: Any) -> list[Any] | None:
            if row_id in refused:
                return None
            try:
                return _full_row(full, page_cols, wire)
            except _CONVERSION_ERRORS as exc:
                refused.add(row_id)
                refuse(row_id, exc)
                return None

        fast: list[list[Any]] = []
        other: list[list[Any]] = []
        cols = [spec.column(n) for n in page_cols or () if spec.has_column(n)]
        if page_cols and len(cols) == len(page_cols) and "id" in page_cols:
            convert = [(j, _per_page(c)) for j, c in enumerate(cols) if c.kind not in _BOUND_AS_IS]
            width = len(cols)
            for row_id, (_, vals) in rows.items():
                if vals.__class__ is not list or len(vals) != width:
                    got = slow(row_id, vals)
                    if got is not None:
                        other.append(got)
                    continue
                row = vals.copy()  # the wire values stay as they came, for the full path
                try:
                    for j, f in convert:
                        row[j] = f(row[j])
                except _CONVERSION_ERRORS as exc:
                    refused.add(row_id)
                    refuse(row_id, exc)
                    continue
                fast.append(row)
        else:
            cols = []
            for row_id, (_, vals) in rows.items():
                got = slow(row_id, vals)
                if got is not None:
                    other.append(got)
        insert_fast = (f"insert into {stage} ({', '.join(_q(c.name) for c in cols)})"
                       f" values ({', '.join('?' * len(cols))})")
        before = conn.execute(f"select coalesce(max(rowid), 0) from {stage}").fetchone()[0]
        try:
            if fast:
                conn.executemany(insert_fast, fast)
        except (sqlite3.Error, OverflowError):  # a value of the wrong type: the full path, row by row
            conn.execute(f"delete from {stage} where rowid > ?", (before,))
            other = [p for p in (slow(r, v) for r, (_, v) in rows.items()) if p is not None]
            fast = []
        if other:
            conn.executemany(insert_full, other)
        return len(fast) + len(other)

    # -- applying -------------------------------------------------------------------------------------
    def apply(self, store: LocalStore, tables: dict[str, TableSpec], changes: list[Any],
              unreadable: list[UnreadableRow] | None, columns: dict[str, list[str]] | None = None) -> int:
        """Apply a consistent page straight to the tables, inside the caller's transaction: what
        :meth:`add` then :meth:`merge` do, without writing the rows to the stage and reading them
        back. Only when nothing is staged (the page alone is the state to show). Returns the rows
        applied."""
        applied = 0
        for spec, rows, refuse in _by_table(tables, changes, unreadable):
            applied += self._apply_table(store, spec, rows, (columns or {}).get(spec.name), refuse)
        return applied

    def _apply_table(self, store: LocalStore, spec: TableSpec, rows: dict[str, tuple[Any, Any]],
                     page_cols: list[str] | None, refuse: Callable[[str, Exception], None]) -> int:
        conn = self._conn
        names = [c.name for c in spec.columns]
        groups = _checked_groups(spec, rows, page_cols, refuse)
        if not groups:
            return 0
        table = spec.name
        ids = [r[g_cols.index("id")] for g_cols, g_rows in groups for r in g_rows]
        store.note_write(table, ids=ids)  # before anything about these rows changes
        store.changes.touch(table, (ALL_ROWS,) if len(ids) > _TOUCH_LIMIT else ids)
        id_list = json.dumps(ids)
        if table in AWAITING_PULL_TABLES:  # the server's own entry of the row is here now
            conn.execute("delete from _awaiting_pull where table_name = ? and row_id in (select value from json_each(?))",
                         (table, id_list))
        # Rows with queued events or an open conflict: the server row becomes their base, the local
        # values stay on top (few rows; the per-row path, in pull order).
        local = store.rows_with_local_changes(table, ids)
        if local:
            for g_cols, g_rows in groups:
                at = g_cols.index("id")
                for r in g_rows:
                    if r[at] in local:
                        store.adopt_server_row(table, r[at], dict(zip(g_cols, r, strict=True)))
        if store.has_bases(table):
            conn.execute("delete from _bases where table_name = ? and row_id in (select value from json_each(?))",
                         (table, json.dumps([i for i in ids if i not in local])))
        # The rest, except over what the device holds at a newer server version, or a rejected
        # edit at this version (it stays visible, failed, until the server has news). Columns the
        # page lacks are written null, as the stage's merge writes them.
        target = _q(table)
        for g_cols, g_rows in groups:
            missing = [n for n in names if n not in g_cols]
            listed = ", ".join(_q(n) for n in [*g_cols, *missing])
            values = ", ".join(["?"] * len(g_cols) + ["null"] * len(missing))
            sets = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in [*g_cols, *missing] if n != "id")
            at = g_cols.index("id")
            conn.executemany(
                f"insert into {target} ({listed}, sync_state, last_error) values ({values}, 'synced', null)"
                + _pulled_row_wins(target, sets), [r for r in g_rows if r[at] not in local] if local else g_rows)
        return len(ids)

    def merge(self, store: LocalStore) -> None:
        """Apply everything staged to the store's tables (inside the caller's transaction), then
        empty the stage (a shadow is dropped). A shadow merged into a table the device still held
        nothing of is copied as it is: the shadow's running checksum is the table's, and the store
        keeps it for the verification (:meth:`LocalStore.record_checksum`)."""
        conn = self._conn
        for table, name, shadow in self._stages():
            stage = _q(name)
            spec = store.schema.tables.get(table)
            if spec is None:
                conn.execute(f"drop table {stage}")
                conn.execute("delete from _meta where key = ?", (SUM_KEY + table,))
                continue
            held = self._running_sum(table) if shadow and self._untouched(table) else None
            if self._merge_stage(store, spec, stage) and held is not None:
                columns = [c.name for c in spec.columns]
                if held.get("columns") == columns:
                    store.record_checksum(table, columns, *self._shadow_checksum(spec, stage, held))
            if shadow:
                conn.execute(f"drop table {stage}")
                conn.execute("delete from _meta where key = ?", (SUM_KEY + table,))
            else:
                conn.execute(f"delete from {stage}")
        self.set_cursor(None)

    def _merge_stage(self, store: LocalStore, spec: TableSpec, stage: str) -> bool:
        """Apply one stage table's rows to its table (see :meth:`merge`); False when it has none."""
        conn = self._conn
        table = spec.name
        names = [r[1] for r in conn.execute(f"pragma table_info({stage})") if spec.has_column(r[1])]
        target = _q(table)
        if conn.execute(f"select 1 from {stage} limit 1").fetchone() is None:
            return False
        # Watchers (store.watch) learn which rows this commit changed, and the verification
        # marker that the table was written (store.note_write); a huge apply says "all rows".
        staged = [r[0] for r in conn.execute(f"select id from {stage} limit ?", (_TOUCH_LIMIT + 1,))]
        store.note_write(table, ids=staged if len(staged) <= _TOUCH_LIMIT else None)
        store.changes.touch(table, (ALL_ROWS,) if len(staged) > _TOUCH_LIMIT else staged)
        if table in AWAITING_PULL_TABLES:  # the server's own entry of the row is here now
            conn.execute(f"delete from _awaiting_pull where table_name = ? and row_id in (select id from {stage})",
                         (table,))
        # Rows with queued events or an open conflict: the server row becomes their base, the
        # local values stay on top (few rows; the per-row path, in pull order).
        # (Each a one-row probe first: with nothing of the table queued, in conflict or based, a
        # list of every staged id is not built for nothing: 0.2 s per 100,000 rows for the bases.)
        local = (" (select row_id from _outbox where table_name = ?"
                 " union select row_id from _conflicts where table_name = ? and resolved_at is null)")
        if store.has_local_values(table):
            special = conn.execute(
                f"select {', '.join('s.' + _q(n) for n in names)} from {stage} as s where s.id in {local}"
                " order by s.rowid", (table, table)).fetchall()
            for row in special:
                store.adopt_server_row(table, row[names.index("id")], dict(zip(names, row, strict=True)))
        if store.has_bases(table):
            conn.execute(f"delete from _bases where table_name = ? and row_id in (select id from {stage})"
                         f" and row_id not in {local}", (table, table, table))
        # The rest in pull order (the last version of a row wins), except over what the device
        # holds at a newer server version, or a rejected edit at this version (it stays
        # visible, failed, until the server has news).
        cols = ", ".join(_q(n) for n in names)
        sets = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names if n != "id")
        conn.execute(
            f"insert into {target} ({cols}, sync_state, last_error) select {cols}, 'synced', null from {stage}"
            f" where id not in {local} order by rowid" + _pulled_row_wins(target, sets), (table, table))
        return True


def _per_page(col: ColumnSpec) -> Callable[[Any], Any]:
    """``col.from_wire`` for one page: a timestamp converted once per distinct value (the rows of a
    server transaction share its ``now()``: 95 ns a value instead of 440)."""
    convert = col.from_wire
    if col.kind != "timestamp":
        return convert
    seen: dict[Any, Any] = {}

    def once(v: Any) -> Any:
        try:
            return seen[v]
        except KeyError:
            seen[v] = out = convert(v)  # (what fails to convert is not kept: it raises each time)
            return out
        except TypeError:  # not hashable: not a timestamp either; convert says so
            return convert(v)
    return once


def _checked_groups(spec: TableSpec, rows: dict[str, tuple[Any, Any]], page_cols: list[str] | None,
                    refuse: Callable[[str, Exception], None]) -> list[tuple[list[str], list[list[Any]]]]:
    """A page's rows of ``spec``'s table ready to bind, in groups of (column names, rows in that
    order), empty groups left out: text and integer values as they came when their type is right
    (the stage's ``typeof`` checks, here in Python: by the row's type signature, a handful per
    page), the other kinds converted; a row of another shape or a wrong type takes the full
    conversion (every column, in the table's order); a row that cannot be read is refused."""
    names = [c.name for c in spec.columns]
    full = [(n, spec.column(n).from_wire) for n in names]
    groups: list[tuple[list[str], list[list[Any]]]] = []

    def slow(row_id: str, wire: Any) -> list[Any] | None:
        try:
            return _full_row(full, page_cols, wire)
        except _CONVERSION_ERRORS as exc:
            refuse(row_id, exc)
            return None

    other: list[list[Any]] = []
    cols = [spec.column(n) for n in page_cols or () if spec.has_column(n)]
    if page_cols and len(cols) == len(page_cols) and "id" in page_cols:
        convert = [(j, _per_page(c)) for j, c in enumerate(cols) if c.kind not in _BOUND_AS_IS]
        allowed = [(str, type(None)) if c.kind == "text" else (int, type(None)) if c.kind == "integer" else None
                   for c in cols]
        signatures: dict[tuple[type, ...], bool] = {}
        width = len(cols)
        fast: list[list[Any]] = []
        for row_id, (_, vals) in rows.items():
            sig = tuple(map(type, vals)) if vals.__class__ is list and len(vals) == width else None
            ok = sig is not None and signatures.get(sig)
            if ok is None and sig is not None:
                ok = signatures[sig] = all(a is None or t in a for t, a in zip(sig, allowed, strict=True))
            if not ok:
                got = slow(row_id, vals)
                if got is not None:
                    other.append(got)
                continue
            row = vals.copy()
            try:
                for j, f in convert:
                    row[j] = f(row[j])
            except _CONVERSION_ERRORS as exc:
                refuse(row_id, exc)
                continue
            fast.append(row)
        groups.append(([c.name for c in cols], fast))
    else:
        for row_id, (_, vals) in rows.items():
            got = slow(row_id, vals)
            if got is not None:
                other.append(got)
    groups.append((names, other))
    return [(g_cols, g_rows) for g_cols, g_rows in groups if g_rows]


def _pulled_row_wins(target: str, sets: str) -> str:
    """The upsert clause of a pulled row: it replaces what the device holds (``sets``), synced,
    except a newer server version, or a rejected edit at this version (it stays visible, failed,
    until the server has news)."""
    return (f" on conflict (id) do update set {sets}, sync_state = 'synced', last_error = null"
            f" where {target}.version is null or excluded.version is null or excluded.version > {target}.version"
            f" or (excluded.version = {target}.version and {target}.sync_state <> 'failed')")


#: What converting a wire value can raise: the row is unreadable, the rest of the page applies.
_CONVERSION_ERRORS = (ShopSyncError, ValueError, TypeError, OverflowError, AttributeError)


def _full_row(full: list[tuple[str, Callable[[Any], Any]]], page_cols: list[str] | None, wire: Any) -> list[Any]:
    """A wire row (values in the page's column order, or an object) in the order of ``full``,
    every value converted."""
    if wire.__class__ is list:
        wire = dict(zip(page_cols or (), wire, strict=True))
    get = wire.get
    return [f(get(n)) for n, f in full]


def _by_table(tables: dict[str, TableSpec], changes: list[Any], unreadable: list[UnreadableRow] | None
              ) -> list[tuple[TableSpec, dict[str, tuple[Any, Any]], Callable[[str, Exception], None]]]:
    """A page's rows per known table (the last change of a row wins: versions rise with seq), each
    with the function that reports a row this client cannot read into ``unreadable`` (without a
    list: raises)."""
    by_table: dict[str, dict[str, tuple[Any, Any]]] = {}
    for change in changes:
        if change.__class__ is list:
            by_table.setdefault(change[1], {})[change[3]] = (change[0], change[5])
        else:
            by_table.setdefault(change["table"], {})[str(change["row_id"])] = (change.get("seq"), change["row"])
    out: list[tuple[TableSpec, dict[str, tuple[Any, Any]], Callable[[str, Exception], None]]] = []
    for table, rows in by_table.items():
        spec = tables.get(table)
        if spec is None:
            continue

        def refuse(row_id: str, exc: Exception, table: str = table, rows: dict[str, tuple[Any, Any]] = rows) -> None:
            if unreadable is None:
                raise exc
            seq = rows[row_id][0]
            unreadable.append(UnreadableRow(table, row_id, int(seq) if seq is not None else None,
                                            getattr(exc, "message", None) or str(exc)))
        out.append((spec, rows, refuse))
    return out
