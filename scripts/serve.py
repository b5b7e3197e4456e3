"""Starts the Rasa server with the channels whose secrets are set.

`make run` calls this. It reads credentials.yml without expanding it, keeps
each channel whose `${VAR}` environment variables are all set (optional ones
may be missing), writes the result to var/credentials.yml, writes
var/endpoints.yml with a local action server URL moved to ACTIONS_PORT, makes sure
RASA_AUTH_TOKEN exists (creating var/auth_token, mode 0600, when it is unset)
and so does the action server's secret ACTION_SERVER_TOKEN (var/action_token,
the one `make actions` started the action server with), prints what is on and
off, the web chat address and the action server's health, then runs `rasa run`
on loopback (``--host`` to change) with the HTTP API behind the token and
request bodies capped at 1 MB.

Usage: python scripts/serve.py [--port 5005] [--endpoints endpoints.yml] [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rasa_safe_hybrid.actions.server import TOKEN_ENV, SecretError, shared_secret  # noqa: E402

VAR = ROOT / "var"
TOKEN_FILE = VAR / "auth_token"
REVIEW_SECRET_FILE = VAR / "review_secret"
# Variables that may be unset: the channel then uses its default.
OPTIONAL_VARS = {"SLACK_API_URL", "TELEGRAM_API_URL", "REVIEW_DB_URL"}
MAX_BODY_BYTES = 1024 * 1024
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def referenced(value: Any) -> Set[str]:
    """Environment variables a credentials value refers to."""
    if isinstance(value, str):
        return set(_VAR.findall(value))
    if isinstance(value, dict):
        return set().union(*(referenced(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(referenced(v) for v in value)) if value else set()
    return set()


def active_channels(credentials: Dict[str, Any], env: Dict[str, str]) -> Tuple[Dict[str, Any], List[str]]:
    """(channels to start, one status line per channel)."""
    active: Dict[str, Any] = {}
    lines = []
    for channel, settings in (credentials or {}).items():
        settings = dict(settings or {})
        for key, value in list(settings.items()):
            optional_unset = referenced(value) & OPTIONAL_VARS - set(env)
            if optional_unset:
                del settings[key]
        missing = sorted(v for v in referenced(settings) if not env.get(v))
        short = channel.split(".")[-1]
        if missing:
            lines.append(f"  {short:<16} off  (set {', '.join(missing)})")
        else:
            active[channel] = settings
            lines.append(f"  {short:<16} on")
    return active, lines


def endpoints_for(source: Path, actions_port: str) -> str:
    """The endpoints text with a local action server URL moved to ``actions_port``
    (what `make actions ACTIONS_PORT=...` started); other URLs are left alone."""
    text = source.read_text("utf-8")
    if actions_port:
        text = re.sub(r"(url:\s*[\"']?https?://(?:localhost|127\.0\.0\.1)):\d+(/webhook)",
                      rf"\g<1>:{int(actions_port)}\g<2>", text)
    return text


def kept_secret(env: Dict[str, str], name: str, path: Path) -> str:
    """The variable ``name``, or the secret kept in ``path`` (created once, mode 0600)."""
    if env.get(name):
        return env[name]
    VAR.mkdir(exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def auth_token(env: Dict[str, str]) -> str:
    """RASA_AUTH_TOKEN, or the one kept in var/auth_token (created once)."""
    return kept_secret(env, "RASA_AUTH_TOKEN", TOKEN_FILE)


def action_server_health(endpoints_text: str, timeout: float = 3.0) -> str:
    """One line on the action server the endpoints point to (its /health)."""
    import urllib.request

    match = re.search(r"url:\s*[\"']?(https?://[^\s\"']+?)/webhook", endpoints_text)
    if not match:
        return "Actions:   no action_endpoint in the endpoints file"
    url = match.group(1) + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (the configured endpoint)
            state = "up" if answer.status == 200 else f"HTTP {answer.status}"
    except Exception as error:
        state = f"NOT answering ({type(error).__name__}); `make actions` starts it"
    return f"Actions:   {state} at {url} (supervised by scripts/supervise.py; log var/actions-*.log)"


def knowledge_status() -> str:
    """Which reference corpora the assistant answers from (or why it answers from its curated knowledge only)."""
    try:
        from rasa_safe_hybrid.config import load_plugin_config
        from rasa_safe_hybrid.retrieval.corpus_index import status

        retrieval = load_plugin_config(ROOT / "config.yml").policy.retrieval
        if not retrieval.enabled:
            return "Knowledge: retrieval is off (LLMResponsePolicy retrieval.enabled)"
        return status(ROOT / retrieval.corpora if retrieval.corpora else Path(""), ROOT / retrieval.index_dir,
                      retrieval.encoder)
    except Exception as error:  # noqa: BLE001 - a status line never stops the start
        return f"Knowledge: could not be checked ({error})"


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--endpoints", default="endpoints.yml")
    parser.add_argument("--credentials", type=Path, default=ROOT / "credentials.yml")
    parser.add_argument("--model", default="models/assistant.tar.gz")
    parser.add_argument("--dry-run", action="store_true", help="write var/credentials.yml and print, do not start")
    args = parser.parse_args()

    env = dict(os.environ)
    env["RASA_AUTH_TOKEN"] = auth_token(env)
    # The reviewers' secret: their own, never the REST token (var/review_secret when unset).
    env["REVIEW_SECRET"] = kept_secret(env, "REVIEW_SECRET", REVIEW_SECRET_FILE)
    env.setdefault("SANIC_REQUEST_MAX_SIZE", str(MAX_BODY_BYTES))
    try:
        env[TOKEN_ENV] = shared_secret(env, VAR / "action_token")
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        credentials = yaml.safe_load(args.credentials.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        print(f"error: cannot read {args.credentials}: {error}", file=sys.stderr)
        return 2
    active, lines = active_channels(credentials, env)
    VAR.mkdir(exist_ok=True)
    endpoints = VAR / "endpoints.yml"
    try:
        endpoints.write_text(f"# Written by scripts/serve.py from {args.endpoints}.\n"
                             + endpoints_for(ROOT / args.endpoints, env.get("ACTIONS_PORT", "")))
    except OSError as error:
        print(f"error: cannot read {args.endpoints}: {error}", file=sys.stderr)
        return 2
    out = VAR / "credentials.yml"
    out.write_text(
        "# Written by scripts/serve.py from credentials.yml: the channels whose variables are set.\n"
        + yaml.safe_dump(active, sort_keys=False)
    )
    base = f"http://{args.host}:{args.port}"
    print(knowledge_status(), file=sys.stderr)  # stderr: `make shell` hides this script's stdout
    print(action_server_health(endpoints.read_text("utf-8")))
    print("Channels:\n" + "\n".join(lines))
    if any(c.endswith("TokenRestInput") for c in active):
        print(f"Web chat:  {base}/webhooks/rest/chat#token={env['RASA_AUTH_TOKEN']}")
    print(f"REST:      curl -H 'Authorization: Bearer <token>' -d '{{\"sender\":\"me\",\"message\":\"hi\"}}' "
          f"{base}/webhooks/rest/webhook   (token: $RASA_AUTH_TOKEN or var/auth_token)")
    if any(c.endswith("ReviewInput") for c in active):
        print(f"Review:    {base}/webhooks/review/  (reviewers sign in with $REVIEW_SECRET or var/review_secret)")
    print(f"Status:    curl '{base}/status?token=<token>'", flush=True)
    command = [
        str(Path(sys.executable).parent / "rasa"), "run", "--enable-api", "-i", args.host, "-p", str(args.port),
        "--auth-token", env["RASA_AUTH_TOKEN"], "--endpoints", str(endpoints),
        "--credentials", str(out), "-m", args.model,
    ]
    if args.dry_run:
        return 0
    os.chdir(ROOT)
    os.execve(command[0], command, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
