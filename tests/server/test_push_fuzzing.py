"""Push fuzzing: generated hostile and malformed ``sync_push`` payloads through the gateway.

Every payload is either one event case (an event or a few related events with the one defect the
generator put in, or none) or a whole-call case (a body no batch can be made of). Event cases are
packed, several to a call, with valid ones among them; whole-call cases go alone. For each call:

* never a 5xx; a whole-call case gets its 4xx and PostgREST code, and changes nothing;
* each event gets the status and reason its defect calls for, in order; poison values among them
  (issue 12): NUL and lone surrogates anywhere in an event (a value, a column name, nested json,
  the table, the event id) and numbers jsonb cannot hold are rejected per event (``invalid_value``),
  as are timestamps outside years 1-9999 UTC, numbers outside their column and oversize rows;
* each valid event's row exists with the pushed values;
* a rejected event leaves no trace: its row id is in no synced table and not in the change log,
  its event id not in ``shopsync.push_results``; the shop's change log grows by exactly the applied
  events and its push results by exactly the applied and conflicting ones; shop B is untouched.

The bounded run in ``make test`` tries ``SHOPSYNC_FUZZ_PAYLOADS`` (default 1500) payloads; the soak
run is the same test with more: ``SHOPSYNC_FUZZ_PAYLOADS=10000 .venv/bin/pytest -s tests/server/test_push_fuzzing.py``
(``SHOPSYNC_FUZZ_SEED`` picks the generator's seed; the summary line prints count, time and rate).
"""

from __future__ import annotations

import json
import os
import random
import string
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from sync_helpers import SHOP_A, SHOP_B, config_value

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings, load_settings

EXTERNAL = os.environ.get("SHOPSYNC_STACK") == "external"
PAYLOADS = int(os.environ.get("SHOPSYNC_FUZZ_PAYLOADS", "1500"))
SEED = int(os.environ.get("SHOPSYNC_FUZZ_SEED", "20261122"))
TS = "2026-01-01T00:00:00Z"

# Strings that look like SQL, quoting, dollar quoting, escapes: valid values, stored verbatim.
NASTY = [
    "Robert'); drop table customers; --", "customers; drop table x", "' or '1'='1", '"; select pg_sleep(10); --',
    "$$", "$q$ select 1 $q$", "\\", "\\\\x00", "%s %(x)s {0}", "null", "NULL", "true", "[]", "{}",
    "😀 Ünïcödé ß ℌ", "\u202eRTL", "line\nbreak\ttab", "' || (select string_agg(email, ',') from auth.users) || '",
]
SQLISH_NAMES = [
    "customers; drop table x", 'customers"', "customers'", "$$", "$x$customers$x$", "pg_catalog.pg_class",
    "shopsync.change_log", "auth.users", "public.customers", "Customers", " customers", "customers ", "",
    "../customers", "customers--", "shops", "shop_members", "licenses", "devices", "x" * 100_000,
]
BAD_TIMESTAMPS: list[Any] = [
    "2025-02-30", "2025-02-29T10:00:00Z", "2025-01-01T25:00:00Z", "2025-01-01T10:60:00Z", "2025-01-01T10:00:61Z",
    "2025-13-01", "2025-00-10", "now", "infinity", "-infinity", "epoch", "yesterday", "2025-01-01T00:00:00+16:00",
    "0000-01-01", "2025/01/01", "01.01.2025", "", 1_700_000_000, True, [], {"at": "2025-01-01"},
]

# Poison values: well-formed timestamps outside 0001-01-01 .. 9999-12-31 UTC once the offset (or the
# rounding of a seventh fractional digit) is applied; no client could read them back.
OUT_OF_RANGE_TIMESTAMPS = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "0000-06-01T00:00:00Z",
                           "9999-12-31T23:59:59.9999999Z", "0001-01-01T00:00:00+00:30"]
# The row limit during the run (sync_max_row_bytes), below the gateway's body limit.
ROW_LIMIT = 300_000


@dataclass
class Expect:
    status: frozenset[str]
    reason: str | None = None
    row: tuple[str, dict[str, Any]] | None = None  # (table, pushed values) that must be stored
    traceless: bool = False  # rejected: row id and event id must leave no trace
    foreign: bool = False  # aimed at shop B's row: no server_row
    absent_row: bool = False  # its row must not exist (a repeated event id carrying another row)


@dataclass
class Case:
    kind: str
    events: list[Any]
    expect: list[Expect]


