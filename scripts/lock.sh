#!/usr/bin/env bash
# Refreshes constraints.txt: every dependency of pyproject.toml (runtime and all extras),
# resolved to exact versions for Python 3.11 on any platform. Run it after changing the
# dependencies in pyproject.toml, and commit both files:
#   bash scripts/lock.sh                # resolve anew, keeping versions that still fit
#   bash scripts/lock.sh --upgrade      # resolve anew, taking the newest versions that fit
# Installs then use it as constraints: pip install -c constraints.txt -e '.[test]'
# (scripts/test.sh and the Dockerfile do).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi

exec .venv/bin/uv pip compile pyproject.toml --all-extras --universal \
  --python-version 3.11 --no-emit-package usdcop-exporter \
  --custom-compile-command "bash scripts/lock.sh" --output-file constraints.txt "$@"
