#!/usr/bin/env bash
# The long forms of the reliability tests (CI runs the bounded forms): the
# whole tests/reliability suite with NEXQ_SOAK=1, which scales
#   the chaos test to 20,000 tasks while a random worker is SIGKILLed every 2 s for 60 s,
#   the retry storm to 10,000 tasks failing for 30 s, then succeeding;
# the others (SIGSTOP, network faults, store restart, poison pill, embedded
# store killed 10 times) already run at their full size in CI.
# A store crash with Pogocache's SAVE: benchmarks/soak/store_crash.py.
# Usage: bash benchmarks/soak/run.sh   (about 10-15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
NEXQ_SOAK=1 .venv/bin/python -m pytest -q -s \
  tests/reliability \
  | grep -E "SOAK-RESULT|passed|failed"
