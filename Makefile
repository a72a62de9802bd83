# Entry points; each is a thin wrapper around a script or the shopsync CLI.
#   make setup   install what is missing (Debian packages, .venv, Supabase CLI and Deno)
#   make up      start the local stack (Postgres 15 + gateway on 54321/54322)
#   make down    stop it
#   make demo    set-up, then the end-to-end demo (resets the local stack; three tills, two shops, offline)
#   make test    every check against a freshly reset stack (SHOPSYNC_STACK=external: a real one)
#   make fuzz    the push-fuzzing soak: SHOPSYNC_FUZZ_PAYLOADS (default 10000) payloads, SHOPSYNC_FUZZ_SEED
#   make bench   the benchmarks (issue 8) against a freshly reset stack: a table, and JSON in bench/results/
#   make bench-quick  the same at small sizes (seconds); part of make test so the benchmark cannot rot
#   make soak    randomized histories under faults: SHOPSYNC_SOAK_HISTORIES (default 1000), SHOPSYNC_SOAK_SEED
.PHONY: setup up down demo test fuzz soak bench bench-quick

setup:
	bash scripts/setup.sh

up: setup
	.venv/bin/shopsync stack up

down:
	@if [ -x .venv/bin/shopsync ]; then .venv/bin/shopsync stack down; fi

demo: setup
	.venv/bin/shopsync demo --skip-setup

test:
	bash scripts/test.sh

fuzz:
	SHOPSYNC_FUZZ_PAYLOADS=$${SHOPSYNC_FUZZ_PAYLOADS:-10000} .venv/bin/pytest -q -s tests/server/test_push_fuzzing.py

bench: setup
	bash scripts/bench.sh

bench-quick: setup
	bash scripts/bench.sh --quick

soak:
	SHOPSYNC_SOAK_HISTORIES=$${SHOPSYNC_SOAK_HISTORIES:-1000} .venv/bin/python tests/reliability/soak.py
