"""Fixtures for the end-to-end tests: a running stack (local or ``SHOPSYNC_STACK=external``),
reached the way users reach it: supabase-py over HTTP, psycopg as ``postgres`` for set-up only."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from supabase import Client, create_client

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings, load_settings

# The client tests' fixtures (devices with their own SQLite files).
pytest_plugins = ["conftest_client"]

EXTERNAL = os.environ.get("SHOPSYNC_STACK") == "external"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "local_stack: drives `shopsync stack` itself; skipped against an external stack"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not EXTERNAL:
        return
    skip = pytest.mark.skip(reason="SHOPSYNC_STACK=external: `shopsync stack` commands only manage the local stack")
    for item in items:
        if "local_stack" in item.keywords:
            item.add_marker(skip)


def as_object(data: object) -> dict[str, Any]:
    """An RPC result that must be a JSON object, typed as one."""
    assert isinstance(data, dict), f"expected a JSON object, got {data!r}"
    return data


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return load_settings()


@pytest.fixture(scope="module")
def pg(settings: StackSettings) -> Iterator[psycopg.Connection]:
    """A module-long connection as ``postgres`` (autocommit) for the protocol tests' set-up.

    Licences get enough seats for every device the tests register (tests that probe the limit set
    it themselves)."""
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        conn.execute("update public.licenses set max_devices = 10000")
        yield conn


@pytest.fixture
def db(settings: StackSettings) -> Iterator[psycopg.Connection]:
    """A connection as ``postgres`` (autocommit), for set-up and inspection only."""
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def anon(settings: StackSettings) -> Client:
    """supabase-py with the anon key, as an app before sign-in."""
    return create_client(settings.api_url, settings.anon_key)


@pytest.fixture
def client_for(settings: StackSettings) -> Callable[[str], Client]:
    """supabase-py sending ``token`` as the user's access token."""

    def make(token: str) -> Client:
        client = create_client(settings.api_url, settings.anon_key)
        client.postgrest.auth(token)
        return client

    return make


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    token: str


@pytest.fixture
def make_user(settings: StackSettings, db: psycopg.Connection) -> Iterator[Callable[..., User]]:
    """Creates users in auth.users and mints their access tokens; deletes them afterwards."""
    created: list[uuid.UUID] = []

    def make(*, app_metadata: str = '{"provider": "email", "providers": ["email"]}', expires_in: int = 3600) -> User:
        user_id = uuid.uuid4()
        email = f"user-{user_id.hex[:12]}@example.com"
        db.execute(
            "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at)"
            " values (%s, 'authenticated', 'authenticated', %s, %s::jsonb, '{\"name\": \"Test\"}'::jsonb, now())",
            (user_id, email, app_metadata),
        )
        created.append(user_id)
        return User(user_id, email, mint_user_token(settings, email, expires_in=expires_in))

    yield make
    if created:
        db.execute("delete from auth.users where id = any(%s)", (created,))


# public.whoami(): the caller as the database sees them. Only the gateway tests need it, so it is
# made for them (as postgres, callable by the API roles) and dropped again: no migration ships it.
WHOAMI_SQL = """
create or replace function public.whoami()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'uid', auth.uid(),
    'role', auth.role(),
    'email', auth.email(),
    'db_role', current_user::text
  )
$$;
revoke all on function public.whoami() from public;
grant execute on function public.whoami() to anon, authenticated, service_role;
notify pgrst, 'reload schema';
"""


@pytest.fixture
def whoami(db: psycopg.Connection) -> Iterator[None]:
    """``public.whoami()`` (uid, role, email, db_role) exists for the test; dropped afterwards."""
    db.execute(WHOAMI_SQL)
    yield
    db.execute("drop function if exists public.whoami(); notify pgrst, 'reload schema'")


@pytest.fixture
def sql_function(db: psycopg.Connection) -> Iterator[Callable[[str, str], None]]:
    """Creates a helper function in ``public`` as postgres (``signature``, then the rest of the
    definition); drops it after the test. The local gateway reads pg_proc per request; a real
    PostgREST (SHOPSYNC_STACK=external) is told to reload its schema cache."""
    made: list[str] = []

    def make(signature: str, definition: str) -> None:
        db.execute(f"create or replace function public.{signature} {definition}")
        db.execute("notify pgrst, 'reload schema'")
        made.append(signature)

    yield make
    for signature in reversed(made):
        db.execute(f"drop function if exists public.{signature}")
