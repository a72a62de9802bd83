#!/usr/bin/env bash
# The benchmarks (bench/run.py) against a freshly reset local stack, reset again afterwards so the
# bench's million change-log entries do not linger. With SHOPSYNC_STACK=external: against the
# stack the environment / .env names, nothing reset. Arguments go to bench/run.py (--quick).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SUPABASE_YES=1 SUPABASE_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

if [ "${SHOPSYNC_STACK:-local}" != external ]; then
  .venv/bin/shopsync stack reset >/dev/null || { echo "bench: shopsync stack reset failed" >&2; exit 1; }
  while IFS= read -r line; do
    value=${line#*=} && value=${value#\"} && export "${line%%=*}=${value%\"}"
  done < <(.venv/bin/shopsync stack env)
fi
status=0
.venv/bin/python bench/run.py "$@" || status=$?
if [ "${SHOPSYNC_STACK:-local}" != external ]; then
  .venv/bin/shopsync stack reset >/dev/null || echo "bench: the final stack reset failed" >&2
fi
exit $status
