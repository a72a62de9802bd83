"""An initial pull hashes the rows it stages, page by page, so the check at the tip does not hash
the tables again: a table the device held nothing of is staged into its shadow (its own column
types, keyed on id) with a running checksum kept in the page's own SQLite transaction, and when
the shadow is merged into a table still holding nothing, that checksum is the table's. The check
must stay exactly as strong: a row replaced across pages, a local write during the staging, an
edit behind the library's back and a crash mid-staging all still end verified and equal to the
server. Real HTTP, real SQLite files, fresh shops (nothing else in their log)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest_client import whole_table_hashes
from tenants import Tenant, make_tenant

from shopsync import LocalStore, SyncClient
from shopsync.staging import SHADOW_PREFIX, PullStage

PAGE = 40
CUSTOMERS = 150
PRODUCTS = 30


@pytest.fixture
def tenant(client_stack: Any) -> Iterator[Tenant]:
    with psycopg.connect(client_stack.db_url, autocommit=True) as conn:
        yield make_tenant(conn, "shadow")


def _one_transaction(db_url: str, shop_id: str, *steps: tuple[str, tuple[Any, ...]]) -> None:
    with psycopg.connect(db_url) as conn, conn.transaction():
        for statement, params in steps:
            conn.execute(statement, params)


def _seed(shop_id: str, n: int = CUSTOMERS, tag: str = "c") -> tuple[str, tuple[Any, ...]]:
    return ("insert into public.customers (id, shop_id, name, email, notes) select gen_random_uuid(), %s,"
            " %s || g, %s || g || '@x.test', case when g %% 3 = 0 then null else 'note ' || g end"
            " from generate_series(1, %s) as g", (shop_id, tag, tag, n))


def _products(shop_id: str) -> tuple[str, tuple[Any, ...]]:
    return ("insert into public.products (id, shop_id, sku, name, price, tax_rate, active) select gen_random_uuid(),"
            " %s, 'sku' || g, 'product ' || g, (g * 1.5)::numeric(12,2), 21, g %% 2 = 0"
            " from generate_series(1, %s) as g", (shop_id, PRODUCTS))


def _shadowed(monkeypatch: Any) -> list[str]:
    """The tables whose pages went into a shadow."""
    seen: list[str] = []
    real = PullStage._add_shadow  # noqa: SLF001

    def spy(self: PullStage, spec: Any, *args: Any) -> int:
        seen.append(spec.name)
        return real(self, spec, *args)

    monkeypatch.setattr(PullStage, "_add_shadow", spy)
    return seen


def _server(sql: Callable[..., Any], table: str, shop_id: str, columns: str) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in sql(f"select id::text, version, {columns} from public.{table}"
                                  " where shop_id = %s and deleted_at is null", (shop_id,))}


def _local(store: LocalStore, table: str, columns: str) -> set[tuple[Any, ...]]:
    return {(r["id"], r["version"], *(r[c] for c in columns.split(", "))) for r in store.query(table)}


def test_an_initial_pull_of_a_big_transaction_is_verified_without_hashing_a_table(
        make_device: Any, tenant: Tenant, sql: Any, monkeypatch: Any, client_stack: Any) -> None:
    _one_transaction(client_stack.db_url, tenant.shop_id, _seed(tenant.shop_id), _products(tenant.shop_id))
    dev = make_device("shadow-initial", tenant.staff, sync=False, page_size=PAGE)
    whole, shadowed = whole_table_hashes(monkeypatch), _shadowed(monkeypatch)
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.verified is True and not result.repairs and result.pulled == CUSTOMERS + PRODUCTS
    assert {"customers", "products"} <= set(shadowed) and len(shadowed) > 3  # several pages each
    assert "customers" not in whole and "products" not in whole  # the running checksums were the tables'
    assert _local(dev.store, "customers", "name, email, notes") == _server(sql, "customers", tenant.shop_id,
                                                                          "name, email, notes")
    got = {(r["id"], r["price"], r["active"]) for r in dev.store.query("products")}
    assert got == {(str(i), Decimal(p), a) for i, p, a in sql(
        "select id, price, active from public.products where shop_id = %s", (tenant.shop_id,))}
    assert dev.store.stage.staged_tables() == [] and dev.store.stage.count() == 0  # the shadows are gone
    # the next sync checks the held checksums (nothing hashed whole either)
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.verified is True and not result.repairs and "customers" not in whole


def test_a_row_replaced_across_the_pages_of_one_transaction_moves_the_running_checksum(
        make_device: Any, tenant: Tenant, sql: Any, monkeypatch: Any, client_stack: Any) -> None:
    shop = tenant.shop_id
    first = ("update public.customers set name = 'renamed once' where id = (select id from public.customers"
             " where shop_id = %s and name = 'c7')", (shop,))
    twice = ("update public.customers set name = 'renamed twice', notes = null where id = (select id from"
             " public.customers where shop_id = %s and name = 'renamed once')", (shop,))
    gone = ("update public.customers set deleted_at = now() where id = (select id from public.customers"
            " where shop_id = %s and name = 'c8')", (shop,))
    _one_transaction(client_stack.db_url, shop, _seed(shop), first, _seed(shop, 60, "d"), twice, gone,
                     _seed(shop, 60, "e"))
    dev = make_device("shadow-replaced", tenant.staff, sync=False, page_size=PAGE)
    whole = whole_table_hashes(monkeypatch)
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.verified is True and not result.repairs
    assert "customers" not in whole
    assert _local(dev.store, "customers", "name, notes") == _server(sql, "customers", shop, "name, notes")
    [renamed] = dev.store.query("customers", {"name": "renamed twice"})
    assert renamed["notes"] is None and renamed["version"] == 3
    assert dev.store.query("customers", {"name": "c8"}) == [] and dev.store.count("customers") == CUSTOMERS + 119


def test_a_local_write_during_the_staging_falls_back_to_hashing_the_table(
        make_device: Any, tenant: Tenant, sql: Any, monkeypatch: Any, client_stack: Any) -> None:
    _one_transaction(client_stack.db_url, tenant.shop_id, _seed(tenant.shop_id))
    dev = make_device("shadow-sold-meanwhile", tenant.staff, sync=False, page_size=PAGE)
    whole, shadowed = whole_table_hashes(monkeypatch), _shadowed(monkeypatch)
    pages: list[int] = []

    def sell_during_the_sync(page: dict[str, Any]) -> None:
        pages.append(1)
        if len(pages) == 2:  # the app writes while the initial sync stages (same transaction as the page)
            dev.store.insert("customers", {"name": "walked in during the sync"})

    dev.client.pull_page_hook = sell_during_the_sync
    result = dev.client.sync()
    result.raise_for_errors()
    assert "customers" in shadowed and len(pages) > 2
    assert result.verified is True and not result.repairs
    assert "customers" in whole  # the table held a row of its own at the merge: hashed whole
    dev.client.pull_page_hook = None
    result = dev.client.sync()  # the sale goes up and comes back
    result.raise_for_errors()
    assert result.pushed == 1 and result.verified is True and not result.repairs
    assert _local(dev.store, "customers", "name") == _server(sql, "customers", tenant.shop_id, "name")


def test_an_edit_behind_the_librarys_back_after_the_initial_pull_is_found_and_repaired(
        make_device: Any, tenant: Tenant, sql: Any, monkeypatch: Any, client_stack: Any) -> None:
    _one_transaction(client_stack.db_url, tenant.shop_id, _seed(tenant.shop_id))
    dev = make_device("shadow-drift", tenant.staff, sync=False, page_size=PAGE)
    whole = whole_table_hashes(monkeypatch)
    dev.client.sync().raise_for_errors()
    assert "customers" not in whole
    [row] = dev.store.query("customers", {"name": "c5"})
    conn = sqlite3.connect(str(dev.store.path), timeout=30)
    with conn:
        conn.execute("update customers set name = 'Tampered' where id = ?", (row["id"],))
    conn.close()
    result = dev.client.sync()
    result.raise_for_errors()
    assert "customers" in whole  # another connection wrote the file: the recorded checksum is not trusted
    assert [r.table for r in result.repairs] == ["customers"] and result.verified is True
    assert dev.store.get("customers", row["id"])["name"] == "c5"


CHILD = textwrap.dedent("""
    import os, signal, sys
    import supabase
    from shopsync import LocalStore, SyncClient

    path, url, anon_key, token, kill_at_page, page_size = sys.argv[1:]
    store = LocalStore(path)
    client = SyncClient(store, supabase.create_client(url, anon_key), access_token=token,
                        page_size=int(page_size), device_name="shadow-crashy")
    client.register()
    pages = 0

    def hook(page):
        global pages
        pages += 1
        print("page", pages, "consistent", page["consistent"], flush=True)
        if pages == int(kill_at_page):
            os.kill(os.getpid(), signal.SIGKILL)  # this page's rows and checksum are not committed

    client.pull_page_hook = hook
    client.sync()
    print("not killed", flush=True)
