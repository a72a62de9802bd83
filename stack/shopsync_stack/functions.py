"""The edge runtime stand-in: each ``supabase/functions/<name>/index.ts`` in its own Deno process,
started on demand, reached over HTTP on a local port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

from .rpc import ApiError
from .settings import StackSettings

__all__ = ["HOST_TS", "FunctionHost"]

HOST_TS = Path(__file__).with_name("function_host.ts")


class FunctionHost:
    """Runs each function in its own Deno process; :meth:`port_for` starts it on first use."""

    def __init__(self, root: Path, settings: StackSettings):
        self.root = root
        self.settings = settings
        self.deno = root / "tools" / "node_modules" / ".bin" / "deno"
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def exists(self, name: str) -> bool:
        return bool(name) and "/" not in name and not name.startswith(".") and \
            (self.root / "supabase" / "functions" / name / "index.ts").is_file()

    async def port_for(self, name: str) -> int:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one start per function, however many requests wait for it
            entry = self.procs.get(name)
            if entry and entry[0].poll() is None:
                return entry[1]
            proc, port = self._spawn(name)
            self.procs[name] = (proc, port)
            deadline = time.monotonic() + 60  # the first start may fetch npm: imports
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise ApiError(500, "FUNCTION_CRASHED", f"function {name} exited with code {proc.returncode}")
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
                except (OSError, TimeoutError):
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                return port
            raise ApiError(504, "FUNCTION_TIMEOUT", f"function {name} did not start listening")

    def _spawn(self, name: str) -> tuple[subprocess.Popen[bytes], int]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        fn_dir = self.root / "supabase" / "functions" / name
        env = {
            **os.environ,
            "SUPABASE_URL": self.settings.api_url,
            "SUPABASE_ANON_KEY": self.settings.anon_key,
            "SUPABASE_SERVICE_ROLE_KEY": self.settings.service_role_key,
            "SUPABASE_DB_URL": self.settings.db_url,
            "SHOPSYNC_FUNCTION_PORT": str(port),
            "SHOPSYNC_FUNCTION_ENTRY": (fn_dir / "index.ts").as_uri(),
            "DENO_DIR": str(self.root / "tools" / ".deno"),
            "DENO_NO_UPDATE_CHECK": "1",
            "NO_COLOR": "1",
        }
        cmd = [str(self.deno), "run", "-A", "--no-prompt"]
        if (fn_dir / "deno.json").is_file():
            cmd += ["--config", str(fn_dir / "deno.json")]
        cmd.append(str(HOST_TS))
        return subprocess.Popen(cmd, env=env, cwd=fn_dir, stdin=subprocess.DEVNULL), port

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
