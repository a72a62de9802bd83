"""The fleet benchmark (issue 13 item 4): simulated tills each push a 10-event sale through the
gateway against one Postgres.

Two phases, each with tills of its own new shop:

* saturation: ``busy`` tills push sale after sale with no pause (a closed loop) for a while; the
  sales per second they reach, and the CPU seconds Postgres and the gateway spent on them (read
  from /proc for the stack's processes), give the sales one core sustains;
* half load: enough tills that one sale every ``interval`` seconds each (staggered) makes 50% of
  the saturation rate; the p50/p99 push latency (client wall time of ``SyncClient.push``).

bench/run.py calls :func:`bench_fleet`; a till's sale is bench/sale.py's.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import run
import sale

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3): utime 14, stime 15, cutime 16, cstime 17
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _children(ppid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def server_cpu() -> dict[str, float]:
    """CPU seconds so far of the stack's Postgres (postmaster, its live children and the ones it
    reaped) and of the gateway, or {} when the stack's pid files are not readable."""
    stack = run.ROOT / ".stack"
    try:
        pm = int((stack / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        gw = int((stack / "gateway.pid").read_text().strip())
    except (OSError, ValueError, IndexError):
        return {}
    pg = _proc_cpu(pm, children=True) + sum(_proc_cpu(c) for c in _children(pm))
    return {"postgres": pg, "gateway": _proc_cpu(gw, children=True) + sum(_proc_cpu(c) for c in _children(gw))}


def till_worker(settings: Any, folder: str, token: str, products: list[tuple[str, str]], n_tills: int,
                interval: float, duration: float, barrier: Any, q: Any) -> None:
    """n_tills tills (one thread each) of one shop: each sells and pushes a sale every `interval`
    seconds (0: back to back), staggered, for `duration` seconds after the barrier."""
    try:
        tills = []
        for i in range(n_tills):
            c = run.make_client(settings, Path(folder) / f"till-{os.getpid()}-{i}.db", token, f"till-{i}")
            c.register()
            tills.append(c)
        barrier.wait(timeout=600)
        start = time.perf_counter()
        lat: list[list[float]] = [[] for _ in tills]
        errors = [0] * n_tills

        def loop(k: int) -> None:
            c = tills[k]
            j = 0
            next_at = start + (interval * k / n_tills if interval else 0)
            while True:
                now = time.perf_counter()
                if interval and next_at > now:
                    time.sleep(next_at - now)
                if time.perf_counter() - start >= duration:
                    return
                sale.sell(c, products, j)
                t0 = time.perf_counter()
                r = c.push()
                lat[k].append((time.perf_counter() - t0) * 1000)
                if r.errors or r.rejected or r.conflicts or r.applied != 2 + 2 * sale.ITEMS:
                    errors[k] += 1
                j += 1
                next_at += interval

        threads = [threading.Thread(target=loop, args=(k,)) for k in range(n_tills)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = time.perf_counter()
        for c in tills:
            c.store.close()
        q.put({"t0": start, "t1": end, "latencies": [x for xs in lat for x in xs], "errors": sum(errors)})
    except Exception as exc:  # reported, not raised: the parent waits on the queue
        try:
            barrier.abort()
        except Exception:
            pass
        q.put({"t0": 0, "t1": 0, "latencies": [], "errors": 1, "message": repr(exc)})


def _phase(b: run.Bench, tag: str, tills: int, interval: float, duration: float) -> dict[str, Any]:
    shop, email = b.make_shop(tag)
    products = sale.seed_products(b, shop)
    token = b.token(email)
    procs_n = max(1, min(4, tills))
    per = [tills // procs_n + (1 if i < tills % procs_n else 0) for i in range(procs_n)]
    ctx = mp.get_context("fork")
    barrier, q = ctx.Barrier(procs_n + 1), ctx.Queue()
    procs = [ctx.Process(target=till_worker, args=(b.settings, str(b.tmp), token, products, n, interval, duration,
                                                   barrier, q)) for n in per]
    for p in procs:
        p.start()
    barrier.wait(timeout=600)
    cpu0 = server_cpu()
    res = [q.get(timeout=900) for _ in procs]
    cpu1 = server_cpu()
    for p in procs:
        p.join()
    lat = sorted(x for r in res for x in r["latencies"])
    span = max(r["t1"] for r in res) - min(r["t0"] for r in res) if lat else 0.0
    out: dict[str, Any] = {
        "tills": tills, "interval_s": interval, "sales": len(lat), "seconds": span,
        "sales_per_s": run.rate(len(lat), span), "errors": sum(r["errors"] for r in res),
        "messages": sorted({r["message"] for r in res if "message" in r}),
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1) + 0.5))] if lat else float("nan"),
    }
    if cpu0 and cpu1 and lat:
        pg = cpu1["postgres"] - cpu0["postgres"]
        gw = cpu1["gateway"] - cpu0["gateway"]
        out.update({"postgres_cpu_s": pg, "gateway_cpu_s": gw,
                    "postgres_cpu_ms_per_sale": 1000 * pg / len(lat), "gateway_cpu_ms_per_sale": 1000 * gw / len(lat),
                    "sales_per_core_s": len(lat) / (pg + gw) if pg + gw > 0 else float("nan"),
                    "sales_per_postgres_core_s": len(lat) / pg if pg > 0 else float("nan")})
    return out


def bench_fleet(b: run.Bench) -> dict[str, Any]:
    busy, sat_s, half_s, interval = (b.sizes["fleet_busy"], b.sizes["fleet_saturation_s"], b.sizes["fleet_half_s"],
                                     b.sizes["fleet_interval_s"])
    sat = _phase(b, "fleet-sat", busy, 0.0, sat_s)
    run.log(f"fleet saturation: {busy} tills back to back: {sat['sales']} sales in {sat['seconds']:.1f}s ="
            f" {sat['sales_per_s']:.1f}/s, p50 {sat['p50_ms']:.1f} ms; {sat.get('sales_per_core_s', 0):.1f} sales"
            f" per core-second (Postgres + gateway), errors {sat['errors']}")
    target = 0.5 * sat["sales_per_s"]
    tills = max(2, round(target * interval))
    half = _phase(b, "fleet-half", tills, interval, half_s)
    run.log(f"fleet at half load: {tills} tills, one sale each every {interval:g}s: {half['sales_per_s']:.1f} sales/s,"
            f" p50 {half['p50_ms']:.1f} ms, p99 {half['p99_ms']:.1f} ms, errors {half['errors']}")
    return {"saturation": sat, "half_load": half, "target_sales_per_s": target,
            "note": (f"a sale is {2 + 2 * sale.ITEMS} events (invoice, order, {sale.ITEMS} items, {sale.ITEMS} stock "
                     "movements) pushed through the gateway; saturation: tills pushing back to back; half load: "
                     "tills pushing one sale each every interval, staggered, at 50% of the saturation rate")}
