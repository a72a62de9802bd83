"""What the checksum upkeep (supabase/migrations/20261202004000_verified_convergence.sql) costs.

Server time of ``shopsync.push`` as a device, and the part of it the checksum upkeep takes (its
trigger function's time, counted by track_functions inside each push's transaction, which is then
rolled back): a batch of 500 inserts, a batch of 500 updates, and a push of 10 events (5 inserts,
5 updates), round by round. Push time without the upkeep = push time - upkeep time: measured in the
same transaction, so the machine's load cannot skew the comparison (2 shared CPUs). Then what a
sync pays at the tip: sync_checksums' server time, a sync with nothing new with and without the
check, and an initial pull with and without it.

Usage: ``.venv/bin/python bench/checksum_cost.py [--rounds N]`` with the stack up (SHOPSYNC_*_PORT).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from shopsync_stack.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"
DEVICE = "d0000000-0000-4000-8000-00000000c0c0"


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


def timed_push(conn: psycopg.Connection[Any], evs: list[dict[str, Any]]) -> tuple[float, float]:
    """Server time of one push (ms), and the part of it spent in the checksum upkeep (the trigger
    function's time as track_functions counts it inside the transaction). Rolled back."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("set local track_functions = 'pl'")
        as_device(cur)
        upkeep_sql = "select coalesce(pg_stat_get_xact_function_total_time('shopsync.checksums_customers'::regproc), 0)"
        cur.execute(upkeep_sql)  # (the pending counter may hold earlier transactions' time: a delta)
        upkeep_before = float(cur.fetchone()[0])  # type: ignore[index]
        t0 = time.perf_counter()
        cur.execute("select shopsync.push(%s, %s)", (DEVICE, json.dumps(evs)))
        answer = cur.fetchone()
        elapsed = (time.perf_counter() - t0) * 1000
        statuses = {r["status"] for r in answer[0]["results"]} if answer else set()
        assert statuses <= {"applied", "merged"}, answer[0]["results"][0] if answer else None
        cur.execute(upkeep_sql)
        upkeep = float(cur.fetchone()[0]) - upkeep_before  # type: ignore[index]
        return elapsed, upkeep


def sync_overhead(settings: Any, rounds: int) -> None:
    """A device at the tip of shop A syncs with nothing new: with and without the verification."""
    import supabase

    from shopsync import LocalStore, SyncClient
    from shopsync_stack import mint_user_token

    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "bench.db")
        sb = supabase.create_client(settings.api_url, settings.anon_key)
        client = SyncClient(store, sb, access_token=mint_user_token(settings, "staff@shop-a.test"),
                            device_name="checksum bench")
        client.sync().raise_for_errors()
        rows = sum(store.count(t, include_deleted=True) for t in store.schema.tables)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for verify in (False, True):
                client.verify = verify
                t0 = time.perf_counter()
                r = client.sync().raise_for_errors()
                times[verify].append((time.perf_counter() - t0) * 1000)
                assert r.verified is (True if verify else None), r
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"sync with nothing new, {rows} rows on the device: {off:.0f} ms without the check, "
              f"{on:.0f} ms with it (+{on - off:.0f} ms)")
        store.close()


def initial_pull(settings: Any, rows: int) -> None:
    """An initial pull of shop B's customers (topped up to ``rows``) into a fresh file, with and
    without the check at the tip (which hashes every pulled row), alternating, 3 rounds."""
    import supabase

    from shopsync import LocalStore, SyncClient
    from shopsync_stack import mint_user_token

    shop_b = "bbbbbbbb-0000-4000-8000-000000000000"
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        row = conn.execute("select count(*) from public.customers where shop_id = %s", (shop_b,)).fetchone()
        have = int(row[0]) if row else 0
        if have < rows:
            conn.execute("insert into public.customers (id, shop_id, name, notes) select gen_random_uuid(), %s,"
                         " 'Pull ' || i, 'checksum cost' from generate_series(1, %s) as i", (shop_b, rows - have))
    token = mint_user_token(settings, "staff@shop-b.test")
    times: dict[bool, list[float]] = {False: [], True: []}
    pulled = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            for verify in (False, True):
                store = LocalStore(Path(tmp) / f"{i}-{verify}.db")
                client = SyncClient(store, supabase.create_client(settings.api_url, settings.anon_key),
                                    access_token=token, device_name="checksum bench pull", verify=verify)
                client.register()
                t0 = time.perf_counter()
                r = client.pull().raise_for_errors()
                times[verify].append(time.perf_counter() - t0)
                assert r.verified is (True if verify else None), r
                pulled = r.pulled
                store.close()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"initial pull of {pulled:,} changes: {off:.2f} s without the check ({pulled / off:,.0f} rows/s), "
          f"{on:.2f} s with it ({pulled / on:,.0f} rows/s): x{on / off:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--pull-rows", type=int, default=20000)
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
            results: dict[str, list[tuple[float, float]]] = {c: [] for c in cases}
            for make in cases.values():
                timed_push(conn, make())  # warm-up: plans made, then cached for the session
            for _ in range(args.rounds):
                for case, make in cases.items():
                    results[case].append(timed_push(conn, make()))
            print("| push, server time (median of rounds) | push | of which checksum upkeep | without it | added |")
            print("|---|---|---|---|---|")
            for case, r in results.items():
                total = statistics.median(x[0] for x in r)
                upkeep = statistics.median(x[1] for x in r)
                print(f"| {case} | {total:.1f} ms | {upkeep:.2f} ms | {total - upkeep:.1f} ms |"
                      f" {100 * upkeep / (total - upkeep):.1f} % |")
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
        sync_overhead(settings, args.rounds)
        initial_pull(settings, args.pull_rows)
    finally:
        subprocess.run(["psql", "-X", "-q", settings.db_url, "-c", "drop schema if exists tests cascade"],
                       check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
