#!/usr/bin/env bash
# Makes sure what the tests need outside Python is there: PostgreSQL, Redis
# and RabbitMQ on loopback (started if not running, with the commands these
# machines use), and Debian's Chromium for the web page test (installed once).
# Usage: scripts/services.sh [--check]   (--check: only report, start nothing)
set -uo pipefail
check_only=${1:-}
status=0

up() {  # name, probe command, start command
  local name=$1 probe=$2 start=$3
  if eval "$probe" >/dev/null 2>&1; then echo "  $name: running"; return; fi
  if [[ $check_only == --check ]]; then echo "  $name: NOT running"; status=1; return; fi
  echo "  $name: starting"
  eval "$start" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do eval "$probe" >/dev/null 2>&1 && { echo "  $name: running"; return; }; sleep 1; done
  echo "error: $name did not start; the scale-out tests need it (see README: Scaling out)" >&2
  status=1
}

echo "Services on 127.0.0.1:"
up PostgreSQL "pg_isready -h 127.0.0.1 -p 5432" \
  'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main start'
up Redis "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG" \
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log'
up RabbitMQ "rabbitmq-diagnostics -q check_port_connectivity" "rabbitmq-server -detached"

if command -v chromium >/dev/null 2>&1; then
  echo "  Chromium: $(chromium --version 2>/dev/null | head -1)"
elif [[ $check_only == --check ]]; then
  echo "  Chromium: NOT installed"; status=1
else
  echo "  Chromium: installing Debian's chromium package (once)"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $sudo_cmd apt-get update -q >/dev/null 2>&1 && $sudo_cmd apt-get install -y -q chromium >/dev/null 2>&1; } \
    || { echo "error: could not install chromium (apt-get install chromium); the web page test needs it" >&2; status=1; }
fi
exit $status
