"""The demo: offline-first sync end to end, told as it happens (``make demo``, ``shopsync demo``,
``python -m shopsync_cli.demo``).

It installs what is missing (``scripts/setup.sh``), resets the local stack, and then:

1. two tills of Shop A and one of Shop B register and pull a seeded catalog (20,000 products in
   Shop A by default, inserted server-side as ``postgres``) with a progress bar fed by ``remaining``;
2. the tills go offline: each reaches the gateway only through its own :class:`~shopsync_cli.relay.TcpRelay`,
   which is closed, so their HTTP calls really fail (connection refused). Offline they sell
   (orders, order items, invoices in their own series, stock movements) and edit the same
   customer (one field each, and the same field) and the same order (a ``manual`` conflict);
3. they come back one after the other (``--order``); conflicts are listed and the open one is
   resolved by a user choice (``client.resolve(id, keep="local")``);
4. live: both Shop A tills run in the background (``start()``, Realtime subscription); a sale on one
   is readable on the other well within a second, though it now polls only every hour;
5. the final table: per device and table, row count and a content hash, compared with the
   server's; stock levels against what was sold; every invoice chain, on every device and on the
   server; Shop B's device holds none of Shop A's rows.

Exit status 0 when everything converged, 1 when anything diverged (the table says what), 3 when
the stack could not be set up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shopsync import SyncClient
from shopsync.errors import ShopSyncError, TransportError
from shopsync.schema import TableSpec
from shopsync.status import PullProgress, SyncResult
from shopsync.store import LocalStore
from shopsync_stack.settings import StackSettings, load_settings

from .relay import TcpRelay

__all__ = ["main", "run", "Till", "Digest", "store_digests", "server_digests", "ProgressBar"]

SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"
SHOP_B = "bbbbbbbb-0000-4000-8000-000000000000"
SHOP_NAMES = {SHOP_A: "Shop A", SHOP_B: "Shop B"}
INITIAL_STOCK = Decimal(50)
LOCAL_ONLY = ("sync_state", "last_error")


# -- output -------------------------------------------------------------------------------------------
class _Out:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, text: str = "", *, indent: int = 0) -> None:
        print(" " * indent + text, flush=True)

    def step(self, text: str) -> None:
        print(f"\n[{time.monotonic() - self.t0:5.1f}s] {text}", flush=True)


class ProgressBar:
    """A pull progress bar driven by :class:`PullProgress` (``pulled`` of ``pulled + remaining``).

    On a terminal it redraws one line; elsewhere (a log, a test) it prints at each quarter."""

    def __init__(self, label: str, *, width: int = 30, stream: Any = None, indent: int = 5) -> None:
        self.label = label
        self.width = width
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.indent = indent
        self._printed_quarter = -1
        self.last: PullProgress | None = None

    def _line(self, p: PullProgress) -> str:
        total = max(p.total, 1)
        filled = int(self.width * p.pulled / total)
        return (f"{' ' * self.indent}{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{p.pulled:,}/{p.total:,} ({100 * p.pulled // total}%)")

    def __call__(self, p: PullProgress) -> None:
        self.last = p
        if self.tty:
            self.stream.write("\r" + self._line(p))
            self.stream.flush()
            return
        quarter = 4 * p.pulled // max(p.total, 1)
        if quarter > self._printed_quarter:
            self._printed_quarter = quarter
            print(self._line(p), file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()


# -- content digests ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Digest:
    """A table's rows (tombstones included) as a count and a SHA-256 over their synced columns."""

    count: int
    sha256: str

    @property
    def short(self) -> str:
        return self.sha256[:10]


def _digest(spec: TableSpec, rows: list[dict[str, Any]]) -> Digest:
    cols = [c.name for c in spec.columns]
    h = hashlib.sha256()
    for row in sorted(rows, key=lambda r: str(r["id"])):
        h.update(json.dumps([row.get(c) for c in cols], sort_keys=True, default=str).encode())
        h.update(b"\n")
    return Digest(len(rows), h.hexdigest())


