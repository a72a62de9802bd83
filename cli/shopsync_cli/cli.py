"""The ``shopsync`` command line.

Device commands work on a local SQLite file (``--db PATH`` or ``SHOPSYNC_DB``) with configuration
from the environment or ``.env``: ``SUPABASE_URL``, ``SUPABASE_ANON_KEY`` and a user's access token
(``SHOPSYNC_ACCESS_TOKEN``, or ``SHOPSYNC_EMAIL`` to mint one with the local stack's JWT secret).
Human tables by default, ``--json`` for scripts. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from dotenv import dotenv_values

__all__ = ["main", "EXIT_CODES", "CliError"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE, EXIT_REFUSED = 0, 1, 2, 3, 4, 5
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "the command failed: events rejected, an invoice chain broken, no such conflict, the server "
                 "refused the call's shape, a stack command failed",
    EXIT_USAGE: "bad usage: unknown command or option, a bad value",
    EXIT_CONFIG: "configuration or authentication: no or unreadable database file, no access token, an expired "
                 "or rejected token, not a member of a shop, device revoked or not registered",
    EXIT_UNREACHABLE: "the server is unreachable (network, timeout, 5xx); nothing was lost, try again",
    EXIT_REFUSED: "refused for now: licence expired, device limit reached or rate limited (pulls still work)",
    130: "interrupted",
}
EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items()) + (
    "\n\nenvironment (or .env): SHOPSYNC_DB, SUPABASE_URL, SUPABASE_ANON_KEY, SHOPSYNC_ACCESS_TOKEN or "
    "SHOPSYNC_EMAIL (local stack only: mints a token with its JWT secret), SHOPSYNC_DEBUG=1 for tracebacks")


class CliError(Exception):
    """A failure the CLI reports as one line and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- configuration --------------------------------------------------------------------------------
class _Config:
    def __init__(self, args: argparse.Namespace) -> None:
        env_file = getattr(args, "env_file", None) or ".env"
        if getattr(args, "env_file", None) and not Path(env_file).is_file():
            raise CliError(EXIT_CONFIG, f"no env file {env_file}")
        values: dict[str, str | None] = {}
        if Path(env_file).is_file():
            values.update(dotenv_values(env_file))
        values.update(os.environ)
        from shopsync_stack.settings import load_settings

        self.settings = load_settings(env_file)
        db = getattr(args, "db", None) or values.get("SHOPSYNC_DB")
        self.db = Path(db) if db else None
        self.access_token = values.get("SHOPSYNC_ACCESS_TOKEN") or None
        self.email = values.get("SHOPSYNC_EMAIL") or None

    def open_store(self, *, create: bool = False) -> Any:
        from shopsync.store import LocalStore

        if self.db is None:
            raise CliError(EXIT_CONFIG, "no database file: pass --db PATH or set SHOPSYNC_DB")
        if not create and not self.db.is_file():
            raise CliError(EXIT_CONFIG, f"no database file {self.db}: create it with "
                                        f"`shopsync device register --db {self.db}`")
        if create and not self.db.parent.is_dir():
            raise CliError(EXIT_CONFIG, f"no folder {self.db.parent} for the database file {self.db}")
        try:
            return LocalStore(self.db)
        except sqlite3.DatabaseError as exc:
            raise CliError(EXIT_CONFIG, f"{self.db} is not a shopsync database ({exc})") from None

    def token_source(self) -> str | Callable[[], str]:
        from shopsync.errors import AuthError, TransportError

        if self.access_token:
            exp = _token_expiry(self.access_token)
            if exp is not None and exp <= time.time():
                when = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                raise CliError(EXIT_CONFIG, f"the access token in SHOPSYNC_ACCESS_TOKEN expired at {when}; "
                                            "set a fresh one")
            return self.access_token
        if self.email:
            email, settings = self.email, self.settings

            def mint() -> str:
                import psycopg

                from shopsync_stack import StackError, mint_user_token

                try:
                    return mint_user_token(settings, email)
                except StackError as exc:
                    raise AuthError(f"cannot mint a token for SHOPSYNC_EMAIL={email}: {exc}", status=401,
                                    reason="token_mint_failed") from None
                except psycopg.OperationalError as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise TransportError(f"cannot reach the database to mint a token for {email} "
                                         f"({settings.db_url}): {first}", reason="network") from None

            return mint
        raise CliError(EXIT_CONFIG, "no access token: set SHOPSYNC_ACCESS_TOKEN to a user's access token "
                                    "(or, against the local stack, SHOPSYNC_EMAIL to mint one)")

    def client(self, store: Any, *, network: bool, **kwargs: Any) -> Any:
        from shopsync import SyncClient
        from shopsync.transport import SupabaseTransport

        if not network:
            return SyncClient(store, transport=_LocalOnly(), **kwargs)
        token = self.token_source()
        import supabase

        try:
            sb = supabase.create_client(self.settings.api_url, self.settings.anon_key)
        except Exception as exc:  # supabase-py validates the URL and key
            raise CliError(EXIT_CONFIG, f"bad SUPABASE_URL or SUPABASE_ANON_KEY: {exc}") from None
        return SyncClient(store, transport=SupabaseTransport(sb, token), **kwargs)


