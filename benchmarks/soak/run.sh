#!/usr/bin/env bash
# The long forms of the reliability tests (CI runs the bounded forms):
#   20,000 tasks while a random worker is SIGKILLed every 2 s for 60 s;
#   10,000 tasks failing for 30 s, then succeeding (retry storm).
# Usage: bash benchmarks/soak/run.sh   (about 10-15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
NEXQ_SOAK=1 .venv/bin/python -m pytest -q -s \
  "tests/reliability/test_worker_faults.py::test_random_sigkill_every_two_seconds_loses_nothing" \
  "tests/reliability/test_store_faults.py::test_retry_storm_is_spread_by_jittered_backoff[resp]" \
  | grep -E "SOAK-RESULT|passed|failed"
