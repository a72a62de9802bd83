"""The outbox: local changes waiting to be pushed, one event each, in the order they were made.

An entry's ``event_id`` is the idempotency key the server stores its result under, so a push
whose answer was lost can be sent again and comes back ``duplicate``. ``data`` holds the changed
columns only, in wire form. Entries leave the outbox only when the server answered them.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["OutboxEntry", "Outbox"]

OUTBOX_DDL = """
create table if not exists _outbox (
  seq integer primary key autoincrement,
  event_id text not null unique,
  table_name text not null,
  op text not null check (op in ('insert', 'update', 'delete')),
  row_id text not null,
  base_version integer,
  data text not null,
  client_ts text not null,
  created_at text not null,
  attempts integer not null default 0,
  next_attempt_at text,
  last_error text,
  override integer not null default 0
);
create index if not exists _outbox_row_idx on _outbox (table_name, row_id, seq);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One queued event."""

    seq: int
    event_id: str
    table: str
    op: str
    row_id: str
    base_version: int | None
    data: dict[str, Any]
    client_ts: str
    created_at: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    override: bool

    @classmethod
    def from_row(cls, r: sqlite3.Row | tuple[Any, ...]) -> OutboxEntry:
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10], r[11], bool(r[12]))

    def to_event(self) -> dict[str, Any]:
        """The event as sync_push expects it."""
        event: dict[str, Any] = {
            "event_id": self.event_id,
            "table": self.table,
            "op": self.op,
            "row_id": self.row_id,
            "base_version": self.base_version,
            "data": self.data,
            "client_ts": self.client_ts,
        }
        if self.override:
            event["override"] = True
        return event


_COLS = ("seq, event_id, table_name, op, row_id, base_version, data, client_ts, created_at, attempts, "
         "next_attempt_at, last_error, override")


class Outbox:
    """Queries over the ``_outbox`` table; callers hold the store's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def enqueue(self, table: str, op: str, row_id: str, base_version: int | None, data: dict[str, Any],
                client_ts: str, *, override: bool = False) -> str:
        event_id = str(uuid.uuid4())
        self._conn.execute(
            "insert into _outbox (event_id, table_name, op, row_id, base_version, data, client_ts, created_at, override)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, table, op, row_id, base_version, json.dumps(data, sort_keys=True), client_ts, client_ts,
             int(override)),
        )
        return event_id

    def batch(self, limit: int, after_seq: int = 0) -> list[OutboxEntry]:
        rows = self._conn.execute(
            f"select {_COLS} from _outbox where seq > ? order by seq limit ?", (after_seq, limit)
        ).fetchall()
        return [OutboxEntry.from_row(r) for r in rows]

    def all(self) -> list[OutboxEntry]:
        return [OutboxEntry.from_row(r) for r in self._conn.execute(f"select {_COLS} from _outbox order by seq")]

    def for_row(self, table: str, row_id: str) -> list[OutboxEntry]:
        rows = self._conn.execute(
            f"select {_COLS} from _outbox where table_name = ? and row_id = ? order by seq", (table, row_id)
        ).fetchall()
        return [OutboxEntry.from_row(r) for r in rows]

    def remove(self, event_id: str) -> None:
        self._conn.execute("delete from _outbox where event_id = ?", (event_id,))

    def remove_many(self, event_ids: Iterable[str]) -> None:
        """Drop answered events (one ``executemany``)."""
        self._conn.executemany("delete from _outbox where event_id = ?", [(e,) for e in event_ids])

    def queued_counts(self, table: str, row_ids: Iterable[str]) -> dict[str, int]:
        """How many events are queued for each of ``row_ids`` (rows with none are left out)."""
        return {r[0]: int(r[1]) for r in self._conn.execute(
            "select row_id, count(*) from _outbox where table_name = ? and row_id in (select value from json_each(?))"
            " group by row_id", (table, json.dumps(list(row_ids))))}

    def note_failed_call(self, event_ids: list[str], error: str, next_attempt_at: str | None) -> None:
        """Book-keeping after a whole-call failure; the events themselves stay exactly as queued."""
        self._conn.executemany(
            "update _outbox set attempts = attempts + 1, last_error = ?, next_attempt_at = ? where event_id = ?",
            [(error, next_attempt_at, e) for e in event_ids],
        )

    def count(self) -> int:
        return int(self._conn.execute("select count(*) from _outbox").fetchone()[0])

    def count_by_table(self) -> dict[str, int]:
        return {t: int(n) for t, n in self._conn.execute(
            "select table_name, count(*) from _outbox group by table_name order by table_name")}

    def oldest_created_at(self) -> str | None:
        row = self._conn.execute("select min(created_at) from _outbox").fetchone()
        return row[0] if row else None