def store_digests(store: LocalStore) -> dict[str, Digest]:
    """Per synced table of a device's file: its rows in stored form (local columns left out)."""
    out: dict[str, Digest] = {}
    for name, spec in sorted(store.schema.tables.items()):
        rows = [{k: v for k, v in r.items() if k not in LOCAL_ONLY} for r in store.stored_rows(name)]
        out[name] = _digest(spec, rows)
    return out


def server_digests(db_url: str, shop_id: str, tables: dict[str, TableSpec]) -> dict[str, Digest]:
    """The same digests of one shop's rows on the server, read as ``postgres`` (the ground truth),
    each row normalised the way a device stores a pulled row."""
    import psycopg

    out: dict[str, Digest] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, spec in sorted(tables.items()):
            rows = [spec.stored_from_wire(json.loads(text)) for (text,) in conn.execute(
                f"select to_jsonb(t)::text from public.{name} as t where shop_id = %s", (shop_id,))]
            out[name] = _digest(spec, rows)
    return out


# -- the tills ----------------------------------------------------------------------------------------
@dataclass
class Till:
    """A device of the demo: its SQLite file, its client, and the relay that is its network."""

    name: str
    email: str
    shop_id: str
    store: LocalStore
    client: SyncClient
    relay: TcpRelay
    series_issued: int = 0
    sold: dict[str, Decimal] = field(default_factory=dict)

    def go_offline(self) -> None:
        self.relay.go_offline()

    def go_online(self) -> None:
        self.relay.go_online()


def _make_till(name: str, email: str, shop_id: str, folder: Path, settings: StackSettings,
               token: Callable[[], str]) -> Till:
    import supabase

    api = urlparse(settings.api_url)
    relay = TcpRelay((api.hostname or "127.0.0.1", api.port or 80))
    store = LocalStore(folder / f"{name}.db")
    sb = supabase.create_client(relay.url, settings.anon_key)
    client = SyncClient(store, sb, access_token=token, device_name=name, platform="demo", page_size=1000)
    return Till(name, email, shop_id, store, client, relay)


def _product(till: Till, sku: str) -> dict[str, Any]:
    rows = till.store.query("products", {"sku": sku})
    if not rows:
        raise RuntimeError(f"{till.name} has no product {sku}")
    return rows[0]


def _sell(till: Till, basket: list[tuple[str, int]], customer_id: str | None = None) -> dict[str, Any]:
    """One sale, offline, in one local transaction: order, items, invoice, stock movements."""
    store = till.store
    with store.transaction():
        products = [(_product(till, sku), qty) for sku, qty in basket]
        lines = [{"product_id": p["id"], "description": p["name"], "quantity": qty, "unit_price": p["price"],
                  "tax_rate": p["tax_rate"]} for p, qty in products]
        inv = store.issue_invoice(lines, customer_id=customer_id)
        order = store.insert("orders", {"customer_id": customer_id, "status": "paid", "total": inv["total"]})
        for p, qty in products:
            store.insert("order_items", {"order_id": order["id"], "product_id": p["id"], "quantity": qty,
                                         "unit_price": p["price"]})
            store.record_movement(p["id"], -qty, "sale", ref_id=inv["id"])
            till.sold[p["id"]] = till.sold.get(p["id"], Decimal(0)) + qty
    till.series_issued += 1
    return {"order": order, "invoice": inv, "products": products}


