#!/usr/bin/env bash
# Make the named Debian packages' commands available: `scripts/tools.sh COMMAND[:PACKAGE] ...`
# installs PACKAGE (default: COMMAND) with apt-get where COMMAND is not on PATH (root, or sudo
# without a password). Exits non-zero naming what is still missing.
set -euo pipefail
missing=()
for spec in "$@"; do
  cmd="${spec%%:*}"; pkg="${spec#*:}"
  command -v "$cmd" >/dev/null 2>&1 && continue
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing $pkg for $cmd (apt-get)" >&2
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    if ! "${sudo[@]}" apt-get install -y -q "$pkg" >/dev/null 2>&1; then  # a stale package list: refresh once
      "${sudo[@]}" apt-get update -q >/dev/null 2>&1 && "${sudo[@]}" apt-get install -y -q "$pkg" >/dev/null 2>&1 || true
    fi
  fi
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (Debian package $pkg)")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}; install them and rerun" >&2
  exit 1
fi
