#!/usr/bin/env bash
# The upgrade lane (`make test`): a live database of the last release is upgraded by the later migrations.
#   1. The released migrations (supabase/migrations at the commit in supabase/RELEASES, read from git
#      history) are unchanged in the working tree, and every later one sorts after them.
#   2. A throwaway stack (own ports, own project folder holding supabase/ of the release) is built
#      from the released migrations and seed (`shopsync stack reset`).
#   3. Real data through the real client and gateway (tests/upgrade/upgrade_driver.py seed): a shop
#      with a synced till and a second till holding queued, unpushed edits.
#   4. The later migrations (the working tree's) are applied: `supabase migration up` (pending only).
#   5. The schema is dumped (pg_dump --schema-only); the tills sync on without losing a queued edit
#      (upgrade_driver.py verify); the pgTAP suite passes on the upgraded database.
#   6. The same stack is reset to a fresh install of the working tree (migrations and seed), dumped,
#      and the two normalized dumps must be equal (normalize_dump below says what is dropped).
# Works with 0..n later migrations (with 0, steps 3-6 still prove data, devices and schema survive).
#   SHOPSYNC_UPGRADE_DB_PORT / SHOPSYNC_UPGRADE_API_PORT (default: the main stack's ports + 10 - 23000, below the
#   ephemeral port range: see lane_port in lanes_common.sh): the lane's stack ports.
#   SHOPSYNC_UPGRADE_SUPABASE_DIR: the "current" supabase/ folder (default: the working tree's); a
#     scratch copy with an extra migration tries one out without touching the tree.
#   SHOPSYNC_UPGRADE_KEEP=1: keep the work folder (dumps, tills' SQLite files) for a look.
set -uo pipefail
lane=upgrade
source "$(dirname "$0")/lanes_common.sh"

db_port=${SHOPSYNC_UPGRADE_DB_PORT:-$(lane_port "${SHOPSYNC_DB_PORT:-54322}" 10)}
api_port=${SHOPSYNC_UPGRADE_API_PORT:-$(lane_port "${SHOPSYNC_API_PORT:-54321}" 10)}
current=$(cd "${SHOPSYNC_UPGRADE_SUPABASE_DIR:-$lanes_root/supabase}" && pwd)
driver=$lanes_root/tests/upgrade/upgrade_driver.py
work=$(mktemp -d /tmp/shopsync-upgrade.XXXXXX)
project=$work/project
chmod 755 "$work"
db_url=postgresql://postgres:postgres@127.0.0.1:$db_port/postgres
# Schemas left out of the comparison: the pgTAP helpers (loaded by the test run, not the migrations).
dump_exclude=(--exclude-schema=tests)

