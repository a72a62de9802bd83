"""Silent drift: a device whose synced rows no longer equal the server's (a hand edit of the SQLite
file, a restored backup, a bug) finds out when a sync reaches the tip, re-fetches the table and
keeps its queued edits; the repair shows in SyncResult, SyncStatus and the owner's sync_metrics.

Every test edits the device's real SQLite file through a second connection, as a user with a
database browser would, and syncs through real HTTP.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from shopsync import SyncResult

SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"


def _edit(device: Any, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Change the device's SQLite file behind the library's back."""
    conn = sqlite3.connect(str(device.store.path), timeout=30)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def _a_synced_customer(device: Any) -> dict[str, Any]:
    rows = device.store.query("customers", {"sync_state": "synced"}, order_by="id", limit=1)
    assert rows, "shop A has synced customers"
    return rows[0]


def _repaired(result: SyncResult, table: str) -> int:
    result.raise_for_errors()
    assert result.verified is True
    fixed = [r.rows_fixed for r in result.repairs if r.table == table]
    assert fixed, f"{table} was repaired: {result.repairs}"
    return fixed[0]


def _server_customer(sql: Callable[..., Any], row_id: str) -> tuple[Any, ...]:
    return tuple(sql("select name, version from public.customers where id = %s", (row_id,))[0])


def test_a_changed_value_is_found_and_repaired(make_device: Any, sql: Any) -> None:
    dev = make_device("drift-value")
    row = _a_synced_customer(dev)
    _edit(dev, "update customers set name = 'Tampered' where id = ?", (row["id"],))
    result = dev.client.sync()
    assert _repaired(result, "customers") == 1
    got = dev.store.get("customers", row["id"])
    assert (got["name"], got["version"]) == _server_customer(sql, row["id"])
    status = dev.client.status()
    assert status.repairs == 1 and status.last_repair_at is not None and status.last_verified_at is not None
    # the server counted it, and the owner sees it
    assert sql("select sum(repairs), sum(rows_fixed) from shopsync.repair_stats where device_id = %s",
               (dev.store.device_id,)) == [(1, 1)]
    # and the next sync finds nothing to repair
    again = dev.client.sync().raise_for_errors()
    assert again.verified is True and again.repairs == []


def test_a_missing_row_is_found_and_fetched_again(make_device: Any, sql: Any) -> None:
    dev = make_device("drift-missing")
    row = _a_synced_customer(dev)
    _edit(dev, "delete from customers where id = ?", (row["id"],))
    assert _repaired(dev.client.sync(), "customers") == 1
    assert dev.store.get("customers", row["id"])["name"] == _server_customer(sql, row["id"])[0]


def test_a_stale_version_from_a_restored_backup_is_replaced(make_device: Any, sql: Any) -> None:
    dev = make_device("drift-stale")
    row = _a_synced_customer(dev)
    before = dev.store.stored_row("customers", row["id"])
    notes = f"newer on the server {uuid.uuid4().hex[:8]}"
    sql("update public.customers set notes = %s where id = %s", (notes, row["id"]))
    dev.client.sync().raise_for_errors()
    assert dev.store.get("customers", row["id"])["notes"] == notes
    # the row comes back from an old backup of the file: older version, older values, same cursor
    cols = [c for c in before if c not in ("id",)]
    _edit(dev, f"update customers set {', '.join(f'{c} = ?' for c in cols)} where id = ?",
          (*[before[c] for c in cols], row["id"]))
    assert dev.store.get("customers", row["id"])["version"] == before["version"]
    assert _repaired(dev.client.sync(), "customers") == 1
    got = dev.store.get("customers", row["id"])
    assert (got["notes"], got["version"]) == (notes, before["version"] + 1)


def test_an_extra_row_the_server_never_had_is_dropped(make_device: Any) -> None:
    dev = make_device("drift-extra")
    row = dev.store.stored_row("customers", _a_synced_customer(dev)["id"])
    ghost = "0badc0de-0000-4000-8000-000000000001"
    cols = list(row)
    _edit(dev, f"insert into customers ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
          tuple(ghost if c == "id" else row[c] for c in cols))
    assert dev.store.get("customers", ghost) is not None
    assert _repaired(dev.client.sync(), "customers") == 1
    assert dev.store.get("customers", ghost, include_deleted=True) is None