@dataclass
class CallCase:
    kind: str
    body: str
    status: int
    code: str | None  # None: any code (the local gateway and PostgREST word it differently)
    row_ids: list[str] = field(default_factory=list)  # must not exist afterwards
    # Refused by the local gateway's JSON handling; a real PostgREST hands the body to Postgres,
    # which may accept it (then per-event rejections, 200) or refuse it.
    gateway_only: bool = False


REJ = frozenset({"rejected"})
APPLIED = frozenset({"applied"})


class Gen:
    """A seeded generator of payloads aimed at shop A through its owner's device."""

    def __init__(self, seed: int, refs: dict[str, str]):
        self.r = random.Random(seed)
        self.refs = refs  # customer_a, customer_b, order_b, product_b, device_b
        self.salt = uuid.uuid4().int  # ids fresh on every run; the cases themselves follow the seed

    def uid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128) ^ self.salt, version=4))

    def text(self, n: int = 30) -> str:
        if self.r.random() < 0.4:
            return self.r.choice(NASTY)
        return "".join(self.r.choice(string.printable + "äéß漢字😀'\"$;") for _ in range(self.r.randint(1, n)))

    def json_value(self, depth: int) -> Any:
        if depth <= 0:
            return self.r.choice([1, -7, 0, True, False, None, self.text(10), "1e400"])
        if self.r.random() < 0.5:
            return [self.json_value(depth - 1)]
        return {self.text(8): self.json_value(depth - 1)}

    def event(self, table: str, op: str, data: Any, *, row_id: str | None = None, **extra: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"event_id": self.uid(), "table": table, "op": op, "row_id": row_id or self.uid(),
                              "data": data, "client_ts": TS}
        ev.update(extra)
        return ev

    # -- valid events ------------------------------------------------------------------------------
    def valid(self) -> tuple[dict[str, Any], Expect]:
        kind = self.r.choice(["customers", "products", "shop_settings", "orders"])
        if kind == "customers":
            data: dict[str, Any] = {"name": self.text(200)[:200]}
            for col, limit in (("email", 320), ("phone", 40), ("notes", 4000)):
                if self.r.random() < 0.5:
                    data[col] = self.text(limit)[:limit]
        elif kind == "products":
            data = {"sku": self.text(64)[:64], "name": self.text(200)[:200],
                    "price": self.r.choice([f"{self.r.randint(0, 10**9)}.{self.r.randint(0, 99):02d}", 0, 12.5, 999]),
                    "tax_rate": self.r.choice(["7.00", 19, "100", 0.5]), "active": self.r.random() < 0.5}
        elif kind == "shop_settings":
            data = {"key": f"fuzz-{self.uid()}", "value": self.json_value(self.r.randint(0, 60))}
        else:
            data = {"customer_id": self.refs["customer_a"], "status": self.r.choice(["pending", "paid"]),
                    "total": f"{self.r.randint(0, 99999)}.{self.r.randint(0, 99):02d}", "order_code": self.text(40)[:40]}
        return self.event(kind, "insert", data), Expect(APPLIED, None, (kind, data))

    # -- cases -------------------------------------------------------------------------------------
    def case(self) -> Case:
        roll = self.r.random()
        if roll < 0.15:
            ev, exp = self.valid()
            return Case("valid", [ev], [exp])
        if roll < 0.2:
            return self.multi()
        name, mutate = self.r.choice(MUTATIONS)
        ev, _ = self.valid()
        out, reason, status = mutate(self, ev)
        return Case(name, [out], [Expect(status, reason, None, status == REJ, name.startswith("foreign"))])

    def multi(self) -> Case:
        """Several events in one case: duplicates within the batch, insert then update."""
        which = self.r.choice(["dup_valid", "dup_invalid", "dup_other_row", "insert_update"])
        ev, exp = self.valid()
        if which == "dup_valid":
            return Case(which, [ev, dict(ev)], [exp, Expect(frozenset({"duplicate"}))])
        if which == "dup_invalid":
            bad = {**ev, "table": "nope"}
            return Case(which, [bad, dict(bad)], [Expect(REJ, "unknown_table", None, True)] * 2)
        if which == "dup_other_row":
            other, _ = self.valid()
            other["event_id"] = ev["event_id"]
            return Case(which, [ev, other], [exp, Expect(frozenset({"duplicate"}), absent_row=True)])
        table, data = exp.row or ("", {})
        change = {"name": self.text(50)[:50]} if table in ("customers", "products") else \
            {"value": self.json_value(3)} if table == "shop_settings" else {"status": "paid"}
        upd = self.event(table, "update", change, row_id=ev["row_id"], base_version=1)
        return Case(which, [ev, upd], [Expect(APPLIED), Expect(APPLIED, None, (table, {**data, **change}))])