class _LocalOnly:
    """The transport of commands that only read or change the local file (status, conflicts)."""

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        raise CliError(EXIT_FAILED, f"internal: {fn} called by a local-only command")


def _token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (the server verifies)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


# -- output -----------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Decimal and the rest


def _print_json(data: Any) -> None:
    print(json.dumps(_jsonable(data), indent=2, sort_keys=True))


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _code_for(exc: Exception) -> int:
    from shopsync.errors import (
        AuthError,
        DeviceError,
        ForbiddenError,
        LicenceError,
        RateLimitedError,
        SchemaError,
        TransportError,
    )

    if isinstance(exc, TransportError):
        return EXIT_UNREACHABLE
    if isinstance(exc, (AuthError, ForbiddenError, DeviceError)):
        return EXIT_CONFIG
    if isinstance(exc, (LicenceError, RateLimitedError)):
        return EXIT_REFUSED
    if isinstance(exc, SchemaError) and exc.reason == "no_schema":
        return EXIT_CONFIG
    return EXIT_FAILED


def _explain(exc: Exception, cfg: _Config | None) -> str:
    from shopsync.errors import AuthError, DeviceError, SchemaError, TransportError

    text = str(exc)
    if isinstance(exc, TransportError) and exc.reason == "network" and cfg is not None and "mint" not in text:
        return f"cannot reach the server at {cfg.settings.api_url}: {text}"
    if isinstance(exc, AuthError) and exc.reason in ("token_expired", "invalid_token"):
        return f"the server refused the access token: {text}; set a fresh SHOPSYNC_ACCESS_TOKEN"
    db = cfg.db if cfg is not None else None
    if isinstance(exc, DeviceError) and exc.reason == "device_not_registered":
        return f"{text}; run `shopsync device register --db {db}`"
    if isinstance(exc, SchemaError) and exc.reason == "no_schema":
        return f"{db} has no synced schema yet: run `shopsync device register --db {db}`"
    return text


def _result_data(r: Any) -> dict[str, Any]:
    return {"ok": r.ok and not r.rejections, "pushed": r.pushed, "applied": r.applied, "merged": r.merged,
            "duplicates": r.duplicates, "conflicts": r.conflicts, "rejected": r.rejected, "pulled": r.pulled,
            "resets": r.resets,
            "rejections": [asdict(x) for x in r.rejections],
            "errors": [{"type": type(e).__name__, "reason": e.reason, "message": str(e)} for e in r.errors]}


def _result_line(r: Any) -> str:
    if not r.pushed and not r.applied and r.pulled:
        return f"pulled {r.pulled}"
    return (f"pushed {r.pushed} (applied {r.applied}, merged {r.merged}, duplicates {r.duplicates}, "
            f"conflicts {r.conflicts}, rejected {r.rejected}), pulled {r.pulled}")


def _finish_result(args: argparse.Namespace, cfg: _Config, r: Any, extra: dict[str, Any] | None = None) -> int:
    code = _code_for(r.errors[0]) if r.errors else (EXIT_FAILED if r.rejections else EXIT_OK)
    if args.json:
        _print_json({**_result_data(r), **(extra or {}), "exit_code": code})
    else:
        if not r.errors or r.pushed or r.pulled:
            print(_result_line(r))
        for x in r.rejections:
            print(f"  rejected {x.table} {x.row_id} ({x.op}): {x.reason}{': ' + x.message if x.message else ''}")
    for e in r.errors:
        print(f"shopsync: {_explain(e, cfg)}", file=sys.stderr)
    return code


