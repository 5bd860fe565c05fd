#!/usr/bin/env bash
# The test command: a Redis must answer on 127.0.0.1:6379 (the project starts its own when none
# does, and stops it afterwards), then pytest runs every level of tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# The report test opens HTML in headless Chromium: install Debian's package when it is missing
# (apt reaches the package registry; needs root or sudo).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the report test (apt-get)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null; else sudo -n apt-get install -y -q chromium >/dev/null || true; fi
fi
state="$root/var/test-state"
started=$(.venv/bin/vidrec redis start --state-dir "$state" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["started"])')
cleanup() { if [ "$started" = "True" ]; then .venv/bin/vidrec redis stop --state-dir "$state" >/dev/null; fi; }
trap cleanup EXIT
.venv/bin/python -m pytest "$@"
