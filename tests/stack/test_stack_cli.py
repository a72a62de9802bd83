"""`shopsync stack` as a user runs it: reset, env, token (with the custom access token hook)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest
from supabase import Client

from shopsync_stack import tokens
from shopsync_stack.settings import StackSettings

from ..conftest import User, as_object

REQUIRED_ENV = ("API_URL", "DB_URL", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_SECRET",
                "SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL")


def shopsync(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the console script of this venv with the test's environment (ports included)."""
    exe = os.path.join(os.path.dirname(sys.executable), "shopsync")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.local_stack
def test_reset_leaves_a_clean_migrated_seeded_database(settings: StackSettings, anon: Client) -> None:
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        conn.execute("create table public.left_over (id int)")
    done = shopsync("stack", "reset")
    assert done.returncode == 0, done.stderr
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('public.left_over')").fetchone() == (None,)
        versions = [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")]
        assert "20261122000100" in versions
        assert conn.execute("select to_regnamespace('auth') is not null").fetchone() == (True,)
    assert as_object(anon.rpc("health").execute().data)["ok"] is True


@pytest.mark.local_stack
def test_env_prints_the_supabase_status_names() -> None:
    done = shopsync("stack", "env")
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert set(values) == set(REQUIRED_ENV)
    assert all(v.startswith('"') and v.endswith('"') and len(v) > 2 for v in values.values())
    assert values["API_URL"] == values["SUPABASE_URL"]


@pytest.mark.usefixtures("whoami")
def test_token_carries_the_supabase_auth_claims(
    settings: StackSettings, make_user: Callable[..., User], client_for: Callable[[str], Client]
) -> None:
    user = make_user()
    done = shopsync("stack", "token", "--email", user.email.upper(), "--expires", "600")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = tokens.decode(token, settings.jwt_secret)
    assert claims["sub"] == str(user.id)
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"
    assert claims["email"] == user.email
    assert claims["exp"] - claims["iat"] == 600
    assert claims["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert claims["user_metadata"] == {"name": "Test"}
    assert claims["is_anonymous"] is False
    assert len(claims["session_id"]) == 36
    assert as_object(client_for(token).rpc("whoami").execute().data)["uid"] == str(user.id)


def test_token_for_an_unknown_email_fails_with_a_message() -> None:
    done = shopsync("stack", "token", "--email", "nobody-here@example.com")
    assert done.returncode == 1
    assert "no user with email" in done.stderr


def test_token_goes_through_the_projects_custom_access_token_hook(settings: StackSettings) -> None:
    """The project's hook (public.custom_access_token_hook) puts the member's shop and role into app_metadata."""
    done = shopsync("stack", "token", "--email", "staff@shop-a.test")
    assert done.returncode == 0, done.stderr
    claims = tokens.decode(done.stdout.strip(), settings.jwt_secret)
    assert claims["app_metadata"]["shop_id"] == "aaaaaaaa-0000-4000-8000-000000000000"
    assert claims["app_metadata"]["shop_role"] == "staff"
    assert claims["app_metadata"]["provider"] == "email"  # what Supabase Auth put there is kept