# -- commands ---------------------------------------------------------------------------------------
def _device_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    existed = cfg.db is not None and cfg.db.is_file()
    token = cfg.token_source()  # before creating a file: a bad configuration leaves nothing behind
    del token
    store = cfg.open_store(create=True)
    try:
        client = cfg.client(store, network=True, device_name=args.name, platform=args.platform)
        try:
            info = client.register()
        except Exception:
            if not existed:
                store.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{cfg.db}{suffix}").unlink(missing_ok=True)
            raise
        data = {"device_id": store.device_id, "shop_id": info.get("shop_id"), "role": info.get("role"),
                "registered_at": info.get("registered_at"), "name": client.device_name, "db": str(cfg.db),
                "schema_version": store.schema.version, "invoice_series": store.invoice_series}
        if args.json:
            _print_json(data)
        else:
            print(_table([[k, str(v)] for k, v in data.items()]))
            print(f"next: shopsync sync --db {cfg.db}")
        return EXIT_OK
    finally:
        store.close()


def _sync_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    store = cfg.open_store()
    try:
        client = cfg.client(store, network=True, interval=args.interval, page_size=args.page_size)
        if not args.watch:
            return _finish_result(args, cfg, client.sync())
        return _watch(args, cfg, client)
    finally:
        store.close()


def _watch(args: argparse.Namespace, cfg: _Config, client: Any) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def report(r: Any) -> None:
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        if args.json:
            print(json.dumps(_jsonable({"at": now, **_result_data(r)}), sort_keys=True), flush=True)
        else:
            line = f"{now} sync: " + ("ok" if r.ok else "failed") + f"; {_result_line(r)}"
            if r.errors:
                line += "; " + "; ".join(_explain(e, cfg) for e in r.errors)
            print(line, flush=True)

    client.add_listener(report)
    if not args.json:
        print(f"watching {cfg.db}: syncs now, every {args.interval:g}s, after local writes and when the shop "
              f"changes (live, Supabase Realtime); Ctrl-C or SIGTERM stops", flush=True)
    client.start()
    try:
        stop.wait()
    finally:
        client.stop(timeout=30)
        for s, h in previous.items():
            signal.signal(s, h)
    if not args.json:
        print("stopped", flush=True)
    return EXIT_OK


def _pull_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    store = cfg.open_store()
    try:
        client = cfg.client(store, network=True, page_size=args.page_size)
        bar = None
        if args.progress:
            from .demo import ProgressBar

            bar = ProgressBar("pull", stream=sys.stderr, indent=0)
            client.add_pull_listener(bar)
        try:
            result = client.pull()
        finally:
            if bar is not None:
                bar.done()
        return _finish_result(args, cfg, result, {"cursor": store.cursor})
    finally:
        store.close()


def _status_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    store = cfg.open_store()
    try:
        client = cfg.client(store, network=False)
        st = client.status()
        rows = {name: store.count(name) for name in sorted(store.schema.tables)} if store.has_schema else {}
        data = {"db": str(cfg.db), "device_id": store.device_id, "shop_id": store.get_meta("shop_id"),
                "role": store.get_meta("role"), "registered": store.get_meta("registered_at") is not None,
                "schema_version": store.schema.version if store.has_schema else None, **asdict(st), "rows": rows}
        if args.json:
            _print_json(data)
        else:
            lines = [[k, "-" if v is None else str(v)] for k, v in data.items()
                     if k not in ("rows", "pending_by_table")]
            lines.append(["pending_by_table", ", ".join(f"{t} {n}" for t, n in sorted(st.pending_by_table.items()))
                          or "-"])
            lines.append(["rows", ", ".join(f"{t} {n}" for t, n in rows.items()) or "-"])
            print(_table(lines))
        return EXIT_OK
    finally:
        store.close()


def _fmt(value: Any) -> str:
    return "null" if value is None else str(value)


def _conflicts_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    store = cfg.open_store()
    try:
        client = cfg.client(store, network=False)
        if args.conflicts_action == "list":
            items = client.conflicts(include_resolved=args.all)
            if args.json:
                _print_json([asdict(c) for c in items])
            elif not items:
                print("no open conflicts" if not args.all else "no conflicts")
            else:
                rows = [["id", "table", "row", "reason", "policy", "state", "local", "server"]]
                for c in items:
                    server = c.server_row or {}
                    rows.append([str(c.id), c.table, c.row_id[:8], c.reason, c.policy or "-",
                                 "open" if c.is_open else (c.resolution or "resolved"),
                                 ", ".join(f"{k}={_fmt(v)}" for k, v in c.local_values.items()),
                                 ", ".join(f"{k}={_fmt(server.get(k))}" for k in c.local_values)])
                print(_table(rows))
            return EXIT_OK
        keep: Any
        if args.set:
            keep = _parse_assignments(store, client, args.id, args.set)
        else:
            keep = args.keep
        from shopsync.errors import NotFoundError

        try:
            row = client.resolve(args.id, keep=keep)
        except NotFoundError:
            raise CliError(EXIT_FAILED, f"no open conflict {args.id} (see `shopsync conflicts list`)") from None
        pending = client.status().pending_uploads
        data = {"resolved": args.id, "keep": keep, "row": row, "pending_uploads": pending}
        if args.json:
            _print_json(data)
        else:
            print(f"conflict {args.id} resolved ({keep if isinstance(keep, str) else 'custom values'}); "
                  f"{pending} event(s) queued: run `shopsync sync` to send")
        return EXIT_OK
    finally:
        store.close()


