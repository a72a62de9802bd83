"""A till's sale as the server sees it: ten events (an invoice, an order, four items, four stock
movements) built by the client library, and their push timed directly in Postgres.

    .venv/bin/python bench/sale.py [--sales 200] [--statements] [--floor]

Prints the p50/p90 of one 10-event ``sync_push`` measured on a direct connection (the statement
and its commit: no HTTP, no gateway), and with ``--statements`` the server's statements of those
pushes (pg_stat_statements with track = all and track_planning: the planning of the statements
inside the functions too) per push. With ``--floor``: the same sales alternately pushed and
written by four plain inserts (one per table, as postgres, every trigger on: versions, change log,
checksums, stock levels, invoice chain), the floor a push cannot go under while it keeps those
writes. bench/run.py's small-push and fleet rows use the same sale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py)

PRODUCTS = 20
ITEMS = 4  # a sale: 1 invoice + 1 order + ITEMS items + ITEMS movements = 10 events


def seed_products(b: run.Bench, shop: str) -> list[tuple[str, str]]:
    """PRODUCTS products in the shop; (id, price)."""
    rows = [(str(uuid.uuid4()), f"{1 + i}.50") for i in range(PRODUCTS)]
    with b.conn.cursor() as cur:
        cur.executemany("insert into public.products (id, shop_id, sku, name, price, tax_rate)"
                        " values (%s, %s, %s, %s, %s, 19)",
                        [(pid, shop, f"SKU-{i}", f"Product {i}", price) for i, (pid, price) in enumerate(rows)])
    return rows


def sell(client: Any, products: list[tuple[str, str]], k: int) -> None:
    """One sale queued in the till's outbox (one local transaction): 10 events."""
    store = client.store
    basket = [products[(k * ITEMS + j) % len(products)] for j in range(ITEMS)]
    with store.transaction():
        lines = [{"product_id": pid, "description": f"item {pid[:4]}", "quantity": "1", "unit_price": price,
                  "tax_rate": "19"} for pid, price in basket]
        inv = store.issue_invoice(lines)
        order = store.insert("orders", {"status": "paid", "total": inv["total"]})
        for pid, price in basket:
            store.insert("order_items", {"order_id": order["id"], "product_id": pid, "quantity": "1",
                                         "unit_price": price})
            store.record_movement(pid, "-1", "sale", ref_id=inv["id"])


def queued_sales(client: Any, products: list[tuple[str, str]], n: int) -> list[list[dict[str, Any]]]:
    """n sales queued in the till, as the event lists its pushes would carry (10 events each)."""
    before = len(client.store.outbox.all())
    for k in range(n):
        sell(client, products, k)
    events = [e.to_event() for e in client.store.outbox.all()][before:]
    per = 2 + 2 * ITEMS
    return [events[i:i + per] for i in range(0, len(events), per)]


def sale_device(b: run.Bench, tag: str) -> tuple[Any, list[tuple[str, str]], str, str]:
    """A new shop with its catalog and one registered till; (client, products, shop, email)."""
    shop, email = b.make_shop(tag)
    products = seed_products(b, shop)
    client = b.device(tag, email)
    client.register()
    return client, products, shop, email


def backend_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one Postgres backend so far, from /proc (the stack runs on
    this machine): unlike wall time, not inflated by other sessions' load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct_pushes(b: run.Bench, client: Any, email: str, sales: list[list[dict[str, Any]]],
                  cpu: list[float] | None = None, warm: int = 0) -> list[float]:
    """Each sale pushed in its own transaction on one direct connection, as the gateway calls it
    (role, claims, headers set transaction-locally); the milliseconds of each statement + commit,
    after the first ``warm`` pushes (a new backend's first calls compile and cache). ``cpu`` gets
    the backend's CPU seconds over the timed pushes appended."""
    claims = run_claims(b, email)
    headers = json.dumps({"x-device-secret": client.store.get_meta("device_secret")})
    device = client.store.device_id
    times: list[float] = []
    with psycopg.connect(b.settings.db_url) as conn:
        pid = conn.info.backend_pid
        cpu0 = 0.0
        for k, events in enumerate(sales):
            if k == warm:
                cpu0 = backend_cpu_s(pid)
            conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true),"
                         " set_config('request.headers', %s, true)", (json.dumps(claims), headers))
            body = json.dumps(events)
            t0 = time.perf_counter()
            r = conn.execute("select public.sync_push(%s, %s::jsonb)::text", (device, body)).fetchone()
            conn.commit()
            if k >= warm:
                times.append((time.perf_counter() - t0) * 1000)
            res = json.loads(r[0]) if r else {}
            bad = [x for x in res.get("results", []) if x.get("status") != "applied"]
            if bad:
                raise RuntimeError(f"sale push not applied: {bad[:2]}")
        if cpu is not None:
            cpu.append(backend_cpu_s(pid) - cpu0)
    return times


