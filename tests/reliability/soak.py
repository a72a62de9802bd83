"""``make soak``: randomized histories under faults, at least 1,000 (``SHOPSYNC_SOAK_HISTORIES``).

Runs the machine of ``tests/histories.py`` against the stack the environment names, in chunks of
``SHOPSYNC_SOAK_CHUNK`` histories, each chunk from its own seed (printed; ``SHOPSYNC_SOAK_SEED``
fixes the first). A failing chunk prints its seed, the shrunk failing history and Hypothesis'
reproduction blob; replay it with ``SHOPSYNC_HISTORY_SEED=<seed> SHOPSYNC_HISTORIES=<chunk> pytest
tests/reliability/test_histories.py``. Prints the count, the faults injected and the time; exits 1 on a failure.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path[:0] = [str(here), str(here.parent)]  # test_histories beside; the shared helpers in tests/

import histories  # noqa: E402
from histories import STATS  # noqa: E402
from test_histories import STEPS, run_histories  # noqa: E402

from shopsync_stack.settings import load_settings  # noqa: E402


def main() -> int:
    total = int(os.environ.get("SHOPSYNC_SOAK_HISTORIES", "1000"))
    chunk = int(os.environ.get("SHOPSYNC_SOAK_CHUNK", "50"))
    rng = random.Random(int(os.environ["SHOPSYNC_SOAK_SEED"]) if os.environ.get("SHOPSYNC_SOAK_SEED") else None)
    settings = load_settings()
    failures: list[int] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        histories.configure(settings, Path(work))
        while STATS.checked < total:
            seed = rng.randrange(2**32)
            n = min(chunk, total - STATS.checked)
            try:
                run_histories(n, seed, steps=STEPS)
            except Exception:  # a failing history: Hypothesis printed it, shrunk; keep soaking
                failures.append(seed)
                print(f"FAILED: history seed {seed} (SHOPSYNC_HISTORY_SEED={seed} SHOPSYNC_HISTORIES={n})", flush=True)
                traceback.print_exc()
                if len(failures) >= 5:
                    break
            print(f"[{time.monotonic() - started:7.0f}s] seed {seed}: {STATS.summary()}", flush=True)
    elapsed = time.monotonic() - started
    print(f"soak: {STATS.checked} histories checked in {elapsed:.0f}s; {STATS.summary()}")
    print(f"soak: failing seeds: {failures}" if failures else "soak: no failing history")
    return 1 if failures or STATS.checked < total else 0


if __name__ == "__main__":
    sys.exit(main())
