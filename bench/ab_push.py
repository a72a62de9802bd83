"""Two versions of the push functions side by side in one run, alternating (the machine is shared
and noisy: compare within a run, never across runs).

    .venv/bin/python bench/ab_push.py BEFORE.sql AFTER.sql [--rounds 2] [--sales 60] [--events 5000]

Each SQL file holds `create or replace function` statements (say, main's definitions and this
branch's); each round applies one, then measures: a sale (10 events) pushed on a direct connection
(p50 ms), a batch-500 push of ``events`` customer inserts through the gateway (events/s, and the
server's ms per 500 from extensions.pg_stat_statements, and the CPU time of all Postgres processes per event),
and the raw insert of the same rows. CPU time (from /proc) is far less disturbed by other sessions
than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet  # noqa: E402
import run  # noqa: E402  (bench/run.py)
import sale  # noqa: E402


def batch_push(b: run.Bench, n: int, tag: str) -> dict[str, Any]:
    shop, email = b.make_shop(tag)
    client = b.device(tag, email, batch_size=500)
    client.register()
    run.queue_customers(client, n, tag)
    events = [e.to_event() for e in client.store.outbox.all()]
    b.conn.execute("select extensions.pg_stat_statements_reset()")
    cpu0 = fleet.server_cpu()
    t0 = time.perf_counter()
    r = client.push()
    dt = time.perf_counter() - t0
    cpu1 = fleet.server_cpu()
    row = b.conn.execute("select coalesce(sum(total_exec_time), 0)::float8, coalesce(sum(calls), 0)::float8"
                         " from extensions.pg_stat_statements"
                         " where query like '%%sync_push%%' and query not like '%%pg_stat_statements%%'").fetchone()
    client.store.close()
    raw = run.raw_insert(b, shop, events)
    pg_cpu = (cpu1["postgres"] - cpu0["postgres"]) if cpu0 and cpu1 else float("nan")
    return {"events_per_s": run.rate(n, dt), "errors": n - r.applied, "server_ms_per_500": row[0] / max(row[1], 1),
            "postgres_cpu_us_per_event": 1e6 * pg_cpu / n,
            "raw_rows_per_s": raw["events_per_s"], "ratio_vs_raw": run.rate(n, dt) / raw["events_per_s"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sales", type=int, default=60)
    ap.add_argument("--events", type=int, default=5000)
    args = ap.parse_args()
    settings = run.load_settings(run.ROOT / ".env")
    out: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="shopsync-ab-") as tmp:
        b = run.Bench(settings, run.FULL, Path(tmp))
        b.conn.execute("create extension if not exists pg_stat_statements with schema extensions")
        with run.raised_limits(b.conn):
            for rnd in range(args.rounds):
                for name in ("before", "after"):
                    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", settings.db_url, "-f",
                                    getattr(args, name)], check=True, capture_output=True)
                    s = sale.profile_sales(b, args.sales, statements=False)
                    p = batch_push(b, args.events, f"ab-{name}-{rnd}")
                    res = {"sale_p50_ms": s["p50_ms"], "sale_p90_ms": s["p90_ms"],
                           "sale_backend_cpu_ms": s["backend_cpu_ms_per_push"], **p}
                    out[name].append(res)
                    run.log(f"round {rnd + 1} {name}: sale p50 {s['p50_ms']:.2f} ms, backend CPU"
                            f" {s['backend_cpu_ms_per_push']:.2f} ms; batch 500 Postgres CPU"
                            f" {p['postgres_cpu_us_per_event']:.0f} us/event,"
                            f" {p['events_per_s']:,.0f} ev/s, server {p['server_ms_per_500']:.1f} ms/500,"
                            f" raw {p['raw_rows_per_s']:,.0f} rows/s, ratio {p['ratio_vs_raw']:.3f}, errors {p['errors']}")
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", settings.db_url, "-f", args.after],
                           check=True, capture_output=True)
    print("| measure | before (rounds) | after (rounds) | after / before (medians) |")
    print("|---|---|---|---|")
    for key in ("sale_p50_ms", "sale_p90_ms", "sale_backend_cpu_ms", "events_per_s", "server_ms_per_500",
                "postgres_cpu_us_per_event", "raw_rows_per_s", "ratio_vs_raw"):
        bv = [r[key] for r in out["before"]]
        av = [r[key] for r in out["after"]]
        print(f"| {key} | {' / '.join(f'{x:,.2f}' for x in bv)} | {' / '.join(f'{x:,.2f}' for x in av)} |"
              f" {statistics.median(av) / statistics.median(bv):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