Mutation = Callable[[Gen, dict[str, Any]], tuple[Any, str | None, frozenset[str]]]


def _m_non_object(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    return g.r.choice([1, "x", None, [], True, [ev], "customers; drop table x", 1.5e300]), "invalid_event", REJ


def _m_event_id(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    bad = g.r.choice([None, 123, "nope", "' or 1=1 --", {}, [], "", ev["event_id"][:-1], ev["event_id"] + "0", "DEL"])
    if bad == "DEL":
        del ev["event_id"]
    else:
        ev["event_id"] = bad
    return ev, "invalid_event_id", REJ


def _m_op(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev["op"] = g.r.choice(["upsert", "INSERT", "", None, 1, "insert; drop table x", "delete ", ["insert"], "truncate"])
    return ev, "invalid_op", REJ


def _m_row_id(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev["row_id"] = g.r.choice([None, "", 42, "x", "00000000-0000-0000-0000-00000000000g", "'; drop table x; --",
                              {"id": g.uid()}, [g.uid()]])
    return ev, "invalid_row_id", REJ


def _m_client_ts(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev["client_ts"] = g.r.choice(BAD_TIMESTAMPS + OUT_OF_RANGE_TIMESTAMPS)
    return ev, "invalid_client_ts", REJ


def _m_data(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    bad = g.r.choice(["x", 1, [], None, True, [ev["data"]], "DEL"])
    if bad == "DEL":
        del ev["data"]
    else:
        ev["data"] = bad
    return ev, "invalid_data", REJ


def _m_base_version(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    bad = g.r.choice(["1", -1, 1.5, 1e30, 10**16, True, [], {}])
    ev["base_version"] = bad
    if g.r.random() < 0.5:
        return ev, "invalid_base_version", REJ
    ev["op"] = "update"
    return ev, "missing_base_version", REJ


def _m_table(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev["table"] = g.r.choice(SQLISH_NAMES + [None, 123, ["customers"], {"t": "customers"}])
    return ev, "unknown_table", REJ


def _m_read_only_table(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev["table"] = "inventory_levels"
    return ev, "read_only_table", REJ


def _m_append_only(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev.update(table=g.r.choice(["invoices", "stock_movements"]), op=g.r.choice(["update", "delete"]), base_version=1)
    return ev, "append_only", REJ


def _m_unknown_column(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    key = g.r.choice(["shoe_size", "name; drop table customers", '"', "$$", "", "x" * 100_000, "NAME", "name ",
                      "name\u0301", "customer_id; --", "to_jsonb(t)", "1"])
    if ev["table"] == "orders" and key == "customer_id; --":
        key = "shoe_size"
    ev["data"][key] = g.text(5)
    return ev, "unknown_column", REJ


def _m_system_column(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    col = g.r.choice(["id", "shop_id", "version", "created_at", "updated_at", "deleted_at", "last_device_id",
                      "client_changed_at"])
    ev["data"][col] = g.r.choice([SHOP_B, g.uid(), 99, TS, None])
    return ev, "read_only_column", REJ


def _m_wrong_type(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    table = ev["table"]
    col, bad = {
        "customers": ("name", [12, True, [], {}, 1.5, ["x"], {"$$": 1}, "x" * 100_000, {"a": [[[[[[[[[["deep"]]]]]]]]]]}]),
        "products": (g.r.choice(["price", "tax_rate", "active"]),
                     None),
        "shop_settings": ("key", [1, False, [], {}, "k" * 100_000]),
        "orders": (g.r.choice(["customer_id", "total", "status"]), None),
    }[table]
    if bad is None:
        bad = {
            "price": ["abc", "1e5", 1e20, "12.345", True, [], "NaN", "Infinity", "-", "1,5", 10**40, "0x10"],
            "tax_rate": ["100.001", "x", 1e3 * 1e3, [], "7%"],
            "active": ["true", 1, 0, "yes", [], {}],
            "customer_id": ["x", 1, "'; drop table orders; --", g.uid()[:-2], True],
            "total": ["abc", 10**13, "0.001", [], False],
            "status": [1, True, [], {}],
        }[col]
    ev["data"][col] = g.r.choice(bad)
    return ev, "invalid_value", REJ


def _m_null(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    col = {"customers": "name", "products": "sku", "shop_settings": "key", "orders": "status"}[ev["table"]]
    ev["data"][col] = None
    return ev, "null_value", REJ


def _m_missing(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    col = {"customers": "name", "products": "sku", "shop_settings": "key"}.get(ev["table"])
    if col is None:
        ev = g.event("order_items", "insert", {"quantity": 1, "unit_price": 1})
        return ev, "missing_column", REJ
    del ev["data"][col]
    return ev, "missing_column", REJ


def _m_check(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    table = ev["table"]
    col, bad = {
        "customers": ("name", ["", "n" * 201, "n" * 5000]),
        "products": (g.r.choice(["price", "tax_rate", "sku"]), None),
        "shop_settings": ("key", ["", "k" * 101]),
        "orders": ("status", ["bogus", "paid'; drop table orders; --", "PAID", ""]),
    }[table]
    if bad is None:
        bad = {"price": [-1, "-0.01"], "tax_rate": [101, "100.01", -1], "sku": ["", "s" * 65]}[col]
    ev["data"][col] = g.r.choice(bad)
    return ev, "check_violation", REJ


def _m_reference(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    target = g.r.choice([g.uid(), g.refs["customer_b"]])
    ev = g.event("orders", "insert", {"customer_id": target, "status": "pending"})
    if g.r.random() < 0.5:
        ev = g.event("order_items", "insert", {"order_id": g.r.choice([g.uid(), g.refs["order_b"]]),
                                               "quantity": 1, "unit_price": "1.00"})
    return ev, "invalid_reference", REJ


def _m_invoice_value(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    data: dict[str, Any] = {"series": "FZ", "number": 1, "issued_at": TS, "lines": [], "subtotal": 0, "tax": 0,
                            "total": 0, "prev_hash": "0" * 64, "hash": "0" * 64}
    col, bad = g.r.choice([
        ("issued_at", g.r.choice(BAD_TIMESTAMPS[:17] + OUT_OF_RANGE_TIMESTAMPS)), ("number", g.r.choice([1e30, 2**63, "1", -2**64, 1.5])),
        ("subtotal", g.r.choice([1e15, "x", "0.001"])),
    ])
    data[col] = bad
    return g.event("invoices", "insert", data), "invalid_value", REJ


RAW_NUMBERS = ["1e400", "-1e400", "1e-400", "0.1000000000000000000001", "123456789012345678901234567890.5",
               "1E+2147483648", "-1e1000000"]  # the last two: beyond what jsonb (numeric) holds at all


def raw(number: str) -> str:
    """A marker json_body() turns into the bare number (JSON numbers Python cannot hold exactly)."""
    return f"@@raw:{number}@@"


def json_body(value: Any) -> str:
    text = json.dumps(value)
    for number in RAW_NUMBERS:
        text = text.replace(json.dumps(raw(number)), number)
    return text


def _m_raw_number(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    col = {"customers": "name", "products": "price", "shop_settings": "key", "orders": "total"}[ev["table"]]
    ev["data"][col] = raw(g.r.choice(RAW_NUMBERS))
    return ev, "invalid_value", REJ


def _m_row_too_large(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    col = {"customers": "name", "products": "name", "shop_settings": "value", "orders": "order_code"}[ev["table"]]
    ev["data"][col] = "x" * (ROW_LIMIT + 1) if col != "value" else ["x" * 1000] * (ROW_LIMIT // 1000 + 1)
    return ev, "row_too_large", REJ


def _m_not_found(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev.update(op=g.r.choice(["update", "delete"]), base_version=1)
    return ev, "not_found", REJ


def _m_base_ahead(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev.update(op="update", row_id=g.refs["customer_a"], base_version=10**12, table="customers",
              data={"name": "never"})
    return ev, "invalid_base_version", REJ


def _m_foreign_update(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    table, key = g.r.choice([("customers", "customer_b"), ("orders", "order_b"), ("products", "product_b")])
    ev.update(table=table, op=g.r.choice(["update", "delete"]), row_id=g.refs[key], base_version=1,
              data={"name": "mine now"} if table != "orders" else {"status": "paid"})
    return ev, "not_found", REJ


def _m_foreign_insert(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    ev.update(table="customers", op="insert", row_id=g.refs["customer_b"], data={"name": "copy"})
    return ev, "id_unavailable", REJ  # not id_exists: another shop's id is no oracle (issue 12 finding 5)


# Text Postgres cannot store (a JS client's JSON.stringify writes them as \\u0000, \\ud800 escapes).
POISON_TEXT = ["\u0000", "a\u0000b", "\ud800", "x\udc00", "\udbff\u0000", "\ud83d", "\ude00z", "\u0000\u0000"]


def _m_poison(g: Gen, ev: dict[str, Any]) -> tuple[Any, str | None, frozenset[str]]:
    """A NUL or a lone surrogate anywhere in the event: that event alone is rejected (issue 12 finding 8)."""
    poison = g.r.choice(POISON_TEXT)
    col = {"customers": "name", "products": "name", "shop_settings": "key", "orders": "order_code"}[ev["table"]]
    where = g.r.choice(["value", "column_name", "nested", "table", "event_id"])
    if where == "value":
        ev["data"][col] = g.text(10) + poison
    elif where == "column_name":
        ev["data"][col + poison] = "x"
    elif where == "nested":
        ev = g.event("shop_settings", "insert", {"key": g.text(20)[:20] or "k", "value": {"a": [1, {"b": poison}]}})
    elif where == "table":
        ev["table"] = ev["table"] + poison
    else:
        ev["event_id"] = ev["event_id"][:-1] + poison
    return ev, "invalid_value", REJ


MUTATIONS: list[tuple[str, Mutation]] = [
    ("non_object", _m_non_object), ("event_id", _m_event_id), ("op", _m_op), ("row_id", _m_row_id),
    ("client_ts", _m_client_ts), ("data", _m_data), ("base_version", _m_base_version), ("table", _m_table),
    ("read_only_table", _m_read_only_table), ("append_only", _m_append_only), ("unknown_column", _m_unknown_column),
    ("system_column", _m_system_column), ("wrong_type", _m_wrong_type), ("null", _m_null), ("missing", _m_missing),
    ("check", _m_check), ("reference", _m_reference), ("invoice_value", _m_invoice_value),
    ("not_found", _m_not_found), ("base_ahead", _m_base_ahead), ("foreign_update", _m_foreign_update),
    ("foreign_insert", _m_foreign_insert), ("raw_number", _m_raw_number), ("row_too_large", _m_row_too_large),
    ("poison", _m_poison),
]


def call_cases(g: Gen, device: str) -> list[CallCase]:
    """Bodies that are refused as a whole."""
    def body(events: Any, dev: Any = device, **extra: Any) -> str:
        return json.dumps({"p_device_id": dev, "p_events": events, **extra})

    many = [g.event("customers", "insert", {"name": "too many"}) for _ in range(1001)]
    deep = "[" * 5000 + "]" * 5000
    evs = [g.event("customers", "insert", {"name": "x"})]
    return [
        *[CallCase("non_array", body(v), 400, "PT400") for v in ({}, "x", 1, None, True, {"events": evs})],
        CallCase("too_many", body(many), 400, "PT400", [e["row_id"] for e in many]),
        *[CallCase("device_id", body(evs, v), 400, "22P02", [evs[0]["row_id"]]) for v in ("nope", 123, {"a": 1}, "")],
        CallCase("device_null", body(evs, None), 400, "PT400", [evs[0]["row_id"]]),
        CallCase("device_unknown", body(evs, g.uid()), 404, "PT404", [evs[0]["row_id"]]),
        CallCase("device_other_shop", body(evs, g.refs["device_b"]), 404, "PT404", [evs[0]["row_id"]]),
        # The body goes to sync_push(json) whatever its keys: arguments are checked there.
        CallCase("missing_arg", json.dumps({"p_device_id": device}), 400, "PT400"),
        CallCase("extra_arg", body(evs, p_shop_id=SHOP_B), 400, "PT400", [evs[0]["row_id"]]),
        CallCase("not_json", '{"p_device_id": ', 400, "PGRST102"),
        CallCase("deep_json", '{"p_device_id": "%s", "p_events": %s}' % (device, deep), 400, "PGRST102",
                 gateway_only=True),
        CallCase("deep_value", body([g.event("shop_settings", "insert", {"key": "deep", "value": "DEEP"})]).replace(
            '"DEEP"', deep), 400, "PGRST102", gateway_only=True),
        # Poison values are refused per event (see _m_poison); in the device id, the call is refused.
        *[CallCase("device_poison", body(evs, v), 400, "22P02", [evs[0]["row_id"]])
          for v in ("\u0000", "\ud800", "d\udc00")],
    ]


# -- The run ------------------------------------------------------------------------------------------
@dataclass
class Run:
    settings: StackSettings
    pg: psycopg.Connection
    http: httpx.Client
    device: str
    refs: dict[str, str]


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    settings = load_settings()
    with psycopg.connect(settings.db_url, autocommit=True) as pg, \
            httpx.Client(base_url=settings.api_url, timeout=120, headers={
                "apikey": settings.anon_key, "Content-Type": "application/json",
                "Authorization": f"Bearer {mint_user_token(settings, 'owner@shop-a.test')}"}) as http, \
            config_value(pg, "push_calls_per_minute", "1000000"), \
            config_value(pg, "sync_max_row_bytes", str(ROW_LIMIT)):
        seats = pg.execute("select shop_id, max_devices from public.licenses").fetchall()
        pg.execute("update public.licenses set max_devices = 10000")
        try:
            device = str(uuid.uuid4())
            resp = http.post("/rest/v1/rpc/sync_register_device", json={"p_device_id": device, "p_name": "fuzz"})
            assert resp.status_code == 200, resp.text
            http.headers["x-device-secret"] = resp.json()["device_secret"]  # the fuzzed device's own
            b_token = mint_user_token(settings, "owner@shop-b.test")
            device_b = str(uuid.uuid4())
            resp = http.post("/rest/v1/rpc/sync_register_device", json={"p_device_id": device_b, "p_name": "fuzz b"},
                             headers={"Authorization": f"Bearer {b_token}"})
            assert resp.status_code == 200, resp.text
            secret_b = resp.json()["device_secret"]
            order_b = str(uuid.uuid4())
            customer_b = pg.execute("select id::text from public.customers where shop_id = %s limit 1", (SHOP_B,)).fetchone()
            resp = http.post("/rest/v1/rpc/sync_push", headers={"Authorization": f"Bearer {b_token}",
                                                                "x-device-secret": secret_b}, json={
                "p_device_id": device_b, "p_events": [{"event_id": str(uuid.uuid4()), "table": "orders", "op": "insert",
                                                      "row_id": order_b, "data": {}, "client_ts": TS}]})
            assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "applied", resp.text
            one = pg.execute("select (select id::text from public.customers where shop_id = %s limit 1),"
                             " (select id::text from public.products where shop_id = %s limit 1)", (SHOP_A, SHOP_B)).fetchone()
            assert one and customer_b
            refs = {"customer_a": one[0], "customer_b": customer_b[0], "order_b": order_b, "product_b": one[1],
                    "device_b": device_b}
            yield Run(settings, pg, http, device, refs)
        finally:
            for shop, n in seats:
                pg.execute("update public.licenses set max_devices = %s where shop_id = %s", (n, shop))


SYNCED = ("customers", "products", "orders", "order_items", "shop_settings", "invoices", "stock_movements",
          "inventory_levels")


def _shop_state(pg: psycopg.Connection, shop: str) -> tuple[Any, ...]:
    row = pg.execute(
        "select (select last_seq from shopsync.shop_cursor where shop_id = %(s)s),"
        " (select count(*) from shopsync.push_results where shop_id = %(s)s),"
        " (select count(*) from shopsync.change_log where shop_id = %(s)s)", {"s": shop}).fetchone()
    assert row
    return tuple(row)


def _b_rows(pg: psycopg.Connection) -> str:
    parts = " union all ".join(
        f"select '{t}', md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by id), '')) from public.{t} as t"
        f" where shop_id = %(s)s" for t in SYNCED)
    return json.dumps(pg.execute(parts, {"s": SHOP_B}).fetchall())


def _same(pushed: Any, stored: Any) -> bool:
    if isinstance(stored, Decimal) and not isinstance(pushed, bool):
        return Decimal(str(pushed)) == stored
    return bool(pushed == stored)


def _is_uuid(v: Any) -> bool:
    try:
        return isinstance(v, str) and str(uuid.UUID(v)) == v.lower() and len(v) == 36
    except ValueError:
        return False


class Checker:
    def __init__(self, run: Run):
        self.run = run
        self.failures: list[str] = []
        self.calls = 0
        self.applied = 0
        self.too_large = 0  # bodies over the gateway's limit, refused whole (413) and sent again in halves

    def fail(self, msg: str) -> None:
        self.failures.append(msg[:2000])

    def send_events(self, cases: list[Case]) -> None:
        pg = self.run.pg
        events = [e for c in cases for e in c.events]
        expects = [x for c in cases for x in c.expect]
        before = _shop_state(pg, SHOP_A)
        body = json_body({"p_device_id": self.run.device, "p_events": events})
        resp = self.run.http.post("/rest/v1/rpc/sync_push", content=body)
        self.calls += 1
        if resp.status_code == 413 and len(body) > 1 << 20:
            # Over the body limit (the local gateway takes 8 MiB): a clear whole-call refusal that
            # wrote nothing; the events go again in halves, as the client sends them.
            self.too_large += 1
            if _shop_state(pg, SHOP_A) != before:
                self.fail(f"a refused body of {len(body):,} bytes changed the shop")
            if len(cases) > 1:
                self.send_events(cases[:len(cases) // 2])
                self.send_events(cases[len(cases) // 2:])
            return
        if resp.status_code != 200:
            self.fail(f"batch of {len(events)} got {resp.status_code}: {resp.text[:500]}; kinds "
                      f"{sorted({c.kind for c in cases})}")
            return
        results = resp.json()["results"]
        if len(results) != len(events):
            self.fail(f"{len(events)} events, {len(results)} results")
            return
        owner = [c.kind for c in cases for _ in c.events]
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        traceless_rows: list[str] = []
        traceless_events: list[str] = []
        n_applied = n_stored = 0
        for ev, exp, res, kind in zip(events, expects, results, owner):
            if res["status"] not in exp.status or (exp.reason is not None and res["reason"] != exp.reason):
                self.fail(f"{kind}: expected {sorted(exp.status)}/{exp.reason}, got {res}\n event: "
                          f"{json.dumps(ev)[:600]}")
            if exp.foreign and res.get("server_row") is not None:
                self.fail(f"{kind}: another shop's row returned: {res}")
            n_applied += res["status"] in ("applied", "merged")
            n_stored += res["status"] in ("applied", "merged", "conflict")
            if exp.row:
                rows.setdefault(exp.row[0], {})[ev["row_id"]] = exp.row[1]
            if exp.absent_row:
                traceless_rows.append(ev["row_id"])
            if exp.traceless and isinstance(ev, dict):
                if _is_uuid(ev.get("row_id")) and ev["row_id"] not in self.run.refs.values():
                    traceless_rows.append(ev["row_id"])
                if _is_uuid(ev.get("event_id")):
                    traceless_events.append(ev["event_id"])
        self.applied += n_applied
        # Values of the valid events, as stored.
        for table, by_id in rows.items():
            stored = {r[0]: r[1] for r in pg.execute(
                f"select id::text, to_jsonb(t)::text from public.{table} as t where id = any(%s::uuid[])",
                (list(by_id),))}
            for row_id, data in by_id.items():
                if row_id not in stored:
                    self.fail(f"{table} {row_id} applied but absent")
                    continue
                got = json.loads(stored[row_id], parse_float=Decimal, parse_int=Decimal)
                bad = {k: (v, got.get(k)) for k, v in data.items() if not _same(v, got.get(k))}
                if bad:
                    self.fail(f"{table} {row_id} stored other values: {bad}")
        # No trace of rejected events.
        if traceless_rows:
            union = " union all ".join(f"select '{t}', id::text from public.{t} where id = any(%(ids)s::uuid[])"
                                       for t in SYNCED)
            found = pg.execute(union + " union all select 'change_log', row_id::text from shopsync.change_log"
                               " where row_id = any(%(ids)s::uuid[])", {"ids": traceless_rows}).fetchall()
            if found:
                self.fail(f"rejected events left rows: {found[:5]}")
        if traceless_events:
            found = pg.execute("select event_id::text from shopsync.push_results where event_id = any(%s::uuid[])",
                               (traceless_events,)).fetchall()
            if found:
                self.fail(f"rejected events left push results: {found[:5]}")
        after = _shop_state(pg, SHOP_A)
        if (after[0] - before[0], after[1] - before[1], after[2] - before[2]) != (n_applied, n_stored, n_applied):
            self.fail(f"log/results moved by {after[0] - before[0]}/{after[1] - before[1]}/{after[2] - before[2]}, "
                      f"expected {n_applied}/{n_stored}/{n_applied}")

    def send_call(self, case: CallCase) -> None:
        before = _shop_state(self.run.pg, SHOP_A)
        resp = self.run.http.post("/rest/v1/rpc/sync_push", content=case.body.encode())
        self.calls += 1
        body = resp.json() if resp.content else {}
        if EXTERNAL and case.gateway_only and resp.status_code < 500:
            pass
        elif resp.status_code != case.status or not 400 <= resp.status_code < 500 or (
                case.code is not None and body.get("code") != case.code):
            self.fail(f"{case.kind}: expected {case.status} {case.code}, got {resp.status_code} {resp.text[:300]}")
        if _shop_state(self.run.pg, SHOP_A) != before:
            self.fail(f"{case.kind}: a refused call changed shop A's log or results")
        if case.row_ids and self.run.pg.execute("select count(*) from public.customers where id = any(%s::uuid[])",
                                                (case.row_ids,)).fetchone() != (0,):
            self.fail(f"{case.kind}: rows of a refused call exist")


def test_hostile_pushes_get_per_event_rejections_or_a_clear_4xx(run: Run) -> None:
    gen = Gen(SEED, run.refs)
    checker = Checker(run)
    b_before = _b_rows(run.pg)
    fixed = call_cases(gen, run.device)
    payloads = 0
    started = time.monotonic()
    for case in fixed:
        checker.send_call(case)
        payloads += 1
    while payloads < PAYLOADS:
        batch: list[Case] = []
        size = gen.r.choice([1, 5, 50, 200, 600])
        while payloads < PAYLOADS and sum(len(c.events) for c in batch) < size:
            batch.append(gen.case())
            payloads += 1
        checker.send_events(batch)
        if gen.r.random() < 0.02:  # now and then, one of the whole-call cases again
            checker.send_call(gen.r.choice(call_cases(gen, run.device)))
            payloads += 1
    elapsed = time.monotonic() - started
    if _b_rows(run.pg) != b_before:
        checker.fail("shop B's rows changed")
    print(f"\npush fuzzing: seed {SEED}, {payloads} payloads in {checker.calls} calls, {elapsed:.1f}s "
          f"({payloads / elapsed:.0f} payloads/s), {checker.applied} valid events applied, "
          f"{checker.too_large} bodies over the limit refused and sent again in halves, "
          f"{len(checker.failures)} failures")
    assert payloads >= PAYLOADS and checker.applied > 0
    assert not checker.failures, f"{len(checker.failures)} failures (seed {SEED}):\n" + "\n".join(checker.failures[:20])


# -- Regressions ----------------------------------------------------------------------------------------
@pytest.mark.local_stack
def test_json_nested_deeper_than_the_gateway_parses_is_a_400_not_a_500(run: Run) -> None:
    """Found by fuzzing: the gateway's json.loads raised RecursionError past ~1000 levels, answered
    as 500 PGRST000. Now 400 PGRST102, like any unparseable body."""
    for depth in (1000, 5000, 100_000):
        nested = "[" * depth + "]" * depth
        resp = run.http.post("/rest/v1/rpc/sync_push", content='{"p_device_id": "%s", "p_events": %s}' % (
            run.device, nested))
        assert (resp.status_code, resp.json()["code"]) == (400, "PGRST102"), (depth, resp.text[:200])


def test_numbers_reach_postgres_exactly_as_the_client_wrote_them(run: Run) -> None:
    """Found by fuzzing: the gateway re-encoded JSON numbers through Python floats, so a price of
    0.1000000000000000000001 was stored as 0.10 (PostgREST passes it as written and the push
    rejects it) and 1e400 became Infinity, failing the whole call instead of the one event."""
    good = str(uuid.uuid4())
    events = [
        {"event_id": str(uuid.uuid4()), "table": "products", "op": "insert", "row_id": str(uuid.uuid4()),
         "data": {"sku": "P", "name": "p", "price": raw("0.1000000000000000000001")}, "client_ts": TS},
        {"event_id": str(uuid.uuid4()), "table": "customers", "op": "insert", "row_id": str(uuid.uuid4()),
         "data": {"name": "n", "notes": raw("1e400")}, "client_ts": TS},
        {"event_id": str(uuid.uuid4()), "table": "products", "op": "insert", "row_id": good,
         "data": {"sku": "P", "name": "p", "price": raw("123456789012345678901234567890.5")}, "client_ts": TS},
    ]
    events[2]["data"]["price"] = 12.5
    resp = run.http.post("/rest/v1/rpc/sync_push", content=json_body({"p_device_id": run.device, "p_events": events}))
    assert resp.status_code == 200, resp.text
    assert [(r["status"], r["reason"]) for r in resp.json()["results"]] == [
        ("rejected", "invalid_value"), ("rejected", "invalid_value"), ("applied", None)]
    assert run.pg.execute("select price from public.products where id = %s", (good,)).fetchone() == (Decimal("12.50"),)
