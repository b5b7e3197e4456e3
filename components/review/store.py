"""Ratings of conversation turns, and the index the review page lists conversations from.

Both live in their own tables (``review_ratings``, ``review_conversations``,
``review_sync``) in their own database: SQLite (``sqlite:///var/review.db``) by
default, PostgreSQL in the scaled profile (``postgresql://...``). They sit
beside the tracker store and never inside it: the tracker store is only read.

The conversation index is brought up to date from the SQL tracker store's
``events`` table: a conversation with events newer than the last ones seen is
read again and summarised by ``rasa_safe_hybrid.review.turns`` (the same reading
``make trace`` prints), so the list and its filters never load trackers.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from rasa_safe_hybrid.review.turns import summary, turns

logger = logging.getLogger(__name__)

REPLY_RATINGS = ("good", "wrong", "unsafe", "unhelpful")
RAIL_RATINGS = ("correct", "false_alarm", "missed")
# target -> the ratings it takes ("intent" takes an intent of the domain instead)
TARGETS = {"reply": REPLY_RATINGS, "rail": RAIL_RATINGS, "intent": ()}
MAX_TEXT = 2000
DEFAULT_DB = "sqlite:///var/review.db"  # the review channel's `db` when credentials.yml names none
FILTERS = ("model", "rail", "emergency", "triage", "low_confidence", "replaced", "failed_action", "unreviewed")

metadata = sa.MetaData()
ratings = sa.Table(
    "review_ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("rail", sa.String(64), nullable=False, default=""),
    sa.Column("rating", sa.String(128), nullable=False),
    sa.Column("corrected", sa.Text, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("reviewer", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # the turn as stored when it was rated (redacted text), so the export needs no tracker
    sa.Column("user_text", sa.Text, nullable=True),
    sa.Column("intent", sa.String(128), nullable=True),
    sa.Column("reply", sa.Text, nullable=True),
    sa.Column("llm_outcome", sa.String(64), nullable=True),  # "sent": the model's own words reached the user
    sa.UniqueConstraint("conversation_id", "turn", "target", "rail", "reviewer", name="one_rating_per_reviewer"),
)
conversations = sa.Table(
    "review_conversations", metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("latest", sa.Float, nullable=False, index=True),
    sa.Column("first", sa.Float, nullable=False),
    sa.Column("turns", sa.Integer, nullable=False),
    sa.Column("model_turns", sa.Integer, nullable=False),
    sa.Column("rails", sa.Text, nullable=False),  # ",name,name," (LIKE '%,name,%' filters by rail)
    sa.Column("emergency", sa.Boolean, nullable=False),
    sa.Column("triage", sa.Boolean, nullable=False),
    sa.Column("low_confidence", sa.Boolean, nullable=False),
    sa.Column("replaced", sa.Boolean, nullable=False),
    sa.Column("failed_action", sa.Boolean, nullable=False),
    sa.Column("first_text", sa.Text, nullable=False),
)
sync_state = sa.Table(
    "review_sync", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_event_id", sa.Integer, nullable=False),
)


class ReviewError(ValueError):
    """A rating or a query that cannot be taken; the message says why."""


@dataclass(frozen=True)
class Rating:
    """One reviewer's judgement of one thing a turn did."""

    conversation_id: str
    turn: int
    target: str
    rating: str
    reviewer: str
    rail: str = ""
    corrected: Optional[str] = None
    note: Optional[str] = None


def sql_tracker_store(store: Any) -> Any:
    """The SQL tracker store inside Rasa's wrappers (fail-safe, awaitable), else an error."""
    seen = 0
    while store is not None and not hasattr(store, "engine") and seen < 5:
        store = getattr(store, "_tracker_store", None) or getattr(store, "tracker_store", None)
        seen += 1
    if store is None or not hasattr(store, "engine"):
        raise ReviewError(
            "the review page reads conversations from a SQL tracker store (SQLite or PostgreSQL, "
            "e.g. rasa_safe_hybrid.stores.redacting_tracker_store.RedactingSQLTrackerStore in endpoints.yml)"
        )
    return store


