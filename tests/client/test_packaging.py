"""The device library as a device installs it: `pip install .` from the repo root gives the library
only (no psycopg, no stack SQL or TypeScript, no CLI), and it syncs against the running stack.
And the library's source imports nothing of shopsync_stack, shopsync_cli or psycopg."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "client" / "shopsync"
FOREIGN = ("shopsync_stack", "shopsync_cli", "psycopg", "psycopg_pool", "dotenv")


def test_the_library_source_imports_nothing_of_the_stack_or_the_cli() -> None:
    """An AST scan of every module (``python -m shopsync`` looks the CLI up by name at run time)."""
    found: list[str] = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                if name.split(".")[0] in FOREIGN:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert found == []
    assert not [p for p in LIBRARY.rglob("*") if p.suffix in (".sql", ".ts")]


def test_importing_the_library_loads_nothing_of_the_stack_or_the_cli() -> None:
    code = ("import sys, shopsync, shopsync.client, shopsync.push, shopsync.pull, shopsync.store; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (FOREIGN,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


SYNC_SCRIPT = textwrap.dedent("""
    import importlib.util, json, os, sys, tempfile
    from pathlib import Path
    import shopsync
    from shopsync import LocalStore, SyncClient

    url, key, token = os.environ["SUPABASE_URL"], os.environ["SUPABASE_ANON_KEY"], os.environ["SHOPSYNC_TEST_TOKEN"]
    folder = Path(tempfile.mkdtemp())
    a = LocalStore(folder / "a.db")
    ca = SyncClient(a, url=url, anon_key=key, access_token=token, device_name="pip-install-a")
    ca.sync().raise_for_errors()
    row = a.insert("customers", {"name": os.environ["SHOPSYNC_TEST_NAME"]})
    pushed = ca.sync()
    pushed.raise_for_errors()
    b = LocalStore(folder / "b.db")
    cb = SyncClient(b, url=url, anon_key=key, access_token=token, device_name="pip-install-b")
    cb.sync().raise_for_errors()
    back = b.get("customers", row["id"])
    print(json.dumps({
        "file": shopsync.__file__, "id": row["id"], "applied": pushed.applied,
        "pulled": None if back is None else {"name": back["name"], "sync_state": back["sync_state"]},
        "importable": {m: importlib.util.find_spec(m) is not None
                       for m in ("psycopg", "shopsync_stack", "shopsync_cli", "dotenv")},
    }))
""")


def test_pip_install_dot_gives_the_library_alone_and_it_syncs(
        tmp_path: Path, client_stack: Any, token_for: Callable[[str], str],
        sql: Callable[..., list[tuple[Any, ...]]]) -> None:
    src = tmp_path / "repo"  # the repo root as a checkout has it (the build writes into its tree)
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".stack", "node_modules", ".deno", "__pycache__", "*.egg-info", "build", "results",
        ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", "*.db", ".env"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    done = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "."], cwd=src,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    listed = subprocess.run([py, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "shopsync" in names and not names & {"shopsync-stack", "shopsync-cli", "psycopg", "psycopg-binary"}
    files = subprocess.run([py, "-c", "import importlib.metadata as m; print('\\n'.join(str(f) for f in m.files('shopsync')))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in files if f.endswith((".sql", ".ts"))], files
    assert not [f for f in files if f.startswith(("shopsync_stack", "shopsync_cli"))], files
    assert not (venv / "bin" / "shopsync").exists()  # the command comes with shopsync[cli]

    cmd = subprocess.run([py, "-m", "shopsync"], capture_output=True, text=True)
    assert cmd.returncode == 2 and "pip install 'shopsync[cli]'" in cmd.stderr

    name = f"pip-install-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SUPABASE_URL": client_stack.api_url, "SUPABASE_ANON_KEY": client_stack.anon_key,
           "SHOPSYNC_TEST_TOKEN": token_for("staff@shop-a.test"), "SHOPSYNC_TEST_NAME": name}
    env.pop("PYTHONPATH", None)
    run = subprocess.run([py, "-c", SYNC_SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(venv)), out["file"]  # the installed copy, not the source tree
    assert out["importable"] == {"psycopg": False, "shopsync_stack": False, "shopsync_cli": False, "dotenv": False}
    assert out["applied"] == 1 and out["pulled"] == {"name": name, "sync_state": "synced"}
    assert sql("select name from public.customers where id = %s", (out["id"],)) == [(name,)]
