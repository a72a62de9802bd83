"""Fixtures of the client's unit tests: no Postgres, no network.

``schema_fixture`` is a saved ``sync_schema()`` document (tests/client/fixtures/sync_schema.json, as
the server answers it); ``fresh_store`` is a new in-memory store built from it, in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopsync import LocalStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def schema_fixture() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "sync_schema.json").read_text()))


@pytest.fixture
def fresh_store(schema_fixture: dict[str, Any]) -> Iterator[LocalStore]:
    store = LocalStore(":memory:", schema=schema_fixture)
    store.set_meta("shop_id", "aaaaaaaa-0000-4000-8000-000000000000")
    yield store
    store.close()
