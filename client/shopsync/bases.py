"""The bases table: the server's row under a row that has local values on top.

A row with pending edits or an open conflict keeps the last server row it was given here; once those
are answered, a newer base already holds their effect and is adopted as it is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

__all__ = ["Bases"]

BASES_DDL = ("create table if not exists _bases (table_name text not null, row_id text not null, row text not null,"
             " primary key (table_name, row_id))")


class Bases:
    """Queries over ``_bases``; callers hold the store's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        r = self._conn.execute("select row from _bases where table_name = ? and row_id = ?", (table, row_id)).fetchone()
        return json.loads(r[0]) if r else None

    def put(self, table: str, row_id: str, server_row: dict[str, Any] | None) -> None:
        """Keep ``server_row`` as the row's base; None drops it."""
        if server_row is None:
            self._conn.execute("delete from _bases where table_name = ? and row_id = ?", (table, row_id))
        else:
            self._conn.execute(
                "insert into _bases (table_name, row_id, row) values (?, ?, ?)"
                " on conflict (table_name, row_id) do update set row = excluded.row",
                (table, row_id, json.dumps(server_row, sort_keys=True)))

    def rows_with_base(self, table: str, row_ids: Iterable[str]) -> set[str]:
        """Which of ``row_ids`` have a base."""
        return {r[0] for r in self._conn.execute(
            "select row_id from _bases where table_name = ? and row_id in (select value from json_each(?))",
            (table, json.dumps(list(row_ids))))}

    def drop(self, table: str, row_ids: Iterable[str]) -> None:
        self._conn.executemany("delete from _bases where table_name = ? and row_id = ?",
                               [(table, r) for r in row_ids])
