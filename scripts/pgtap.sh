#!/usr/bin/env bash
# The pgTAP suite against the database at $1 (a postgres URL): loads the SQL helpers
# (supabase/tests/helpers/*.sql, schema `tests`), runs every supabase/tests/<capability>/*.test.sql
# with pg_prove, then drops the helpers again so nothing test-only stays in the database.
# Run from anywhere; extra arguments go to pg_prove.
set -uo pipefail
cd "$(dirname "$0")/.."
db_url=${1:?usage: scripts/pgtap.sh DB_URL [pg_prove options]}
shift

for helper in supabase/tests/helpers/*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 "$db_url" -f "$helper" || { echo "pgtap: loading $helper failed" >&2; exit 1; }
done
dirs=()
for dir in supabase/tests/*/; do
  case "$dir" in supabase/tests/helpers/|supabase/tests/fixtures/) continue ;; esac
  dirs+=("$dir")
done
status=0
pg_prove --dbname "$db_url" --recurse --ext .sql "$@" "${dirs[@]}" || status=$?
psql -X -q "$db_url" -c 'set client_min_messages = warning' -c 'drop schema if exists tests cascade' || status=1
exit $status
