"""Device identity cannot be borrowed (issue 12, item 1), through the real gateway.

Device ids are not secret: every pulled row carries ``last_device_id`` and invoices ``device_id``.
Before device credentials, a staff login that knew the owner's till id pushed into that till's
invoice series and wedged it for good. Now every device RPC needs the secret the till was issued
(``x-device-secret``); a staff member signed in on the till itself uses it like anyone else.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from sync_helpers import event

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings


def _post(http: httpx.Client, settings: StackSettings, email: str, fn: str, args: dict[str, Any],
          secret: str | None = None) -> httpx.Response:
    headers = {"apikey": settings.anon_key, "Authorization": f"Bearer {mint_user_token(settings, email)}"}
    if secret is not None:
        headers["x-device-secret"] = secret
    return http.post(f"/rest/v1/rpc/{fn}", json=args, headers=headers)


@pytest.fixture
def http(settings: StackSettings, pg: psycopg.Connection) -> Any:
    with httpx.Client(base_url=settings.api_url, timeout=30) as client:
        yield client


def test_staff_login_with_the_owners_till_id_is_refused(settings: StackSettings, http: httpx.Client) -> None:
    till = str(uuid.uuid4())
    reg = _post(http, settings, "owner@shop-a.test", "sync_register_device", {"p_device_id": till, "p_name": "owner till"})
    assert reg.status_code == 200, reg.text
    secret = reg.json()["device_secret"]

    # The till's id leaks through every pulled row; a staff login uses it from another machine.
    row = str(uuid.uuid4())
    borrowed = [
        ("sync_push", {"p_device_id": till, "p_events": [event("customers", "insert", row, {"name": "borrowed"})]}),
        ("sync_pull", {"p_device_id": till, "p_cursor": 0, "p_limit": 5}),
        ("sync_register_device", {"p_device_id": till, "p_name": "owner till"}),
        ("sync_rotate_device_secret", {"p_device_id": till}),
    ]
    for fn, args in borrowed:
        for guess in (None, "", "x" * 43):
            resp = _post(http, settings, "staff@shop-a.test", fn, args, guess)
            assert resp.status_code == 403, (fn, guess, resp.text)
            assert (resp.json()["code"], resp.json()["details"]) == ("PT403", "device_credential_invalid"), resp.text

    # On the till itself (it holds the secret), the same staff login syncs: a shared till.
    pushed = _post(http, settings, "staff@shop-a.test", "sync_push", borrowed[0][1], secret)
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["results"][0]["status"] == "applied"


def test_an_owner_reset_makes_the_old_secret_useless_until_registered_again(
        settings: StackSettings, http: httpx.Client) -> None:
    till = str(uuid.uuid4())
    secret = _post(http, settings, "staff@shop-a.test", "sync_register_device",
                   {"p_device_id": till, "p_name": "lost till"}).json()["device_secret"]
    staff_reset = _post(http, settings, "staff@shop-a.test", "sync_reset_device_credential", {"p_device_id": till})
    assert (staff_reset.status_code, staff_reset.json()["details"]) == (403, "role_forbidden")
    reset = _post(http, settings, "owner@shop-a.test", "sync_reset_device_credential", {"p_device_id": till})
    assert reset.status_code == 200, reset.text
    stale = _post(http, settings, "staff@shop-a.test", "sync_pull", {"p_device_id": till, "p_cursor": 0}, secret)
    assert (stale.status_code, stale.json()["details"]) == (403, "device_credential_unclaimed")
    again = _post(http, settings, "owner@shop-a.test", "sync_register_device", {"p_device_id": till, "p_name": "till"})
    assert again.status_code == 200 and again.json()["device_secret"] != secret, again.text
