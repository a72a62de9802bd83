# Entry points; each is a thin wrapper around a script or the shopsync CLI.
#   make setup   install what is missing (Debian packages, .venv, Supabase CLI and Deno)
#   make up      start the local stack (Postgres 15 + gateway on 54321/54322)
#   make down    stop it
#   make test    every check against a freshly reset stack (SHOPSYNC_STACK=external: a real one)
#   make fuzz    the push-fuzzing soak: SHOPSYNC_FUZZ_PAYLOADS (default 10000) payloads, SHOPSYNC_FUZZ_SEED
#   make soak    randomized histories under faults: SHOPSYNC_SOAK_HISTORIES (default 1000), SHOPSYNC_SOAK_SEED
.PHONY: setup up down test fuzz soak

setup:
	bash scripts/setup.sh

up: setup
	.venv/bin/shopsync stack up

down:
	@if [ -x .venv/bin/shopsync ]; then .venv/bin/shopsync stack down; fi

test:
	bash scripts/test.sh

fuzz:
	SHOPSYNC_FUZZ_PAYLOADS=$${SHOPSYNC_FUZZ_PAYLOADS:-10000} .venv/bin/pytest -q -s tests/test_push_fuzzing.py

soak:
	SHOPSYNC_SOAK_HISTORIES=$${SHOPSYNC_SOAK_HISTORIES:-1000} .venv/bin/python tests/soak.py