def _live_sale(out: _Out, checks: _Checks, seller: Till, watcher: Till) -> dict[str, Any]:
    """Both tills run in the background (``start()``: the live subscription and the sync thread, whose
    poll interval is set to an hour so only the Realtime poke can bring the sale quickly); a gift card
    sold on ``seller`` and synced is readable on ``watcher``, whose ``store.watch("orders")`` fires."""
    import threading

    for till in (seller, watcher):
        till.client.background.interval = 3600
        till.client.start()
    try:
        live = watcher.client.live
        joined = live is not None and live.joined.wait(10)
        if not checks.expect(joined, f"{watcher.name} did not join its shop's live channel: "
                                     f"{live.last_error if live else 'live sync is off'}"):
            return {"joined": False}
        watcher.client.sync_now().wait(10)  # its start-up sync is done
        seen = threading.Event()
        wanted: dict[str, str] = {}
        stop_watching = watcher.store.watch("orders", lambda ids: seen.set() if wanted.get("id") in ids else None)
        sale = _sell(seller, [("GIFT-10", 1)])
        wanted["id"] = sale["order"]["id"]
        result = seller.client.push()  # the push half of sync(): the server has committed the sale
        started = time.monotonic()
        arrived = seen.wait(5)
        ms = (time.monotonic() - started) * 1000
        stop_watching()
        checks.expect(result.ok, f"{seller.name} live sale push: {_summary(result)}")
        checks.expect(arrived and ms < 1000, f"{watcher.name} saw the live sale after {ms:.0f} ms (expected < 1 s)")
        out(f"{seller.name} sells a gift card (order {sale['order']['order_code']}) and pushes it; {watcher.name}, "
            f"polling only every hour now, has it {ms:.0f} ms after the push returned: the server's Broadcast on "
            f"shop:<id> made it pull, and its store.watch('orders') fired", indent=3)
        out(f"{watcher.name}: status().live = {watcher.client.status().live}", indent=5)
        return {"joined": True, "visible_ms": round(ms, 1), "arrived": arrived}
    finally:
        for till in (seller, watcher):
            till.client.stop(timeout=10)


def _short_error(exc: ShopSyncError) -> str:
    text = str(exc)
    for marker in ("Connection refused", "ConnectError", "RemoteProtocolError"):
        if marker in text:
            return f"{type(exc).__name__}: {marker}"
    return f"{type(exc).__name__}: {text[:80]}"


def _summary(r: SyncResult) -> str:
    parts = [f"pushed {r.pushed}", f"applied {r.applied}", f"merged {r.merged}", f"conflicts {r.conflicts}",
             f"rejected {r.rejected}", f"pulled {r.pulled}"]
    if r.errors:
        parts.append("errors: " + "; ".join(_short_error(e) for e in r.errors))
    return ", ".join(parts)


# -- the story ----------------------------------------------------------------------------------------
def _setup(out: _Out, root: Path, *, skip_setup: bool, reset: bool) -> StackSettings:
    from shopsync_stack import Stack

    if not skip_setup:
        out.step("set-up: scripts/setup.sh (installs only what is missing)")
        done = subprocess.run(["bash", str(root / "scripts" / "setup.sh")], capture_output=True, text=True)
        if done.returncode != 0:
            raise _SetupFailed(f"scripts/setup.sh failed:\n{done.stdout}{done.stderr}")
        out("ok", indent=5)
    if reset:
        out.step("stack: reset the local Supabase-compatible stack (Postgres 15 + gateway, no Docker)")
        t = time.monotonic()
        stack = Stack(root)
        settings = stack.reset()
        out(f"fresh database, migrations and seed in {time.monotonic() - t:.1f}s; "
            f"API {settings.api_url}, DB {settings.db_url}", indent=5)
        return settings
    return load_settings(root / ".env")


class _SetupFailed(RuntimeError):
    pass