def _parse_assignments(store: Any, client: Any, conflict_id: int, items: list[str]) -> dict[str, Any]:
    from shopsync.errors import SchemaError

    match = [c for c in client.conflicts() if c.id == conflict_id]
    if not match:
        raise CliError(EXIT_FAILED, f"no open conflict {conflict_id} (see `shopsync conflicts list`)")
    spec = store.table(match[0].table)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise CliError(EXIT_USAGE, f"--set expects col=value, not {item!r}")
        col, raw = item.split("=", 1)
        try:
            kind = spec.column(col).kind
        except SchemaError as exc:
            raise CliError(EXIT_USAGE, str(exc)) from None
        if raw == "" or raw == "null":
            out[col] = None
        elif kind == "boolean":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise CliError(EXIT_USAGE, f"{col} is a boolean: use true or false, not {raw!r}")
            out[col] = raw.lower() in ("true", "1")
        elif kind == "json":
            try:
                out[col] = json.loads(raw)
            except ValueError:
                raise CliError(EXIT_USAGE, f"{col} holds JSON: {raw!r} is not JSON") from None
        else:
            out[col] = raw
    return out


def _invoices_cmd(args: argparse.Namespace, cfg: _Config) -> int:
    store = cfg.open_store()
    try:
        series_list = [args.series] if args.series else sorted(
            {r["series"] for r in store.query("invoices", include_deleted=True)})
        results: list[dict[str, Any]] = []
        for series in series_list:
            local = store.verify_invoice_chain(series)
            results.append({"series": series, "local": asdict(local), "server": None})
        network_error: Exception | None = None
        if not args.local:
            client = cfg.client(store, network=True)
            from shopsync.errors import ShopSyncError

            for item in results:
                try:
                    item["server"] = client.transport.call("verify_invoice_chain", {"p_series": item["series"]})
                except ShopSyncError as exc:
                    network_error = exc
                    break
        if not results and not args.json:
            print("no invoices in this file")
        ok = all(r["local"]["ok"] and (r["server"] is None or r["server"].get("ok")) for r in results)
        if args.json:
            _print_json({"ok": ok and network_error is None, "series": results})
        else:
            rows = [["series", "local", "server"]]
            for r in results:
                lc = r["local"]
                local_txt = f"ok ({lc['checked']})" if lc["ok"] else f"BROKEN at #{lc['number']}: {lc['reason']}"
                srv = r["server"]
                if srv is None:
                    server_txt = "-" if args.local or network_error is None else "not checked"
                elif srv.get("ok"):
                    server_txt = f"ok ({srv.get('checked')})"
                else:
                    server_txt = f"BROKEN at #{srv.get('number')}: {srv.get('reason')}"
                rows.append([r["series"], local_txt, server_txt])
            print(_table(rows))
        if network_error is not None:
            raise network_error
        return EXIT_OK if ok else EXIT_FAILED
    finally:
        store.close()


def _stack_cmd(args: argparse.Namespace, cfg: _Config | None) -> int:
    from shopsync_stack import Stack, find_project_root, mint_user_token
    from shopsync_stack.settings import load_settings

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


# -- parser -----------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"shopsync: error: {message}\n")


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 5000:
        raise argparse.ArgumentTypeError("must be 1..5000")
    return value


