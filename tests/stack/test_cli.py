"""The `shopsync` device commands as a user runs them: a subprocess, a real SQLite file, the stack over HTTP."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_client import SHOP_A

from shopsync import LocalStore
from shopsync_cli.cli import EXIT_CODES
from shopsync_stack import mint_user_token

EXE = os.path.join(os.path.dirname(sys.executable), "shopsync")
LINES = [{"description": "Mug", "quantity": 1, "unit_price": "12.00", "tax_rate": "19.00"}]
CLEAN_ENV = ("SHOPSYNC_DB", "SHOPSYNC_ACCESS_TOKEN", "SHOPSYNC_EMAIL")


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(client_stack: Any, tmp_path: Path) -> Run:
    """``cli("sync", email=..., **env)``: the console script, run in tmp_path (so no .env is read),
    as SHOPSYNC_EMAIL (staff of shop A) unless told otherwise."""

    def run(*args: str, email: str | None = "staff@shop-a.test", **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
        base.update({"SUPABASE_URL": client_stack.api_url, "SUPABASE_DB_URL": client_stack.db_url})
        if email:
            base["SHOPSYNC_EMAIL"] = email
        base.update(env)
        return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=base)

    return run


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.stdout.strip(), f"no output; stderr: {done.stderr}"
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("shopsync: "), lines
    return lines[0]


@pytest.fixture
def device(cli: Run, tmp_path: Path) -> Iterator[Path]:
    """A device file registered through the CLI (staff of shop A) and synced once."""
    db = tmp_path / "till.db"
    done = cli("device", "register", "--db", str(db), "--name", "cli-till", "--json")
    assert done.returncode == 0, done.stderr
    yield db


def test_register_then_sync_pushes_local_writes_and_status_reports(cli: Run, tmp_path: Path, sql: Any) -> None:
    db = tmp_path / "till.db"
    reg = as_json(cli("device", "register", "--db", str(db), "--name", "cli-till", "--json"))
    assert (reg["shop_id"], reg["role"], reg["name"]) == (SHOP_A, "staff", "cli-till")
    assert sql("select name, shop_id::text from public.devices where id = %s", (reg["device_id"],)) == [
        ("cli-till", SHOP_A)]
    store = LocalStore(db)  # the app writes to the file; the CLI syncs it
    ada = store.insert("customers", {"name": "Ada via CLI"})
    store.close()
    before = as_json(cli("status", "--db", str(db), "--json"))
    assert before["pending_uploads"] == 1 and before["pending_by_table"] == {"customers": 1}
    assert before["last_sync"] is None
    synced = cli("sync", "--db", str(db), "--json")
    assert synced.returncode == 0, synced.stderr
    body = as_json(synced)
    assert (body["pushed"], body["applied"], body["ok"]) == (1, 1, True)
    assert body["pulled"] >= 9  # the seeded catalog (5), customers (2), settings (1) and this row
    assert sql("select name from public.customers where id = %s", (ada["id"],)) == [("Ada via CLI",)]
    after = as_json(cli("status", "--db", str(db), "--json"))
    assert after["pending_uploads"] == 0 and after["last_sync"] and after["cursor"] > 0
    assert after["rows"]["products"] == sql("select count(*) from public.products where shop_id = %s", (SHOP_A,))[0][0]
    human = cli("status", "--db", str(db))
    assert human.returncode == 0 and "pending_uploads" in human.stdout and after["device_id"] in human.stdout


def test_pull_progress_is_driven_by_remaining(cli: Run, device: Path, sql: Any) -> None:
    total = sum(sql(f"select count(*) from public.{t} where shop_id = %s", (SHOP_A,))[0][0]
                for t in ("products", "customers", "shop_settings", "orders", "order_items", "invoices",
                          "stock_movements", "inventory_levels"))
    done = cli("pull", "--db", str(device), "--progress", "--page-size", "3")
    assert done.returncode == 0, done.stderr
    bars = [line for line in done.stderr.splitlines() if line.startswith("pull [")]
    assert len(bars) >= 3, done.stderr  # a line at each quarter off a terminal
    shown = [tuple(int(x.replace(",", "")) for x in line.split("] ")[1].split(" ")[0].split("/")) for line in bars]
    assert shown[-1][0] == shown[-1][1] >= total  # ends at 100%; the device's cursor may lag other writers
    assert all(a[0] < b[0] for a, b in zip(shown, shown[1:]))
    assert done.stdout.strip().startswith("pulled ")


def test_manual_conflicts_are_listed_and_resolved_from_the_cli(cli: Run, device: Path, make_device: Any,
                                                               sql: Any) -> None:
    """Three orders edited on both devices: each conflict settled one way (--keep local, --keep remote, --set)."""
    other = make_device("other")
    orders = [other.store.insert("orders", {"total": "30.00"}) for _ in range(3)]
    other.client.sync().raise_for_errors()
    assert cli("sync", "--db", str(device)).returncode == 0
    store = LocalStore(device)
    for o in orders:
        store.update("orders", o["id"], {"total": "27.00"})
    store.close()
    for o in orders:
        other.store.update("orders", o["id"], {"total": "25.50"})
    other.client.sync().raise_for_errors()
    synced = as_json(cli("sync", "--db", str(device), "--json"))
    assert synced["conflicts"] == 3 and synced["ok"] is True
    listed = {c["row_id"]: c for c in as_json(cli("conflicts", "list", "--db", str(device), "--json"))}
    assert set(listed) == {o["id"] for o in orders}
    for c in listed.values():
        assert (c["table"], c["reason"], c["policy"], c["resolved_at"]) == ("orders", "concurrent_update", "manual", None)
        assert c["local_values"] == {"total": "27.00"} and c["server_row"]["total"] == "25.50"
    human = cli("conflicts", "list", "--db", str(device))
    assert human.stdout.count("total=27.00") == 3 and human.stdout.count("total=25.50") == 3
    how = {orders[0]["id"]: ["--keep", "local"], orders[1]["id"]: ["--keep", "remote"],
           orders[2]["id"]: ["--set", "total=19.99"]}
    for row_id, args in how.items():
        resolved = cli("conflicts", "resolve", str(listed[row_id]["id"]), *args, "--db", str(device))
        assert resolved.returncode == 0, resolved.stderr
    assert cli("sync", "--db", str(device)).returncode == 0
    totals = dict(sql("select id::text, total::text from public.orders where id = any(%s::uuid[])",
                      ([o["id"] for o in orders],)))
    assert totals == {orders[0]["id"]: "27.00", orders[1]["id"]: "25.50", orders[2]["id"]: "19.99"}
    assert as_json(cli("conflicts", "list", "--db", str(device), "--json")) == []
    log = as_json(cli("conflicts", "list", "--all", "--db", str(device), "--json"))
    assert sorted(c["resolution"] for c in log) == ["custom", "local", "remote"]
    again = cli("conflicts", "resolve", str(listed[orders[0]["id"]]["id"]), "--keep", "local", "--db", str(device))
    assert again.returncode == 1 and "no open conflict" in one_line_error(again)
    bad = cli("conflicts", "resolve", "1", "--set", "nope=1", "--db", str(device))
    assert bad.returncode == 1 and "no open conflict 1" in one_line_error(bad)


def test_invoices_verify_checks_the_local_chain_and_the_servers(cli: Run, device: Path) -> None:
    store = LocalStore(device)
    series = store.invoice_series
    for _ in range(3):
        store.issue_invoice(LINES)
    store.close()
    assert cli("sync", "--db", str(device)).returncode == 0
    ok = cli("invoices", "verify", series, "--db", str(device), "--json")
    assert ok.returncode == 0, ok.stderr
    body = as_json(ok)
    assert body["ok"] is True
    assert body["series"][0]["local"]["checked"] == 3 and body["series"][0]["server"]["checked"] == 3
    # Someone edits the device's copy behind the app's back: the local check names it, the server's does not.
    conn = sqlite3.connect(device)
    conn.execute("update invoices set total = '999.00' where series = ? and number = 2", (series,))
    conn.commit()
    conn.close()
    broken = cli("invoices", "verify", "--db", str(device))
    assert broken.returncode == 1
    row = next(line for line in broken.stdout.splitlines() if line.startswith(series))
    assert "BROKEN at #2: totals_mismatch" in row and "ok (3)" in row
    offline = cli("invoices", "verify", "--local", "--db", str(device), SUPABASE_URL="http://127.0.0.1:9")
    assert offline.returncode == 1 and "totals_mismatch" in offline.stdout


def test_watch_syncs_in_the_background_until_sigterm(client_stack: Any, device: Path, sql: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update({"SUPABASE_URL": client_stack.api_url, "SUPABASE_DB_URL": client_stack.db_url,
                "SHOPSYNC_EMAIL": "staff@shop-a.test"})
    proc = subprocess.Popen([EXE, "sync", "--watch", "--interval", "0.2", "--json", "--db", str(device)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=device.parent)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert first["ok"] is True
        store = LocalStore(device)
        row = store.insert("customers", {"name": "Watched Walter"})
        store.close()
        while True:  # the periodic sync picks the write up
            event = json.loads(lines.get(timeout=30))
            if event["pushed"]:
                break
        assert event["applied"] == 1
        assert sql("select name from public.customers where id = %s", (row["id"],)) == [("Watched Walter",)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("case", ["missing_db", "not_a_database", "expired_token", "forged_token", "no_token",
                                  "unreachable_server", "unknown_email", "bad_option", "bad_page_size"])
def test_bad_input_is_one_line_and_a_documented_exit_code(cli: Run, tmp_path: Path, client_stack: Any,
                                                          case: str) -> None:
    token = mint_user_token(client_stack, "staff@shop-a.test")
    device = tmp_path / "plain.db"  # a device file that never synced: every case fails before it matters
    LocalStore(device).close()
    if case == "missing_db":
        done, code, says = cli("sync", "--db", str(tmp_path / "nope.db")), 3, "no database file"
    elif case == "not_a_database":
        (tmp_path / "junk.db").write_text("this is not SQLite, it is a shopping list\n" * 20)
        done, code, says = cli("status", "--db", str(tmp_path / "junk.db")), 3, "is not a shopsync database"
    elif case == "expired_token":
        expired = mint_user_token(client_stack, "staff@shop-a.test", expires_in=-60)
        done = cli("sync", "--db", str(device), email=None, SHOPSYNC_ACCESS_TOKEN=expired)
        code, says = 3, "expired"
    elif case == "forged_token":
        head, body, _ = token.split(".")
        done = cli("sync", "--db", str(device), email=None, SHOPSYNC_ACCESS_TOKEN=f"{head}.{body}.forged")
        code, says = 3, "refused the access token"
    elif case == "no_token":
        done, code, says = cli("sync", "--db", str(device), email=None), 3, "no access token"
    elif case == "unreachable_server":
        done = cli("sync", "--db", str(device), email=None, SHOPSYNC_ACCESS_TOKEN=token,
                   SUPABASE_URL=f"http://127.0.0.1:{free_port()}")
        code, says = 4, "cannot reach the server"
    elif case == "unknown_email":
        done, code, says = cli("sync", "--db", str(device), email="nobody@nowhere.test"), 3, "no user with email"
    elif case == "bad_option":
        done, code, says = cli("sync", "--db", str(device), "--frobnicate"), 2, "unrecognized arguments"
    else:
        done, code, says = cli("pull", "--db", str(device), "--page-size", "0"), 2, "must be 1..5000"
    assert done.returncode == code, (done.stdout, done.stderr)
    assert code in EXIT_CODES
    line = done.stderr.strip().splitlines()[-1] if code == 2 else one_line_error(done)
    assert says in line, done.stderr


def test_errors_are_json_with_json(cli: Run, tmp_path: Path) -> None:
    done = cli("status", "--db", str(tmp_path / "missing.db"), "--json")
    assert done.returncode == 3
    assert as_json(done) == {"ok": False, "exit_code": 3, "error": done.stderr.strip().removeprefix("shopsync: ")}


def test_db_from_the_environment_and_a_failed_register_leaves_no_file(cli: Run, tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    done = cli("device", "register", SHOPSYNC_DB=str(db), SUPABASE_URL=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 4 and not db.exists()
    assert cli("device", "register", SHOPSYNC_DB=str(db)).returncode == 0
    assert as_json(cli("status", "--json", SHOPSYNC_DB=str(db)))["registered"] is True


def test_settings_come_from_dotenv_and_an_unregistered_file_says_what_to_do(cli: Run, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('SHOPSYNC_DB="fromenv.db"\nSHOPSYNC_EMAIL="staff@shop-a.test"\n')
    LocalStore(tmp_path / "fromenv.db").close()  # a file that never registered
    verify = cli("invoices", "verify", email=None)
    assert verify.returncode == 3
    assert "fromenv.db has no synced schema yet: run `shopsync device register" in one_line_error(verify)
    registered = cli("device", "register", "--json", email=None)  # the .env's database and user
    assert registered.returncode == 0, registered.stderr
    assert as_json(registered)["db"] == "fromenv.db" and as_json(registered)["role"] == "staff"


def test_help_lists_the_commands_and_exit_codes(cli: Run) -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("device", "sync", "pull", "status", "conflicts", "invoices", "demo", "stack"):
        assert command in done.stdout
    for code in EXIT_CODES:
        assert f"\n  {code} " in done.stdout
