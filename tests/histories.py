"""Randomized histories (Hypothesis stateful) of 2 to 4 devices in two fresh shops, under faults.

Each device is a real SQLite file and a SyncClient talking real HTTP (supabase-py) to the gateway
through its own :class:`FaultProxy`. Rules: local inserts, updates (disjoint and overlapping
columns, on two devices at once), deletes, stock movements, conflict resolution, offline/online,
syncs in random order, and proxy faults (drop request, drop the response after commit, delay past
the client's timeout, reset, black-hole). Checked after every sync: only whole-call transport
errors, and only when a fault fired; the cursor never moves back; pending local writes are never
overwritten by a pull (a device reads its own writes). Checked at quiescence (everyone online,
synced until nothing is pending and every cursor is at the shop's last seq):

* every device's tables equal the server's rows of its shop, row by row, column by column;
* every acknowledged write (``applied``/``merged``) is in the change log at its version with its
  values, and each value is in the server's row or superseded by a later change of that column;
  every conflict the server answered is in the device's conflict log;
* exactly once: the server stored one result per answered event (and none for rejected ones);
  each row's change-log versions are 1..version with none twice; the change log holds exactly
  as many writes as events that wrote; stock levels are the sum of their movements.

Used by ``tests/reliability/test_histories.py`` (bounded, in ``make test``) and ``tests/reliability/soak.py`` (``make soak``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from faults import FaultProxy
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from tenants import Tenant, device_client, make_tenant

from shopsync import LocalStore, SyncClient, SyncResult, TransportError
from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings

__all__ = ["Histories", "Stats", "STATS", "configure"]

ORDER_FLOW = ("pending", "paid", "shipping", "delivered")
# Rejections a valid app can still get: a conflict settled "keep local" may move an order's status
# backwards relative to the server's newer row.
EXPECTED_REJECTIONS = {"invalid_transition"}
CLIENT_TIMEOUT = 1.0
WORDS = ("Ada", "Grace", "Linus", "Barbara", "Ken", "Edsger", "Frances", "Donald")


@dataclass
class Stats:
    histories: int = 0
    checked: int = 0
    steps: int = 0
    syncs: int = 0
    failed_syncs: int = 0
    events: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> str:
        with self.lock:
            return (f"{self.checked} histories checked ({self.histories} run), {self.steps} steps, {self.syncs} syncs ({self.failed_syncs} failed"
                    f" by faults), {self.events} events answered {dict(self.statuses)},"
                    f" faults injected {sum(self.faults.values())} {dict(self.faults)}")


STATS = Stats()
_CTX: dict[str, Any] = {}


def configure(settings: StackSettings, workdir: Path | None = None) -> None:
    """Where the stack is; must be called before the machine runs."""
    _CTX["settings"] = settings
    _CTX["workdir"] = workdir


F = TypeVar("F", bound=Callable[..., Any])


def _step(fn: F) -> F:
    """Counts the step and marks the history broken when a rule fails (so teardown only cleans up)."""

    @wraps(fn)
    def run(self: Histories, *args: Any, **kwargs: Any) -> Any:
        with STATS.lock:
            STATS.steps += 1
        try:
            return fn(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return run  # type: ignore[return-value]


class Recorder:
    """A transport wrapper that keeps every pushed event and every answer the device received."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, list[dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:  # a transparent wrapper: the rest is the inner transport's
        return getattr(self.__dict__["inner"], name)

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        if fn == "sync_push":
            for ev in params["p_events"]:
                self.events[ev["event_id"]] = ev
        answer = self.inner.call(fn, params)
        if fn == "sync_push":
            for ev, res in zip(params["p_events"], answer["results"]):
                self.answers.setdefault(ev["event_id"], []).append(res)
        return answer

    def final(self, event_id: str) -> dict[str, Any]:
        """The event's outcome: its first answer, with a duplicate's original status."""
        res = dict(self.answers[event_id][0])
        if res.get("status") == "duplicate":
            res["status"] = res.get("original_status")
        return res


