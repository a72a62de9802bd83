"""Threat: a device shows a state the server never had (an order without its items, a total that
does not match them, items without their order), because a pull page cut a server transaction in
two or retention compaction dropped part of what the device had not pulled yet.

Randomized: writers commit multi-table transactions concurrently (an order with its items and its
total, an item added or removed with the total, an order deleted with its items), retention runs
in between with zero keep windows (superseded entries dropped, tombstones purged at once), and
readers pulling with tiny pages check after every committed page that what they show holds the
invariant every committed server state holds. The seed is printed; SHOPSYNC_SEED replays one.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tenants import device_client, make_tenant

from shopsync import LocalStore, PullProgress
from shopsync_stack import mint_user_token

WRITERS = 2
ROUNDS = 8
BURST = 6  # transactions per writer and round
PAGE_SIZES = (2, 5)


def shown_violations(store: LocalStore) -> list[str]:
    """What no committed server state has: a live order whose total is not the sum of its live
    items, a live item whose order is missing or deleted."""
    orders = {o["id"]: o for o in store.query("orders")}
    sums: dict[str, Decimal] = {}
    bad: list[str] = []
    for item in store.query("order_items"):
        if item["order_id"] not in orders:
            bad.append(f"item {item['id']} without its order {item['order_id']}")
            continue
        sums[item["order_id"]] = sums.get(item["order_id"], Decimal(0)) + item["quantity"] * item["unit_price"]
    for oid, order in orders.items():
        if Decimal(order["total"]) != sums.get(oid, Decimal(0)):
            bad.append(f"order {oid} total {order['total']} but its items sum to {sums.get(oid, 0)}")
    return bad


class Writer(threading.Thread):
    """Commits ``BURST`` transactions into one shop per round it is let go (``go.release()``),
    each keeping the invariant."""

    def __init__(self, db_url: str, shop_id: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.db_url, self.shop_id, self.rnd = db_url, shop_id, random.Random(seed)
        self.orders: dict[str, dict[str, Decimal]] = {}  # order -> item -> amount
        self.go = threading.Semaphore(0)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.db_url) as conn:
                for _ in range(ROUNDS):
                    self.go.acquire()
                    for _ in range(BURST):
                        with conn.transaction():
                            self.one(conn)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def add_item(self, conn: psycopg.Connection[Any], order: str) -> None:
        item, qty, price = str(uuid.uuid4()), self.rnd.randint(1, 5), Decimal(self.rnd.randint(1, 9999)) / 100
        conn.execute("insert into public.order_items (id, shop_id, order_id, quantity, unit_price)"
                     " values (%s, %s, %s, %s, %s)", (item, self.shop_id, order, qty, price))
        self.orders[order][item] = qty * price

    def set_total(self, conn: psycopg.Connection[Any], order: str) -> None:
        conn.execute("update public.orders set total = %s where id = %s", (sum(self.orders[order].values()), order))

    def one(self, conn: psycopg.Connection[Any]) -> None:
        live = sorted(self.orders)
        kind = self.rnd.choice(["create", "create", "add", "remove", "delete"] if live else ["create"])
        if kind == "create":
            order = str(uuid.uuid4())
            self.orders[order] = {}
            conn.execute("insert into public.orders (id, shop_id, total) values (%s, %s, 0)", (order, self.shop_id))
            for _ in range(self.rnd.randint(1, 4)):
                self.add_item(conn, order)
            self.set_total(conn, order)
        elif kind == "add":
            order = self.rnd.choice(live)
            self.add_item(conn, order)
            self.set_total(conn, order)
        elif kind == "remove" and any(self.orders[o] for o in live):
            order = self.rnd.choice([o for o in live if self.orders[o]])
            item = self.rnd.choice(sorted(self.orders[order]))
            conn.execute("update public.order_items set deleted_at = now() where id = %s", (item,))
            del self.orders[order][item]
            self.set_total(conn, order)
        else:
            order = self.rnd.choice(live)
            conn.execute("update public.order_items set deleted_at = now() where order_id = %s"
                         " and deleted_at is null", (order,))
            conn.execute("update public.orders set deleted_at = now() where id = %s", (order,))
            del self.orders[order]


def test_readers_with_tiny_pages_show_only_states_the_server_had(client_stack: Any, tmp_path: Path) -> None:
    seed = int(os.environ.get("SHOPSYNC_SEED") or random.randrange(1 << 30))
    print(f"SHOPSYNC_SEED={seed}")
    rnd = random.Random(seed)
    with psycopg.connect(client_stack.db_url, autocommit=True) as admin:
        tenant = make_tenant(admin, "consistent")
        token = mint_user_token(client_stack, tenant.staff)
        readers = []
        checked: list[int] = []
        staged: list[int] = []
        violations: list[str] = []
        for n, page in enumerate(PAGE_SIZES):
            store = LocalStore(tmp_path / f"reader{n}.db")
            client = device_client(client_stack, store, client_stack.api_url, token, timeout=30.0,
                                   device_name=f"reader{n}", page_size=page)
            client.register()

            def check(progress: PullProgress, store: LocalStore = store) -> None:
                checked.append(1)
                if getattr(progress, "staged", 0):
                    staged.append(progress.staged)
                violations.extend(shown_violations(store))

            client.add_pull_listener(check)
            readers.append(client)
        writers = [Writer(client_stack.db_url, tenant.shop_id, rnd.randrange(1 << 30)) for _ in range(WRITERS)]
        for w in writers:
            w.start()
        retention: list[Any] = []
        for _ in range(ROUNDS):  # the writers' burst runs while the readers pull
            for w in writers:
                w.go.release()
            for client in readers:
                client.pull().raise_for_errors()
                assert not violations, violations[:5]
            if rnd.random() < 0.5:
                retention.append(admin.execute(
                    "select shopsync.run_retention(interval '0 seconds', interval '0 seconds')").fetchone()[0])
        for w in writers:
            w.join()
            assert w.error is None, w.error
        retention.append(admin.execute(
            "select shopsync.run_retention(interval '0 seconds', interval '0 seconds')").fetchone()[0])
        server = {(t, str(rid), int(v)) for t in ("orders", "order_items") for rid, v in admin.execute(
            f"select id, version from public.{t} where shop_id = %s and deleted_at is null", (tenant.shop_id,))}
        for client in readers:
            client.pull().raise_for_errors()
            assert not violations, violations[:5]
            shown = {(t, r["id"], r["version"]) for t in ("orders", "order_items") for r in client.store.query(t)}
            assert shown == server
            client.stop(timeout=5)
            client.store.close()
    print(f"pages checked {len(checked)}, staged pages {len(staged)}, retention {retention}")
    assert len(checked) > 20 and staged, "the readers never met a transaction bigger than a page"
    assert any(r["superseded_entries_dropped"] for r in retention) and any(r["tombstones_purged"] for r in retention)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])
