"""Rasa input channels with the checks a public deployment needs.

Each subclasses Rasa's own connector and is referenced from ``credentials.yml``
by dotted path:

- ``rasa_safe_hybrid.channels.rest.TokenRestInput``: the REST webhook behind a bearer
  token, strict request validation, guardrail notices on replies, and the web
  chat page.
- ``rasa_safe_hybrid.channels.slack.SlackChannel``: signing-secret verification,
  deduplication of Slack's retries by ``event_id``, bot messages ignored.
- ``rasa_safe_hybrid.channels.telegram.TelegramChannel``: webhook secret token,
  updates without text answered politely instead of crashing.
"""
