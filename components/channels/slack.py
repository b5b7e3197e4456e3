"""Rasa's Slack connector with stricter handling of Slack's Events API.

``SlackChannel`` (``/webhooks/slack/webhook``) keeps Rasa's ``SlackInput``
(signing-secret check with the five-minute replay window, bot messages
ignored, replies through ``chat.postMessage``) and adds:

- retries: Slack re-sends an event when the first answer took over 3 s or
  failed (``X-Slack-Retry-Num``). Rasa only skips retries whose reason is
  ``http_timeout``; here every event is processed once per ``event_id``
  (per process), whatever the retry reason;
- bad requests (forged or stale signatures, malformed JSON, payloads of the
  wrong shape) get a 4xx answer, never a 500;
- ``api_url``: the Web API root (default ``https://slack.com/api/``), so the
  tests can run against a fake Slack on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from rasa_safe_hybrid.channels.common import SeenIds, clean_text, json_body
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"


class ApiUrlSlackBot(SlackBot):
    """Rasa's Slack output channel, talking to a configurable Web API root."""

    def __init__(self, token: str, slack_channel: Optional[str], thread_id: Optional[str],
                 proxy: Optional[str], api_url: str) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        self.client = AsyncWebClient(token, proxy=proxy, base_url=api_url, timeout=10)


class SlackChannel(SlackInput):
    """Slack Events API endpoint: verified, deduplicated, never a 500."""

    @classmethod
    def name(cls) -> str:
        """The channel's name: its webhook is /webhooks/slack/webhook."""
        return "slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel from its credentials.yml entry."""
        if not credentials:
            cls.raise_missing_credentials_exception()
        credentials = dict(credentials or {})
        channel = super().from_credentials(credentials)
        api_url = str(credentials.get("api_url") or DEFAULT_API_URL)
        channel.api_url = api_url if api_url.endswith("/") else api_url + "/"
        return channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_url = DEFAULT_API_URL
        self.seen_events = SeenIds()

    def get_output_channel(
        self, channel: Optional[str] = None, thread_id: Optional[str] = None
    ) -> OutputChannel:
        """The output channel that posts to the conversation's Slack channel (and thread)."""
        return ApiUrlSlackBot(self.slack_token, channel or self.slack_channel, thread_id,
                              self.proxy, self.api_url)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes: health and the Events API webhook."""
        slack_webhook = Blueprint("guarded_slack_webhook", __name__)

        @slack_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @slack_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.is_request_from_slack_authentic(request):
                logger.warning("Slack request rejected: missing, forged or stale X-Slack-Signature.")
                return response.text(
                    "Message is not properly signed with a valid X-Slack-Signature header",
                    status=HTTPStatus.UNAUTHORIZED,
                )
            content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
            if content_type == "application/x-www-form-urlencoded":
                return await self._interactive(request, on_new_message)
            payload, error = json_body(request)
            if error is None and not isinstance(payload, dict):
                error = "payload must be a JSON object"
            if error is None and isinstance(payload, dict) and not isinstance(payload.get("event", {}), dict):
                error = "`event` must be a JSON object"
            if error is not None or not isinstance(payload, dict):
                return response.text(error or "payload must be a JSON object", status=HTTPStatus.BAD_REQUEST)
            if payload.get("type") == "url_verification":
                return response.json({"challenge": str(payload.get("challenge", ""))})

            event = payload.get("event") or {}
            event_id = str(payload.get("event_id") or "")
            retry = request.headers.get(self.retry_num_header or "x-slack-retry-num")
            if event_id and not self.seen_events.add(event_id):
                logger.info(f"Slack event {event_id} already handled (retry #{retry}): not answered again.")
                return response.text("", status=HTTPStatus.OK, headers={"X-Slack-No-Retry": "1"})
            if not self._is_user_message(payload) or event.get("subtype"):
                logger.debug("Slack event is not a user's message (bot, edit or other subtype): skipped.")
                return response.text("Bot message delivered.")
            if not isinstance(event.get("text"), str) or not isinstance(event.get("user", ""), str):
                return response.text("`event.text` and `event.user` must be strings", status=HTTPStatus.BAD_REQUEST)
            metadata = self._metadata(payload)
            if not self._is_supported_channel(payload, metadata):
                logger.warning(f"Slack message on unsupported channel {metadata['out_channel']}: skipped.")
                return response.text("channel not supported.")
            text = clean_text(self._sanitize_user_message(event["text"], metadata["users"])).strip()
            if not text:
                return response.text("Bot message delivered.")
            conversation_id = self._get_conversation_id(
                event.get("user", ""), metadata.get("out_channel"), metadata.get("thread_id")
            )
            return await self._dispatch(on_new_message, text, conversation_id, metadata)

        return slack_webhook

    @staticmethod
    def _metadata(payload: Dict[str, Any]) -> Dict[str, Any]:
        event = payload.get("event") or {}
        users = payload.get("authed_users")
        if not isinstance(users, list):
            authorizations = payload.get("authorizations")
            users = [a.get("user_id") for a in authorizations[:1] if isinstance(a, dict)] \
                if isinstance(authorizations, list) else []
        return {
            "out_channel": event.get("channel"),
            "thread_id": event.get("thread_ts", event.get("ts")),
            "users": [u for u in users if isinstance(u, str)],
        }

    async def _dispatch(self, on_new_message: Callable[[UserMessage], Awaitable[Any]], text: str,
                        conversation_id: Optional[str], metadata: Dict[str, Any]) -> HTTPResponse:
        """Handles the message in the background and answers Slack at once (within its 3 s)."""
        thread_id = metadata.get("thread_id") if self.use_threads else None
        message = UserMessage(
            text, self.get_output_channel(metadata.get("out_channel"), thread_id), conversation_id,
            input_channel=self.name(), metadata=metadata,
        )
        task = asyncio.create_task(self._handle(on_new_message, message))
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return response.text("")

    @staticmethod
    async def _handle(on_new_message: Callable[[UserMessage], Awaitable[Any]], message: UserMessage) -> None:
        try:
            await on_new_message(message)
        except Exception:  # noqa: BLE001 - a background task: log, never crash the server
            logger.exception(f"Handling a Slack message from {message.sender_id!r} failed.")

    async def _interactive(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
                           ) -> HTTPResponse:
        """A button click (interactive payload, form-encoded)."""
        try:
            payload = json.loads(request.form.get("payload") or "")
            action = payload["actions"][0]
            sender_id = str(payload["user"]["id"])
            text = self._get_interactive_response(action)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return response.text("malformed interactive payload", status=HTTPStatus.BAD_REQUEST)
        if text is None:
            return response.text("User clicked link button")
        metadata = {
            "out_channel": (payload.get("channel") or {}).get("id"),
            "thread_id": (payload.get("message") or {}).get("ts"),
            "users": [sender_id],
        }
        conversation_id = self._get_conversation_id(sender_id, metadata["out_channel"], metadata["thread_id"])
        return await self._dispatch(on_new_message, clean_text(str(text)), conversation_id, metadata)
