#!/usr/bin/env bash
# Installs the reference corpora that knowledge/corpora.yml pins (Debian's wordnet-base and
# dict-foldoc), once, then builds their index (python -m rasa_safe_hybrid.retrieval; a few minutes,
# with a progress bar, cached in .cache/index until a pinned release or the encoder changes).
# Without apt-get or root, it says what to install and the assistant runs on its curated
# knowledge only (and says so when it starts).
set -uo pipefail
cd "$(dirname "$0")/.."
packages=$(.venv/bin/python - <<'PY'
import yaml
print(" ".join(e["package"] for e in (yaml.safe_load(open("knowledge/corpora.yml")) or {}).get("corpora", {}).values()))
PY
)
missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [[ -n $missing ]]; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    echo "installing the reference corpora:$missing (Debian packages, once)"
    { apt-get install -y --no-install-recommends $missing || { apt-get update && apt-get install -y --no-install-recommends $missing; }; } >/dev/null \
      || echo "warning: could not install$missing; the assistant answers from its curated knowledge only" >&2
  else
    echo "warning: the reference corpora need$missing (sudo apt-get install$missing);" \
         "until then the assistant answers from its curated knowledge only" >&2
  fi
fi
exec .venv/bin/python -m rasa_safe_hybrid.retrieval
