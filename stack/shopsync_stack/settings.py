"""Where the stack is and how to reach it: URLs and keys from the environment or ``.env``.

The names are those ``supabase status -o env`` prints (``API_URL``, ``DB_URL``, ``ANON_KEY``,
``SERVICE_ROLE_KEY``, ``JWT_SECRET``) and the ``SUPABASE_*`` forms clients use; either works.
Without any of them, the Supabase CLI's well-known local values apply, which are also what
``shopsync stack up`` serves (on ``SHOPSYNC_API_PORT`` / ``SHOPSYNC_DB_PORT`` when those are set),
so one ``.env`` works against this stack and ``supabase start``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

__all__ = ["StackSettings", "load_settings", "LOCAL_JWT_SECRET", "LOCAL_ANON_KEY", "LOCAL_SERVICE_ROLE_KEY"]

LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
LOCAL_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9"
    ".CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
LOCAL_SERVICE_ROLE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0"
    ".EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)
LOCAL_API_URL = "http://127.0.0.1:54321"
LOCAL_DB_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"


@dataclass(frozen=True)
class StackSettings:
    api_url: str
    db_url: str
    anon_key: str
    service_role_key: str
    jwt_secret: str

    def dotenv_lines(self) -> list[str]:
        """The lines ``shopsync stack env`` prints."""
        return [
            f'API_URL="{self.api_url}"',
            f'DB_URL="{self.db_url}"',
            f'ANON_KEY="{self.anon_key}"',
            f'SERVICE_ROLE_KEY="{self.service_role_key}"',
            f'JWT_SECRET="{self.jwt_secret}"',
            f'SUPABASE_URL="{self.api_url}"',
            f'SUPABASE_ANON_KEY="{self.anon_key}"',
            f'SUPABASE_SERVICE_ROLE_KEY="{self.service_role_key}"',
            f'SUPABASE_DB_URL="{self.db_url}"',
        ]


def _pick(values: dict[str, str | None], *names: str) -> str | None:
    for name in names:
        value = values.get(name)
        if value:
            return value
    return None


def load_settings(env_file: str | Path | None = ".env") -> StackSettings:
    """Settings from the process environment, then ``env_file`` (if it exists), then defaults."""
    values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update(dotenv_values(env_file))
    values.update({k: v for k, v in os.environ.items()})
    # The local defaults follow the ports `shopsync stack up` serves on (SHOPSYNC_*_PORT), so a
    # stack beside another one (a worktree) is never mistaken for the one on 54321/54322.
    api_port, db_port = values.get("SHOPSYNC_API_PORT"), values.get("SHOPSYNC_DB_PORT")
    local_api = f"http://127.0.0.1:{int(api_port)}" if api_port else LOCAL_API_URL
    local_db = f"postgresql://postgres:postgres@127.0.0.1:{int(db_port)}/postgres" if db_port else LOCAL_DB_URL
    return StackSettings(
        api_url=(_pick(values, "SUPABASE_URL", "API_URL") or local_api).rstrip("/"),
        db_url=_pick(values, "SUPABASE_DB_URL", "DB_URL") or local_db,
        anon_key=_pick(values, "SUPABASE_ANON_KEY", "ANON_KEY") or LOCAL_ANON_KEY,
        service_role_key=_pick(values, "SUPABASE_SERVICE_ROLE_KEY", "SERVICE_ROLE_KEY") or LOCAL_SERVICE_ROLE_KEY,
        jwt_secret=_pick(values, "SUPABASE_JWT_SECRET", "JWT_SECRET") or LOCAL_JWT_SECRET,
    )
