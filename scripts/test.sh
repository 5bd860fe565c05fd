#!/usr/bin/env bash
# The test command: a Redis must answer on 127.0.0.1:6379 (the project starts its own when none
# does, and stops it afterwards), then pytest runs every level of tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# The report test opens HTML in headless Chromium: install Debian's package when it is missing
# (apt reaches the package registry; needs root or sudo).
bash scripts/tools.sh chromium || echo "the report's browser test will be skipped" >&2
state="$root/var/test-state"
started=$(.venv/bin/vidrec redis start --state-dir "$state" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["started"])')
cleanup() { if [ "$started" = "True" ]; then .venv/bin/vidrec redis stop --state-dir "$state" >/dev/null; fi; }
trap cleanup EXIT
.venv/bin/python -m pytest "$@"
