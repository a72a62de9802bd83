"""The other client: supabase-js (realtime-js 2.x, serializer 2.0.0 with binary broadcast frames)
subscribes to a shop's live-sync topic on the local stack, as docs/protocol.md shows, under the
project's Deno (supabase-js from the npm registry, cached in tools/.deno)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import uuid
from pathlib import Path

import psycopg
from sync_helpers import SHOP_A

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("realtime_js_subscribe.ts")
WAIT = 90.0  # the first run downloads supabase-js into the Deno cache


def _start(settings: StackSettings, email: str, shop: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    env = {**os.environ, "DENO_DIR": str(ROOT / "tools" / ".deno"), "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1",
           "SUPABASE_URL": settings.api_url, "SUPABASE_ANON_KEY": settings.anon_key,
           "USER_TOKEN": mint_user_token(settings, email), "SHOP_ID": shop}
    proc = subprocess.Popen([str(ROOT / "tools" / "node_modules" / ".bin" / "deno"), "run", "-A", str(SCRIPT)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _next(lines: queue.Queue[str], prefix: tuple[str, ...], seen: list[str]) -> str:
    while True:
        line = lines.get(timeout=WAIT)
        seen.append(line)
        if line.startswith(prefix):
            return line


def test_supabase_js_hears_a_commit_on_the_shops_private_topic(settings: StackSettings) -> None:
    proc, lines = _start(settings, "staff@shop-a.test", SHOP_A)
    seen: list[str] = []
    try:
        assert _next(lines, ("READY", "REFUSED"), seen) == "READY", seen
        with psycopg.connect(settings.db_url) as conn:
            conn.execute("insert into public.customers (id, shop_id, name) values (%s, %s, 'heard by js')",
                         (uuid.uuid4(), SHOP_A))
            cursor = conn.execute("select last_seq from shopsync.shop_cursor where shop_id = %s",
                                  (SHOP_A,)).fetchone()
        payload = json.loads(_next(lines, ("PAYLOAD",), seen).split(" ", 1)[1])
        assert cursor is not None and payload["cursor"] == cursor[0]
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()


def test_supabase_js_is_refused_another_shops_topic(settings: StackSettings) -> None:
    proc, lines = _start(settings, "staff@shop-b.test", SHOP_A)
    seen: list[str] = []
    try:
        line = _next(lines, ("READY", "REFUSED"), seen)
        assert line.startswith("REFUSED") and "You do not have permissions to read from this Channel topic" in line
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()
