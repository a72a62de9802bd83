"""Fixtures of the client's end-to-end tests (loaded from tests/conftest.py as a plugin).

The stack is the one the environment points at (SUPABASE_URL, SUPABASE_DB_URL, SHOPSYNC_*_PORT);
it is reset once per session, and its licences are widened so every test can register devices.
Each device is a real SQLite file in tmp_path with its own random device id.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"
SHOP_B = "bbbbbbbb-0000-4000-8000-000000000000"


@pytest.fixture(scope="session")
def client_stack() -> Any:
    """A freshly reset and seeded stack (once per session; not with SHOPSYNC_STACK=external); its settings."""
    from shopsync_stack.settings import load_settings

    if os.environ.get("SHOPSYNC_STACK") != "external":
        env = {**os.environ, "SUPABASE_YES": "1", "SHOPSYNC_PROJECT_DIR": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "shopsync_cli", "stack", "reset"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"shopsync stack reset failed:\n{done.stdout}\n{done.stderr}")
    settings = load_settings(ROOT / ".env")
    with _db(settings.db_url) as conn:
        conn.execute("update public.licenses set max_devices = 100000")
    return settings


def _db(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def sql(client_stack: Any) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run SQL as postgres on the stack: ``sql("select ...", params)`` -> rows."""
    conn = _db(client_stack.db_url)

    def run(query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []

    yield run
    conn.close()


@pytest.fixture(scope="session")
def token_for(client_stack: Any) -> Callable[..., str]:
    """A user's access token (cached per email for the session)."""
    from shopsync_stack import mint_user_token

    @cache
    def mint(email: str) -> str:
        return mint_user_token(client_stack, email)

    return mint


@dataclass
class Device:
    name: str
    email: str
    store: Any
    client: Any


@pytest.fixture
def make_device(client_stack: Any, token_for: Callable[[str], str], tmp_path: Path) -> Iterator[Callable[..., Device]]:
    """``make_device("a1", "staff@shop-a.test", **SyncClient kwargs)``: a registered device with a
    fresh SQLite file and device id, synced once unless ``sync=False``."""
    import supabase

    from shopsync import LocalStore, SyncClient

    made: list[Device] = []

    def make(name: str, email: str = "staff@shop-a.test", *, sync: bool = True, transport_wrapper: Any = None,
             access_token: Any = None, **kwargs: Any) -> Device:
        store = LocalStore(tmp_path / f"{name}.db")
        sb = supabase.create_client(client_stack.api_url, client_stack.anon_key)
        token = access_token if access_token is not None else (lambda: token_for(email))
        if transport_wrapper is not None:
            from shopsync import SupabaseTransport

            kwargs["transport"] = transport_wrapper(SupabaseTransport(sb, token))
            client = SyncClient(store, device_name=name, **kwargs)
        else:
            client = SyncClient(store, sb, access_token=token, device_name=name, **kwargs)
        if email.startswith("viewer@"):
            # Viewers take no seats: the shop's owner registers the device the viewer then uses.
            owner = supabase.create_client(client_stack.api_url, client_stack.anon_key)
            owner.postgrest.auth(token_for(email.replace("viewer@", "owner@")))
            reg = owner.rpc("sync_register_device", {"p_device_id": store.device_id, "p_name": name}).execute()
            store.set_device_secret(reg.data["device_secret"])  # the owner sets the till up for the viewer
        device = Device(name, email, store, client)
        made.append(device)
        if sync:
            client.sync().raise_for_errors()
        return device

    yield make
    for d in made:
        d.client.stop(timeout=10)
        d.store.close()


@pytest.fixture(scope="session")
def schema_doc(client_stack: Any, token_for: Callable[[str], str]) -> dict[str, Any]:
    """The server's sync_schema() document."""
    import supabase

    sb = supabase.create_client(client_stack.api_url, client_stack.anon_key)
    sb.postgrest.auth(token_for("staff@shop-a.test"))
    return dict(sb.rpc("sync_schema", {}).execute().data)


def shop_rows(sql: Callable[..., list[tuple[Any, ...]]], shop_id: str, store: Any) -> set[tuple[str, str, int]]:
    """(table, id, version) of every row of a shop on the server, tombstones included, in the
    tables the device's schema syncs."""
    out: set[tuple[str, str, int]] = set()
    for t in store.schema.tables:
        for rid, version in sql(f"select id::text, version from public.{t} where shop_id = %s", (shop_id,)):
            out.add((t, rid, version))
    return out


def local_rows(store: Any) -> set[tuple[str, str, int]]:
    """(table, id, version) of every row in a device's store, tombstones included."""
    out: set[tuple[str, str, int]] = set()
    for t in store.schema.tables:
        for r in store.query(t, include_deleted=True):
            out.add((t, r["id"], r["version"]))
    return out


def whole_table_hashes(monkeypatch: Any) -> list[str]:
    """The tables the check hashes whole from now on (a spy on ``LocalStore.synced_row_hashes``)."""
    from shopsync import LocalStore

    whole: list[str] = []
    real = LocalStore.synced_row_hashes

    def spy(self: Any, table: str, canonical_sql: str, skip: Any = ()) -> tuple[int, int]:
        whole.append(table)
        return real(self, table, canonical_sql, skip)

    monkeypatch.setattr(LocalStore, "synced_row_hashes", spy)
    return whole