""")


def test_killed_mid_staging_the_shadow_resumes_and_still_needs_no_hash(
        client_stack: Any, token_for: Any, tenant: Tenant, tmp_path: Path, sql: Any, monkeypatch: Any) -> None:
    import supabase

    _one_transaction(client_stack.db_url, tenant.shop_id, _seed(tenant.shop_id))
    path = tmp_path / "crashy.db"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), client_stack.api_url, client_stack.anon_key,
         token_for(tenant.staff), "3", str(PAGE)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert "page 3 consistent False" in done.stdout

    store = LocalStore(path)
    conn = store._conn  # noqa: SLF001 (what the file holds after the crash)
    assert store.stage.cursor() is not None and store.count("customers") == 0
    assert conn.execute("select count(*) from " + SHADOW_PREFIX + "customers").fetchone()[0] == 2 * PAGE
    assert store.get_meta("shadow_sum:customers") is not None  # the running checksum of the 2 committed pages
    whole = whole_table_hashes(monkeypatch)
    client = SyncClient(store, supabase.create_client(client_stack.api_url, client_stack.anon_key),
                        access_token=token_for(tenant.staff), page_size=PAGE)
    result = client.sync()
    result.raise_for_errors()
    assert result.verified is True and not result.repairs and "customers" not in whole
    assert _local(store, "customers", "name, email, notes") == _server(sql, "customers", tenant.shop_id,
                                                                      "name, email, notes")
    client.stop(timeout=5)
    store.close()