def _seed_catalog(out: _Out, settings: StackSettings, n_a: int, n_b: int) -> dict[tuple[str, str], Decimal]:
    """Inserts the catalog and opening stock; returns the stock levels of the products sold, by (shop, sku)."""
    import psycopg

    out.step(f"server: a catalog of {n_a:,} products for Shop A and {n_b:,} for Shop B, and opening stock "
             f"(inserted as postgres)")
    t = time.monotonic()
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        for shop, n in ((SHOP_A, n_a), (SHOP_B, n_b)):
            conn.execute(
                "insert into public.products (id, shop_id, sku, name, price, tax_rate)"
                " select gen_random_uuid(), %s, 'CAT-' || lpad(g::text, 6, '0'), 'Catalog item ' || g,"
                " (g %% 200) + 0.99, case when g %% 3 = 0 then 7 else 19 end"
                " from generate_series(1, %s) as g", (shop, n))
            conn.execute(
                "insert into public.stock_movements (id, shop_id, product_id, delta, reason)"
                " select gen_random_uuid(), shop_id, id, %s, 'restock' from public.products"
                " where shop_id = %s and sku in ('MUG-01', 'COF-250', 'TEA-100')", (INITIAL_STOCK, shop))
        counts: dict[str, int] = dict(conn.execute("select shop_id::text, count(*) from public.products group by 1").fetchall())
        opening = {(str(shop), sku): Decimal(level) for shop, sku, level in conn.execute(
            "select p.shop_id, p.sku, l.on_hand from public.inventory_levels as l"
            " join public.products as p on p.id = l.product_id where p.sku in ('MUG-01', 'COF-250', 'TEA-100')")}
    out(f"Shop A {counts.get(SHOP_A, 0):,} products, Shop B {counts.get(SHOP_B, 0):,}; "
        f"{INITIAL_STOCK} more of Mug, Coffee beans and Green tea in stock ({time.monotonic() - t:.1f}s)", indent=5)
    return opening


def _register_and_pull(out: _Out, till: Till) -> None:
    info = till.client.register()
    out(f"{till.name}: {till.email} registered device {till.store.device_id[:8]}... in "
        f"{SHOP_NAMES.get(str(info['shop_id']), info['shop_id'])} as {info['role']}; "
        f"invoice series {till.store.invoice_series}", indent=3)
    bar = ProgressBar("initial pull", indent=5)
    till.client.add_pull_listener(bar)
    t = time.monotonic()
    try:
        result = till.client.sync()
    finally:
        till.client.remove_pull_listener(bar)
        bar.done()
    result.raise_for_errors()
    counts = ", ".join(f"{name} {till.store.count(name):,}" for name in ("products", "customers", "inventory_levels"))
    out(f"pulled {result.pulled:,} changes in {time.monotonic() - t:.1f}s: {counts}", indent=5)


