"""A SQL tracker store that keeps PII out of the stored conversation.

Use it in ``endpoints.yml`` instead of ``type: SQL``::

    tracker_store:
      type: rasa_safe_hybrid.stores.redacting_tracker_store.RedactingSQLTrackerStore
      dialect: sqlite
      db: var/tracker.db

Before an event is written, a user message's text (and the text in its parse
data, and the values of entities that overlap PII) are replaced by the
redacted text that ``InputRails`` recorded (``[EMAIL]``, ``[CREDIT_CARD]``,
...). Slots a form collects on purpose (an enrolment's email) are stored as
they are; the event broker, if any, still receives the raw events.

It also survives a database restart. Rasa wraps every tracker store in a
``FailSafeTrackerStore`` that, on any error, saves the turn to an in-memory
store and reads an empty tracker: after a PostgreSQL restart, the first turn
of each conversation was answered normally and then missing from the stored
conversation (found by tests/e2e/test_scale_faults.py: 1 of 8 messages per
conversation). Here connections are checked before use (``pool_pre_ping``)
and a save or read that fails on the connection is retried with back-off for
up to ``RETRY_S`` seconds (a save is idempotent: it writes only the events the
database does not hold yet).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any, Awaitable, Callable, Iterator, Optional, TypeVar

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_safe_hybrid.guardrails.record import RailsRecord

logger = logging.getLogger(__name__)

RETRY_S = 20.0  # how long a save or read keeps retrying a lost database connection
FIRST_DELAY_S = 0.25
T = TypeVar("T")


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


def _connection_error(error: BaseException) -> bool:
    """Whether ``error`` is the database connection failing (worth a retry)."""
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, sqlalchemy.exc.OperationalError)
    return isinstance(error, (ConnectionError, sqlalchemy.exc.DisconnectionError))


class RedactingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that stores user messages with their PII redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import sqlalchemy as sa
        from rasa.core.tracker_store import create_engine_kwargs

        # Connections a database restart has closed are replaced before use, not failed on.
        old: Any = self.engine  # type: ignore[has-type]  # Rasa sets it untyped in __init__
        self.engine = sa.create_engine(old.url, pool_pre_ping=True, **create_engine_kwargs(old.url))
        self.sessionmaker.configure(bind=self.engine)
        old.dispose()

    async def _retrying(self, what: str, sender_id: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + RETRY_S
        delay = FIRST_DELAY_S
        attempt = 1
        while True:
            try:
                return await call()
            except Exception as error:  # retried only when it is the connection
                if not _connection_error(error) or time.monotonic() + delay > deadline:
                    raise
                logger.warning(f"Tracker store: {what} for '{sender_id}' failed on the database connection "
                               f"(attempt {attempt}: {type(error).__name__}); retrying in {delay:g} s.")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
                attempt += 1

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Stores the events the database does not hold yet (retried on a lost connection)."""
        await self._retrying("save", tracker.sender_id, lambda: super(RedactingSQLTrackerStore, self).save(tracker))

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """The conversation's tracker (retried on a lost connection)."""
        return await self._retrying("read", sender_id,
                                    lambda: super(RedactingSQLTrackerStore, self).retrieve(sender_id))

    async def retrieve_full_tracker(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """The conversation's tracker with all sessions (retried on a lost connection)."""
        return await self._retrying("read", sender_id,
                                    lambda: super(RedactingSQLTrackerStore, self).retrieve_full_tracker(sender_id))

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        for event in super()._additional_events(session, tracker):
            yield redact_event(event)