def run_claims(b: run.Bench, email: str) -> dict[str, Any]:
    import base64

    payload = b.token(email).split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def profile_sales(b: run.Bench, n: int, statements: bool, top: int = 30) -> dict[str, Any]:
    client, products, _shop, email = sale_device(b, f"sale-{uuid.uuid4().hex[:6]}")
    sales = queued_sales(client, products, n)
    warm = min(5, len(sales) // 4)
    c = b.conn
    rows: list[Any] = []
    totals: Any = None
    if statements:
        c.execute("create extension if not exists pg_stat_statements with schema extensions")
        c.execute("alter system set pg_stat_statements.track = 'all'")
        c.execute("alter system set pg_stat_statements.track_planning = on")
        c.execute("select pg_reload_conf()")
    try:
        if statements:
            time.sleep(0.3)
            c.execute("select extensions.pg_stat_statements_reset()")  # (the warm-up pushes are counted too)
        cpu: list[float] = []
        times = direct_pushes(b, client, email, sales, cpu, warm)
        if statements:
            rows = c.execute(
                "select calls, total_exec_time, total_plan_time, rows, shared_blks_hit,"
                " regexp_replace(left(query, 150), '\\s+', ' ', 'g')"
                " from extensions.pg_stat_statements where query not ilike '%%pg_stat_statements%%'"
                " order by total_exec_time + total_plan_time desc limit %s", (top,)).fetchall()
            totals = c.execute(
                "select sum(total_plan_time), count(*) filter (where total_plan_time > 0), sum(plans)"
                " from extensions.pg_stat_statements where query not ilike '%%pg_stat_statements%%'").fetchone()
    finally:
        if statements:
            c.execute("alter system reset pg_stat_statements.track")
            c.execute("alter system reset pg_stat_statements.track_planning")
            c.execute("select pg_reload_conf()")
        client.store.close()
    return {"pushes": len(times), "events_per_push": 2 + 2 * ITEMS, "p50_ms": statistics.median(times),
            "backend_cpu_ms_per_push": 1000 * cpu[0] / max(len(times), 1),
            "p90_ms": percentile(times, 90), "mean_ms": statistics.fmean(times), "statements": rows,
            "planning": totals}


#: The order a sale's tables are written in (an order's items and movements after what they name).
SALE_TABLES = ("invoices", "orders", "order_items", "stock_movements")


def floor_vs_push(b: run.Bench, n: int, warm: int = 5) -> dict[str, Any]:
    """n + warm sales pushed through ``sync_push`` and as many written by plain inserts (one
    ``insert ... select from jsonb_populate_recordset`` per table, as postgres: every trigger runs,
    no push machinery), alternating on one direct connection; milliseconds of statements + commit
    after ``warm`` of each, and the plain path per table."""
    client, products, shop, email = sale_device(b, f"floor-{uuid.uuid4().hex[:6]}")
    sales = queued_sales(client, products, 2 * (n + warm))
    claims = json.dumps(run_claims(b, email))
    headers = json.dumps({"x-device-secret": client.store.get_meta("device_secret")})
    device = client.store.device_id
    pushed: list[float] = []
    plain: list[float] = []
    per_table: dict[str, list[float]] = {t: [] for t in (*SALE_TABLES, "commit")}
    try:
        with psycopg.connect(b.settings.db_url) as conn:
            columns = {t: {r[0] for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'public'"
                " and table_name = %s", (t,))} for t in SALE_TABLES}
            for k, events in enumerate(sales):
                timed = k >= 2 * warm
                if k % 2 == 0:
                    conn.execute("select set_config('role', 'authenticated', true),"
                                 " set_config('request.jwt.claims', %s, true), set_config('request.headers', %s, true)",
                                 (claims, headers))
                    t0 = time.perf_counter()
                    r = conn.execute("select public.sync_push(%s, %s::jsonb)::text", (device, json.dumps(events))).fetchone()
                    conn.commit()
                    if timed:
                        pushed.append((time.perf_counter() - t0) * 1000)
                    bad = [x for x in json.loads(r[0] if r else "{}").get("results", []) if x.get("status") != "applied"]
                    if bad:
                        raise RuntimeError(f"sale push not applied: {bad[:2]}")
                    continue
                rows: dict[str, list[dict[str, Any]]] = {}
                for e in events:
                    row = {c: v for c, v in e["data"].items() if c in columns[e["table"]]}
                    rows.setdefault(e["table"], []).append({**row, "id": e["row_id"], "shop_id": shop})
                t0 = t = time.perf_counter()
                for table in SALE_TABLES:
                    if table in rows:
                        names = ", ".join(f'"{c}"' for c in rows[table][0])
                        conn.execute(f"insert into public.{table} ({names}) select {names}"  # noqa: S608 (bench)
                                     f" from jsonb_populate_recordset(null::public.{table}, %s::jsonb)",
                                     (json.dumps(rows[table]),))
                    if timed:
                        per_table[table].append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                conn.commit()
                if timed:
                    per_table["commit"].append((time.perf_counter() - t) * 1000)
                    plain.append((time.perf_counter() - t0) * 1000)
    finally:
        client.store.close()
    p, f = statistics.median(pushed), statistics.median(plain)
    return {"sales": n, "push_p50_ms": p, "floor_p50_ms": f, "floor_share": f / p,
            "floor_per_table_p50_ms": {t: statistics.median(v) for t, v in per_table.items() if v}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sales", type=int, default=200)
    ap.add_argument("--statements", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--floor", action="store_true", help="the sale's floor: its rows by plain inserts")
    args = ap.parse_args()
    settings = run.load_settings(run.ROOT / ".env")
    with tempfile.TemporaryDirectory(prefix="shopsync-sale-") as tmp:
        b = run.Bench(settings, run.FULL, Path(tmp))
        with run.raised_limits(b.conn):
            if args.floor:
                fl = floor_vs_push(b, args.sales)
                print(f"{fl['sales']} sales each way, alternating, direct: sync_push p50 {fl['push_p50_ms']:.2f} ms;"
                      f" the same rows by four plain inserts with every trigger p50 {fl['floor_p50_ms']:.2f} ms"
                      f" ({fl['floor_share']:.2f} of the push)")
                print("plain inserts per table, p50 ms: " + ", ".join(
                    f"{t} {v:.2f}" for t, v in fl["floor_per_table_p50_ms"].items()))
                return 0
            r = profile_sales(b, args.sales, args.statements, args.top)
    print(f"{r['pushes']} sale pushes of {r['events_per_push']} events, direct: p50 {r['p50_ms']:.2f} ms,"
          f" p90 {r['p90_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms; backend CPU {r['backend_cpu_ms_per_push']:.2f} ms"
          " per push")
    if r["statements"]:
        n = args.sales  # the statements of the warm-up pushes are counted too
        plan_ms, _, plans = r["planning"]
        print(f"planning of all statements: {plan_ms / n:.2f} ms per push ({plans / n:.0f} plans per push)")
        print(f"\nstatements per push (track = all, track_planning; ms per push = total / {n}):")
        print(f"{'calls/push':>10} {'exec ms':>8} {'plan ms':>8} {'blks':>7}  query")
        for calls, tot, plan, _rows, blks, q in r["statements"]:
            print(f"{calls / n:>10.1f} {tot / n:>8.3f} {plan / n:>8.3f} {blks / n:>7.0f}  {q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