@dataclass(repr=False)
class Device:
    name: str
    tenant: Tenant
    role: str
    store: LocalStore
    client: SyncClient
    proxy: FaultProxy
    recorder: Recorder
    cursors: list[int] = field(default_factory=list)

    @property
    def shop_id(self) -> str:
        return self.tenant.shop_id

    def __repr__(self) -> str:
        return f"{self.name}({self.role}@{self.tenant.shop_id[:8]})"


def _wire_equal(spec: Any, col: str, a: Any, b: Any) -> bool:
    c = spec.column(col)
    return c.to_stored(a, from_wire=True) == c.to_stored(b, from_wire=True)


class Histories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        settings: StackSettings = _CTX["settings"]
        self.settings = settings
        self.db = psycopg.connect(settings.db_url, autocommit=True)
        self.dir = Path(tempfile.mkdtemp(prefix="history-", dir=_CTX.get("workdir")))
        self.devices: list[Device] = []
        self.tenants: list[Tenant] = []
        self.broken = False
        with STATS.lock:
            STATS.histories += 1

    # -- set-up -----------------------------------------------------------------------------------
    @initialize(data=st.data())
    @_step
    def make_devices(self, data: st.DataObject) -> None:
        self.tenants = [make_tenant(self.db, "A"), make_tenant(self.db, "B")]
        n = data.draw(st.integers(2, 4), label="devices")
        shops = [0] + [data.draw(st.integers(0, 1), label=f"shop of d{i}") for i in range(1, n)]
        tokens: dict[str, str] = {}
        for i, shop in enumerate(shops):
            tenant = self.tenants[shop]
            role = data.draw(st.sampled_from(["owner", "staff"]), label=f"role of d{i}")
            email = tenant.owner if role == "owner" else tenant.staff
            token = tokens.get(email) or tokens.setdefault(email, mint_user_token(self.settings, email))
            proxy = FaultProxy.to(self.settings.api_url, hold=10)
            store = LocalStore(self.dir / f"d{i}.db")
            box: list[Recorder] = []

            def wrap(inner: Any, box: list[Recorder] = box) -> Recorder:
                box.append(Recorder(inner))
                return box[0]

            client = device_client(self.settings, store, proxy.url, token, timeout=CLIENT_TIMEOUT, wrap=wrap,
                                   device_name=f"d{i}", batch_size=data.draw(st.sampled_from([3, 500]),
                                                                             label=f"batch of d{i}"),
                                   page_size=data.draw(st.sampled_from([2, 500]), label=f"page of d{i}"))
            dev = Device(f"d{i}", tenant, role, store, client, proxy, box[0])
            self.devices.append(dev)
            self._sync(dev)
            assert store.has_schema, f"{dev.name}: no schema after its first sync"
        # Rows every device of a shop holds, so concurrent edits start at once.
        for tenant in self.tenants:
            shop_devices = [d for d in self.devices if d.shop_id == tenant.shop_id]
            if not shop_devices:
                continue
            first = shop_devices[0]
            customer = first.store.insert("customers", {"name": "Shared customer", "email": "shared@x.test"})
            first.store.insert("customers", {"name": "Second customer"})
            product = first.store.insert("products", {"sku": "SHARED-1", "name": "Shared product", "price": "9.90"})
            first.store.insert("orders", {"customer_id": customer["id"], "total": "19.80", "status": "pending"})
            first.store.insert("stock_movements", {"product_id": product["id"], "delta": "10", "reason": "restock"})
            for dev in shop_devices:
                self._sync(dev)

    # -- helpers ----------------------------------------------------------------------------------
    def _dev(self, data: st.DataObject, label: str = "device") -> Device:
        return data.draw(st.sampled_from(self.devices), label=label)

    def _live(self, dev: Device, table: str) -> list[dict[str, Any]]:
        return dev.store.query(table)

    def _sync(self, dev: Device, half: str = "sync") -> SyncResult:
        fired_before = dev.proxy.faults_fired
        offline = dev.proxy.offline
        result = getattr(dev.client, half)()
        fired = dev.proxy.faults_fired - fired_before
        with STATS.lock:
            STATS.syncs += 1
            STATS.failed_syncs += 0 if result.ok else 1
        for exc in result.errors:
            assert isinstance(exc, TransportError), f"{dev.name}: a sync failed with {type(exc).__name__}: {exc}"
        if not fired and not offline:
            assert result.ok, f"{dev.name}: the sync failed with no fault injected: {result.errors}"
        assert result.resets == 0, f"{dev.name}: an unexpected reset"
        for rej in result.rejections:
            assert rej.reason in EXPECTED_REJECTIONS, f"{dev.name}: unexpected rejection {rej}"
        cursor = dev.store.cursor
        assert not dev.cursors or cursor >= dev.cursors[-1], f"{dev.name}: cursor went back {dev.cursors[-1]} -> {cursor}"
        dev.cursors.append(cursor)
        self._check_own_writes(dev)
        return result

    def _check_own_writes(self, dev: Device) -> None:
        """Every value a queued event or an open conflict holds is what the device reads."""
        store = dev.store
        with store.transaction():
            for entry in store.outbox.all():
                row = store.stored_row(entry.table, entry.row_id)
                assert row is not None, f"{dev.name}: a queued {entry.op} of {entry.table} {entry.row_id} has no row"
                overlay = store.pending_overlay(entry.table, entry.row_id)
                conflict = store.conflict_log.open_for_row(entry.table, entry.row_id)
                if conflict:
                    continue  # the conflict's local values (and later edits) are on top; checked below
                for k, v in overlay.items():
                    if k == "deleted_at":
                        assert row["deleted_at"] is not None, f"{dev.name}: own delete of {entry.row_id} reverted"
                    else:
                        assert row[k] == v, f"{dev.name}: own write {entry.table}.{k}={v!r} reads {row[k]!r}"
            for c in store.conflict_log.list():
                row = store.stored_row(c["table"], c["row_id"])
                assert row is not None and row["sync_state"] == "conflict", f"{dev.name}: open conflict {c} not shown"

    # -- local writes ---------------------------------------------------------------------------------
    @rule(data=st.data())
    @_step
    def insert_customer(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        values: dict[str, Any] = {"name": data.draw(st.sampled_from(WORDS)) + " " + str(data.draw(st.integers(0, 99)))}
        if data.draw(st.booleans()):
            values["email"] = f"{values['name'].split()[0].lower()}@x.test"
        row = dev.store.insert("customers", values)
        assert {k: row[k] for k in values} == values and row["sync_state"] == "pending_create"

    @rule(data=st.data())
    @_step
    def insert_product(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        price = Decimal(data.draw(st.integers(0, 5000))) / 100
        row = dev.store.insert("products", {"sku": f"SKU-{data.draw(st.integers(0, 10**6))}",
                                            "name": data.draw(st.sampled_from(WORDS)), "price": price})
        assert row["price"] == price

    @rule(data=st.data())
    @_step
    def insert_order(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        customers = self._live(dev, "customers")
        values: dict[str, Any] = {"total": Decimal(data.draw(st.integers(0, 10000))) / 100, "status": "pending"}
        if customers and data.draw(st.booleans()):
            values["customer_id"] = data.draw(st.sampled_from(customers))["id"]
        row = dev.store.insert("orders", values)
        assert row["total"] == values["total"] and row["status"] == "pending"

    def _changes(self, data: st.DataObject, table: str, row: dict[str, Any], cols: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in cols:
            if c in ("name", "notes"):
                out[c] = data.draw(st.sampled_from(WORDS)) + " " + str(data.draw(st.integers(0, 999)))
            elif c == "email":
                out[c] = f"e{data.draw(st.integers(0, 999))}@x.test"
            elif c == "phone":
                out[c] = str(data.draw(st.integers(100, 999)))
            elif c == "price":
                out[c] = Decimal(data.draw(st.integers(0, 5000))) / 100
            elif c == "active":
                out[c] = data.draw(st.booleans())
            elif c == "total":
                out[c] = Decimal(data.draw(st.integers(0, 10000))) / 100
            elif c == "status":
                nxt = [s for s in ORDER_FLOW[ORDER_FLOW.index(row["status"]) + 1:]] if row["status"] in ORDER_FLOW else []
                if row["status"] in ("pending", "paid"):
                    nxt.append("cancelled")
                if nxt:
                    out[c] = data.draw(st.sampled_from(nxt))
        return out

    COLUMNS = {"customers": ["name", "email", "phone", "notes"], "products": ["name", "price", "active"],
               "orders": ["status", "total"]}

    def _update(self, dev: Device, table: str, row_id: str, changes: dict[str, Any]) -> None:
        if not changes:
            return
        after = dev.store.update(table, row_id, changes)
        for k, v in changes.items():
            assert after[k] == v, f"{dev.name}: wrote {table}.{k}={v!r}, reads {after[k]!r}"

    @rule(data=st.data())
    @_step
    def update_row(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        table = data.draw(st.sampled_from(sorted(self.COLUMNS)))
        rows = self._live(dev, table)
        if not rows:
            return
        row = data.draw(st.sampled_from(rows))
        cols = data.draw(st.lists(st.sampled_from(self.COLUMNS[table]), min_size=1, max_size=3, unique=True))
        self._update(dev, table, row["id"], self._changes(data, table, row, cols))

    @rule(data=st.data(), overlap=st.booleans())
    @_step
    def concurrent_update(self, data: st.DataObject, overlap: bool) -> None:
        """Two devices of a shop edit the same row: the same columns or disjoint ones."""
        dev1 = self._dev(data, "first")
        peers = [d for d in self.devices if d is not dev1 and d.shop_id == dev1.shop_id]
        if not peers:
            return
        dev2 = data.draw(st.sampled_from(peers), label="second")
        table = data.draw(st.sampled_from(sorted(self.COLUMNS)))
        shared = sorted({r["id"] for r in self._live(dev1, table)} & {r["id"] for r in self._live(dev2, table)})
        if not shared:
            return
        row_id = data.draw(st.sampled_from(shared))
        cols = self.COLUMNS[table]
        first = data.draw(st.lists(st.sampled_from(cols), min_size=1, max_size=2, unique=True))
        rest = [c for c in cols if c not in first]
        second = first if overlap or not rest else data.draw(
            st.lists(st.sampled_from(rest), min_size=1, max_size=2, unique=True))
        for dev, chosen in ((dev1, first), (dev2, second)):
            row = dev.store.get(table, row_id)
            if row is not None:
                self._update(dev, table, row_id, self._changes(data, table, row, chosen))
        then = data.draw(st.sampled_from(["nothing", "sync both", "second syncs, first pulls"]), label="then")
        if then == "sync both":
            for dev in data.draw(st.permutations([dev1, dev2]), label="order"):
                self._sync(dev)
        elif then == "second syncs, first pulls":  # the first's queued edits must stay on top
            self._sync(dev2)
            self._sync(dev1, "pull")

    @rule(data=st.data())
    @_step
    def delete_row(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        table = data.draw(st.sampled_from(["customers", "products", "orders"]))
        rows = self._live(dev, table)
        if not rows:
            return
        row = data.draw(st.sampled_from(rows))
        dev.store.delete(table, row["id"])
        assert dev.store.get(table, row["id"]) is None
        assert dev.store.get(table, row["id"], include_deleted=True)["deleted_at"] is not None

    @rule(data=st.data())
    @_step
    def stock_movement(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        products = dev.store.query("products", include_deleted=True)
        if not products:
            return
        product = data.draw(st.sampled_from(products))
        reason = data.draw(st.sampled_from(["sale", "restock", "return", "adjustment"]))
        qty = Decimal(data.draw(st.integers(1, 20000))) / 1000
        delta = -qty if reason == "sale" or (reason == "adjustment" and data.draw(st.booleans())) else qty
        row = dev.store.insert("stock_movements", {"product_id": product["id"], "delta": delta, "reason": reason})
        assert row["delta"] == delta

    @rule(data=st.data())
    @_step
    def resolve_conflict(self, data: st.DataObject) -> None:
        dev = self._dev(data)
        open_ = dev.client.conflicts()
        if not open_:
            return
        c = data.draw(st.sampled_from(open_))
        keep = data.draw(st.sampled_from(["local", "remote"]))
        dev.client.resolve(c.id, keep)
        assert all(o.id != c.id for o in dev.client.conflicts())

    # -- network ----------------------------------------------------------------------------------------
    @rule(data=st.data(), mode=st.sampled_from(["reset", "reset", "reset", "blackhole"]))
    @_step
    def go_offline(self, data: st.DataObject, mode: str) -> None:
        self._dev(data).proxy.set_offline(mode)

    @rule(data=st.data())
    @_step
    def go_online(self, data: st.DataObject) -> None:
        self._dev(data).proxy.set_offline(None)

    @rule(data=st.data(), kind=st.sampled_from(["drop_request", "drop_response", "drop_response", "delay", "reset",
                                               "reset_after", "blackhole"]),
          match=st.sampled_from(["sync_push", "sync_push", "sync_pull", ""]), skip=st.integers(0, 2))
    @_step
    def inject_fault(self, data: st.DataObject, kind: str, match: str, skip: int) -> None:
        dev = self._dev(data)
        # A delay either stays under the client's timeout or runs past it (the server still commits).
        delay = data.draw(st.sampled_from([0.05, CLIENT_TIMEOUT * 1.3])) if kind == "delay" else 0.0
        dev.proxy.arm(kind, match=match, skip=skip, delay=delay)
        if data.draw(st.booleans(), label="sync now"):
            self._sync(dev)

    @rule(data=st.data())
    @_step
    def sync_one(self, data: st.DataObject) -> None:
        self._sync(self._dev(data))

    @rule(data=st.data(), half=st.sampled_from(["push", "pull"]))
    @_step
    def push_or_pull(self, data: st.DataObject, half: str) -> None:
        """One half of a sync: a pull with edits still queued keeps them on top of the pulled rows."""
        self._sync(self._dev(data), half)

    @rule(data=st.data())
    @_step
    def sync_some(self, data: st.DataObject) -> None:
        order = data.draw(st.permutations(self.devices), label="order")
        for dev in order[: data.draw(st.integers(1, len(order)), label="how many")]:
            self._sync(dev)

    # -- quiescence and the checker ---------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if not self.broken and self.devices:
                self.check_quiescence()
        finally:
            with STATS.lock:
                for dev in self.devices:
                    STATS.faults.update(dev.proxy.fired)
            for dev in self.devices:
                dev.proxy.close()
                dev.store.close()
            self.db.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _last_seq(self, shop_id: str) -> int:
        row = self.db.execute("select last_seq from shopsync.shop_cursor where shop_id = %s", (shop_id,)).fetchone()
        return int(row[0])

    def quiesce(self) -> None:
        for dev in self.devices:
            dev.proxy.disarm()
            dev.proxy.set_offline(None)
        for _ in range(10):
            for dev in self.devices:
                for c in dev.client.conflicts():
                    dev.client.resolve(c.id, "remote")
                self._sync(dev)
            if all(d.store.outbox.count() == 0 and not d.client.conflicts()
                   and d.store.cursor == self._last_seq(d.shop_id) for d in self.devices):
                return
        raise AssertionError("no quiescence after 10 rounds: " + ", ".join(
            f"{d.name}: outbox {d.store.outbox.count()}, conflicts {len(d.client.conflicts())},"
            f" cursor {d.store.cursor}/{self._last_seq(d.shop_id)}" for d in self.devices))

    def _server(self, shop_id: str, tables: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for t in tables:
            for rid, text in self.db.execute(
                    f"select id::text, to_jsonb(x)::text from public.{t} as x where shop_id = %s", (shop_id,)):
                out[(t, rid)] = json.loads(text, parse_float=Decimal)
        return out

    def check_quiescence(self) -> None:
        self.quiesce()
        with STATS.lock:
            STATS.events += sum(len(d.recorder.events) for d in self.devices)
            for d in self.devices:
                for eid in d.recorder.answers:
                    STATS.statuses[str(d.recorder.final(eid).get("status"))] += 1
        for dev in self.devices:
            self._check_rows(dev)
            self._check_acknowledged(dev)
        for tenant in self.tenants:
            self._check_exactly_once(tenant)
        with STATS.lock:
            STATS.checked += 1

    def _check_rows(self, dev: Device) -> None:
        store = dev.store
        tables = sorted(store.schema.tables)
        server = self._server(dev.shop_id, tables)
        local: dict[tuple[str, str], dict[str, Any]] = {}
        with store.transaction():
            for t in tables:
                for r in store.stored_rows(t):
                    local[(t, r["id"])] = r
        assert set(local) == set(server), (
            f"{dev.name}: rows differ from the server's: only local {sorted(set(local) - set(server))[:5]},"
            f" only server {sorted(set(server) - set(local))[:5]}")
        for key, srow in server.items():
            spec = store.schema.tables[key[0]]
            lrow = local[key]
            if lrow["sync_state"] == "failed":
                # A rejected edit stays visible until the server has news (docs/client.md); it was
                # reported, and the server's row has nothing of it.
                assert lrow["last_error"], f"{dev.name}: failed row {key} without last_error"
                continue
            assert lrow["sync_state"] == "synced", f"{dev.name}: {key} is {lrow['sync_state']} at quiescence"
            expected = spec.stored_from_wire(srow)
            diff = {c: (lrow.get(c), v) for c, v in expected.items() if lrow.get(c) != v}
            assert not diff, f"{dev.name}: {key} differs from the server (local, server): {diff}"

    def _log(self, shop_id: str, table: str, row_id: str) -> list[tuple[int, list[str] | None, dict[str, Any], str | None]]:
        return [(int(v), cols, json.loads(row, parse_float=Decimal), dev) for v, cols, row, dev in self.db.execute(
            "select version, changed_columns, row::text, device_id::text from shopsync.change_log"
            " where shop_id = %s and table_name = %s and row_id = %s order by seq", (shop_id, table, row_id))]

    def _check_acknowledged(self, dev: Device) -> None:
        rec = dev.recorder
        unanswered = set(rec.events) - set(rec.answers)
        assert not unanswered, f"{dev.name}: events sent but never answered, yet gone from the outbox: {unanswered}"
        server = self._server(dev.shop_id, sorted({e["table"] for e in rec.events.values()}))
        conflicts = {(c.table, c.row_id, c.reason) for c in dev.client.conflicts(include_resolved=True)}
        for eid, ev in rec.events.items():
            res = rec.final(eid)
            status = res.get("status")
            table, row_id = ev["table"], ev["row_id"]
            spec = dev.store.schema.tables[table]
            if status == "conflict":
                assert (table, row_id, res.get("reason")) in conflicts, f"{dev.name}: conflict {res} not recorded"
                continue
            if status not in ("applied", "merged"):
                continue
            version = int(res["version"])
            log = self._log(dev.shop_id, table, row_id)
            mine = [e for e in log if e[0] == version]
            assert len(mine) == 1, f"{dev.name}: {table} {row_id} v{version}: {len(mine)} change-log entries"
            _, _, logged_row, logged_dev = mine[0]
            assert logged_dev == dev.store.device_id, f"{dev.name}: v{version} of {row_id} is not this device's"
            final = server[(table, row_id)]
            if ev["op"] == "delete":
                assert logged_row["deleted_at"] is not None and final["deleted_at"] is not None, \
                    f"{dev.name}: acknowledged delete of {table} {row_id} lost"
                continue
            for col, value in ev["data"].items():
                assert _wire_equal(spec, col, logged_row[col], value), \
                    f"{dev.name}: acknowledged {table}.{col}={value!r} logged as {logged_row[col]!r} at v{version}"
                if _wire_equal(spec, col, final[col], value):
                    continue
                later = [e for e in log if e[0] > version and (e[1] is None or col in e[1])]
                assert later, (f"{dev.name}: acknowledged {table}.{col}={value!r} (v{version}) lost: the server has"
                               f" {final[col]!r} and no later change of {col}")

    def _check_exactly_once(self, tenant: Tenant) -> None:
        shop = tenant.shop_id
        devices = [d for d in self.devices if d.shop_id == shop]
        answered: dict[str, dict[str, Any]] = {}
        events: dict[str, dict[str, Any]] = {}
        for d in devices:
            for eid in d.recorder.answers:
                answered[eid] = d.recorder.final(eid)
                events[eid] = d.recorder.events[eid]
        stored = {str(eid): res for eid, res in self.db.execute(
            "select event_id, result from shopsync.push_results where shop_id = %s", (shop,))}
        expect_stored = {eid for eid, r in answered.items() if r.get("status") in ("applied", "merged", "conflict")}
        assert set(stored) == expect_stored, (
            f"shop {shop}: stored results {len(stored)} vs answered {len(expect_stored)}; extra"
            f" {sorted(set(stored) - expect_stored)[:3]}, missing {sorted(expect_stored - set(stored))[:3]}")
        for eid in expect_stored:
            assert stored[eid]["status"] == answered[eid]["status"], f"event {eid}: {stored[eid]} vs {answered[eid]}"
        # Each write is one version: per row the versions are 1..n, each once.
        per_row: dict[tuple[str, str], list[int]] = {}
        for t, rid, v in self.db.execute(
                "select table_name, row_id::text, version from shopsync.change_log where shop_id = %s"
                " and table_name <> 'inventory_levels' order by seq", (shop,)):
            per_row.setdefault((t, rid), []).append(int(v))
        for key, versions in per_row.items():
            assert versions == list(range(1, len(versions) + 1)), f"shop {shop}: {key} versions {versions}"
        writes = 0
        for eid, res in answered.items():
            if res.get("status") in ("applied", "merged"):
                writes += 1
            elif res.get("status") == "conflict" and res.get("reason") == "overridden" and events[eid]["op"] == "update":
                kept = {c.strip() for c in str(res.get("message") or "").split(":", 1)[-1].split(",")}
                writes += bool(set(events[eid]["data"]) - kept)
        total = sum(len(v) for v in per_row.values())
        assert total == writes, f"shop {shop}: {total} change-log writes for {writes} events that wrote"
        # Stock: each level is the sum of its product's movements.
        bad = self.db.execute(
            "select m.product_id, m.s, l.on_hand from (select product_id, sum(delta) as s from public.stock_movements"
            " where shop_id = %s group by product_id) as m left join public.inventory_levels as l"
            " on l.shop_id = %s and l.product_id = m.product_id where l.on_hand is distinct from m.s",
            (shop, shop)).fetchall()
        assert not bad, f"shop {shop}: inventory levels are not the sum of movements: {bad}"

