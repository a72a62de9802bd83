"""`shopsync demo` end to end, as `make demo` runs it (a subprocess against the environment's stack).

The demo resets the stack; this module resets it again afterwards and widens the licences as the
session fixture did, so the modules after it start from the same seeded state. No other module's
module-scoped fixture spans it (pytest runs modules one after another).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_client import ROOT, SHOP_A, SHOP_B, local_rows, shop_rows

from shopsync import LocalStore

EXE = os.path.join(os.path.dirname(sys.executable), "shopsync")
SYNCED = ["customers", "inventory_levels", "invoices", "order_items", "orders", "products", "shop_settings",
          "stock_movements"]


@pytest.fixture(scope="module")
def demo_run(client_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("demo")
    report = folder / "report.json"
    env = {**os.environ, "SUPABASE_YES": "1", "SHOPSYNC_PROJECT_DIR": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run([EXE, "demo", "--skip-setup", "--dir", str(folder), "--report", str(report)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    took = time.monotonic() - started
    try:
        yield {"done": done, "report": json.loads(report.read_text()) if report.exists() else None,
               "folder": folder, "seconds": took}
    finally:
        reset = subprocess.run([EXE, "stack", "reset"], capture_output=True, text=True, cwd=ROOT, env=env)
        assert reset.returncode == 0, reset.stderr
        import psycopg

        with psycopg.connect(client_stack.db_url, autocommit=True) as conn:
            conn.execute("update public.licenses set max_devices = 100000")


@pytest.mark.local_stack
def test_the_demo_exits_0_with_a_converged_final_table(demo_run: dict[str, Any]) -> None:
    done = demo_run["done"]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert demo_run["seconds"] < 60, f"the demo took {demo_run['seconds']:.1f}s"
    # The story, as printed: registration and a progress bar, real offline failures, conflicts, settling.
    assert re.search(r"initial pull \[#+\] 20,\d{3}/20,\d{3} \(100%\)", out)
    assert out.count("sync attempt -> TransportError: Connection refused") == 3
    assert "(manual, concurrent_update)" in out and "(last_write_wins, overridden)" in out
    assert "keep='local'" in out
    assert "CONVERGED" in out and "DIVERGED" not in out
    # Live sync: the other till had the sale within a second, brought by the Realtime poke.
    assert re.search(r"till-a2, polling only every hour now, has it \d+ ms after the push returned", out)
    assert "till-a2: status().live = True" in out
    # The final table: one line per synced table and shop, every device 'ok' against the server.
    for shop, devices in (("Shop A", 2), ("Shop B", 1)):
        header = next(i for i, line in enumerate(out.splitlines()) if line.split()[:3] == [*shop.split(), "server"])
        rows = out.splitlines()[header + 1: header + 1 + len(SYNCED)]
        assert [r.split()[0] for r in rows] == SYNCED
        for r in rows:
            cells = r.split()
            server_count, server_hash = cells[1], cells[2]
            assert cells[3:] == [server_count, server_hash, "ok"] * devices, r


@pytest.mark.local_stack
def test_the_demo_report_agrees_with_the_tills_files_and_the_server(demo_run: dict[str, Any], sql: Any) -> None:
    """An independent check: the tills' SQLite files against the server's rows, not through the demo's code."""
    report = demo_run["report"]
    assert report is not None and report["ok"] is True and report["failures"] == []
    for shop, tables in report["tables"].items():
        assert sorted(tables) == SYNCED
        for name, cells in tables.items():
            assert all(v == cells["server"] for v in cells.values()), (shop, name, cells)
    assert report["tables"]["Shop A"]["products"]["server"][0] == 20_005
    assert report["isolation"] == {t: {"other_shop_rows": 0, "shop_a_ids": 0} for t in ("till-b1", "till-a1", "till-a2")}
    assert {k: v["expected"] for k, v in report["stock"].items()} == {
        "Shop A/MUG-01": "45", "Shop A/COF-250": "47", "Shop A/TEA-100": "46",
        "Shop B/MUG-01": "49", "Shop B/COF-250": "46", "Shop B/TEA-100": "50"}
    assert all(c["server"]["ok"] and c["server"]["checked"] == c["issued"] for c in report["chains"].values())
    assert report["merge"]["order_total"] == "27.00"
    assert report["live"]["joined"] is True and report["live"]["arrived"] is True
    assert report["live"]["visible_ms"] < 1000
    # The files the tills left behind, read with the client, against the server as postgres. (The
    # stack is still the demo's: the module fixture resets it only after the module.)
    folder: Path = demo_run["folder"]
    for name, shop in (("till-a1", SHOP_A), ("till-a2", SHOP_A), ("till-b1", SHOP_B)):
        store = LocalStore(folder / f"{name}.db")
        try:
            assert local_rows(store) == shop_rows(sql, shop, store), name
            assert store.outbox.count() == 0 and store.conflict_log.count_open() == 0
        finally:
            store.close()
    levels = dict(sql("select p.sku, l.on_hand::int from public.inventory_levels as l join public.products as p"
                      " on p.id = l.product_id where l.shop_id = %s and p.sku in ('MUG-01', 'COF-250', 'TEA-100')",
                      (SHOP_A,)))
    assert levels == {"MUG-01": 45, "COF-250": 47, "TEA-100": 46}
