"""A client process killed (SIGKILL) between applying a pull page and committing its cursor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest_client import SHOP_A, local_rows, shop_rows

from shopsync import LocalStore, SyncClient

PAGE = 5

CHILD = textwrap.dedent("""
    import os, signal, sys
    import supabase
    from shopsync import LocalStore, SyncClient

    path, url, anon_key, token, kill_at_page, page_size = sys.argv[1:]
    store = LocalStore(path)
    client = SyncClient(store, supabase.create_client(url, anon_key), access_token=token,
                        page_size=int(page_size), device_name="crashy")
    client.register()
    store.insert("customers", {"name": "Written before the crash"})
    pages = 0

    def hook(page):
        global pages
        pages += 1
        print("page", pages, "cursor", page["cursor"], flush=True)
        if pages == int(kill_at_page):
            os.kill(os.getpid(), signal.SIGKILL)  # the page's rows are applied, its cursor is not committed

    client.pull_page_hook = hook
    client.sync()
    print("not killed", flush=True)
""")


def test_killed_between_a_pull_page_and_its_cursor_loses_and_duplicates_nothing(
        client_stack: Any, token_for: Any, tmp_path: Path, sql: Any, make_device: Any) -> None:
    import supabase

    other = make_device("other")  # enough changes in the shop's log for several pages
    for i in range(3 * PAGE):
        other.store.insert("customers", {"name": f"Crash fodder {i}"})
    other.client.sync().raise_for_errors()

    path = tmp_path / "crashy.db"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), client_stack.api_url, client_stack.anon_key,
         token_for("staff@shop-a.test"), "3", str(PAGE)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert "page 3" in done.stdout and "not killed" not in done.stdout

    store = LocalStore(path)
    # Pages 1 and 2 committed (applied, or staged when they end inside a server transaction);
    # page 3 rolled back with its cursor.
    [second] = [int(line.split()[3]) for line in done.stdout.splitlines() if line.startswith("page 2 ")]
    staged = store.stage.cursor()
    assert (staged if staged is not None else store.cursor) == second
    [mine] = store.query("customers", {"name": "Written before the crash"})
    assert mine["sync_state"] == "synced" and mine["version"] == 1  # pushed before the pull began
    assert store.outbox.count() == 0

    client = SyncClient(store, supabase.create_client(client_stack.api_url, client_stack.anon_key),
                        access_token=token_for("staff@shop-a.test"), page_size=PAGE)
    result = client.sync()
    assert result.ok and result.pushed == 0
    assert local_rows(store) == shop_rows(sql, SHOP_A, store)
    assert sql("select count(*) from public.customers where shop_id = %s and name = %s",
               (SHOP_A, "Written before the crash")) == [(1,)]
    [last] = sql("select last_seq from shopsync.shop_cursor where shop_id = %s", (SHOP_A,))
    assert store.cursor == last[0]
    store.close()
