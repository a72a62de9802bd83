#!/usr/bin/env bash
# The squawk lane (`make test`): lints, for live-database safety, the migrations newer than the
# recorded release (supabase/RELEASES): the files of supabase/migrations that the release commit does
# not have. Released migrations have run on live databases and are never edited, so only new ones are
# linted. A justified exception is a comment in the migration: the reason, then the directive right
# above the statement (the directive must be the last comment line before it):
#   -- Safe: the table is new in this release and empty on every live database.
#   -- squawk-ignore require-concurrent-index-creation
#   create index ...;
# or for the whole file `-- squawk-ignore-file <rule>`. Start a migration that takes strong locks with
# `set local lock_timeout = '1s'; set local statement_timeout = '...';`. Rules: https://squawkhq.com/docs/rules
#   squawk.sh [FILE...]   lint these files instead (for trying a migration out)
set -uo pipefail
lane=squawk
source "$(dirname "$0")/lanes_common.sh"

# The Supabase CLI applies each migration file in one transaction; lint against the oldest server
# the project runs (the local stack's 15; hosted is 17).
squawk_args=(--assume-in-transaction --pg-version 15.0)

[ -x "$squawk_cli" ] || lanes_die "no $squawk_cli; run: bash scripts/setup.sh"

if [ $# -gt 0 ]; then
  files=("$@")
else
  read_release
  mapfile -t released < <(released_migrations "$release_commit")
  files=()
  for f in "$lanes_root/$migrations_path"/*.sql; do
    [ -f "$f" ] || continue
    printf '%s\n' "${released[@]}" | grep -qxF "$(basename "$f")" || files+=("$f")
  done
  if [ ${#files[@]} -eq 0 ]; then
    echo "$lane: no migrations newer than release $release_tag (${release_commit:0:12}); nothing to lint"
    exit 0
  fi
  echo "$lane: ${#files[@]} migration(s) newer than release $release_tag (${release_commit:0:12}):"
fi
printf '  %s\n' "${files[@]#"$lanes_root/"}"
"$squawk_cli" "${squawk_args[@]}" "${files[@]}"
