#!/usr/bin/env bash
# Set up (if needed) and run the whole offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers; tests that launch 2 processes themselves share one worker (--dist loadgroup), so they
# never run at the same time and starve each other on a 2-core machine.
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
