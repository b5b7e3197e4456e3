"""A fake Telegram Bot API and Telegram's webhook deliveries.

Wire format as documented by Telegram: methods are ``POST
https://api.telegram.org/bot<token>/<method>`` with a JSON, form or multipart
body, answered by ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": 401, "description": "Unauthorized"}``. Updates are POSTed to the
webhook as JSON ``Update`` objects, with ``X-Telegram-Bot-Api-Secret-Token``
when the webhook was registered with a ``secret_token``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any, Dict, List, Optional

import requests
from aiohttp import web

from tests.fakes.http_fake import ThreadedServer

BOT_TOKEN = "123456789:AAtest-token-not-real_0123456789"
SECRET_TOKEN = "test-secret-token_0123456789"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Assistant", "username": "assistant_test_bot"}


class FakeTelegram(ThreadedServer):
    """Records Bot API calls (sendMessage, setWebhook, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[Dict[str, Any]] = []
        self.webhook: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(5000)
        self.app = web.Application()
        self.app.router.add_post("/bot{token}/{method}", self._api)

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != BOT_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = {k: v for k, v in (await request.post()).items()}
        with self._lock:
            self.calls.append({"method": method, "params": params})
        if method == "setWebhook":
            self.webhook = params
            return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method == "sendMessage":
            chat_id = params.get("chat_id")
            if not chat_id or not params.get("text"):
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"},
                    status=400)
            return web.json_response({"ok": True, "result": {
                "message_id": next(self._message_ids), "from": BOT_USER, "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": "private"}, "text": params["text"],
            }})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    def sent_to(self, chat_id: int) -> List[Dict[str, Any]]:
        with self._lock:
            return [c["params"] for c in self.calls
                    if c["method"] == "sendMessage" and str(c["params"].get("chat_id")) == str(chat_id)]

    def wait_for_webhook(self, timeout_s: float = 30) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not self.webhook and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.webhook

    def update(self, chat_id: int, text: Optional[str] = None, kind: str = "message",
               **message_fields: Any) -> Dict[str, Any]:
        """An ``Update`` as Telegram sends it (a text message unless fields say otherwise)."""
        message: Dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
            "date": int(time.time()), **message_fields,
        }
        if text is not None:
            message["text"] = text
        if kind == "edited_message":
            message["edit_date"] = int(time.time())
        return {"update_id": next(self._update_ids), kind: message}

    @staticmethod
    def deliver(webhook: str, update: Any, secret: Optional[str] = SECRET_TOKEN) -> requests.Response:
        """POSTs an update to the webhook the way Telegram does."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        return requests.post(webhook, data=body, headers=headers, timeout=120)
