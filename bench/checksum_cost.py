"""What the checksum upkeep (supabase/migrations/20261202004000_verified_convergence.sql) costs.

Server time of ``shopsync.push`` as a device, before (the change-log triggers of
20261122000300_change_log.sql, installed inside the measuring transaction) and after (the current
ones), interleaved round by round in one run and rolled back each time: a batch of 500 inserts, a
batch of 500 updates, and a push of 10 events (5 inserts, 5 updates). Then the verification a sync
makes at the tip: ``sync_checksums`` server time, and the client's hashing rate.

Usage: ``.venv/bin/python bench/checksum_cost.py [--rounds N]`` with the stack up (SHOPSYNC_*_PORT).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from shopsync.checksums import table_checksum
from shopsync.schema import Schema
from shopsync_stack.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"
DEVICE = "d0000000-0000-4000-8000-00000000c0c0"


def old_log_functions() -> str:
    text = (ROOT / "supabase/migrations/20261122000300_change_log.sql").read_text()
    parts = [re.search(rf"create or replace function shopsync\.{name}\(\).*?\n\$\$;", text, re.S)
             for name in ("log_inserts", "log_updates")]
    return "\n".join(p.group(0) for p in parts if p)


def as_device(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("call tests.authenticate_as('staff@shop-a.test')")
    cur.execute("call tests.use_device_secret(tests.device_secret())")


def events(n_insert: int, update_ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"event_id": str(uuid.uuid4()), "table": "customers", "op": "insert", "row_id": str(uuid.uuid4()),
         "data": {"name": f"Bench {i}", "notes": "checksum cost ü"}, "client_ts": "2026-11-30T10:00:00Z"}
        for i in range(n_insert)]
    out += [{"event_id": str(uuid.uuid4()), "table": "customers", "op": "update", "row_id": rid,
             "base_version": 1, "data": {"notes": f"changed {uuid.uuid4().hex[:6]}"},
             "client_ts": "2026-11-30T10:00:00Z"} for rid in update_ids]
    return out


def timed_push(conn: psycopg.Connection[Any], old: bool, evs: list[dict[str, Any]]) -> float:
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        if old:
            cur.execute(old_log_functions())
        as_device(cur)
        t0 = time.perf_counter()
        cur.execute("select shopsync.push(%s, %s)", (DEVICE, json.dumps(evs)))
        answer = cur.fetchone()
        elapsed = time.perf_counter() - t0
        statuses = {r["status"] for r in answer[0]["results"]} if answer else set()
        assert statuses <= {"applied", "merged"}, answer[0]["results"][0] if answer else None
        return elapsed * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    settings = load_settings(ROOT / ".env")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", settings.db_url, "-f",
                    str(ROOT / "supabase/tests/helpers/tests.sql")], check=True, capture_output=True)
    try:
        with psycopg.connect(settings.db_url, autocommit=True) as conn:
            conn.execute("update public.licenses set max_devices = 100000")
            conn.execute("update shopsync.config set value = '1000000' where key like '%per_minute'")
            with conn.transaction(), conn.cursor() as cur:
                as_device(cur)
                cur.execute("call tests.register_device(%s, 'checksum bench')", (DEVICE,))
            # 500 rows to update, made once (committed: they stay in shop A)
            ids = [str(uuid.uuid4()) for _ in range(500)]
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("insert into public.customers (id, shop_id, name) select x::uuid, %s, 'Bench row'"
                            " from unnest(%s::text[]) as x", (SHOP_A, ids))
            cases = {"push 500 inserts": lambda: events(500, []),
                     "push 500 updates": lambda: events(0, ids),
                     "push 10 events (5 inserts, 5 updates)": lambda: events(5, ids[:5])}
            results: dict[str, dict[str, list[float]]] = {c: {"before": [], "after": []} for c in cases}
            for _ in range(args.rounds):
                for case, make in cases.items():
                    for variant in ("before", "after"):
                        results[case][variant].append(timed_push(conn, variant == "before", make()))
            print("| case | before (median ms) | after (median ms) | after / before |")
            print("|---|---|---|---|")
            for case, r in results.items():
                b, a = statistics.median(r["before"]), statistics.median(r["after"])
                print(f"| {case} | {b:.1f} | {a:.1f} | {a / b:.2f} |")
            # the verification at the tip
            with conn.transaction(force_rollback=True), conn.cursor() as cur:
                as_device(cur)
                times = []
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    cur.execute("select public.sync_checksums(%s, %s)",
                                (DEVICE, json.dumps({"customers": ids[:100]})))
                    cur.fetchone()
                    times.append((time.perf_counter() - t0) * 1000)
                print(f"\nsync_checksums (100 rows named): median {statistics.median(times):.2f} ms server time")
                cur.execute("select public.sync_schema()")
                schema = Schema.from_json(cur.fetchone()[0])  # type: ignore[index]
            spec = schema.table("customers")
            row = {c.name: None for c in spec.columns}
            row.update({"id": str(uuid.uuid4()), "shop_id": SHOP_A, "version": 3, "name": "Zoë Example",
                        "notes": "a note", "created_at": "2026-11-30T10:00:00.123456Z",
                        "updated_at": "2026-11-30T10:00:00.123456Z", "client_changed_at": "2026-11-30T10:00:00Z"})
            rows = [dict(row, id=str(uuid.uuid4())) for _ in range(20000)]
            t0 = time.perf_counter()
            table_checksum(spec, rows, [c.name for c in spec.columns])
            elapsed = time.perf_counter() - t0
            print(f"client hashing: {len(rows) / elapsed:,.0f} rows/s (customers, {len(rows)} rows)")
    finally:
        subprocess.run(["psql", "-X", "-q", settings.db_url, "-c", "drop schema if exists tests cascade"],
                       check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
