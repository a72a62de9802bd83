"""LocalStore on its own: transactions, values, display codes, schema growth (real SQLite files)."""

from __future__ import annotations

import copy
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shopsync import InvalidValueError, LocalStore, NotFoundError, SchemaError


@pytest.fixture
def store(tmp_path: Path, schema_doc: dict[str, Any]) -> LocalStore:
    return LocalStore(tmp_path / "local.db", schema=schema_doc)


def outbox(store: LocalStore) -> list[Any]:
    with store.transaction():
        return store.outbox.all()


def test_file_is_wal_with_foreign_keys_on(store: LocalStore) -> None:
    assert store._conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("pragma foreign_keys").fetchone()[0] == 1


def test_row_and_outbox_entry_commit_or_roll_back_together(store: LocalStore) -> None:
    row = store.insert("customers", {"name": "Ada"})
    assert row["sync_state"] == "pending_create" and row["version"] is None
    [entry] = outbox(store)
    assert (entry.op, entry.row_id, entry.base_version) == ("insert", row["id"], None)
    assert entry.data == {"name": "Ada", "customer_code": row["customer_code"]}

    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert("customers", {"name": "Rolled back"})
            raise RuntimeError("crash before commit")
    assert store.query("customers", {"name": "Rolled back"}) == []
    assert len(outbox(store)) == 1

    with pytest.raises(InvalidValueError):
        store.insert("customers", {"id": row["id"], "name": "Same id"})
    assert len(outbox(store)) == 1


def test_updates_queue_only_changed_columns_and_deletes_are_soft(store: LocalStore) -> None:
    row = store.insert("customers", {"name": "Ada", "email": "a@x.test"})
    store.update("customers", row["id"], {"email": "a@x.test", "phone": "123"})
    assert store.update("customers", row["id"], {"phone": "123"})["phone"] == "123"  # no-op: nothing queued
    store.delete("customers", row["id"])
    ops = [(e.op, e.data, e.base_version) for e in outbox(store)]
    assert ops[1:] == [("update", {"phone": "123"}, 1), ("delete", {}, 1)]
    assert store.get("customers", row["id"]) is None
    gone = store.get("customers", row["id"], include_deleted=True)
    assert gone is not None and gone["deleted_at"] is not None and gone["sync_state"] == "pending_create"
    with pytest.raises(NotFoundError):
        store.update("customers", row["id"], {"name": "x"})


def test_money_is_exact_and_checked_against_the_column_scale(store: LocalStore) -> None:
    p = store.insert("products", {"sku": "X-1", "name": "X", "price": "0.10", "tax_rate": 19})
    assert p["price"] == Decimal("0.10") and str(p["price"]) == "0.10" and str(p["tax_rate"]) == "19.00"
    assert outbox(store)[0].data["price"] == "0.10"  # sent as a decimal string, never a float
    assert store.insert("products", {"sku": "X-2", "name": "Y", "price": 0.1})["price"] == Decimal("0.10")
    with pytest.raises(InvalidValueError):  # float noise is refused, never silently rounded
        store.insert("products", {"sku": "X-5", "name": "Y", "price": 0.1 + 0.2 - 0.2})
    with pytest.raises(InvalidValueError):
        store.insert("products", {"sku": "X-3", "name": "Z", "price": Decimal("1.005")})
    with pytest.raises(InvalidValueError):
        store.insert("products", {"sku": "X-4", "name": "Z", "active": "yes"})
    with pytest.raises(InvalidValueError):
        store.insert("customers", {"name": "Ada", "version": 3})  # system columns are the server's


