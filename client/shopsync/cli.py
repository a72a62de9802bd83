"""The ``shopsync`` command line.

Exit codes: 0 success, 1 a command failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

__all__ = ["main"]


def _stack_cmd(args: argparse.Namespace) -> int:
    from .settings import load_settings
    from .stack import Stack, find_project_root, mint_user_token

    action = args.stack_action
    if action == "token":
        print(mint_user_token(load_settings(), args.email, expires_in=args.expires))
        return 0
    stack = Stack(find_project_root())
    if action == "env":
        print("\n".join(stack.settings.dotenv_lines()))
        return 0
    if action == "status":
        status = stack.status()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            for name, info in status.items():
                state = "running" if info["running"] else "stopped"
                print(f"{name:9} {state:8} {info['url']}")
        return 0 if all(v["running"] for v in status.values()) else 1
    if action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    started = time.monotonic()
    settings = stack.up() if action == "up" else stack.reset()
    took = time.monotonic() - started
    print(f"shopsync local stack {'is up' if action == 'up' else 'was reset'} ({took:.1f}s)")
    print(f"  API URL          {settings.api_url}  (RPC: /rest/v1/rpc/<fn>, functions: /functions/v1/<name>)")
    print(f"  DB URL           {settings.db_url}")
    print(f"  JWT secret       {settings.jwt_secret}")
    print(f"  anon key         {settings.anon_key}")
    print(f"  service_role key {settings.service_role_key}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopsync", description="Offline-first sync for shop apps on Supabase.")
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the local Supabase-compatible stack (no Docker)")
    ssub = stack.add_subparsers(dest="stack_action", required=True)
    ssub.add_parser("up", help="start Postgres and the gateway; apply migrations and seed (idempotent)")
    ssub.add_parser("down", help="stop what `up` started")
    st = ssub.add_parser("status", help="say what runs where")
    st.add_argument("--json", action="store_true")
    ssub.add_parser("reset", help="a fresh database: bootstrap, migrations, seed")
    ssub.add_parser("env", help="print dotenv lines (supabase status -o env names and SUPABASE_* forms)")
    tok = ssub.add_parser("token", help="mint a user access token (runs custom_access_token_hook)")
    tok.add_argument("--email", required=True)
    tok.add_argument("--expires", type=int, default=3600, help="lifetime in seconds (default 3600)")
    stack.set_defaults(func=_stack_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from .stack import StackError

    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"shopsync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
