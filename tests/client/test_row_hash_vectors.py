"""The device hashes rows exactly as the server's change-log triggers do: the shared vectors
(supabase/tests/fixtures/row_hash_vectors.json) are checked here and by pgTAP
(checksums/row_hashes_match_the_shared_test_vectors)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shopsync.checksums import (
    SQLITE_AGGREGATES,
    SQLITE_FUNCTIONS,
    checksum_hex,
    hash_canonical,
    row_canonical,
    row_hash,
    sqlite_canonical_sql,
    table_checksum,
)
from shopsync.schema import ColumnSpec, TableSpec

VECTORS = Path(__file__).resolve().parents[2] / "supabase" / "tests" / "fixtures" / "row_hash_vectors.json"
_ALL = json.loads(VECTORS.read_text())


def _spec(vector: dict[str, Any]) -> TableSpec:
    return TableSpec("vectors", "last_write_wins", (), 0,
                     tuple(ColumnSpec(c["name"], c["type"]) for c in vector["columns"]))


@pytest.mark.parametrize("vector", _ALL, ids=[v["name"] for v in _ALL])
def test_the_device_renders_and_hashes_each_shared_vector_as_postgres_does(vector: dict[str, Any]) -> None:
    spec = _spec(vector)
    columns = [c["name"] for c in vector["columns"]]
    assert row_canonical(spec, vector["stored"], columns) == vector["canonical"]
    assert checksum_hex(row_hash(spec, vector["stored"], columns)) == vector["hash"]


@pytest.mark.parametrize("vector", _ALL, ids=[v["name"] for v in _ALL])
def test_sqlite_renders_each_shared_vector_from_the_stored_values_as_postgres_does(vector: dict[str, Any]) -> None:
    """The device renders its synced rows in SQL (C speed); its Python helpers do the rest."""
    spec = _spec(vector)
    columns = [c["name"] for c in vector["columns"]]
    conn = sqlite3.connect(":memory:")
    for name, (n_args, fn) in SQLITE_FUNCTIONS.items():
        conn.create_function(name, n_args, fn, deterministic=True)
    for name, (n_args, agg) in SQLITE_AGGREGATES.items():
        conn.create_aggregate(name, n_args, agg)
    conn.execute("create table vectors (" + ", ".join(f'"{c.name}" {c.sqlite_type}' for c in spec.columns) + ")")
    conn.execute(f"insert into vectors values ({', '.join('?' * len(columns))})",
                 [vector["stored"][c] for c in columns])
    [(canonical,)] = conn.execute(f"select {sqlite_canonical_sql(spec, columns)} from vectors as t").fetchall()
    assert canonical == vector["canonical"]
    assert checksum_hex(hash_canonical(canonical)) == vector["hash"]
    [(summed,)] = conn.execute(f"select shopsync_hash_sum({sqlite_canonical_sql(spec, columns)}) from vectors as t")
    count, _, total = summed.partition(":")
    assert (count, checksum_hex(int(total))) == ("1", vector["hash"])


def test_a_table_checksum_counts_live_rows_and_sums_their_hashes_modulo_2_64() -> None:
    spec = _spec(_ALL[0])
    columns = [c["name"] for c in _ALL[0]["columns"]]
    live = [v["stored"] for v in _ALL if v["stored"].get("deleted_at") is None]
    total = sum(int(v["hash"], 16) for v in _ALL if v["stored"].get("deleted_at") is None)
    got = table_checksum(spec, [v["stored"] for v in _ALL], columns)
    assert got.count == len(live)
    assert got.checksum == format(total % (1 << 64), "016x")


def test_a_row_wider_than_one_sqlite_printf_renders_as_python_does() -> None:
    """SQLite functions take at most 127 arguments: a 130-column row is rendered by several
    printf calls, joined, to the same text."""
    cols = tuple(ColumnSpec(f"c{i:03d}", "integer" if i % 3 == 0 else "text") for i in range(130))
    spec = TableSpec("wide", "last_write_wins", (), 0, cols)
    names = [c.name for c in cols]
    stored = {c.name: (None if i % 7 == 0 else (i if c.kind == "integer" else f"v{i}|x")) for i, c in enumerate(cols)}
    conn = sqlite3.connect(":memory:")
    conn.execute("create table wide (" + ", ".join(f'"{c.name}" {c.sqlite_type}' for c in cols) + ")")
    conn.execute(f"insert into wide values ({', '.join('?' * len(names))})", [stored[n] for n in names])
    [(canonical,)] = conn.execute(f"select {sqlite_canonical_sql(spec, names)} from wide as t").fetchall()
    assert canonical == row_canonical(spec, stored, names)
