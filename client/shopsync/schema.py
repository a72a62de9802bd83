"""The synced schema as ``sync_schema()`` describes it, and how values travel between the app, the
local SQLite file and the wire.

Three forms of a value:

* app values (what ``LocalStore.get`` returns and ``insert``/``update`` accept): numeric columns as
  :class:`~decimal.Decimal`, booleans as ``bool``, json/jsonb as parsed JSON, timestamps as UTC
  ISO-8601 strings (``2026-01-31T12:00:00.000000Z``), uuids as strings;
* stored values (SQLite): numeric as TEXT decimal strings at the column's scale (exact round
  trip), booleans as 0/1, json as compact TEXT, timestamps as UTC ISO-8601 TEXT;
* wire values (the JSON of sync_push/sync_pull): numeric sent as decimal strings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from .errors import InvalidValueError, SchemaError

__all__ = ["ColumnSpec", "TableSpec", "Schema", "utc_now_iso", "normalize_timestamp", "check_readable_text",
           "unsendable"]

_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")
_KINDS = {
    "smallint": "integer", "integer": "integer", "bigint": "integer", "boolean": "boolean",
    "json": "json", "jsonb": "json", "date": "date", "real": "real", "double precision": "real",
    "timestamp with time zone": "timestamp", "timestamp without time zone": "timestamp",
}


def utc_now_iso() -> str:
    """Now, as the UTC ISO-8601 text the store keeps timestamps in."""
    return _utc_text(datetime.now(timezone.utc))


def _utc_text(dt: datetime) -> str:
    # %Y is not zero-padded below year 1000 on every platform: the year is written here.
    return f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S.%fZ")


# Text no client can carry through Postgres: NUL (jsonb and text refuse it, so the whole push body
# would be refused) and lone surrogates (not Unicode scalar values: not valid UTF-8 either).
_UNREADABLE = re.compile("[\x00\ud800-\udfff]")

# Integer columns' ranges; floating point columns' (finite, non-zero magnitudes) as Postgres holds them.
_INT_RANGE = {"smallint": 1 << 15, "integer": 1 << 31, "bigint": 1 << 63}
_FLOAT_RANGE = {"real": (1.175494351e-38, 3.4028234e38), "double precision": (2.2250738585072014e-308, math.inf)}


def check_readable_text(value: str, what: str) -> str:
    """``value``, or InvalidValueError (``invalid_value``) if it holds NUL or a lone surrogate."""
    m = _UNREADABLE.search(value)
    if m is not None:
        kind = "a NUL character" if m.group() == "\x00" else "a lone surrogate"
        raise InvalidValueError(f"{what} contains {kind} (at {m.start()}): no client could read it back",
                                reason="invalid_value")
    return value


def _check_json(value: Any, what: str, depth: int = 0) -> None:
    if isinstance(value, str):
        check_readable_text(value, what)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(f"{what} holds {value!r}: JSON has no such number", reason="invalid_value")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_readable_text(str(k), what)
            _check_json(v, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_json(v, what, depth + 1)


def unsendable(event: dict[str, Any]) -> str | None:
    """Why an outbox event cannot be sent (text Postgres' jsonb refuses, which would refuse the whole
    push body), or None. Such events are rejected locally (``invalid_value``); the store refuses
    these values at write time, so only events queued by an older client can hold them."""
    try:
        _check_json(event, f"{event.get('table')}.{event.get('row_id')}")
    except InvalidValueError as exc:
        return exc.message
    return None


# What Postgres writes for a timestamptz in JSON when the session is in UTC, with microseconds:
# turned into the stored form by slicing (a pull converts several per row).
_PG_UTC_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00").fullmatch


def normalize_timestamp(value: Any) -> str:
    """A datetime or ISO-8601 text as UTC ISO-8601 text with microseconds and ``Z``."""
    if isinstance(value, str) and _PG_UTC_MICROS(value):
        return value[:26] + "Z"
    # Years 1 to 9999 in UTC: what every client (and Python's datetime) can hold.
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise InvalidValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    else:
        raise InvalidValueError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return _utc_text(dt.astimezone(timezone.utc))
    except OverflowError as exc:
        raise InvalidValueError(f"{value!r} is outside the years 1 to 9999 in UTC", reason="invalid_value") from exc


def _pg_utc_text(v: Any) -> str | None:
    """A UTC timestamp as Postgres writes it in JSON (``2026-11-22T10:00:00.12345+00:00``: the
    fraction has 0 to 6 digits, trailing zeros dropped) in the stored form, checked by position
    (cheaper than a regex or a parse on every timestamp of every pulled row); None for anything else."""
    if v.__class__ is not str:
        return None
    n = len(v)
    if n == 32 and v[19] == "." and v[10] == "T" and v[26:] == "+00:00":
        return v[:26] + "Z"
    if 27 <= n <= 31 and v[19] == "." and v[10] == "T" and v.endswith("+00:00") and v[20:n - 6].isdigit():
        return v[:n - 6] + "0" * (32 - n) + "Z"
    if n == 25 and v[10] == "T" and v[19:] == "+00:00":
        return v[:19] + ".000000Z"
    return None


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its Postgres type (``format_type`` name), nullability, and whether the server owns it."""

    name: str
    type: str
    nullable: bool = True
    system: bool = False

    @cached_property
    def kind(self) -> str:
        """How values of this column are handled; uuid, text, varchar and anything else are text."""
        return "numeric" if _NUMERIC.match(self.type) else _KINDS.get(self.type, "text")

    @cached_property
    def precision(self) -> int | None:
        m = _NUMERIC.match(self.type)
        return int(m.group(1)) if m and m.group(1) else None

    @cached_property
    def scale(self) -> int | None:
        m = _NUMERIC.match(self.type)
        return int(m.group(2)) if m and m.group(2) else None

    @property
    def sqlite_type(self) -> str:
        return {"integer": "INTEGER", "boolean": "INTEGER", "real": "REAL"}.get(self.kind, "TEXT")

    # -- conversions -----------------------------------------------------------------------------
    def _decimal(self, value: Any, *, from_wire: bool) -> str:
        if isinstance(value, bool):
            raise InvalidValueError(f"{self.name} expects a number, not {value!r}")
        try:
            d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        except InvalidOperation as exc:
            raise InvalidValueError(f"{self.name} expects a decimal number, not {value!r}") from exc
        if not d.is_finite():
            raise InvalidValueError(f"{self.name} expects a finite number, not {value!r}")
        scale = self.scale
        if scale is None:
            if from_wire:
                return str(d.normalize())
            # What the server accepts for a numeric without a precision: up to 30 digits each side.
            text = format(d, "f")
            whole, _, frac = text.lstrip("-").partition(".")
            if len(whole) > 30 or len(frac) > 30:
                raise InvalidValueError(f"{self.name} ({self.type}) holds at most 30 digits before and after the "
                                        f"point, not {value!r}", reason="invalid_value")
            return text
        try:
            q = d.quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            q = None
        if q != d:
            raise InvalidValueError(f"{self.name} ({self.type}) cannot hold {value!r} without rounding")
        precision = self.precision
        if not from_wire and precision is not None and abs(q) >= Decimal(10) ** (precision - scale):
            raise InvalidValueError(f"{self.name} ({self.type}) cannot hold {value!r}: too many digits",
                                    reason="invalid_value")
        return str(q)

    def to_stored(self, value: Any, *, from_wire: bool = False) -> Any:
        """An app (or wire) value as SQLite stores it."""
        if value is None:
            return None
        kind = self.kind
        if kind == "numeric":
            return self._decimal(value, from_wire=from_wire)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
                raise InvalidValueError(f"{self.name} expects an integer, not {value!r}")
            try:
                as_int = int(Decimal(str(value)))
            except InvalidOperation as exc:
                raise InvalidValueError(f"{self.name} expects an integer, not {value!r}") from exc
            if Decimal(str(value)) != as_int:
                raise InvalidValueError(f"{self.name} expects an integer, not {value!r}")
            bound = _INT_RANGE.get(self.type)
            if bound is not None and not -bound <= as_int < bound:
                raise InvalidValueError(f"{self.name} ({self.type}) cannot hold {value!r}", reason="invalid_value")
            return as_int
        if kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidValueError(f"{self.name} expects a boolean, not {value!r}")
            return int(value)
        if kind == "json":
            if not from_wire:
                _check_json(value, self.name)
            return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        if kind == "timestamp":
            return normalize_timestamp(value)
        if kind == "date":
            if isinstance(value, date) and not isinstance(value, datetime):
                return value.isoformat()
            text = str(value)
            try:
                date.fromisoformat(text[:10])
            except ValueError:
                ok = False
            else:  # a date, or the date of a timestamp; never a BC date (Postgres writes "... BC")
                ok = len(text) == 10 or (text[10] in "Tt " and not text.endswith("BC"))
            if not ok:
                raise InvalidValueError(f"{self.name} expects a date (years 1 to 9999), not {value!r}",
                                        reason="invalid_value")
            return text[:10]
        if kind == "real":
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not math.isfinite(float(value)):
                raise InvalidValueError(f"{self.name} expects a number, not {value!r}")
            low, high = _FLOAT_RANGE.get(self.type, (0.0, math.inf))
            if value != 0 and not low <= abs(float(value)) <= high:
                raise InvalidValueError(f"{self.name} ({self.type}) cannot hold {value!r}", reason="invalid_value")
            return float(value)
        if not isinstance(value, str):
            if self.type == "uuid" or from_wire:
                return str(value)
            raise InvalidValueError(f"{self.name} expects text, not {value!r}")
        return check_readable_text(value, self.name)

    @cached_property
    def from_wire(self) -> Callable[[Any], Any]:
        """``to_stored(value, from_wire=True)``, with the common cases (text, uuid, integers, UTC
        timestamps as Postgres writes them) short-cut: a pull converts every column of every row."""
        kind = self.kind
        slow = self.to_stored
        if kind == "text":
            return lambda v: v if v is None or v.__class__ is str else slow(v, from_wire=True)
        if kind == "integer":
            return lambda v: v if v is None or v.__class__ is int else slow(v, from_wire=True)
        if kind == "timestamp":
            return lambda v: _pg_utc_text(v) or slow(v, from_wire=True)
        return lambda v: slow(v, from_wire=True)

    def to_app(self, stored: Any) -> Any:
        """A stored value as the app sees it."""
        if stored is None:
            return None
        kind = self.kind
        if kind == "numeric":
            return Decimal(stored)
        if kind == "boolean":
            return bool(stored)
        if kind == "json":
            return json.loads(stored)
        return stored

    def to_wire(self, stored: Any) -> Any:
        """A stored value as sync_push carries it: as the app sees it, but numeric as an exact
        decimal string (never a float)."""
        return stored if self.kind == "numeric" else self.to_app(stored)


