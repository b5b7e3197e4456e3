"""Keeps PII out of log output.

Rasa logs each user message at DEBUG level before any component sees it.
``install()`` adds a filter to every handler of the root logger that redacts
PII (the same detector as the input rail) in each record's final message, so
``rasa shell --debug`` and server logs show ``[EMAIL]`` instead of the address.
"""

from __future__ import annotations

import logging
from typing import Optional

from rasa_safe_hybrid.guardrails import pii


class PIIRedactingFilter(logging.Filter):
    """Rewrites a record's message with its PII redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redacts; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's business, not ours
            return True
        findings = pii.find_pii(message)
        if findings:
            record.msg = pii.redact(message, findings)
            record.args = ()
        return True


def install(logger: Optional[logging.Logger] = None) -> int:
    """Adds the filter to the handlers of ``logger`` (default: root) that lack it.

    Returns:
        How many handlers got the filter.
    """
    logger = logger or logging.getLogger()
    added = 0
    for handler in logger.handlers:
        if not any(isinstance(f, PIIRedactingFilter) for f in handler.filters):
            handler.addFilter(PIIRedactingFilter())
            added += 1
    return added
