"""A fake Slack: the Web API's ``chat.postMessage`` and signed Events API requests.

Wire format as documented by Slack: Web API methods are ``POST
https://slack.com/api/<method>`` with ``Authorization: Bearer xoxb-...`` and a
JSON or form body, answering ``{"ok": true, ...}`` or ``{"ok": false, "error":
"invalid_auth"}``. Events are ``event_callback`` envelopes, signed with
``X-Slack-Signature: v0=HMAC_SHA256(signing_secret, "v0:<timestamp>:<body>")``
and ``X-Slack-Request-Timestamp``; retries add ``X-Slack-Retry-Num`` and
``X-Slack-Retry-Reason``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any, Dict, List, Optional

import requests
from aiohttp import web

from tests.fakes.http_fake import ThreadedServer

BOT_TOKEN = "xoxb-test-0000-not-a-real-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER = "UBOT00001"
BOT_ID = "B00000001"


class FakeSlack(ThreadedServer):
    """Records ``chat.postMessage`` calls; signs and sends events to a webhook."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: List[Dict[str, Any]] = []
        self.rejected_auth = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_post("/api/{method}", self._api)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            with self._lock:
                self.rejected_auth += 1
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = dict(await request.post())
        if method == "chat.postMessage":
            if not body.get("channel"):
                return web.json_response({"ok": False, "error": "channel_not_found"})
            ts = f"{time.time():.6f}"
            with self._lock:
                self.posted.append(body)
            return web.json_response({
                "ok": True, "channel": body["channel"], "ts": ts,
                "message": {"type": "message", "text": body.get("text", ""), "user": BOT_USER,
                            "bot_id": BOT_ID, "ts": ts},
            })
        return web.json_response({"ok": False, "error": "unknown_method"})

    def messages_to(self, channel: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [m for m in self.posted if m.get("channel") == channel]

    def wait_for_messages(self, channel: str, count: int, timeout_s: float = 60) -> List[Dict[str, Any]]:
        """Waits until ``count`` messages were posted to ``channel``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.messages_to(channel)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.messages_to(channel)

    @staticmethod
    def event(text: str, user: str = "U00000001", channel: str = "D00000001",
              bot: bool = False, event_id: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
        """An ``event_callback`` envelope for a direct message, as Slack sends it."""
        ts = f"{time.time():.6f}"
        event: Dict[str, Any] = {"type": "message", "channel": channel, "user": user, "text": text,
                                 "ts": ts, "event_ts": ts, "channel_type": "im", **extra}
        if bot:
            event.update(user=BOT_USER, bot_id=BOT_ID)
        return {
            "token": "verification-token-unused", "team_id": "T00000001", "api_app_id": "A00000001",
            "event": event, "type": "event_callback",
            "event_id": event_id or f"Ev{time.time_ns()}", "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": "T00000001", "user_id": BOT_USER,
                                "is_bot": True, "is_enterprise_install": False}],
        }

    @staticmethod
    def sign(body: bytes, timestamp: Optional[int] = None, secret: str = SIGNING_SECRET) -> Dict[str, str]:
        """Slack's request-signing headers for ``body``."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}",
                "Content-Type": "application/json"}

    @classmethod
    def deliver(cls, webhook: str, payload: Any, retry: int = 0, reason: str = "http_timeout",
                headers: Optional[Dict[str, str]] = None, **sign_kwargs: Any) -> requests.Response:
        """POSTs an event to the app's webhook the way Slack does (signed)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {**cls.sign(body, **sign_kwargs), **(headers or {})}
        if retry:
            sent.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason})
        return requests.post(webhook, data=body, headers=sent, timeout=30)
