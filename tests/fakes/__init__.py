"""Fakes of outside services that cannot be reached from here, speaking their
real wire formats on loopback: Slack's Web API and Telegram's Bot API."""
