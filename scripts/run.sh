#!/usr/bin/env bash
# The run command: a virtual environment with the package, then the sidecar on the shipped
# services.yaml with embedded defaults (in-memory cache, SQLite audit store).
#   bash scripts/run.sh [serve flags...]      e.g. bash scripts/run.sh --listen 127.0.0.1:9322
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian ships venv's pip bootstrap separately.
  echo "[run.sh] installing python3-venv" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y python3-venv >/dev/null || { apt-get update -qq && apt-get install -y python3-venv >/dev/null; }
  else sudo -n apt-get install -y python3-venv >/dev/null; fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check .
echo "[run.sh] the command is .venv/bin/usdcop-exporter (or usdcop-exporter after: source .venv/bin/activate)" >&2
exec .venv/bin/usdcop-exporter serve "$@"
