"""The upgrade lane's devices (run by scripts/upgrade_test.sh; not a pytest module).

``seed STATE``: on the database of the released migrations, a new shop with two tills (real SQLite
files in STATE, the public client API over the real gateway): till 1 (the owner) writes and syncs;
till 2 (staff) syncs, then queues edits offline and does not push them.
``verify STATE``: after the later migrations, both tills sync on: every queued edit of till 2 reaches
the server (a pull reset on the way is allowed, as long as the queued edits are kept), nothing is
rejected or in conflict, a write made after the upgrade travels, and both tills hold exactly the
server's rows (id, version, tombstone) of their shop.

The stack is named by the environment (SUPABASE_URL, SUPABASE_DB_URL, ... from `shopsync stack env`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psycopg

from shopsync import LocalStore, SyncClient
from shopsync_stack import load_settings, mint_user_token

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
from tenants import make_tenant  # noqa: E402  (a shop with an owner and a staff member)

SETTINGS = load_settings(None)


def till(state: Path, name: str, email: str) -> SyncClient:
    store = LocalStore(state / f"{name}.db")
    return SyncClient(store, url=SETTINGS.api_url, anon_key=SETTINGS.anon_key,
                      access_token=lambda: str(mint_user_token(SETTINGS, email)), device_name=name)


def synced(client: SyncClient, what: str) -> Any:
    result = client.sync()
    if not result.ok or result.rejected or result.conflicts:
        raise SystemExit(f"upgrade: {what}: errors {result.errors}, rejections {result.rejections}, "
                         f"conflicts {result.conflicts}")
    return result


def close(*clients: SyncClient) -> None:
    for c in clients:
        c.stop(timeout=10)
        c.store.close()


def seed(state: Path) -> None:
    with psycopg.connect(SETTINGS.db_url, autocommit=True) as conn:
        tenant = make_tenant(conn, "upgrade")
    till1, till2 = till(state, "till-1", tenant.owner), till(state, "till-2", tenant.staff)

    # Till 1: registers, then a catalogue, customers and a paid order, synced.
    synced(till1, "till 1's registration")
    coffee = till1.store.insert("products", {"sku": "COF-250", "name": "Coffee 250 g", "price": "8.90",
                                             "tax_rate": "7.00"})
    olga = till1.store.insert("customers", {"name": "Olga", "email": "olga@upgrade.test"})
    will = till1.store.insert("customers", {"name": "Will"})
    order = till1.store.insert("orders", {"customer_id": olga["id"], "total": "17.80"})
    till1.store.insert("order_items", {"order_id": order["id"], "product_id": coffee["id"],
                                       "quantity": "2.000", "unit_price": "8.90"})
    till1.store.update("orders", order["id"], {"status": "paid"})
    synced(till1, "till 1's first sync")
    if till1.status().pending_uploads:
        raise SystemExit("upgrade: till 1 kept queued events after syncing")

    # Till 2: syncs, then works offline (queued, not pushed).
    synced(till2, "till 2's first sync")
    queued = {
        "new_customer": till2.store.insert("customers", {"name": "Queued Quinn", "phone": "+49 30 1234"})["id"],
        "renamed_customer": will["id"],
        "new_order": till2.store.insert("orders", {"customer_id": olga["id"], "total": "8.90"})["id"],
    }
    till2.store.update("customers", will["id"], {"name": "Will (renamed offline)"})
    till2.store.insert("order_items", {"order_id": queued["new_order"], "product_id": coffee["id"],
                                       "quantity": "1.000", "unit_price": "8.90"})
    pending = till2.status().pending_uploads
    if pending < 4:
        raise SystemExit(f"upgrade: till 2 should hold 4 queued events, holds {pending}")
    (state / "expect.json").write_text(json.dumps({"shop_id": tenant.shop_id, "owner": tenant.owner,
                                                   "staff": tenant.staff, "queued": queued,
                                                   "pending": pending}))
    close(till1, till2)
    print(f"upgrade: shop {tenant.shop_id}: till 1 synced, till 2 holds {pending} queued events")


def server_rows(conn: psycopg.Connection[Any], shop_id: str, tables: list[str]) -> set[tuple[str, str, int, bool]]:
    out: set[tuple[str, str, int, bool]] = set()
    for t in tables:
        for rid, version, deleted in conn.execute(
                f"select id::text, version, deleted_at is not null from public.{t} where shop_id = %s", (shop_id,)):
            out.add((t, rid, version, deleted))
    return out


def local_rows(store: LocalStore) -> set[tuple[str, str, int, bool]]:
    return {(t, r["id"], r["version"], r["deleted_at"] is not None)
            for t in store.schema.tables for r in store.query(t, include_deleted=True)}


def verify(state: Path) -> None:
    expect = json.loads((state / "expect.json").read_text())
    till1, till2 = till(state, "till-1", expect["owner"]), till(state, "till-2", expect["staff"])
    if till2.status().pending_uploads != expect["pending"]:
        raise SystemExit(f"upgrade: till 2's outbox changed on disk: {till2.status().pending_uploads} queued")

    r2 = synced(till2, "till 2's sync after the upgrade")
    left = till2.status().pending_uploads
    if left:
        raise SystemExit(f"upgrade: till 2 still holds {left} queued events after syncing")
    queued = expect["queued"]
    with psycopg.connect(SETTINGS.db_url, autocommit=True) as conn:
        found = conn.execute(
            "select (select name from public.customers where id = %s),"
            " (select name from public.customers where id = %s),"
            " (select count(*) from public.order_items where order_id = %s)",
            (queued["new_customer"], queued["renamed_customer"], queued["new_order"])).fetchone()
        if found != ("Queued Quinn", "Will (renamed offline)", 1):
            raise SystemExit(f"upgrade: a queued edit of till 2 is missing on the server: {found}")

        # A write after the upgrade travels from till 1 to till 2.
        after = till1.store.insert("customers", {"name": "After the upgrade"})
        r1 = synced(till1, "till 1's sync after the upgrade")
        synced(till2, "till 2's second sync after the upgrade")
        if till2.store.get("customers", after["id"]) is None:
            raise SystemExit("upgrade: till 1's write after the upgrade did not reach till 2")

        tables = list(till1.store.schema.tables)
        server = server_rows(conn, expect["shop_id"], tables)
    for name, client in (("till 1", till1), ("till 2", till2)):
        local = local_rows(client.store)
        if local != server:
            raise SystemExit(f"upgrade: {name} differs from the server: only local {sorted(local - server)[:5]},"
                             f" only on the server {sorted(server - local)[:5]}")
    close(till1, till2)
    print(f"upgrade: till 2 pushed its {expect['pending']} queued events ({r2.applied} applied, {r2.merged} merged,"
          f" pull resets {r2.resets + r1.resets}); both tills hold the server's {len(server)} rows")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("seed", "verify"):
        raise SystemExit("usage: upgrade_driver.py seed|verify STATE_DIR")
    (seed if sys.argv[1] == "seed" else verify)(Path(sys.argv[2]))
