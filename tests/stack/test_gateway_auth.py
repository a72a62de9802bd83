"""Who the database sees: the gateway verifies the JWT and sets role and claims as PostgREST does."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from postgrest.exceptions import APIError
from supabase import Client

from shopsync_stack import tokens
from shopsync_stack.settings import StackSettings

from ..conftest import User, as_object

# Every test here asks public.whoami() who the database sees (or is refused before it runs).
pytestmark = pytest.mark.usefixtures("whoami")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_anon_key_is_the_anon_role_without_a_user(anon: Client) -> None:
    me = anon.rpc("whoami").execute().data
    assert me == {"uid": None, "role": "anon", "email": None, "db_role": "anon"}


def test_user_token_is_the_authenticated_role_with_the_user_id(
    make_user: Callable[..., User], client_for: Callable[[str], Client]
) -> None:
    user = make_user()
    me = client_for(user.token).rpc("whoami").execute().data
    assert me == {"uid": str(user.id), "role": "authenticated", "email": user.email, "db_role": "authenticated"}


def test_service_role_key_is_the_service_role(settings: StackSettings, client_for: Callable[[str], Client]) -> None:
    me = as_object(client_for(settings.service_role_key).rpc("whoami").execute().data)
    assert me["role"] == "service_role" and me["db_role"] == "service_role"


def _rejected(client: Client) -> APIError:
    with pytest.raises(APIError) as info:
        client.rpc("whoami").execute()
    return info.value


def test_token_signed_with_another_secret_is_rejected(
    settings: StackSettings, make_user: Callable[..., User], client_for: Callable[[str], Client]
) -> None:
    user = make_user()
    claims = tokens.decode(user.token, settings.jwt_secret)
    forged = tokens.encode(claims, "another-secret-another-secret-another-secret")
    err = _rejected(client_for(forged))
    assert err.code == "PGRST301"


def test_token_with_a_tampered_payload_is_rejected(
    settings: StackSettings, make_user: Callable[..., User], client_for: Callable[[str], Client]
) -> None:
    user = make_user()
    header, _, sig = user.token.split(".")
    claims = tokens.decode(user.token, settings.jwt_secret)
    claims["role"] = "service_role"
    err = _rejected(client_for(f"{header}.{_b64(claims)}.{sig}"))
    assert err.code == "PGRST301"


def test_expired_token_is_rejected(settings: StackSettings, client_for: Callable[[str], Client]) -> None:
    now = int(time.time())
    expired = tokens.encode({"sub": "0b8f7f4e-3a43-4d3c-8f7a-7d2f8a5c1b22", "role": "authenticated",
                             "iat": now - 7200, "exp": now - 3600}, settings.jwt_secret)
    err = _rejected(client_for(expired))
    assert err.code == "PGRST301"
    assert "expired" in (err.message or "").lower()


def test_unsigned_alg_none_token_is_rejected(client_for: Callable[[str], Client]) -> None:
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"role": "service_role", "exp": 4102444800}) + "."
    err = _rejected(client_for(unsigned))
    assert err.code == "PGRST301"


def test_rejected_token_answers_401(settings: StackSettings) -> None:
    import httpx

    resp = httpx.post(f"{settings.api_url}/rest/v1/rpc/whoami", json={},
                      headers={"apikey": settings.anon_key, "Authorization": "Bearer not.a.jwt"})
    assert resp.status_code == 401
    assert resp.json()["code"] == "PGRST301"