def _common(*, top: bool) -> _Parser:
    p = _Parser(add_help=False)
    default = None if top else argparse.SUPPRESS
    p.add_argument("--db", metavar="PATH", default=default, help="the device's SQLite file (or SHOPSYNC_DB)")
    p.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="machine-readable output")
    p.add_argument("--env-file", metavar="FILE", default=default, help="read settings from FILE (default .env)")
    return p


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="shopsync", description="Offline-first sync for shop apps on Supabase.", epilog=EPILOG,
                     formatter_class=fmt, parents=[_common(top=True)])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = [_common(top=False)]

    dev = sub.add_parser("device", help="register this device (creates the database file)", parents=common)
    dsub = dev.add_subparsers(dest="device_action", required=True, parser_class=_Parser)
    reg = dsub.add_parser("register", help="register the device in the user's shop and load the schema",
                          parents=common)
    reg.add_argument("--name", help="device name shown to the shop owner (default shopsync-<prefix>)")
    reg.add_argument("--platform", default="cli")
    dev.set_defaults(func=_device_cmd)

    sy = sub.add_parser("sync", help="push the outbox and pull changes (once, or --watch)", parents=common)
    sy.add_argument("--watch", action="store_true", help="keep syncing in the background until Ctrl-C/SIGTERM")
    sy.add_argument("--interval", type=float, default=30.0, help="--watch: seconds between syncs (default 30)")
    sy.add_argument("--page-size", type=_page_size, default=2000, help="changes per pull page (1..5000, default 2000)")
    sy.set_defaults(func=_sync_cmd)

    pl = sub.add_parser("pull", help="pull changes only", parents=common)
    pl.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    pl.add_argument("--page-size", type=_page_size, default=2000, help="changes per pull page (1..5000, default 2000)")
    pl.set_defaults(func=_pull_cmd)

    st = sub.add_parser("status", help="where the device stands (local only)", parents=common)
    st.set_defaults(func=_status_cmd)

    cf = sub.add_parser("conflicts", help="list and resolve conflicts (local; `sync` sends resolutions)",
                        parents=common)
    csub = cf.add_subparsers(dest="conflicts_action", required=True, parser_class=_Parser)
    cl = csub.add_parser("list", help="open conflicts (--all: the whole log)", parents=common)
    cl.add_argument("--all", action="store_true")
    cr = csub.add_parser("resolve", help="settle one: --keep local|remote or --set col=value ...", parents=common)
    cr.add_argument("id", type=int)
    how = cr.add_mutually_exclusive_group(required=True)
    how.add_argument("--keep", choices=("local", "remote"))
    how.add_argument("--set", action="append", metavar="COL=VALUE",
                     help="these values (repeatable; empty or null sets NULL)")
    cf.set_defaults(func=_conflicts_cmd)

    inv = sub.add_parser("invoices", help="invoice chains", parents=common)
    isub = inv.add_subparsers(dest="invoices_action", required=True, parser_class=_Parser)
    iv = isub.add_parser("verify", help="check chains locally and with the server's verify_invoice_chain",
                         parents=common)
    iv.add_argument("series", nargs="?", help="one series (default: every series in the file)")
    iv.add_argument("--local", action="store_true", help="only the local check (offline)")
    inv.set_defaults(func=_invoices_cmd)

    sub.add_parser("demo", help="the end-to-end demo (`shopsync demo --help`)", add_help=False)

    stack = sub.add_parser("stack", help="the local Supabase-compatible stack (no Docker)")
    ssub = stack.add_subparsers(dest="stack_action", required=True, parser_class=_Parser)
    ssub.add_parser("up", help="start Postgres and the gateway; apply migrations and seed (idempotent)")
    ssub.add_parser("down", help="stop what `up` started")
    sst = ssub.add_parser("status", help="say what runs where")
    sst.add_argument("--json", action="store_true")
    ssub.add_parser("reset", help="a fresh database: bootstrap, migrations, seed")
    ssub.add_parser("env", help="print dotenv lines (supabase status -o env names and SUPABASE_* forms)")
    tok = ssub.add_parser("token", help="mint a user access token (runs custom_access_token_hook)")
    tok.add_argument("--email", required=True)
    tok.add_argument("--expires", type=int, default=3600, help="lifetime in seconds (default 3600)")
    stack.set_defaults(func=_stack_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from . import demo

        return demo.main(argv[1:])
    args = _parser().parse_args(argv)
    from shopsync.errors import ShopSyncError
    from shopsync_stack import StackError

    cfg: _Config | None = None
    try:
        if args.command != "stack":
            cfg = _Config(args)
        return int(args.func(args, cfg))
    except CliError as exc:
        return _fail(args, exc.code, exc.message)
    except ShopSyncError as exc:
        return _fail(args, _code_for(exc), _explain(exc, cfg))
    except StackError as exc:
        return _fail(args, EXIT_FAILED, str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, no traceback (SHOPSYNC_DEBUG=1 shows it)
        if os.environ.get("SHOPSYNC_DEBUG"):
            raise
        return _fail(args, EXIT_FAILED, f"unexpected {type(exc).__name__}: {exc}")


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    if getattr(args, "json", False) and args.command != "stack":
        _print_json({"ok": False, "error": message, "exit_code": code})
    print(f"shopsync: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
