#!/usr/bin/env bash
# Starts, stops or checks the background action server.
# Usage: scripts/action_server.sh start|stop|status   (ACTIONS_PORT, default 5055)
# It runs under scripts/supervise.py (restarted with back-off when it exits or
# stops answering /health), binds to ACTION_SERVER_HOST (default 127.0.0.1) and
# answers only requests carrying the secret in var/action_token (or
# $ACTION_SERVER_TOKEN); see components/actions/server.py.
set -u
cd "$(dirname "$0")/.."
PORT="${ACTIONS_PORT:-5055}"
PIDFILE="var/actions-$PORT.pid"
LOG="var/actions-$PORT.log"
PYTHON=".venv/bin/python"
mkdir -p var

healthy() { curl -sf --max-time 2 "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if healthy; then echo "action server already running on port $PORT"; exit 0; fi
    echo "starting the action server on port $PORT (log: $LOG)"
    SQLALCHEMY_SILENCE_UBER_WARNING=1 nohup "$PYTHON" scripts/supervise.py --name actions \
      --health "http://127.0.0.1:$PORT/health" -- \
      "$PYTHON" -m rasa_safe_hybrid.actions.server --actions actions --port "$PORT" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
      if healthy; then echo "action server is up"; exit 0; fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "error: the action server exited; last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2; exit 1
      fi
      sleep 0.5
    done
    echo "error: the action server did not answer on port $PORT within 60 s; see $LOG" >&2
    exit 1 ;;
  stop)
    if [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null; then echo "action server stopped"; fi
    rm -f "$PIDFILE" ;;
  status)
    if healthy; then echo "running on port $PORT"; else echo "not running"; exit 1; fi ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
