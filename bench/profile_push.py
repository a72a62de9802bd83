"""Where a push's time goes: client vs RPC, and the server's statements (pg_stat_statements with
track = all, so the statements inside shopsync.push are listed one by one).

    .venv/bin/python bench/profile_push.py [--events 20000] [--batch 500] [--top 25]

Against the stack the environment names; creates its own shop and device. Turns
``pg_stat_statements.track`` to ``all`` for the run (ALTER SYSTEM + reload) and back after.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    settings = run.load_settings(run.ROOT / ".env")
    with tempfile.TemporaryDirectory(prefix="shopsync-profile-") as tmp:
        b = run.Bench(settings, run.FULL, Path(tmp))
        c = b.conn
        c.execute("create extension if not exists pg_stat_statements with schema extensions")
        c.execute("alter system set pg_stat_statements.track = 'all'")
        c.execute("alter system set pg_stat_statements.track_planning = on")
        c.execute("select pg_reload_conf()")
        try:
            with run.raised_limits(c):
                shop, email = b.make_shop("profile")
                client = b.device("profile", email, batch_size=args.batch)
                client.register()
                run.queue_customers(client, args.events, "p")
                rpc_time = [0.0]
                inner = client.transport.call

                def timed_call(fn: str, params: dict[str, Any]) -> Any:
                    t = time.perf_counter()
                    try:
                        return inner(fn, params)
                    finally:
                        rpc_time[0] += time.perf_counter() - t

                client.transport.call = timed_call  # type: ignore[method-assign]
                time.sleep(0.5)
                c.execute("select extensions.pg_stat_statements_reset()")
                t0 = time.perf_counter()
                r = client.push()
                total = time.perf_counter() - t0
                rows = c.execute(
                    "select calls, round(total_exec_time::numeric, 1), round((total_exec_time / greatest(calls, 1))::numeric, 3),"
                    " rows, regexp_replace(left(query, 160), '\\s+', ' ', 'g')"
                    " from extensions.pg_stat_statements where query not ilike '%%pg_stat_statements%%'"
                    " order by total_exec_time desc limit %s", (args.top,)).fetchall()
                # Planning of the statements inside the push (track_planning counts nested plans too).
                plans = c.execute(
                    "select coalesce(sum(total_plan_time), 0)::float8, coalesce(sum(plans), 0)::float8"
                    " from extensions.pg_stat_statements where query not ilike '%%pg_stat_statements%%'").fetchone()
        finally:
            c.execute("alter system reset pg_stat_statements.track")
            c.execute("alter system reset pg_stat_statements.track_planning")
            c.execute("select pg_reload_conf()")
    n = args.events
    print(f"{n} events, batch {args.batch}: {total:.2f}s = {n / total:,.0f} events/s; applied {r.applied},"
          f" errors {len(r.errors)}")
    print(f"  in RPC calls (HTTP + gateway + Postgres): {rpc_time[0]:.2f}s;"
          f" client-side (outbox read, JSON, applying results): {total - rpc_time[0]:.2f}s")
    calls_n = -(-n // args.batch)
    print(f"  planning of all statements: {plans[0] / calls_n:.2f} ms per call ({plans[1] / calls_n:.0f} plans per call)")
    print(f"\ntop statements by total time (ms), track = all:\n{'calls':>7} {'total':>9} {'mean':>8} {'rows':>8}  query")
    for calls, tot, mean, nrows, q in rows:
        print(f"{calls:>7} {tot:>9} {mean:>8} {nrows:>8}  {q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
