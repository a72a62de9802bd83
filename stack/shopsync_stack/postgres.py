"""The local Supabase-compatible stack: Postgres 15 on 54322 and the gateway on 54321, no Docker.

``shopsync stack up`` gives a database that looks, to clients and tests, like the one
``supabase start`` gives: the same roles, auth helpers, keys and ports, migrations applied by the
real Supabase CLI (``supabase migration up``), then ``supabase/seed.sql``. Everything lives in the
ignored ``.stack/`` folder of the project. Processes are tracked by pid files and stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StackError
from .settings import LOCAL_ANON_KEY, LOCAL_JWT_SECRET, LOCAL_SERVICE_ROLE_KEY, StackSettings

__all__ = ["Stack", "StackError", "find_project_root", "PG_BIN"]

PG_BIN = Path(os.environ.get("SHOPSYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
# The Supabase CLI's ports; overridable so a second stack (a worktree, a helper) can run beside.
DB_PORT = int(os.environ.get("SHOPSYNC_DB_PORT", "54322"))
API_PORT = int(os.environ.get("SHOPSYNC_API_PORT", "54321"))
BOOTSTRAP_SQL = Path(__file__).with_name("bootstrap.sql")

PG_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "port": str(DB_PORT),
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "work_mem": "'16MB'",
    # A development stack: durability traded for speed.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_preload_libraries": "'pg_cron,plpgsql_check,pg_stat_statements'",
    "cron.database_name": "'postgres'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding ``supabase/config.toml``."""
    env = os.environ.get("SHOPSYNC_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "supabase" / "config.toml").is_file():
            return folder
    raise StackError("no supabase/config.toml here or above; run from the project folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process that has exited but not yet been reaped by its parent (a zombie: the gateway's
    # parent, a CLI run, is long gone, and init reaps when it gets round to it) is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:][:1] != "Z"


@dataclass
class Stack:
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / ".stack"

    @property
    def data_dir(self) -> Path:
        return self.dir / "pg" / "data"

    @property
    def sock_dir(self) -> Path:
        return self.dir / "pg" / "run"

    @property
    def pg_log(self) -> Path:
        return self.dir / "pg" / "postgres.log"

    @property
    def gateway_pidfile(self) -> Path:
        return self.dir / "gateway.pid"

    @property
    def gateway_log(self) -> Path:
        return self.dir / "gateway.log"

    @property
    def tools_bin(self) -> Path:
        return self.root / "tools" / "node_modules" / ".bin"

    @property
    def settings(self) -> StackSettings:
        return StackSettings(
            api_url=f"http://127.0.0.1:{API_PORT}",
            db_url=f"postgresql://postgres:postgres@127.0.0.1:{DB_PORT}/postgres",
            anon_key=LOCAL_ANON_KEY,
            service_role_key=LOCAL_SERVICE_ROLE_KEY,
            jwt_secret=LOCAL_JWT_SECRET,
        )

    # -- Postgres ---------------------------------------------------------------------------------
    def _as_postgres(self, cmd: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _run(self, cmd: list[str], *, what: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise StackError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())
        return proc.stdout

    def _check_tools(self) -> None:
        missing = [str(p) for p in (PG_BIN / "initdb", PG_BIN / "pg_ctl") if not p.exists()]
        missing += [str(self.tools_bin / n) for n in ("supabase", "deno") if not (self.tools_bin / n).exists()]
        if missing:
            raise StackError("missing " + ", ".join(missing) + "; run: bash scripts/setup.sh")

    def _init_cluster(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir / "pg", "postgres", "postgres")
            for p in (self.data_dir, self.sock_dir):
                shutil.chown(p, "postgres", "postgres")
        self.data_dir.chmod(0o700)
        self._run(
            self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                               "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            what="initdb",
        )
        conf = self.data_dir / "postgresql.conf"
        # Preload only the libraries this build has (the Postgres 17 lane's has no pg_cron, plpgsql_check).
        libdir = (PG_BIN / "postgres").resolve().parent.parent / "lib"
        preload = [n for n in PG_SETTINGS["shared_preload_libraries"].strip("'").split(",")
                   if (libdir / f"{n}.so").exists() or (libdir / "postgresql" / f"{n}.so").exists()]
        lines = [f"{k} = {v}" for k, v in {**PG_SETTINGS, "shared_preload_libraries": f"'{','.join(preload)}'"}.items()]
        lines.append(f"unix_socket_directories = '{self.sock_dir}'")
        with conf.open("a") as fh:
            fh.write("\n# shopsync local stack\n" + "\n".join(lines) + "\n")

    def pg_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        proc = subprocess.run(self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status"]),
                              capture_output=True, text=True)
        return proc.returncode == 0

    def _start_pg(self) -> None:
        if self.pg_running():
            return
        if os.geteuid() == 0:
            self.pg_log.touch(exist_ok=True)
            shutil.chown(self.pg_log, "postgres", "postgres")
        self._run(self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.pg_log),
                                     "-w", "-t", "30", "start"]),
                  what=f"starting Postgres (log: {self.pg_log}; is port {DB_PORT} taken?)")

    def _psql(self, sql_file: Path | None = None, *, sql: str | None = None, db: str = "postgres") -> str:
        cmd = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.sock_dir),
               "-p", str(DB_PORT), "-U", "postgres", "-d", db, "-At"]
        cmd += ["-f", str(sql_file)] if sql_file else ["-c", sql or ""]
        return self._run(cmd, what=f"psql {sql_file.name if sql_file else sql}")

    def _bootstrapped(self) -> bool:
        # auth and (since live sync) realtime.send: a database bootstrapped before realtime was added
        # gets the (idempotent) bootstrap again.
        out = self._psql(sql="select to_regnamespace('auth') is not null"
                             " and to_regprocedure('realtime.send(jsonb,text,text,boolean)') is not null").strip()
        return out == "t"

    def _supabase(self, *args: str) -> str:
        env = {**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"}
        return self._run([str(self.tools_bin / "supabase"), "--workdir", str(self.root), *args],
                         what="supabase " + args[0] + " " + args[1], env=env)

    def _migrate(self) -> None:
        self._supabase("migration", "up", f"--remote={self.settings.db_url}", "--include-all", "--yes")

    def _seed(self) -> None:
        seed = self.root / "supabase" / "seed.sql"
        if seed.is_file() and seed.stat().st_size:
            self._psql(seed)
        self._psql(sql="comment on database postgres is 'shopsync: seeded'")

    def _seeded(self) -> bool:
        out = self._psql(sql="select shobj_description(oid, 'pg_database') from pg_database where datname = 'postgres'")
        return out.strip() == "shopsync: seeded"

    def _fresh_database(self) -> None:
        self._psql(sql="drop database if exists postgres with (force)", db="template1")
        self._psql(sql="create database postgres", db="template1")
        self._psql(BOOTSTRAP_SQL)
        self._migrate()
        self._seed()

    # -- gateway ----------------------------------------------------------------------------------
    def gateway_pid(self) -> int | None:
        try:
            pid = int(self.gateway_pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _start_gateway(self) -> None:
        if self.gateway_pid():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.gateway_log.open("ab")
        env = {**os.environ, "SHOPSYNC_PROJECT_DIR": str(self.root), "SHOPSYNC_API_PORT": str(API_PORT),
               "SHOPSYNC_GATEWAY_DB_URL": f"postgresql://authenticator:postgres@127.0.0.1:{DB_PORT}/postgres"}
        proc = subprocess.Popen([sys.executable, "-m", "shopsync_stack.gateway"], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.gateway_pidfile.write_text(str(proc.pid))

    def _wait_for_rpc(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(f"{self.settings.api_url}/rest/v1/rpc/health", data=b"{}", method="POST",
                                             headers={"apikey": LOCAL_ANON_KEY, "Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            pid = self.gateway_pid()
            if pid is None:
                raise StackError(f"the gateway exited; see {self.gateway_log}")
            time.sleep(0.05)
        raise StackError(f"no answer from {self.settings.api_url}/rest/v1/rpc/health within {timeout:.0f}s ({last})")

    # -- commands ---------------------------------------------------------------------------------
    def up(self) -> StackSettings:
        self._check_tools()
        self._init_cluster()
        self._start_pg()
        if not self._bootstrapped():
            self._psql(BOOTSTRAP_SQL)
        self._migrate()
        if not self._seeded():
            self._seed()
        self._start_gateway()
        self._wait_for_rpc()
        return self.settings

    def reset(self) -> StackSettings:
        """A fresh database (bootstrap, migrations, seed), like ``supabase db reset``."""
        self._check_tools()
        self._init_cluster()
        self._start_pg()
        # The gateway's pool would lose every connection with the dropped database and then back
        # off reconnecting for seconds; a fresh gateway on the fresh database starts in a fraction.
        self._stop_gateway()
        self._fresh_database()
        self._start_gateway()
        self._wait_for_rpc()
        return self.settings

    def _stop_gateway(self) -> str | None:
        """Stops the gateway (and the function processes in its group) by pid; says what it stopped."""
        pid = self.gateway_pid()
        stopped = None
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            stopped = f"gateway (pid {pid})"
        self.gateway_pidfile.unlink(missing_ok=True)
        return stopped

    def down(self) -> list[str]:
        stopped: list[str] = []
        gateway = self._stop_gateway()
        if gateway:
            stopped.append(gateway)
        if self.pg_running():
            self._run(self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
                      what="stopping Postgres")
            stopped.append("postgres")
        return stopped

    def status(self) -> dict[str, Any]:
        pg = self.pg_running()
        gw = self.gateway_pid()
        return {
            "postgres": {"running": pg, "url": self.settings.db_url, "data": str(self.data_dir),
                         "socket": str(self.sock_dir)},
            "gateway": {"running": gw is not None, "pid": gw, "url": self.settings.api_url,
                        "rest": f"{self.settings.api_url}/rest/v1", "functions": f"{self.settings.api_url}/functions/v1",
                        "log": str(self.gateway_log)},
        }
