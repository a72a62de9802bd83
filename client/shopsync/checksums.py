"""Row hashes and table checksums, computed from the device's SQLite values exactly as the server's
change-log triggers compute them from its rows (``supabase/migrations/20261202004000_verified_convergence.sql``).

A table's checksum is the number of its live rows (``deleted_at`` null; tombstones do not count) and
the sum modulo 2^64 of their row hashes. A row hash is the first 8 bytes (big-endian, signed) of the
MD5 of the row's canonical text: the columns the server names (``sync_checksums`` answers them per
table), sorted by name, joined by ``|``, each in its canonical form (null: empty):

* integers, uuids: their text; booleans: ``true``/``false``;
* numeric (and real): the value without trailing zeros, never an exponent (``12.50`` -> ``12.5``,
  ``100.00`` -> ``100``, zero -> ``0``);
* dates ``YYYY-MM-DD``; timestamps ``YYYY-MM-DD HH:MM:SS[.ffffff without trailing zeros]+00``
  (UTC; without ``+00`` for ``timestamp without time zone``);
* json: canonical JSON (keys sorted by code point, no spaces, numbers as numeric above, strings
  escaped as Postgres prints jsonb), then as text; JSON null as null (SQLite cannot tell them apart);
* text (and any other type): the text; text and json are prefixed by their length in characters
  and ``:``.

The shared vectors in ``supabase/tests/fixtures/row_hash_vectors.json`` are checked by pgTAP and
pytest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .schema import ColumnSpec, TableSpec, normalize_timestamp

__all__ = ["TableChecksum", "canonical_value", "row_canonical", "row_hash", "table_checksum", "checksum_hex",
           "canonical_json"]

_MOD = 1 << 64


@dataclass(frozen=True)
class TableChecksum:
    """Live rows and the sum (mod 2^64, as 16 lowercase hex digits) of their row hashes."""

    count: int
    checksum: str


def _number(d: Decimal) -> str:
    if d == 0:
        return "0"
    text = format(d, "f")  # exact: Decimal.normalize() would round to the context's 28 digits
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (Decimal, float)):
        return _number(Decimal(str(value)) if isinstance(value, float) else value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json_text(value[k])}"
                              for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def canonical_json(text: str) -> str:
    """The canonical JSON of a stored json value (``shopsync.canonical_json``)."""
    return _json_text(json.loads(text, parse_float=Decimal))


def _timestamp(stored: Any, with_zone: bool) -> str:
    text = stored if isinstance(stored, str) and len(stored) == 27 and stored[26] == "Z" else normalize_timestamp(stored)
    frac = text[20:26].rstrip("0")
    return f"{text[:10]} {text[11:19]}{'.' + frac if frac else ''}{'+00' if with_zone else ''}"


def canonical_value(column: ColumnSpec, stored: Any) -> str:
    """One column's canonical text from its stored (SQLite) value."""
    return _converter(column)(stored)


def _text(v: Any) -> str:
    if v is None:
        return ""
    t = v if v.__class__ is str else str(v)
    return f"{len(t)}:{t}"


def _json(v: Any) -> str:
    if v is None:
        return ""
    text = canonical_json(v if isinstance(v, str) else json.dumps(v))
    return "" if text == "null" else f"{len(text)}:{text}"


def _converter(column: ColumnSpec) -> Callable[[Any], str]:
    """The canonical text of a column's stored values (a function per column: a table is hashed
    row by row, and the common kinds are short-cut)."""
    kind = column.kind
    if kind == "integer":
        return lambda v: "" if v is None else str(v if v.__class__ is int else int(v))
    if kind == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    if kind == "numeric":
        return lambda v: "" if v is None else _number(Decimal(str(v)))
    if kind == "real":
        return lambda v: "" if v is None else _number(Decimal(repr(float(v))))
    if kind == "timestamp":
        zone = "+00" if column.type == "timestamp with time zone" else ""

        def ts(v: Any) -> str:
            if v is None:
                return ""
            if not (v.__class__ is str and len(v) == 27 and v[26] == "Z"):
                v = normalize_timestamp(v)
            frac = v[20:26].rstrip("0")
            return f"{v[:10]} {v[11:19]}.{frac}{zone}" if frac else f"{v[:10]} {v[11:19]}{zone}"
        return ts
    if kind == "date":
        return lambda v: "" if v is None else str(v)[:10]
    if kind == "json":
        return _json
    if column.type == "uuid":
        return lambda v: "" if v is None else (v if v.__class__ is str else str(v))
    return _text


def _hasher(spec: TableSpec, columns: Sequence[str]) -> Callable[[Mapping[str, Any]], int]:
    convs = [(c, _converter(spec.column(c))) for c in sorted(columns)]
    md5 = hashlib.md5
    from_bytes = int.from_bytes

    def hash_row(row: Mapping[str, Any]) -> int:
        get = row.get
        text = "|".join([f(get(c)) for c, f in convs])
        return from_bytes(md5(text.encode("utf-8"), usedforsecurity=False).digest()[:8], "big", signed=True)
    return hash_row


def row_canonical(spec: TableSpec, row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """The canonical text of a stored row over ``columns`` (sorted here by name)."""
    return "|".join(_converter(spec.column(c))(row.get(c)) for c in sorted(columns))


def row_hash(spec: TableSpec, row: Mapping[str, Any], columns: Sequence[str]) -> int:
    """The row's hash: the first 8 bytes of the MD5 of its canonical text, as a signed integer."""
    return _hasher(spec, columns)(row)


def checksum_hex(total: int) -> str:
    return format(total % _MOD, "016x")


def table_checksum(spec: TableSpec, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> TableChecksum:
    """Count and checksum of the live rows among ``rows`` (stored form)."""
    hash_row = _hasher(spec, columns)
    count = total = 0
    for row in rows:
        if row.get("deleted_at") is not None:
            continue
        count += 1
        total += hash_row(row)
    return TableChecksum(count, checksum_hex(total))
