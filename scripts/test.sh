#!/usr/bin/env bash
# The test command: installs what the suite needs, then runs all of it.
#   bash scripts/test.sh [pytest args...]
# On a fresh Debian machine it needs root (or passwordless sudo) for the Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    log "needs root (or passwordless sudo) to run: $*"
    exit 1
  fi
}

# Debian packages the suite drives for real: promtool/prometheus, amtool/alertmanager,
# blackbox_exporter (the benchmarks' peer), docker-compose (config validation only),
# redis-server and PostgreSQL (private instances for fault tests), python3-venv, and
# iproute2 and util-linux (unshare, setpriv) for the ICMP tests' network namespace and
# dropped capability.
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v kubectl >/dev/null || need+=(kubernetes-client)  # kubectl kustomize, offline
command -v redis-server >/dev/null || need+=(redis-server)
command -v ip >/dev/null || need+=(iproute2)
{ command -v unshare && command -v setpriv; } >/dev/null || need+=(util-linux)
fresh_postgres=no
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
  fresh_postgres=yes
fi
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  }
  # The packages ship services of their own; the suite starts its own on free ports.
  if [ -d /run/systemd/system ]; then
    for svc in prometheus prometheus-alertmanager prometheus-blackbox-exporter; do
      case " ${need[*]} " in *" $svc "*) as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true ;; esac
    done
  fi
fi

# A PostgreSQL this script just installed trusts loopback connections, as the suite
# expects of the development machines (README.md, Development); an existing one is left alone.
if [ "$fresh_postgres" = yes ]; then
  version=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    log "letting user postgres in from loopback without a password ($hba)"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main restart || true
fi

# The machine's shared Redis and Postgres: start them again if found stopped.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting the shared Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting the shared PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -n | tail -1)" main start || true
fi

# Python dependencies in a virtual environment of the checkout.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
# constraints.txt pins every dependency (scripts/lock.sh refreshes it).
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,dev]'

log "running the suite"
# pytest's exit code 5 (no test ran) is a failure here too: set -e passes it on.
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
