"""The conflicts table: what the server refused or overrode, kept for review and resolution.

Open conflicts (``resolved_at`` null) come from ``manual`` tables: the row stays in ``conflict``
state until :meth:`SyncClient.resolve` decides. Conflicts from ``server_wins`` and
``last_write_wins`` tables are logged already resolved (``resolution = "auto:remote"``): the
server's row was adopted and the log says what local values lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Conflict", "ConflictLog"]

CONFLICTS_DDL = """
create table if not exists _conflicts (
  id integer primary key autoincrement,
  table_name text not null,
  row_id text not null,
  local_values text not null,
  server_row text,
  base_version integer,
  reason text not null,
  policy text,
  created_at text not null,
  resolved_at text,
  resolution text
);
create index if not exists _conflicts_open_idx on _conflicts (table_name, row_id) where resolved_at is null;
"""


@dataclass(frozen=True)
class Conflict:
    """One conflict. ``local_values`` and ``server_row`` are in app form (Decimal money, bools...)."""

    id: int
    table: str
    row_id: str
    local_values: dict[str, Any]
    server_row: dict[str, Any] | None
    base_version: int | None
    reason: str
    policy: str | None
    created_at: str
    resolved_at: str | None
    resolution: str | None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


_COLS = ("id, table_name, row_id, local_values, server_row, base_version, reason, policy, created_at, "
         "resolved_at, resolution")


class ConflictLog:
    """Queries over ``_conflicts``, values in stored form; callers hold the store's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @staticmethod
    def _raw(r: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "id": r[0], "table": r[1], "row_id": r[2], "local_values": json.loads(r[3]),
            "server_row": json.loads(r[4]) if r[4] else None, "base_version": r[5], "reason": r[6],
            "policy": r[7], "created_at": r[8], "resolved_at": r[9], "resolution": r[10],
        }

    def add(self, table: str, row_id: str, local_values: dict[str, Any], server_row: dict[str, Any] | None,
            base_version: int | None, reason: str, policy: str | None, now: str,
            resolution: str | None = None) -> int:
        cur = self._conn.execute(
            "insert into _conflicts (table_name, row_id, local_values, server_row, base_version, reason, policy,"
            " created_at, resolved_at, resolution) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (table, row_id, json.dumps(local_values, sort_keys=True),
             json.dumps(server_row, sort_keys=True) if server_row is not None else None, base_version, reason,
             policy, now, now if resolution else None, resolution),
        )
        return int(cur.lastrowid or 0)

    def open_for_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        r = self._conn.execute(
            f"select {_COLS} from _conflicts where table_name = ? and row_id = ? and resolved_at is null"
            " order by id desc limit 1", (table, row_id)).fetchone()
        return self._raw(r) if r else None

    def open_rows(self, table: str, row_ids: Iterable[str]) -> set[str]:
        """Which of ``row_ids`` have an open conflict."""
        return {r[0] for r in self._conn.execute(
            "select row_id from _conflicts where table_name = ? and resolved_at is null"
            " and row_id in (select value from json_each(?))", (table, json.dumps(list(row_ids))))}

    def get(self, conflict_id: int) -> dict[str, Any] | None:
        r = self._conn.execute(f"select {_COLS} from _conflicts where id = ?", (conflict_id,)).fetchone()
        return self._raw(r) if r else None

    def list(self, include_resolved: bool = False) -> list[dict[str, Any]]:
        where = "" if include_resolved else " where resolved_at is null"
        return [self._raw(r) for r in self._conn.execute(f"select {_COLS} from _conflicts{where} order by id")]

    def update_open(self, conflict_id: int, *, local_values: dict[str, Any] | None = None,
                    server_row: dict[str, Any] | None = None) -> None:
        if local_values is not None:
            self._conn.execute("update _conflicts set local_values = ? where id = ?",
                               (json.dumps(local_values, sort_keys=True), conflict_id))
        if server_row is not None:
            self._conn.execute("update _conflicts set server_row = ? where id = ?",
                               (json.dumps(server_row, sort_keys=True), conflict_id))

    def resolve(self, conflict_id: int, resolution: str, now: str) -> None:
        self._conn.execute("update _conflicts set resolved_at = ?, resolution = ? where id = ?",
                           (now, resolution, conflict_id))

    def count_open(self) -> int:
        return int(self._conn.execute("select count(*) from _conflicts where resolved_at is null").fetchone()[0])