def test_unknown_tables_and_columns_are_schema_errors(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        store.insert("nope", {"a": 1})
    with pytest.raises(SchemaError):
        store.insert("customers", {"name": "Ada", "shoe_size": 44})
    empty = LocalStore(tmp_path / "empty.db")
    with pytest.raises(SchemaError):
        empty.insert("customers", {"name": "Ada"})


def test_display_codes_come_from_the_device_prefix_and_a_local_counter(store: LocalStore) -> None:
    a = store.insert("customers", {"name": "A"})
    b = store.insert("customers", {"name": "B"})
    o = store.insert("orders", {"customer_id": a["id"]})
    given = store.insert("customers", {"name": "C", "customer_code": "VIP-1"})
    prefix = store.device_prefix
    assert len(prefix) == 6 and prefix == store.device_id.replace("-", "")[:6].upper()
    assert (a["customer_code"], b["customer_code"]) == (f"C-{prefix}-0001", f"C-{prefix}-0002")
    assert o["order_code"] == f"O-{prefix}-0001" and given["customer_code"] == "VIP-1"


def test_query_filters_orders_and_hides_tombstones(store: LocalStore) -> None:
    for name in ("b", "a", "c"):
        store.insert("customers", {"name": name, "notes": "x"})
    c = store.query("customers", {"name": "c"})[0]
    store.delete("customers", c["id"])
    assert [r["name"] for r in store.query("customers", {"notes": "x"}, order_by="name")] == ["a", "b"]
    assert [r["name"] for r in store.query("customers", order_by="-name", include_deleted=True)] == ["c", "b", "a"]
    assert store.count("customers") == 2 and store.count("customers", include_deleted=True) == 3


def test_a_schema_version_bump_adds_columns_and_keeps_data(store: LocalStore, schema_doc: dict[str, Any],
                                                           tmp_path: Path) -> None:
    row = store.insert("customers", {"name": "Ada", "email": "a@x.test"})
    store.set_meta("cursor", 42)
    newer = copy.deepcopy(schema_doc)
    newer["version"] = schema_doc["version"] + 1
    customers = next(t for t in newer["tables"] if t["name"] == "customers")
    customers["columns"].append({"name": "loyalty_points", "type": "integer", "nullable": True, "system": False})
    newer["tables"].append({"name": "notes", "policy": "last_write_wins", "write_roles": ["owner"], "apply_order": 99,
                            "columns": [{"name": "id", "type": "uuid", "nullable": False, "system": True},
                                        {"name": "body", "type": "text", "nullable": True, "system": False}]})
    assert store.apply_schema(newer) is True
    assert store.get("customers", row["id"])["email"] == "a@x.test"
    assert store.update("customers", row["id"], {"loyalty_points": 5})["loyalty_points"] == 5
    assert store.cursor == 0  # re-pull to fill the new column on existing rows
    assert store.apply_schema(newer) is False
    reopened = LocalStore(store.path)  # the cached schema: works offline
    assert reopened.schema.version == newer["version"] and reopened.table("notes")
    assert reopened.get("customers", row["id"])["loyalty_points"] == 5
    reopened.close()
    con = sqlite3.connect(store.path)
    cols = [r[1] for r in con.execute("pragma table_info(customers)")]
    con.close()
    assert "loyalty_points" in cols and "sync_state" in cols and "last_error" in cols


def test_append_only_and_server_only_tables_refuse_what_the_server_would(tmp_path: Path,
                                                                         schema_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(schema_doc)
    ident = [{"name": "id", "type": "uuid", "nullable": False, "system": True},
             {"name": "deleted_at", "type": "timestamp with time zone", "nullable": True, "system": True},
             {"name": "qty", "type": "numeric(12,3)", "nullable": False, "system": False}]
    doc["tables"] += [
        {"name": "movements", "policy": "append_only", "write_roles": ["staff"], "apply_order": 70, "columns": ident},
        {"name": "levels", "policy": "server_only", "write_roles": [], "apply_order": 80, "columns": ident},
    ]
    store = LocalStore(tmp_path / "policies.db", schema=doc)
    moved = store.insert("movements", {"qty": "-2.000"})
    with pytest.raises(SchemaError):
        store.update("movements", moved["id"], {"qty": "1.000"})
    with pytest.raises(SchemaError):
        store.delete("movements", moved["id"])
    with pytest.raises(SchemaError):
        store.insert("levels", {"qty": "1.000"})
    assert len(outbox(store)) == 1