@dataclass(frozen=True)
class TableSpec:
    """One synced table: conflict policy, who may write it, the order pushes apply it in, columns."""

    name: str
    policy: str
    write_roles: tuple[str, ...]
    apply_order: int
    columns: tuple[ColumnSpec, ...]
    _by_name: dict[str, ColumnSpec] = field(default_factory=dict, compare=False, repr=False)

    _from_wire: dict[str, Callable[[Any], Any]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})
        self._from_wire.update({c.name: c.from_wire for c in self.columns})

    def column(self, name: str) -> ColumnSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"{self.name} has no column {name!r}", reason="unknown_column") from None

    def has_column(self, name: str) -> bool:
        return name in self._by_name

    @property
    def business_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if not c.system]

    def stored_from_wire(self, row: dict[str, Any]) -> dict[str, Any]:
        """A server row (pull or conflict) in stored form; columns this schema lacks are ignored."""
        conv = self._from_wire
        return {k: conv[k](v) for k, v in row.items() if k in conv}

    def wire_from_stored(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._by_name[k].to_wire(v) for k, v in values.items()}

    def app_from_stored(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: (self._by_name[k].to_app(v) if k in self._by_name else v) for k, v in values.items()}

    def stored_from_app(self, values: dict[str, Any], *, allow_system: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in values.items():
            col = self.column(k)
            if col.system and not allow_system:
                raise InvalidValueError(f"{self.name}.{k} is written by the server", reason="read_only_column")
            if v is None and not col.nullable:
                raise InvalidValueError(f"{self.name}.{k} cannot be null", reason="null_value")
            out[k] = col.to_stored(v)
        return out


@dataclass(frozen=True)
class Schema:
    """What ``sync_schema()`` answered: a version and the synced tables."""

    version: int
    system_columns: tuple[str, ...]
    tables: dict[str, TableSpec]
    raw: dict[str, Any] = field(compare=False, repr=False, default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Schema:
        try:
            tables = {}
            for t in doc["tables"]:
                cols = tuple(
                    ColumnSpec(c["name"], c["type"], bool(c.get("nullable", True)), bool(c.get("system", False)))
                    for c in t["columns"]
                )
                tables[t["name"]] = TableSpec(
                    t["name"], t.get("policy", "last_write_wins"), tuple(t.get("write_roles") or ()),
                    int(t.get("apply_order") or 0), cols,
                )
            return cls(int(doc["version"]), tuple(doc.get("system_columns") or ()), tables, doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"sync_schema() answered an unexpected document: {exc}") from exc

    def table(self, name: str) -> TableSpec:
        try:
            return self.tables[name]
        except KeyError:
            raise SchemaError(f"no synced table named {name!r}", reason="unknown_table") from None

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)