def _table(rows: list[list[str]], indent: int = 3) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [" " * indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


@dataclass
class _Checks:
    failures: list[str] = field(default_factory=list)

    def expect(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
        return ok


def run(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 converged, 1 diverged, 3 set-up failed)."""
    args = _parser().parse_args(argv)
    order = [s.strip() for s in args.order.split(",")]
    if sorted(order) != ["a1", "a2", "b"]:
        print("shopsync demo: --order must name a1, a2 and b once each (e.g. a2,b,a1)", file=sys.stderr)
        return 2
    from shopsync_stack import StackError, find_project_root, mint_user_token

    out = _Out()
    out("shopsync demo: three tills in two shops, offline-first, end to end")
    try:
        root = find_project_root()
        settings = _setup(out, root, skip_setup=args.skip_setup, reset=not args.no_reset)
        opening = _seed_catalog(out, settings, args.products, args.products_b)
    except (StackError, _SetupFailed, OSError) as exc:
        print(f"shopsync demo: set-up failed: {exc}", file=sys.stderr)
        return 3
    import psycopg

    with psycopg.connect(settings.db_url, autocommit=True) as conn:  # the demo's devices only
        conn.execute("update public.licenses set max_devices = greatest(max_devices, 10)")

    tokens = {e: mint_user_token(settings, e) for e in ("staff@shop-a.test", "owner@shop-a.test", "staff@shop-b.test")}
    folder_ctx = tempfile.TemporaryDirectory(prefix="shopsync-demo-") if args.dir is None else None
    folder = Path(folder_ctx.name) if folder_ctx else Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("till-*.db*"):
        old.unlink()
    tills = {
        "a1": _make_till("till-a1", "staff@shop-a.test", SHOP_A, folder, settings, lambda: tokens["staff@shop-a.test"]),
        "a2": _make_till("till-a2", "owner@shop-a.test", SHOP_A, folder, settings, lambda: tokens["owner@shop-a.test"]),
        "b": _make_till("till-b1", "staff@shop-b.test", SHOP_B, folder, settings, lambda: tokens["staff@shop-b.test"]),
    }
    try:
        report = _story(out, settings, tills, order, opening)
    finally:
        for t in tills.values():
            t.client.stop(timeout=5)
            t.relay.close()
            t.store.close()
        if folder_ctx:
            folder_ctx.cleanup()
    report["elapsed_s"] = round(time.monotonic() - out.t0, 2)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    if report["failures"]:
        out("\nDIVERGED:")
        for f in report["failures"]:
            out(f"- {f}", indent=3)
        out(f"(demo took {report['elapsed_s']:.1f}s)")
        return 1
    out(f"\nCONVERGED: every device matches the server; stock exact; every invoice chain verified; "
        f"Shop B saw nothing of Shop A. ({report['elapsed_s']:.1f}s)")
    return 0


def _story(out: _Out, settings: StackSettings, tills: dict[str, Till], order: list[str],
           opening: dict[tuple[str, str], Decimal]) -> dict[str, Any]:
    a1, a2, b1 = tills["a1"], tills["a2"], tills["b"]
    checks = _Checks()

    # 1. register and pull ------------------------------------------------------------------------
    out.step("1. Three tills register and pull their shop's catalog")
    for till in (a1, a2, b1):
        _register_and_pull(out, till)
    ada = a1.store.query("customers", {"customer_code": "C-0001"})[0]
    grace = a1.store.query("customers", {"customer_code": "C-0002"})[0]
    with a1.store.transaction():
        mug = _product(a1, "MUG-01")
        preorder = a1.store.insert("orders", {"customer_id": grace["id"], "status": "pending", "total": "30.00"})
        a1.store.insert("order_items", {"order_id": preorder["id"], "product_id": mug["id"], "quantity": 2,
                                        "unit_price": "15.00"})
    a1.client.sync().raise_for_errors()
    a2.client.sync().raise_for_errors()
    out(f"till-a1 takes a phone pre-order {preorder['order_code']} for {grace['name']} (30.00, pending); "
        f"both Shop A tills have it", indent=3)

    # 2. offline ------------------------------------------------------------------------------------
    out.step("2. The tills go offline (their relays to the gateway close) and keep working")
    for till in (a1, a2, b1):
        till.go_offline()
        probe = till.client.sync()
        checks.expect(bool(probe.errors) and all(isinstance(e, TransportError) for e in probe.errors),
                      f"{till.name} could still reach the server while offline")
        out(f"{till.name}: sync attempt -> {_short_error(probe.errors[0]) if probe.errors else 'REACHED THE SERVER'}",
            indent=3)
    shop_a_order = [k for k in order if k != "b"]
    first_a, last_a = tills[shop_a_order[0]], tills[shop_a_order[1]]
    # The same field, LWW: the till that comes back last edited first, so the server keeps the other's.
    last_a.store.update("customers", ada["id"], {"notes": f"Prefers email (noted at {last_a.name})"})
    first_a.store.update("customers", ada["id"], {"notes": f"Call before delivery (noted at {first_a.name})"})
    a1.store.update("customers", ada["id"], {"phone": "+44 20 7946 0001"})
    a2.store.update("customers", ada["id"], {"email": "ada@analytical-engines.test"})
    out(f"both Shop A tills edit customer {ada['name']}: till-a1 the phone, till-a2 the email (different fields), "
        f"and both the notes ({last_a.name} first, {first_a.name} a moment later)", indent=3)
    a1.store.update("orders", preorder["id"], {"total": "27.00"})
    a2.store.update("orders", preorder["id"], {"total": "25.50"})
    out("both edit the pre-order's total: till-a1 27.00 (10% off), till-a2 25.50 (15% off): a manual-policy clash",
        indent=3)
    baskets = {
        "a1": [([("MUG-01", 2), ("COF-250", 1)], ada["id"]), ([("TEA-100", 3)], None), ([("MUG-01", 1)], grace["id"])],
        "a2": [([("MUG-01", 2)], None), ([("COF-250", 2), ("TEA-100", 1)], ada["id"])],
        "b": [([("MUG-01", 1), ("GIFT-10", 1)], None), ([("COF-250", 4)], None)],
    }
    for key in ("a1", "a2", "b"):
        till = tills[key]
        for basket, customer in baskets[key]:
            sale = _sell(till, basket, customer)
            inv = sale["invoice"]
            items = ", ".join(f"{q} x {p['name']}" for p, q in sale["products"])
            out(f"{till.name} sells {items}: order {sale['order']['order_code']}, invoice "
                f"{inv['series']} #{inv['number']} {inv['total']} EUR", indent=3)
        mug_id = _product(till, "MUG-01")["id"]
        st = till.client.status()
        out(f"{till.name}: Mug on hand here {till.store.on_hand(mug_id)}; {st.pending_uploads} events queued "
            f"({', '.join(f'{t} {n}' for t, n in sorted(st.pending_by_table.items()))})", indent=5)

    # 3. back online ------------------------------------------------------------------------------
    out.step(f"3. Back online, one at a time: {', '.join(tills[k].name for k in order)}")
    for key in order:
        till = tills[key]
        till.go_online()
        before = {c.id for c in till.client.conflicts(include_resolved=True)}
        result = till.client.sync()
        checks.expect(result.ok and not result.rejections, f"{till.name} sync on return: {_summary(result)}")
        out(f"{till.name}: {_summary(result)}", indent=3)
        for c in till.client.conflicts(include_resolved=True):
            if c.id not in before:
                local = ", ".join(f"{k}={v}" for k, v in c.local_values.items())
                server = ", ".join(f"{k}={(c.server_row or {}).get(k)}" for k in c.local_values)
                state = "open: needs a decision" if c.is_open else f"auto-resolved ({c.resolution})"
                out(f"conflict #{c.id} {c.table} ({c.policy}, {c.reason}): this till {local!r} vs server "
                    f"{server!r} -> {state}", indent=5)
    out("   conflicts listed on each till (client.conflicts()):")
    open_conflicts: list[tuple[Till, Any]] = []
    for key in ("a1", "a2", "b"):
        till = tills[key]
        for c in till.client.conflicts(include_resolved=True):
            out(f"{till.name} #{c.id} {c.table:9} {c.reason:17} {'OPEN' if c.is_open else c.resolution}", indent=5)
            if c.is_open:
                open_conflicts.append((till, c))
    checks.expect(len(open_conflicts) == 1 and open_conflicts[0][1].table == "orders",
                  f"expected one open conflict on the pre-order, got {[(t.name, c.table) for t, c in open_conflicts]}")
    for till, c in open_conflicts:
        till.client.resolve(c.id, keep="local")
        out(f"the manager at {till.name} decides conflict #{c.id}: keep this till's total "
            f"{c.local_values.get('total')} (client.resolve({c.id}, keep='local'))", indent=3)
    for rnd in range(1, 5):
        pushed = 0
        for key in order:
            r = tills[key].client.sync()
            checks.expect(r.ok and not r.rejections, f"{tills[key].name} settle round {rnd}: {_summary(r)}")
            pushed += r.pushed
        out(f"settle round {rnd}: every till syncs ({pushed} events pushed)", indent=3)
        if pushed == 0:
            break

    # 4. live ----------------------------------------------------------------------------------------
    out.step("4. Live: a sale on one till shows on the other within a second (Supabase Realtime)")
    live = _live_sale(out, checks, a1, a2)

    # 5. the final table ------------------------------------------------------------------------------
    out.step("5. Final state: per table, rows and content hash on the server and on every device")
    report: dict[str, Any] = {"tables": {}, "stock": {}, "chains": {}, "isolation": {}, "merge": {}, "live": live}
    for shop_id, devices in ((SHOP_A, [a1, a2]), (SHOP_B, [b1])):
        tables = devices[0].store.schema.tables
        srv_dg = server_digests(settings.db_url, shop_id, tables)
        per_device = {d.name: store_digests(d.store) for d in devices}
        rows = [[SHOP_NAMES[shop_id], "server", *[d.name for d in devices]]]
        shop_report: dict[str, Any] = {}
        for name in sorted(tables):
            cells = [name, f"{srv_dg[name].count:>6,} {srv_dg[name].short}"]
            shop_report[name] = {"server": [srv_dg[name].count, srv_dg[name].sha256]}
            for d in devices:
                dg = per_device[d.name][name]
                same = checks.expect(dg == srv_dg[name], f"{d.name} {name}: {dg.count} rows {dg.short} vs server "
                                     f"{srv_dg[name].count} rows {srv_dg[name].short}")
                cells.append(f"{dg.count:>6,} {dg.short} {'ok' if same else 'DIFF'}")
                shop_report[name][d.name] = [dg.count, dg.sha256]
            rows.append(cells)
        report["tables"][SHOP_NAMES[shop_id]] = shop_report
        for line in _table(rows):
            out(line)
        for d in devices:
            st = d.client.status()
            checks.expect(st.pending_uploads == 0 and st.open_conflicts == 0,
                          f"{d.name}: {st.pending_uploads} queued, {st.open_conflicts} open conflicts")
        out()

    import psycopg

    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        # Stock: the level after the opening stock minus what the demo sold, on the server and as every till shows it.
        stock_rows = [["stock", "expected", "server", *[t.name for t in (a1, a2, b1)]]]
        for shop_id, devices in ((SHOP_A, [a1, a2]), (SHOP_B, [b1])):
            for sku in ("MUG-01", "COF-250", "TEA-100"):
                pid = _product(devices[0], sku)["id"]
                sold = sum((t.sold.get(pid, Decimal(0)) for t in devices), Decimal(0))
                expected = opening.get((shop_id, sku), Decimal(0)) - sold
                exp_txt = format(expected.normalize(), "f")
                row = conn.execute("select on_hand from public.inventory_levels where id = %s", (pid,)).fetchone()
                server_level = Decimal(row[0]) if row else None
                checks.expect(server_level == expected, f"{SHOP_NAMES[shop_id]} {sku}: server {server_level}, "
                                                        f"expected {expected}")
                cells = [f"{SHOP_NAMES[shop_id]} {sku}", exp_txt, str(server_level)]
                for t in (a1, a2, b1):
                    if t in devices:
                        seen = t.store.on_hand(pid)
                        checks.expect(seen == expected, f"{t.name} {sku}: on hand {seen}, expected {expected}")
                        cells.append(f"{seen} {'ok' if seen == expected else 'DIFF'}")
                    else:
                        cells.append("-")
                stock_rows.append(cells)
                report["stock"][f"{SHOP_NAMES[shop_id]}/{sku}"] = {"expected": exp_txt, "server": str(server_level)}
        for line in _table(stock_rows):
            out(line)
        out()

        # Invoice chains: every series of a shop, on every device of that shop and on the server.
        chain_rows = [["invoice series", "issued", "server", *[t.name for t in (a1, a2, b1)]]]
        for _shop_id, devices in ((SHOP_A, [a1, a2]), (SHOP_B, [b1])):
            for owner in devices:
                series = owner.store.invoice_series
                srv = devices[0].client.transport.call("verify_invoice_chain", {"p_series": series})
                ok = checks.expect(bool(srv.get("ok")) and srv.get("checked") == owner.series_issued,
                                   f"server chain {series}: {srv}")
                cells = [series, str(owner.series_issued), f"{srv.get('checked')} {'ok' if ok else 'BROKEN'}"]
                for t in (a1, a2, b1):
                    if t in devices:
                        lchk = t.store.verify_invoice_chain(series)
                        lok = checks.expect(lchk.ok and lchk.checked == owner.series_issued,
                                            f"{t.name} chain {series}: {lchk}")
                        cells.append(f"{lchk.checked} {'ok' if lok else 'BROKEN'}")
                    else:
                        cells.append("-")
                chain_rows.append(cells)
                report["chains"][series] = {"issued": owner.series_issued, "server": srv}
        for line in _table(chain_rows):
            out(line)
        out()

        # Isolation: Shop B's device holds no row of Shop A (by shop and by id), and the other way round.
        a_ids = {rid for tname in a1.store.schema.tables for (rid,) in conn.execute(
            f"select id::text from public.{tname} where shop_id = %s", (SHOP_A,))}
        for till, own in ((b1, SHOP_B), (a1, SHOP_A), (a2, SHOP_A)):
            foreign = 0
            leaked = 0
            for tname in till.store.schema.tables:
                for item in till.store.query(tname, include_deleted=True):
                    foreign += item.get("shop_id") != own
                    leaked += till is b1 and item["id"] in a_ids
            checks.expect(foreign == 0 and leaked == 0, f"{till.name}: {foreign} rows of another shop, {leaked} of A's ids")
            report["isolation"][till.name] = {"other_shop_rows": foreign, "shop_a_ids": leaked}
        out(f"isolation: till-b1 holds {report['isolation']['till-b1']['other_shop_rows']} rows of Shop A "
            f"(by shop_id) and {report['isolation']['till-b1']['shop_a_ids']} of its {len(a_ids):,} ids; "
            f"the Shop A tills hold none of Shop B's", indent=3)

        # What the merges did to Ada and the pre-order.
        srv_ada = conn.execute("select phone, email, notes from public.customers where id = %s", (ada["id"],)).fetchone()
        srv_order = conn.execute("select total::text from public.orders where id = %s", (preorder["id"],)).fetchone()
    assert srv_ada is not None and srv_order is not None, "the customer and the pre-order are on the server"
    want_notes = f"Call before delivery (noted at {first_a.name})"
    checks.expect(srv_ada == ("+44 20 7946 0001", "ada@analytical-engines.test", want_notes),
                  f"customer merge: server has {srv_ada}")
    chosen = {"till-a1": "27.00", "till-a2": "25.50"}[last_a.name]  # keep="local" on the till that came back last
    checks.expect(srv_order == (chosen,), f"pre-order total on the server: {srv_order}, expected {chosen}")
    out(f"customer {ada['name']}: phone {srv_ada[0]} (till-a1) + email {srv_ada[1]} (till-a2) merged; "
        f"notes: the later edit won (\"{srv_ada[2]}\")", indent=3)
    out(f"pre-order {preorder['order_code']}: total {srv_order[0]} as the manager chose", indent=3)
    report["merge"] = {"customer": list(srv_ada), "order_total": srv_order[0]}
    report["failures"] = checks.failures
    report["ok"] = not checks.failures
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopsync demo", description="Offline-first sync end to end: three tills, "
                                "two shops, a reset local stack. Exit 0 converged, 1 diverged, 3 set-up failed.")
    p.add_argument("--order", default="a2,b,a1", help="the order the tills come back online (default a2,b,a1)")
    p.add_argument("--products", type=int, default=20_000, help="catalog size of Shop A (default 20000)")
    p.add_argument("--products-b", type=int, default=5_000, help="catalog size of Shop B (default 5000)")
    p.add_argument("--dir", help="keep the tills' SQLite files in this folder (default: a temporary one)")
    p.add_argument("--report", help="also write the final state as JSON to this file")
    p.add_argument("--skip-setup", action="store_true", help="do not run scripts/setup.sh first")
    p.add_argument("--no-reset", action="store_true",
                   help="use the stack the environment names as it is (no reset; needs the seed data)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a demo prints one line, not a traceback (SHOPSYNC_DEBUG=1 for it)
        if os.environ.get("SHOPSYNC_DEBUG"):
            raise
        print(f"shopsync demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
