"""A SQL tracker store that keeps PII out of the stored conversation.

Use it in ``endpoints.yml`` instead of ``type: SQL``::

    tracker_store:
      type: components.redacting_tracker_store.RedactingSQLTrackerStore
      dialect: sqlite
      db: var/tracker.db

Before an event is written, a user message's text (and the text in its parse
data, and the values of entities that overlap PII) are replaced by the
redacted text that ``InputRails`` recorded (``[EMAIL]``, ``[CREDIT_CARD]``,
...). Slots a form collects on purpose (an enrolment's email) are stored as
they are; the event broker, if any, still receives the raw events.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Iterator

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from components.guardrails.record import RailsRecord

logger = logging.getLogger(__name__)


def redact_event(event: Event) -> Event:
    """A copy of a user event with PII replaced; other events are returned as they are."""
    if not isinstance(event, UserUttered):
        return event
    record = RailsRecord.from_parse_data(event.parse_data)
    if record is None or record.redacted_text is None:
        return event
    redacted = record.redacted_text
    spans = record.pii_spans()
    clone = copy.deepcopy(event)
    clone.text = redacted
    clone.parse_data["text"] = redacted
    for entity in [*clone.entities, *clone.parse_data.get("entities", [])]:
        for start, end, kind in spans:
            if entity.get("start", -1) < end and start < entity.get("end", -1):
                entity["value"] = f"[{kind}]"
    logger.debug("Redacted PII from a user message before storing it.")
    return clone


class RedactingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that stores user messages with their PII redacted."""

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        for event in super()._additional_events(session, tracker):
            yield redact_event(event)
