"""Fiscal invoices: the canonical serialization, its hash, totals and the chain check.

Postgres computes exactly the same (``shopsync.invoice_canonical`` (v1) and
``shopsync.invoice_canonical_v2`` / ``shopsync.invoice_hash``); the test vectors in
``supabase/tests/fixtures/invoice_vectors.json`` are checked by both sides.

An invoice's ``hash_version`` names its canonical form: 2 for every new invoice (the default when
the mapping has none), 1 for invoices stored before v2 (their rows say so). Both forms are a JSON
array of strings, rendered with ``", "`` between items (as Postgres renders jsonb text) and no
escaping of non-ASCII characters::

    v2: ["shopsync-invoice-v2", id, shop_id, device_id, series, number, issued_at, kind, refers_to,
         customer_id, currency, subtotal, tax, total,
         [[product_id, description, quantity, unit_price, tax_rate], ...], prev_hash]
    v1: ["shopsync-invoice-v1", shop_id, series, number, issued_at, kind, refers_to, customer_id,
         currency, subtotal, tax, total, [[product_id, description, quantity, unit_price, tax_rate], ...],
         prev_hash]

v2 covers every stored field: lines may carry only those five keys (the server rejects others).
``issued_at`` is UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; money has 2 decimals, quantities 3, tax
rates 2 (rounded half away from zero); absent ids are ``""``. The hash is the lowercase hex SHA-256
of the UTF-8 bytes. The first invoice of a series chains to :data:`GENESIS_HASH`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = [
    "GENESIS_HASH", "HASH_VERSION", "LINE_KEYS", "InvoiceTotals", "canonical", "hash_version", "invoice_hash",
    "totals", "verify_chain", "ChainCheck",
]

GENESIS_HASH = "0" * 64
_Q2 = Decimal("0.01")
_Q3 = Decimal("0.001")


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _fixed(value: Any, q: Decimal) -> str:
    return str(_dec(value).quantize(q, rounding=ROUND_HALF_UP))


def _ts(value: str | datetime) -> str:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class InvoiceTotals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def totals(lines: Iterable[Mapping[str, Any]]) -> InvoiceTotals:
    """Per line: net = round(quantity × unit_price, 2), tax = round(net × tax_rate / 100, 2)."""
    subtotal = tax = Decimal("0.00")
    for line in lines:
        net = (_dec(line["quantity"]) * _dec(line["unit_price"])).quantize(_Q2, rounding=ROUND_HALF_UP)
        subtotal += net
        tax += (net * _dec(line["tax_rate"]) / 100).quantize(_Q2, rounding=ROUND_HALF_UP)
    return InvoiceTotals(subtotal, tax, subtotal + tax)


LINE_KEYS = frozenset({"product_id", "description", "quantity", "unit_price", "tax_rate"})
HASH_VERSION = 2


def hash_version(inv: Mapping[str, Any]) -> int:
    """The canonical form an invoice is hashed in: its ``hash_version``, 2 when it has none."""
    return int(inv.get("hash_version") or HASH_VERSION)


def canonical(inv: Mapping[str, Any]) -> str:
    """The canonical text of an invoice row (a mapping with the invoice table's columns)."""
    lines = [
        [str(line.get("product_id") or ""), str(line["description"]), _fixed(line["quantity"], _Q3),
         _fixed(line["unit_price"], _Q2), _fixed(line["tax_rate"], _Q2)]
        for line in inv["lines"]
    ]
    head: list[Any]
    if hash_version(inv) == 1:
        head = ["shopsync-invoice-v1", str(inv["shop_id"])]
    else:
        head = ["shopsync-invoice-v2", str(inv["id"]), str(inv["shop_id"]), str(inv.get("device_id") or "")]
    parts: list[Any] = [
        *head, str(inv["series"]), str(int(inv["number"])),
        _ts(inv["issued_at"]), str(inv.get("kind") or "invoice"), str(inv.get("refers_to") or ""),
        str(inv.get("customer_id") or ""), str(inv.get("currency") or "EUR"),
        _fixed(inv["subtotal"], _Q2), _fixed(inv["tax"], _Q2), _fixed(inv["total"], _Q2),
        lines, str(inv["prev_hash"]),
    ]
    return json.dumps(parts, ensure_ascii=False, separators=(", ", ": "))


def invoice_hash(inv: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(inv).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    number: int | None = None
    invoice_id: str | None = None
    reason: str | None = None


def verify_chain(invoices: Sequence[Mapping[str, Any]]) -> ChainCheck:
    """The server's ``verify_invoice_chain`` rules, client-side, on one series ordered by number."""
    expected_number, expected_prev, seen_v2 = 1, GENESIS_HASH, False
    for checked, inv in enumerate(sorted(invoices, key=lambda i: int(i["number"]))):
        ident = str(inv.get("id")) if inv.get("id") else None
        if int(inv["number"]) != expected_number:
            return ChainCheck(False, checked, expected_number, None, "number_gap")
        if inv["prev_hash"] != expected_prev:
            return ChainCheck(False, checked, int(inv["number"]), ident, "chain_broken")
        t = totals(inv["lines"])
        if (_dec(inv["subtotal"]), _dec(inv["tax"]), _dec(inv["total"])) != (t.subtotal, t.tax, t.total):
            return ChainCheck(False, checked, int(inv["number"]), ident, "totals_mismatch")
        if hash_version(inv) == 1 and seen_v2:  # v1 only before v2 (the server knows the exact number)
            return ChainCheck(False, checked, int(inv["number"]), ident, "version_downgrade")
        seen_v2 = seen_v2 or hash_version(inv) != 1
        if any(set(line) - LINE_KEYS for line in inv["lines"]) and hash_version(inv) != 1:
            return ChainCheck(False, checked, int(inv["number"]), ident, "hash_mismatch")
        if inv["hash"] != invoice_hash(inv):
            return ChainCheck(False, checked, int(inv["number"]), ident, "hash_mismatch")
        expected_number, expected_prev = int(inv["number"]) + 1, str(inv["hash"])
    return ChainCheck(True, len(invoices))
