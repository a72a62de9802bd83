#!/usr/bin/env bash
# The project's test command (`make test`; CI runs it through .ci/run).
#
# Against the local stack (default): set-up, `shopsync stack reset` for a clean seeded database,
# then every check. Against a real `supabase start` stack: SHOPSYNC_STACK=external, with URLs and
# keys in the environment or .env (`supabase status -o env > .env`).
#
# Every check runs even when an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

bash scripts/setup.sh || { echo "test: set-up failed" >&2; exit 1; }

export SUPABASE_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
export DENO_DIR="$root/tools/.deno" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
supabase=(tools/node_modules/.bin/supabase --workdir "$root")
deno=tools/node_modules/.bin/deno

if [ "${SHOPSYNC_STACK:-local}" = external ]; then
  echo "test: against the external stack named by the environment / .env"
else
  .venv/bin/shopsync stack reset || { echo "test: shopsync stack reset failed" >&2; exit 1; }
  # The stack's own URLs and keys win over any .env (which may name another stack).
  while IFS= read -r line; do
    value=${line#*=} && value=${value#\"} && export "${line%%=*}=${value%\"}"
  done < <(.venv/bin/shopsync stack env)
fi
db_url=$(.venv/bin/python -c 'from shopsync_stack.settings import load_settings; print(load_settings().db_url)')

# The schemas the project owns: everything but Postgres' and Supabase's own.
project_schemas() {
  psql -X -At "$db_url" -c "select string_agg(nspname, ',' order by nspname) from pg_catalog.pg_namespace
    where nspname !~ '^(pg_|_)' and nspname not in ('information_schema', 'auth', 'extensions', 'storage',
      'realtime', 'graphql', 'graphql_public', 'vault', 'pgsodium', 'pgsodium_masks', 'net', 'cron',
      'pgbouncer', 'supabase_functions', 'supabase_migrations')"
}

deno_tests() {
  local status=0 dir
  for dir in supabase/functions/*/; do
    [ -f "$dir/index.ts" ] || continue
    local config=()
    [ -f "$dir/deno.json" ] && config=(--config "$dir/deno.json")
    "$deno" check "${config[@]}" "$dir/index.ts" || status=1
    if compgen -G "$dir/*test.ts" >/dev/null; then
      "$deno" test "${config[@]}" "$dir" || status=1
    fi
  done
  return $status
}

names=() results=() times=()
check() {
  local name=$1; shift
  echo
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then results+=(ok); else results+=(FAIL); fi
  names+=("$name") times+=($((SECONDS - t0)))
}

# Python: types (strict) over the three packages, lint over them and the tests (pyproject.toml).
check "mypy --strict" .venv/bin/mypy
check "ruff" .venv/bin/ruff check client stack cli tests bench
check "sqlfluff lint" .venv/bin/sqlfluff lint --processes 0 supabase/migrations supabase/seed.sql supabase/tests
check "supabase db lint" "${supabase[@]}" db lint --remote="$db_url" --schema "$(project_schemas)" --fail-on error
check "supabase db advisors" "${supabase[@]}" db advisors --remote="$db_url" --type all --fail-on warn
# After lint and advisors: the pgTAP helpers (schema `tests`) exist only while pg_prove runs.
check "pg_prove" bash scripts/pgtap.sh "$db_url"
check "pytest" .venv/bin/pytest -q tests
# Runs every benchmark at small sizes and checks each figure is produced (no timing is judged).
check "bench (quick)" .venv/bin/python bench/run.py --quick --no-print-json
check "deno test" deno_tests
check "squawk (new migrations)" bash scripts/squawk.sh
check "upgrade from release" bash scripts/upgrade_test.sh
check "Postgres 17 pgTAP" bash scripts/pg17.sh

echo
echo "=== summary ($((SECONDS - started))s)"
failed=0
for i in "${!names[@]}"; do
  printf '  %-22s %-4s %4ss\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
  [ "${results[$i]}" = ok ] || failed=1
done
if [ $failed -ne 0 ]; then echo "test: FAILED"; exit 1; fi
echo "test: all checks passed"