stack() {
  SHOPSYNC_PROJECT_DIR=$project SHOPSYNC_DB_PORT=$db_port SHOPSYNC_API_PORT=$api_port "$stack_cli" stack "$@"
}
cleanup() {
  stack down >/dev/null 2>&1 || echo "$lane: stack down failed; stop it with SHOPSYNC_PROJECT_DIR=$project" >&2
  if [ "${SHOPSYNC_UPGRADE_KEEP:-}" = 1 ]; then echo "$lane: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
step() { echo "$lane: [$((SECONDS - t0))s] $*"; }
t0=$SECONDS

# Drops from `pg_dump --schema-only` what says nothing about the schema: comments and blank lines
# (the "Dumped from/by" header), the per-run random key of \restrict / \unrestrict (pg_dump 15.14+),
# and the session SET / set_config preamble. Everything else (objects, owners, grants, comments on
# objects, column order) must match.
normalize_dump() {
  grep -v -E '^(--|\\restrict |\\unrestrict |SET |SELECT pg_catalog\.set_config\(|$)' "$1"
}
dump_schema() {  # out
  "$pg15_bin/pg_dump" --schema-only "${dump_exclude[@]}" -d "$db_url" -f "$1.raw" || return 1
  normalize_dump "$1.raw" >"$1"
}

# -- 1. released history ------------------------------------------------------------------------
read_release
mapfile -t released < <(released_migrations "$release_commit")
[ ${#released[@]} -gt 0 ] || lanes_die "no $migrations_path/*.sql at release $release_tag ($release_commit)"
last_released=$(printf '%s\n' "${released[@]}" | sort | tail -n 1)
bad=0
for name in "${released[@]}"; do
  if [ ! -f "$current/migrations/$name" ]; then
    echo "$lane: released migration $name was removed; a released migration is never edited or removed" >&2; bad=1
  elif ! git -C "$lanes_root" show "$release_commit:$migrations_path/$name" | cmp -s - "$current/migrations/$name"; then
    echo "$lane: released migration $name was edited; change a live database with a new migration instead" >&2; bad=1
  fi
done
later=()
for f in "$current/migrations"/*.sql; do
  name=$(basename "$f")
  printf '%s\n' "${released[@]}" | grep -qxF "$name" && continue
  later+=("$name")
  [[ "$name" > "$last_released" ]] || { echo "$lane: $name sorts before the released $last_released; give it a later timestamp" >&2; bad=1; }
done
[ $bad -eq 0 ] || lanes_die "the released migrations of $release_tag (${release_commit:0:12}) must stay as released"
step "release $release_tag (${release_commit:0:12}): ${#released[@]} released migrations, ${#later[@]} later: ${later[*]:-none}"

# -- 2. a database of the release -----------------------------------------------------------------
make_project_dir "$project"
git -C "$lanes_root" archive "$release_commit" supabase | tar -x -C "$project" || lanes_die "git archive of $release_commit failed"
if ! stack reset >/dev/null; then
  # The work folder (and the log) goes at exit: show the log's end here.
  tail -n 30 "$project/.stack/pg/postgres.log" 2>/dev/null | sed "s/^/$lane: postgres.log: /" >&2
  lanes_die "building the release's database failed (log above)"
fi
while IFS= read -r line; do
  value=${line#*=} && value=${value#\"} && export "${line%%=*}=${value%\"}"
done < <(stack env)
step "database of $release_tag up on port $db_port"

# -- 3. real data: a synced till and one with queued edits ----------------------------------------
mkdir -p "$work/state"
"$lanes_python" "$driver" seed "$work/state" || lanes_die "putting data into the release's database failed"

# -- 4. the later migrations ----------------------------------------------------------------------
rm -rf "$project/supabase/migrations"
cp -r "$current/migrations" "$project/supabase/migrations"
"$supabase_cli" --workdir "$project" migration up --remote="$db_url" --yes \
  || lanes_die "supabase migration up (the later migrations on the release's database) failed"
applied=$("$pg15_bin/psql" -X -At -d "$db_url" -c 'select count(*) from supabase_migrations.schema_migrations')
total=$(find "$current/migrations" -maxdepth 1 -name '*.sql' | wc -l)
[ "$applied" = "$total" ] || lanes_die "$applied migrations recorded after the upgrade, $total in the tree"
step "upgraded: ${#later[@]} later migration(s) applied, $applied recorded"

# -- 5. the upgraded database: schema, devices, pgTAP ------------------------------------------------
status=0
dump_schema "$work/upgraded.sql" || lanes_die "pg_dump of the upgraded database failed"
"$lanes_python" "$driver" verify "$work/state" || { echo "$lane: FAIL the tills did not sync on" >&2; status=1; }
step "the pgTAP suite on the upgraded database:"
run_pgtap "$db_url" >"$work/pgtap.log" 2>&1 \
  || { cat "$work/pgtap.log"; echo "$lane: FAIL pgTAP on the upgraded database" >&2; status=1; }
tail -n 2 "$work/pgtap.log"

# -- 6. equal to a fresh install ------------------------------------------------------------------
rm -rf "$project/supabase"
cp -r "$current" "$project/supabase"
rm -rf "$project/supabase/.temp" "$project/supabase/.branches"
stack reset >/dev/null || lanes_die "the fresh install of the current migrations failed"
dump_schema "$work/fresh.sql" || lanes_die "pg_dump of the fresh install failed"
if diff -u --label upgraded "$work/upgraded.sql" --label fresh "$work/fresh.sql" >"$work/schema.diff"; then
  step "schema of the upgraded database equals a fresh install's ($(wc -l <"$work/fresh.sql") normalized lines)"
else
  head -n 200 "$work/schema.diff"
  echo "$lane: FAIL the upgraded schema differs from a fresh install's (diff above, -upgraded +fresh)" >&2; status=1
fi
[ $status -eq 0 ] && step "ok"
exit $status