def test_queued_edits_survive_a_repair_and_still_reach_the_server(make_device: Any, sql: Any) -> None:
    dev = make_device("drift-queued")
    edited, tampered = dev.store.query("customers", {"sync_state": "synced"}, order_by="id", limit=2)
    phone = f"+49 30 {uuid.uuid4().int % 10**8:08d}"  # new on every run (the stack may be reused)
    dev.store.update("customers", edited["id"], {"phone": phone})
    created = dev.store.insert("customers", {"name": "Made offline"})
    # the edited row's server copy drifts on the device too, and another row is tampered with
    _edit(dev, "update customers set name = 'Tampered' where id in (?, ?)", (tampered["id"], edited["id"]))
    result = dev.client.pull()  # pull only: the queued events stay queued through the repair
    _repaired(result, "customers")
    assert dev.store.outbox.count() == 2
    assert dev.store.get("customers", tampered["id"])["name"] == _server_customer(sql, tampered["id"])[0]
    kept = dev.store.get("customers", edited["id"])
    assert (kept["phone"], kept["sync_state"]) == (phone, "pending_update")
    assert dev.store.get("customers", created["id"])["sync_state"] == "pending_create"
    # then the push goes through and everything verifies
    final = dev.client.sync().raise_for_errors()
    assert final.verified is True and final.repairs == []
    assert sql("select phone from public.customers where id = %s", (edited["id"],)) == [(phone,)]
    assert sql("select count(*) from public.customers where id = %s", (created["id"],)) == [(1,)]


def test_an_idle_sync_does_not_hash_the_file_again_but_a_hand_edit_is_still_seen(make_device: Any) -> None:
    dev = make_device("drift-cache")
    scanned: list[str] = []
    original = dev.store.synced_row_hashes

    def counting(table: str, *args: Any) -> Any:
        scanned.append(table)
        return original(table, *args)

    dev.store.synced_row_hashes = counting
    assert dev.client.sync().raise_for_errors().verified is True
    assert scanned == []  # nothing changed since the last check: the kept checksums are compared
    row = _a_synced_customer(dev)
    _edit(dev, "update customers set email = 'hand@edit.test' where id = ?", (row["id"],))
    assert _repaired(dev.client.sync(), "customers") == 1
    assert "customers" in scanned


def test_a_repair_bigger_than_memory_holds_fixes_every_kind_of_drift_at_once(make_device: Any, sql: Any,
                                                                            monkeypatch: Any) -> None:
    """A repair keeps the fetched rows in the file and applies them a chunk at a time (here 2 rows,
    the table has more): changed values, a missing row, an extra row and a queued edit, all at once."""
    import shopsync.store as store_module

    monkeypatch.setattr(store_module, "_REPAIR_CHUNK", 2)
    for i in range(5):  # more rows than two chunks
        sql("insert into public.customers (id, shop_id, name) values (gen_random_uuid(), %s, %s)",
            (SHOP_A, f"chunk {i}"))
    dev = make_device("drift-chunks", page_size=3)
    rows = dev.store.query("customers", {"sync_state": "synced"}, order_by="id")
    changed, missing, edited = rows[0], rows[2], rows[4]
    template = dev.store.stored_row("customers", rows[1]["id"])
    assert template is not None
    ghost = "0badc0de-0000-4000-8000-000000000002"
    _edit(dev, "update customers set name = 'Tampered' where id = ?", (changed["id"],))
    _edit(dev, "delete from customers where id = ?", (missing["id"],))
    cols = list(template)
    _edit(dev, f"insert into customers ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
          tuple(ghost if c == "id" else template[c] for c in cols))
    dev.store.update("customers", edited["id"], {"notes": "queued through the repair"})
    result = dev.client.pull()  # the edit stays queued: it must survive the repair
    assert _repaired(result, "customers") == 4  # the three, and the queued row now has its base
    assert dev.store.get("customers", changed["id"])["name"] == changed["name"]
    assert dev.store.get("customers", missing["id"]) is not None
    assert dev.store.get("customers", ghost, include_deleted=True) is None
    assert dev.store.get("customers", edited["id"])["notes"] == "queued through the repair"
    assert dev.store._conn.execute("select count(*) from _repair_rows").fetchone()[0] == 0  # noqa: SLF001
    dev.client.sync().raise_for_errors()
    assert sql("select notes from public.customers where id = %s", (edited["id"],))[0][0] == "queued through the repair"
