"""The credentials entries that point the project's Slack and Telegram channels at the fakes."""

from __future__ import annotations

from typing import Any, Dict

from tests.fakes import slack as fake_slack
from tests.fakes import telegram as fake_telegram


def fake_channel_credentials(slack: fake_slack.FakeSlack, telegram: fake_telegram.FakeTelegram) -> Dict[str, Any]:
    return {
        "rasa_safe_hybrid.channels.slack.SlackChannel": {
            "slack_token": fake_slack.BOT_TOKEN,
            "slack_signing_secret": fake_slack.SIGNING_SECRET,
            "api_url": f"{slack.url}/api/",
        },
        "rasa_safe_hybrid.channels.telegram.TelegramChannel": {
            "access_token": fake_telegram.BOT_TOKEN,
            "webhook_url": "http://127.0.0.1/webhooks/telegram/webhook",
            "secret_token": fake_telegram.SECRET_TOKEN,
            "api_url": telegram.url,
        },
    }
