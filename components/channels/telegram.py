"""Rasa's Telegram connector, hardened for updates Telegram really sends.

``TelegramChannel`` (``/webhooks/telegram/webhook``) replies through Rasa's
``TelegramOutput`` (aiogram) and differs from Rasa's ``TelegramInput`` in:

- a webhook secret token: ``setWebhook`` registers ``secret_token`` and every
  update must carry it in ``X-Telegram-Bot-Api-Secret-Token`` (401 otherwise);
  Rasa's check called ``getMe`` on every update and compared the bot's name;
- updates without text (stickers, photos, voice, locations) get a polite
  "text only" reply; edited messages and updates of other kinds (channel posts,
  membership changes) are acknowledged and skipped; none of them raises;
- repeated deliveries of one ``update_id`` are answered once (per process);
- malformed bodies get a 400, never a 500;
- ``api_url``: the Bot API root (default https://api.telegram.org), so tests
  can run against a fake Bot API on loopback;
- the webhook is registered once the server runs (not in a nested event loop).
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any, Awaitable, Callable, Dict, Optional

from aiogram import Bot
from aiogram.bot.api import TelegramAPIServer
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from rasa.shared.exceptions import RasaException
from rasa_safe_hybrid.channels.common import SeenIds, clean_text, json_body
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_NON_TEXT_REPLY = (
    "I can only read text messages. Please type your question and I'll do my best to help."
)
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")


class ApiUrlTelegramOutput(TelegramOutput):
    """Rasa's Telegram output channel, talking to a configurable Bot API root."""

    def __init__(self, access_token: str, api_url: str) -> None:
        Bot.__init__(self, access_token, server=TelegramAPIServer.from_base(api_url))


class TelegramChannel(TelegramInput):
    """Telegram webhook with a secret token and safe handling of every update kind."""

    @classmethod
    def name(cls) -> str:
        """The channel's name: its webhook is /webhooks/telegram/webhook."""
        return "telegram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel from its credentials.yml entry."""
        if not credentials:
            cls.raise_missing_credentials_exception()
        credentials = dict(credentials or {})
        return cls(
            access_token=str(credentials.get("access_token") or ""),
            webhook_url=str(credentials.get("webhook_url") or ""),
            secret_token=str(credentials.get("secret_token") or ""),
            api_url=str(credentials.get("api_url") or DEFAULT_API_URL),
            non_text_reply=str(credentials.get("non_text_reply") or DEFAULT_NON_TEXT_REPLY),
        )

    def __init__(self, access_token: str, webhook_url: str, secret_token: str,
                 api_url: str = DEFAULT_API_URL, non_text_reply: str = DEFAULT_NON_TEXT_REPLY) -> None:
        super().__init__(access_token, verify=None, webhook_url=webhook_url, debug_mode=False)
        if not re.fullmatch(r"\d+:[\w-]+", access_token):
            raise RasaException("telegram: `access_token` must be the bot token from @BotFather (digits:letters).")
        if not webhook_url.startswith("https://") and not webhook_url.startswith("http://127.0.0.1"):
            raise RasaException("telegram: `webhook_url` must be the public https URL of /webhooks/telegram/webhook.")
        if not _SECRET_PATTERN.fullmatch(secret_token):
            raise RasaException(
                "telegram: `secret_token` must be 16-256 characters of A-Z, a-z, 0-9, _ and - "
                "(set TELEGRAM_SECRET_TOKEN)."
            )
        self.secret_token = secret_token
        self.api_url = api_url.rstrip("/")
        self.non_text_reply = non_text_reply
        self.seen_updates = SeenIds()

    def get_output_channel(self) -> TelegramOutput:
        """A Bot API client (no network call)."""
        return ApiUrlTelegramOutput(self.access_token, self.api_url)

    async def register_webhook(self, bot: TelegramOutput) -> None:
        """Tells Telegram where to send updates, with the secret token."""
        try:
            await bot.request("setWebhook", {"url": self.webhook_url, "secret_token": self.secret_token})
            logger.info(f"Telegram webhook registered: {self.webhook_url}")
        except Exception as error:  # noqa: BLE001 - other channels keep serving
            logger.error(f"Telegram webhook could not be registered ({error}); the bot gets no updates.")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes: health and the webhook; registers the webhook after start."""
        telegram_webhook = Blueprint("guarded_telegram_webhook", __name__)
        holder: Dict[str, TelegramOutput] = {}

        def out_channel() -> TelegramOutput:
            if "bot" not in holder:  # created inside the server's event loop
                holder["bot"] = self.get_output_channel()
            return holder["bot"]

        @telegram_webhook.listener("after_server_start")
        async def set_webhook(*_: Any) -> None:
            await self.register_webhook(out_channel())

        @telegram_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @telegram_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            supplied = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(supplied.encode(), self.secret_token.encode()):
                logger.warning("Telegram update rejected: missing or wrong secret token.")
                return response.text("wrong secret token", status=401)
            update, error = json_body(request)
            if error is None and not isinstance(update, dict):
                error = "update must be a JSON object"
            if error is not None or not isinstance(update, dict):
                return response.text(error or "update must be a JSON object", status=400)
            update_id = update.get("update_id")
            if isinstance(update_id, int) and not self.seen_updates.add(str(update_id)):
                logger.info(f"Telegram update {update_id} already handled: not answered again.")
                return response.text("success")
            return await self._handle_update(update, on_new_message, out_channel())

        return telegram_webhook

    async def _handle_update(self, update: Dict[str, Any], on_new_message: Callable[[UserMessage], Awaitable[Any]],
                             bot: TelegramOutput) -> HTTPResponse:
        callback = update.get("callback_query")
        message = update.get("message")
        if isinstance(callback, dict):  # a button press
            chat = ((callback.get("message") or {}).get("chat") or callback.get("from") or {})
            text = callback.get("data")
        elif isinstance(message, dict):
            chat, text = message.get("chat") or {}, message.get("text")
        else:
            kind = next((k for k in update if k != "update_id"), "nothing")
            logger.debug(f"Telegram update of kind '{kind}' skipped (only messages and button presses are answered).")
            return response.text("success")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if not isinstance(chat_id, (int, str)) or isinstance(chat_id, bool) or chat_id == "":
            return response.text("update without a chat id", status=400)
        sender = str(chat_id)
        if not isinstance(text, str) or not clean_text(text).strip():
            logger.info(f"Telegram update {update.get('update_id')} has no text: polite text-only reply.")
            try:
                await bot.send_text_message(sender, self.non_text_reply)
            except Exception as error:  # noqa: BLE001
                logger.error(f"Could not send the text-only reply to Telegram chat {sender}: {error}")
            return response.text("success")
        text = clean_text(text).strip()
        if text.split("@")[0] == "/start":  # Telegram's start command, not a Rasa intent payload
            text = "hello"
        metadata = {"telegram_update_id": update.get("update_id")}
        try:
            await on_new_message(UserMessage(text, bot, sender, input_channel=self.name(), metadata=metadata))
        except Exception:  # noqa: BLE001 - answer Telegram, keep serving other chats
            logger.exception(f"Handling a Telegram message from chat {sender} failed.")
        return response.text("success")
