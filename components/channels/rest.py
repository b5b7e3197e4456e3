"""The REST channel behind a bearer token, plus the web chat page.

``TokenRestInput`` keeps Rasa's REST URL and reply format
(``POST /webhooks/rest/webhook``, ``{"sender": ..., "message": ...}`` in, a
list of ``{"recipient_id", "text", "buttons", ...}`` out) and adds:

- token authentication: ``Authorization: Bearer <token>`` or ``?token=<token>``
  (the same convention as Rasa's HTTP API ``--auth-token``); 401 without it;
- request validation: malformed JSON, wrong types or missing fields get a 400
  that says what is wrong, never a 500;
- notices: a reply from a configured domain response (guardrail refusals,
  emergency and medical notices) carries ``"notice": {"kind", "label"}`` so a
  front end can show it differently (the web page does);
- ``GET /webhooks/rest/chat``: the web chat page (``chat.html`` beside this
  module, or the file that ``page`` in credentials.yml names).
"""

from __future__ import annotations

import hmac
import logging
from asyncio import CancelledError
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from rasa_safe_hybrid.channels.common import clean_text, json_body
from rasa_safe_hybrid.texts import SERVICE_APOLOGY
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "chat.html"
MAX_SENDER_CHARS = 256
# Domain responses shown as notices by front ends: response name -> (kind, label).
# The plugin's own responses; an assistant adds its own with `notices:` in credentials.yml.
DEFAULT_NOTICES: Dict[str, Dict[str, str]] = {
    "utter_guardrail_injection": {"kind": "guardrail", "label": "Safety notice"},
    "utter_guardrail_harmful": {"kind": "guardrail", "label": "Safety notice"},
    "utter_llm_fallback": {"kind": "guardrail", "label": "Safety notice"},
    "utter_llm_unavailable": {"kind": "service", "label": "Service notice"},
}
ERROR_REPLY = SERVICE_APOLOGY


class NoticeCollectingOutputChannel(CollectingOutputChannel):
    """Collects replies like Rasa's REST channel and tags notice responses."""

    def __init__(self, notices: Dict[str, Dict[str, str]]) -> None:
        super().__init__()
        self.notices = notices

    def _tagged(self, message: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        notice = self.notices.get(str(kwargs.get("utter_action") or ""))
        if notice:
            message["notice"] = {**notice, "response": kwargs["utter_action"]}
        return message

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Collects a text reply (one message per paragraph), tagged when it is a notice."""
        for part in text.strip().split("\n\n"):
            await self._persist_message(self._tagged(self._message(recipient_id, text=part), kwargs))

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Collects a reply with buttons, tagged when it is a notice."""
        await self._persist_message(
            self._tagged(self._message(recipient_id, text=text, buttons=buttons), kwargs)
        )


class TokenRestInput(InputChannel):
    """Rasa's REST webhook with a bearer token, validation and notices."""

    @classmethod
    def name(cls) -> str:
        """The channel's name: its webhook is /webhooks/rest/."""
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel from its credentials.yml entry (token, notices, page)."""
        credentials = credentials or {}
        notices = {**DEFAULT_NOTICES, **(credentials.get("notices") or {})}
        page = Path(str(credentials["page"])) if credentials.get("page") else PAGE
        return cls(str(credentials.get("token") or ""), notices, page)

    def __init__(
        self, token: str, notices: Optional[Dict[str, Dict[str, str]]] = None, page: Path = PAGE
    ) -> None:
        if len(token.strip()) < 16:
            raise RasaException(
                "The rest channel needs a `token` of at least 16 characters in credentials.yml "
                "(`token: ${RASA_AUTH_TOKEN}`)."
            )
        self.token = token.strip()
        self.notices = notices if notices is not None else dict(DEFAULT_NOTICES)
        if not page.is_file():
            raise RasaException(
                f"The rest channel's `page` {page} does not exist; fix or remove it in credentials.yml."
            )
        self.page = page

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the token (header or query), compared in constant time."""
        header = request.headers.get("authorization", "")
        supplied = header[7:].strip() if header.lower().startswith("bearer ") else ""
        supplied = supplied or (request.args.get("token") or "")
        return bool(supplied) and hmac.compare_digest(supplied.encode(), self.token.encode())

    @staticmethod
    def parse(body: Any) -> tuple:
        """(sender, text, metadata, error) from a decoded body."""
        if not isinstance(body, dict):
            return None, None, None, "body must be a JSON object with `sender` and `message`"
        sender, text, metadata = body.get("sender"), body.get("message"), body.get("metadata")
        if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
            return None, None, None, f"`sender` must be a non-empty string of at most {MAX_SENDER_CHARS} characters"
        if not isinstance(text, str):
            return None, None, None, "`message` must be a string"
        text = clean_text(text).strip()
        if not text:
            return None, None, None, "`message` is empty"
        if metadata is not None and not isinstance(metadata, dict):
            return None, None, None, "`metadata` must be a JSON object"
        return clean_text(sender).strip(), text, metadata, None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes: health, the web chat page, the webhook."""
        webhook = Blueprint(f"token_rest_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/chat", methods=["GET"])
        async def chat_page(_: Request) -> HTTPResponse:
            return response.html(
                self.page.read_text("utf-8"),
                headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                         "script-src 'unsafe-inline'", "Cache-Control": "no-store"},
            )

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.authorized(request):
                return response.json(
                    {"error": "missing or wrong token: send `Authorization: Bearer <token>`"},
                    status=401, headers={"WWW-Authenticate": "Bearer"},
                )
            body, error = json_body(request)
            sender = text = metadata = None
            if error is None:
                sender, text, metadata, error = self.parse(body)
            if error is not None:
                return response.json({"error": error}, status=400)
            collector = NoticeCollectingOutputChannel(self.notices)
            try:
                await on_new_message(
                    UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
                )
            except CancelledError:
                logger.error(f"Message handling for {sender!r} timed out.")
                return response.json({"error": "message handling timed out"}, status=408)
            except Exception:  # noqa: BLE001 - the user gets a polite reply, the log the trace
                logger.exception(f"Handling a message from {sender!r} failed.")
                return response.json([{"recipient_id": sender, "text": ERROR_REPLY,
                                       "notice": {"kind": "service", "label": "Service notice"}}])
            return response.json(collector.messages)

        return webhook
