#!/usr/bin/env bash
# The pgTAP suite against the database at $1 (a postgres URL): loads the SQL helpers
# (supabase/tests/helpers/*.sql, schema `tests`), runs every supabase/tests/<capability>/*.test.sql
# with pg_prove, then drops the helpers again so nothing test-only stays in the database.
# Run from anywhere. Further arguments: pg_prove options (-v) and the files or folders to run
# instead of every capability folder (scripts/pgtap.sh URL supabase/tests/push).
set -uo pipefail
cd "$(dirname "$0")/.."
db_url=${1:?usage: scripts/pgtap.sh DB_URL [pg_prove options]}
shift

drop_helpers() { psql -X -q "$db_url" -c 'set client_min_messages = warning' -c 'drop schema if exists tests cascade'; }
# Also when interrupted: a leftover schema `tests` would trip `supabase db advisors` on the next run.
trap 'drop_helpers >/dev/null 2>&1; exit 130' INT TERM

for helper in supabase/tests/helpers/*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 "$db_url" -f "$helper" || { echo "pgtap: loading $helper failed" >&2; drop_helpers; exit 1; }
done
options=() targets=()
for arg in "$@"; do
  case "$arg" in -*) options+=("$arg") ;; *) targets+=("$arg") ;; esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for dir in supabase/tests/*/; do
    case "$dir" in supabase/tests/helpers/|supabase/tests/fixtures/) continue ;; esac
    targets+=("$dir")
  done
fi
status=0
pg_prove --dbname "$db_url" --recurse --ext .sql ${options[@]+"${options[@]}"} "${targets[@]}" || status=$?
drop_helpers || status=1
exit $status
