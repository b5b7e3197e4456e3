"""The action server, private by default: loopback only, and a shared secret.

``rasa run actions`` listens on every interface with no authentication: whoever
reaches its port can POST a forged tracker to ``/webhook`` and run any action
(read orders, submit returns, spend the CPU on LLM turns). This entry point runs
the same rasa-sdk app with two doors closed:

- it binds to ``127.0.0.1`` unless ``--host`` (or ``ACTION_SERVER_HOST``) says
  otherwise, for a deployment where Rasa runs on another host;
- every request but ``GET /health`` must carry ``Authorization: Bearer <secret>``,
  compared in constant time before anything runs; without it: 401 and a log
  line. The secret is ``ACTION_SERVER_TOKEN``, or the file ``--token-file``
  (default ``var/action_token``, created with mode 0600 when missing).

The Rasa side sends the header from its endpoints file::

    action_endpoint:
      url: "http://127.0.0.1:5055/webhook"
      headers:
        Authorization: Bearer ${ACTION_SERVER_TOKEN}   # unquoted: Rasa expands ${...} only there

Usage: ``python -m rasa_safe_hybrid.actions.server [--actions actions] [--port 5055]
[--host 127.0.0.1] [--token-file var/action_token]``.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, Optional

logger = logging.getLogger(__name__)

TOKEN_ENV = "ACTION_SERVER_TOKEN"
MAX_BODY_ENV = "ACTION_SERVER_MAX_BODY_BYTES"
# Rasa posts the whole tracker with every action call: about 5 KB per turn here, so the
# 1 MB request limit the Rasa server gets (SANIC_REQUEST_MAX_SIZE, inherited) broke every
# custom action of a conversation after about 220 turns. The action server has its own.
DEFAULT_MAX_BODY = 64 * 1024 * 1024
HOST_ENV = "ACTION_SERVER_HOST"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5055
DEFAULT_TOKEN_FILE = Path("var") / "action_token"
OPEN_PATHS = frozenset({"/health"})  # answered without the secret (says nothing but "ok")


class SecretError(Exception):
    """The shared secret cannot be read or created."""


def shared_secret(env: Dict[str, str], token_file: Path) -> str:
    """``ACTION_SERVER_TOKEN``, or the secret kept in ``token_file`` (created once, mode 0600)."""
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    try:
        if not token_file.exists():
            token_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        secret = token_file.read_text("utf-8").strip()
    except OSError as error:
        raise SecretError(f"cannot read or create the action server secret {token_file}: {error}; "
                          f"set {TOKEN_ENV} or --token-file") from error
    if not secret:
        raise SecretError(f"the action server secret file {token_file} is empty; delete it to get a new one "
                          f"or set {TOKEN_ENV}")
    return secret


def max_body_bytes(env: Dict[str, str]) -> int:
    """The largest request the action server accepts: ``ACTION_SERVER_MAX_BODY_BYTES`` or 64 MB.

    Raises:
        ValueError: with what to set, when the variable is not a whole number of at least 1 MB.
    """
    raw = env.get(MAX_BODY_ENV)
    if not raw:
        return DEFAULT_MAX_BODY
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1024 * 1024:
        raise ValueError(f"{MAX_BODY_ENV} must be a whole number of bytes, at least 1048576 (1 MB; Rasa sends "
                         f"the whole conversation with every action call), got {raw!r}")
    return value


def authorised(header: Optional[str], secret: str) -> bool:
    """Whether an ``Authorization`` header carries the secret (constant-time compare)."""
    expected = f"Bearer {secret}".encode()
    return hmac.compare_digest((header or "").encode("utf-8"), expected)


def create_app(actions: str, secret: str, max_body: int = DEFAULT_MAX_BODY) -> Any:
    """rasa-sdk's app for ``actions`` with the secret checked before every route but /health,
    accepting requests up to ``max_body`` bytes (whatever ``SANIC_REQUEST_MAX_SIZE`` says).
    """
    from rasa_sdk.endpoint import create_app as sdk_app
    from sanic import response

    # No CORS origins: browsers have no business calling the action server.
    app = sdk_app(actions, cors_origins=None)
    app.config.REQUEST_MAX_SIZE = max_body

    @app.middleware("request")
    async def require_secret(request: Any) -> Any:
        if request.path in OPEN_PATHS or authorised(request.headers.get("Authorization"), secret):
            return None
        logger.warning(f"Refused {request.method} {request.path} from {request.ip}: no valid action server "
                       f"token (Authorization: Bearer ...). Nothing was run.")
        return response.json({"error": "unauthorized: this action server needs its shared secret"}, status=401)

    return app


def main(argv: Optional[list] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", default="actions", help="package with the actions (default: actions)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default=os.environ.get(HOST_ENV, DEFAULT_HOST),
                        help=f"interface to bind (default: {DEFAULT_HOST}, or ${HOST_ENV})")
    parser.add_argument("--token-file", type=Path, default=DEFAULT_TOKEN_FILE,
                        help=f"secret file used when ${TOKEN_ENV} is unset (default: {DEFAULT_TOKEN_FILE})")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    try:
        secret = shared_secret(dict(os.environ), args.token_file)
        max_body = max_body_bytes(dict(os.environ))
    except (SecretError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from rasa_sdk import utils

    utils.configure_colored_logging(args.loglevel)
    utils.update_sanic_log_level()
    try:
        app = create_app(args.actions, secret, max_body)
    except Exception as error:  # an action package that does not import: say which, no traceback
        print(f"error: cannot load the actions package {args.actions!r}: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 2
    source = f"${TOKEN_ENV}" if os.environ.get(TOKEN_ENV) else str(args.token_file)
    logger.info(f"Action server on http://{args.host}:{args.port} (secret from {source}; "
                f"only GET /health answers without it).")
    app.run(args.host, args.port, workers=utils.number_of_sanic_workers(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
