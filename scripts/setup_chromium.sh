#!/usr/bin/env bash
# Install headless Chromium (the Debian/Ubuntu package `chromium`) for the browser check of the visual build
# report; then run that check alone with:
#   bash scripts/setup_chromium.sh && .venv/bin/python -m pytest tests/test_visual_report.py -k chromium
# (without Chromium the check is skipped; nothing else needs it).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium is installed: $(command -v chromium || command -v chromium-browser)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
