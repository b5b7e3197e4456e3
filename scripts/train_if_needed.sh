#!/usr/bin/env bash
# Trains models/assistant.tar.gz when config.yml, domain.yml or data/ changed
# since the last training (or when there is no model); otherwise does nothing.
set -eu
cd "$(dirname "$0")/.."
MODEL="models/assistant.tar.gz"
STAMP="models/.inputs.sha256"
inputs_hash() { find config.yml domain.yml data -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1; }
current="$(inputs_hash)"
if [ "${1:-}" != "--force" ] && [ -f "$MODEL" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$current" ]; then
  echo "model is up to date ($MODEL)"
  exit 0
fi
echo "training $MODEL (inputs changed or no model yet)"
start=$(date +%s)
SQLALCHEMY_SILENCE_UBER_WARNING=1 .venv/bin/rasa train --fixed-model-name assistant --out models
echo "$current" >"$STAMP"
echo "trained in $(( $(date +%s) - start )) s"
