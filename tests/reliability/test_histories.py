"""Randomized histories under faults (the bounded run of ``make test``; ``make soak`` runs 1,000+).

The machine and its checker are in ``tests/histories.py``. ``SHOPSYNC_HISTORIES`` sets how many
histories run here (default 25) and ``SHOPSYNC_HISTORY_SEED`` the seed (default fixed, so CI
replays the same histories; the soak draws fresh seeds and prints them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import histories
from histories import STATS, Histories
from hypothesis import HealthCheck, seed, settings
from hypothesis.stateful import run_state_machine_as_test

HISTORIES = int(os.environ.get("SHOPSYNC_HISTORIES", "25"))
SEED = int(os.environ.get("SHOPSYNC_HISTORY_SEED", "20261122"))
STEPS = 25


def run_histories(n: int, history_seed: int, *, steps: int = STEPS) -> None:
    """Run ``n`` histories from ``history_seed`` (Hypothesis shrinks and prints a failing one)."""

    @seed(history_seed)
    def factory() -> Histories:
        return Histories()

    run_state_machine_as_test(factory, settings=settings(
        max_examples=n, stateful_step_count=steps, deadline=None, database=None, print_blob=True,
        suppress_health_check=list(HealthCheck)))


def test_random_histories_converge_under_faults(client_stack: Any, tmp_path: Path) -> None:
    histories.configure(client_stack, tmp_path)
    before_checked, before_faults = STATS.checked, sum(STATS.faults.values())
    run_histories(HISTORIES, SEED)
    print(f"\nhistories (seed {SEED}): {STATS.summary()}")
    assert STATS.checked - before_checked >= HISTORIES // 2  # Hypothesis ran (and checked) the histories
    assert sum(STATS.faults.values()) > before_faults  # and faults were injected
