"""The shadow stage on its own (staging.py): pages staged into a table the device holds nothing of,
merged, and the checksum recorded for the check compared with a full re-hash of what the table
then holds. No Postgres, no network; milliseconds each."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from shopsync import LocalStore, UnreadableRow
from shopsync.checksums import sqlite_canonical_sql
from shopsync.staging import _by_table

SHOP = "aaaaaaaa-0000-4000-8000-000000000000"
TS = "2026-11-30T14:21:29.5+00:00"


@pytest.fixture
def store(schema_fixture: dict[str, Any]) -> Any:
    s = LocalStore(":memory:", schema=schema_fixture)
    s.set_meta("shop_id", SHOP)
    yield s
    s.close()


def _page(store: LocalStore, rows: list[dict[str, Any]], seq: int = 1) -> tuple[list[Any], dict[str, list[str]]]:
    cols = [c.name for c in store.table("products").columns]
    changes = [[seq + k, "products", "upsert", r["id"], r.get("version", 1),
                [{"shop_id": SHOP, "version": 1, "created_at": TS, "updated_at": TS, **r}.get(c) for c in cols]]
               for k, r in enumerate(rows)]
    return changes, {"products": cols}


def _stage(store: LocalStore, pages: list[list[dict[str, Any]]], unreadable: list[UnreadableRow] | None = None
           ) -> None:
    for n, rows in enumerate(pages):
        changes, cols = _page(store, rows, 100 * n)
        with store.transaction():
            store.stage.add(store.schema.tables, changes, [] if unreadable is None else unreadable, cols)
            store.stage.set_cursor(100 * n)
    with store.transaction():
        store.stage.merge(store)


def _rehashed(store: LocalStore) -> tuple[int, int]:
    spec = store.table("products")
    count, total = store.synced_row_hashes("products", sqlite_canonical_sql(spec, [c.name for c in spec.columns]))
    return count, total % (1 << 64)


def _product(row_id: str | None = None, **values: Any) -> dict[str, Any]:
    return {"id": row_id or str(uuid.uuid4()), "sku": "s", "name": "p", "price": "1.50", "tax_rate": "21",
            "active": True, **values}


def test_the_recorded_checksum_is_a_full_rehash_of_what_the_table_holds(store: LocalStore) -> None:
    """Numerics, booleans, timestamps, nulls, a tombstone, a row pulled three times (the last one
    live), a row pulled live then deleted, and a value of the wrong type (the full conversion)."""
    again, gone = str(uuid.uuid4()), str(uuid.uuid4())
    pages = [
        [_product(again, name="v1"), _product(gone), _product(price="12.50"), _product(active=None, sku=None)],
        [_product(again, name="v2", version=2), _product(deleted_at=TS), _product(name=42)],
        [_product(gone, deleted_at=TS, version=2), _product(again, name="v3", version=3, price="0.10")],
    ]
    _stage(store, pages)
    recorded = store.take_recorded_checksum("products")
    assert recorded is not None and (recorded.count, recorded.total % (1 << 64)) == _rehashed(store) != (0, 0)
    assert recorded.count == 4 and store.get("products", again)["name"] == "v3"
    assert store.stage.staged_tables() == [] and store.get_meta("shadow_sum:products") is None
    assert store.take_recorded_checksum("products") is None  # taken once


def test_a_row_that_cannot_be_read_records_nothing(store: LocalStore) -> None:
    unreadable: list[UnreadableRow] = []
    _stage(store, [[_product()], [_product(price="not a number"), _product()]], unreadable)
    assert len(unreadable) == 1 and store.count("products") == 2
    assert store.take_recorded_checksum("products") is None


def test_a_table_holding_a_row_is_staged_untyped_and_records_nothing(store: LocalStore) -> None:
    store.write_row("products", {**_product(), "price": "3", "sync_state": "synced"})
    _stage(store, [[_product()], [_product()]])
    assert store.count("products") == 3 and store.take_recorded_checksum("products") is None


def test_a_local_write_before_the_merge_records_nothing(store: LocalStore) -> None:
    changes, cols = _page(store, [_product(), _product()])
    with store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)
    assert store.stage.staged_tables() == ["products"] and store.stage.count() == 2
    store.insert("products", {"sku": "local", "name": "made here", "price": "2", "tax_rate": "0"})
    changes, cols = _page(store, [_product()], 10)
    with store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)  # still the shadow: the run began there
        store.stage.merge(store)
    assert store.count("products") == 4 and store.take_recorded_checksum("products") is None


def test_a_merge_rolled_back_records_nothing(store: LocalStore) -> None:
    changes, cols = _page(store, [_product(), _product()])
    with pytest.raises(RuntimeError), store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)
        store.stage.merge(store)
        raise RuntimeError("the page's transaction fails after the merge")
    assert store.count("products") == 0 and store.take_recorded_checksum("products") is None
    assert store.stage.staged_tables() == []  # the shadow's creation rolled back too


def test_a_column_added_mid_staging_lands_and_the_checksum_is_not_kept(store: LocalStore,
                                                                     schema_fixture: dict[str, Any]) -> None:
    changes, cols = _page(store, [_product()])
    with store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)
    doc = copy.deepcopy(schema_fixture)
    doc["version"] = int(doc.get("version") or 0) + 1
    [products] = [t for t in doc["tables"] if t["name"] == "products"]
    products["columns"].append({"name": "barcode", "type": "text", "nullable": True})
    assert store.apply_schema(doc)
    row = _product(barcode="4006381333931")
    changes, cols = _page(store, [row], 10)
    with store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)
        store.stage.merge(store)
    assert store.get("products", row["id"])["barcode"] == "4006381333931" and store.count("products") == 2
    assert store.take_recorded_checksum("products") is None


def test_a_file_with_rows_staged_untyped_goes_on_untyped(store: LocalStore) -> None:
    """A file staged by an earlier version (rows in ``_stage_products``, no shadow) whose staging
    goes on: the table's later pages join the untyped stage, and all of it merges."""
    first = _product(name="v1")
    changes, cols = _page(store, [first, _product()])
    with store.transaction():
        for spec, rows, refuse in _by_table(store.schema.tables, changes, None):
            store.stage._add_table(spec, rows, cols["products"], refuse)  # noqa: SLF001 (as before shadows)
        store.stage.set_cursor(2)
    assert store.stage.staged_tables() == ["products"]
    changes, cols = _page(store, [_product(first["id"], name="v2", version=2), _product()], 10)
    with store.transaction():
        store.stage.add(store.schema.tables, changes, [], cols)
    assert store.stage.count() == 4 and store._conn.execute(  # noqa: SLF001
        "select count(*) from sqlite_master where name = '_shadow_products'").fetchone()[0] == 0
    with store.transaction():
        store.stage.merge(store)
    assert store.count("products") == 3 and store.get("products", first["id"])["name"] == "v2"
    assert store.take_recorded_checksum("products") is None  # staged untyped: the check hashes the table