class ReviewStore:
    """The ratings and the conversation index in one database (created on first use)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True, future=True)
        for attempt in range(3):
            try:
                metadata.create_all(self.engine)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                # Several processes creating the tables at once (scaled out): one wins, the
                # others find them on the next look.
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- the conversation index ------------------------------------------------------------
    def sync(self, events_engine: Any, table: str = "events", progress: bool = False) -> int:
        """Reads conversations with new events from the tracker store's ``events`` table; returns how many."""
        events = sa.table(table, sa.column("id"), sa.column("sender_id"), sa.column("data"))
        with self.engine.connect() as connection:
            last = connection.execute(sa.select(sync_state.c.last_event_id).where(
                sync_state.c.name == table)).scalar() or 0
        with events_engine.connect() as source:
            changed = dict(source.execute(
                sa.select(events.c.sender_id, sa.func.max(events.c.id)).where(events.c.id > last)
                .group_by(events.c.sender_id)).all())
            if not changed:
                return 0
            newest = max(changed.values())
            started = time.monotonic()
            rows = self._summaries(source, events, sorted(changed), progress)
        try:
            self._save_summaries(rows, table, newest)
        except sa.exc.IntegrityError:
            # Another process (scaled out: several `rasa run` on one database) saved the same
            # conversations a moment earlier; its rows are as current as these.
            logger.info("review index: another process indexed the same conversations; keeping its rows")
            return 0
        logger.info("review index: %d conversation(s) read from the tracker store in %.1f s",
                    len(rows), time.monotonic() - started)
        return len(rows)

    @staticmethod
    def _summaries(source: Any, events: Any, senders: Sequence[str], progress: bool) -> List[Dict[str, Any]]:
        from tqdm import tqdm

        rows = []
        for start in tqdm(range(0, len(senders), 500), desc="review index", disable=not progress, unit="x500"):
            batch = senders[start:start + 500]
            grouped: Dict[str, List[Dict[str, Any]]] = {s: [] for s in batch}
            for sender, data in source.execute(sa.select(events.c.sender_id, events.c.data).where(
                    events.c.sender_id.in_(batch)).order_by(events.c.sender_id, events.c.id)):
                grouped[sender].append(json.loads(data))
            for sender, items in grouped.items():
                facts = summary(turns(items))
                stamps = [e.get("timestamp") or 0.0 for e in items] or [0.0]
                rows.append({"sender_id": sender, "latest": max(stamps), "first": min(stamps),
                             "turns": facts["turns"], "model_turns": facts["model_turns"],
                             "rails": "," + ",".join(facts["rails"]) + "," if facts["rails"] else "",
                             **{k: bool(facts[k]) for k in ("emergency", "triage", "low_confidence",
                                                            "replaced", "failed_action")},
                             "first_text": str(facts["first_text"] or "")[:200]})
        return rows

    def _save_summaries(self, rows: List[Dict[str, Any]], table: str, newest: int) -> None:
        with self.engine.begin() as connection:
            senders = [r["sender_id"] for r in rows]
            for start in range(0, len(senders), 500):
                connection.execute(conversations.delete().where(
                    conversations.c.sender_id.in_(senders[start:start + 500])))
            if rows:
                connection.execute(conversations.insert(), rows)
            updated = connection.execute(sync_state.update().where(sync_state.c.name == table)
                                         .values(last_event_id=newest)).rowcount
            if not updated:
                connection.execute(sync_state.insert().values(name=table, last_event_id=newest))

    def list_conversations(self, filters: Dict[str, Any], page: int = 1, per_page: int = 25
                      ) -> Tuple[int, List[Dict[str, Any]]]:
        """(how many match, one page of them newest first) for the filters of ``FILTERS``."""
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise ReviewError(f"unknown filter(s) {unknown}; known: {list(FILTERS)}")
        reviewed = (sa.select(sa.func.count()).select_from(ratings)
                    .where(ratings.c.conversation_id == conversations.c.sender_id).scalar_subquery())
        where = []
        for name in ("emergency", "triage", "low_confidence", "replaced", "failed_action"):
            if filters.get(name):
                where.append(conversations.c[name].is_(True))
        if filters.get("model"):
            where.append(conversations.c.model_turns > 0)
        if filters.get("rail"):
            rail = str(filters["rail"])
            where.append(conversations.c.rails.like(f"%,{rail},%") if rail != "any" else conversations.c.rails != "")
        if filters.get("unreviewed"):
            where.append(reviewed == 0)
        query = sa.select(conversations, reviewed.label("ratings")).where(*where)
        with self.engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(
                sa.select(conversations.c.sender_id).where(*where).subquery())).scalar()
            page_rows = connection.execute(query.order_by(conversations.c.latest.desc(), conversations.c.sender_id)
                                           .limit(per_page).offset((page - 1) * per_page)).mappings().all()
        return int(total or 0), [{**dict(r), "rails": [x for x in r["rails"].split(",") if x]} for r in page_rows]

    # -- ratings ---------------------------------------------------------------------------
    def rate(self, rating: Rating, turn: Dict[str, Any]) -> Dict[str, Any]:
        """Stores (or replaces) one reviewer's rating of ``turn`` (the turn as ``turns()`` reads it)."""
        now = time.time()
        values = {
            "rating": rating.rating, "corrected": rating.corrected, "note": rating.note, "updated_at": now,
            "user_text": turn.get("user"), "intent": turn.get("intent"),
            "reply": "\n\n".join(str(b) for b in turn.get("bot") or [] if b),
            "llm_outcome": (turn.get("llm") or {}).get("outcome"),
        }
        key = (ratings.c.conversation_id == rating.conversation_id, ratings.c.turn == rating.turn,
               ratings.c.target == rating.target, ratings.c.rail == rating.rail,
               ratings.c.reviewer == rating.reviewer)
        with self.engine.begin() as connection:
            if not connection.execute(ratings.update().where(*key).values(**values)).rowcount:
                connection.execute(ratings.insert().values(
                    conversation_id=rating.conversation_id, turn=rating.turn, target=rating.target,
                    rail=rating.rail, reviewer=rating.reviewer, created_at=now, **values))
            row = connection.execute(sa.select(ratings).where(*key)).mappings().one()
        return dict(row)

    def list_ratings(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every rating (of one conversation), oldest first."""
        query = sa.select(ratings).order_by(ratings.c.created_at, ratings.c.id)
        if conversation_id is not None:
            query = query.where(ratings.c.conversation_id == conversation_id)
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def delete(self, conversation_id: str, turn: int, target: str, rail: str, reviewer: str) -> bool:
        """Takes one reviewer's rating back; False when there was none."""
        with self.engine.begin() as connection:
            return bool(connection.execute(ratings.delete().where(
                ratings.c.conversation_id == conversation_id, ratings.c.turn == turn, ratings.c.target == target,
                ratings.c.rail == rail, ratings.c.reviewer == reviewer)).rowcount)


def check_key(data: Any, rails: Iterable[str]) -> Tuple[str, int, str, str]:
    """(conversation, turn, target, rail): what a rating is of, or ``ReviewError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise ReviewError("the body must be a JSON object")
    conversation_id, target = data.get("conversation_id"), data.get("target")
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        raise ReviewError("'conversation_id' must be a non-empty string")
    if len(conversation_id) > 255:
        raise ReviewError("'conversation_id' is longer than 255 characters")
    turn = data.get("turn")
    if not isinstance(turn, int) or isinstance(turn, bool) or turn < 1:
        raise ReviewError("'turn' must be a turn number (1, 2, ...)")
    if target not in TARGETS:
        raise ReviewError(f"'target' must be one of {list(TARGETS)}")
    rail = data.get("rail") or ""
    if target == "rail":
        if not isinstance(rail, str) or rail not in set(rails):
            raise ReviewError("a rail rating names the rail ('rail': one of the configured rails)")
    elif rail:
        raise ReviewError("'rail' is only for a rail rating")
    return conversation_id, turn, target, rail


def check_rating(data: Any, reviewer: str, intents: Iterable[str], rails: Iterable[str]) -> Rating:
    """A ``Rating`` from a request body, or ``ReviewError`` saying what is wrong with it."""
    conversation_id, turn, target, rail = check_key(data, rails)
    value = data.get("rating")
    if not isinstance(value, str) or not value.strip():
        raise ReviewError("'rating' must be a non-empty string")
    if target == "intent":
        if value not in set(intents):
            raise ReviewError(f"'{value[:60]}' is not an intent of the domain")
    elif value not in TARGETS[target]:
        raise ReviewError(f"a {target} rating must be one of {list(TARGETS[target])}")
    for key in ("corrected", "note"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ReviewError(f"'{key}' must be a string")
        if len(data.get(key) or "") > MAX_TEXT:
            raise ReviewError(f"'{key}' is longer than {MAX_TEXT} characters")
    corrected = (data.get("corrected") or "").strip() or None
    if corrected and target != "reply":
        raise ReviewError("a corrected reply belongs to a reply rating")
    return Rating(conversation_id=conversation_id, turn=turn, target=target, rating=value, reviewer=reviewer,
                  rail=rail, corrected=corrected, note=(data.get("note") or "").strip() or None)
