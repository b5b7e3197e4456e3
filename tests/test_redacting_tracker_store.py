"""RedactingSQLTrackerStore on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_safe_hybrid.nlu.input_rails import InputRails
from rasa_safe_hybrid.stores.redacting_tracker_store import RedactingSQLTrackerStore

from tests.conftest import ROOT


def _user_event(text):
    rails = InputRails(InputRails.get_default_config())
    from rasa.shared.nlu.training_data.message import Message

    [message] = rails.process([Message(data={"text": text, "intent": {"name": "chitchat", "confidence": 0.9},
                                             "entities": [{"entity": "email", "value": "ada@example.com",
                                                           "start": 12, "end": 27}]})])
    # what MessageProcessor._parse_message_with_graph builds
    parse_data = {"text": text, "intent": message.get("intent"), "entities": message.get("entities"),
                  **message.as_dict(only_output_properties=True)}
    return UserUttered(text, parse_data["intent"], parse_data["entities"], parse_data)


async def test_user_pii_never_reaches_the_database(tmp_path):
    db = tmp_path / "tracker.db"
    store = RedactingSQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), dialect="sqlite", db=str(db))
    text = "my email is ada@example.com and my card 4111 1111 1111 1111"
    tracker = DialogueStateTracker.from_events(
        "alice", [ActionExecuted("action_listen"), _user_event(text), SlotSet("order_id", "10002")]
    )
    await store.save(tracker)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type_name, data FROM events WHERE sender_id = 'alice'").fetchall()
    dump = "".join(data for _, data in rows)
    assert "ada@example.com" not in dump and "4111" not in dump
    user = json.loads(next(data for kind, data in rows if kind == "user"))
    assert user["text"] == "my email is [EMAIL] and my card [CREDIT_CARD]"
    assert user["parse_data"]["entities"][0]["value"] == "[EMAIL]"
    assert any(kind == "slot" for kind, _ in rows)

    restored = await store.retrieve("alice")
    assert restored.latest_message.text == "my email is [EMAIL] and my card [CREDIT_CARD]"
    assert restored.get_slot("order_id") == "10002"
    # the in-memory tracker the server keeps working with is untouched
    assert tracker.latest_message.text == text


async def test_messages_without_pii_are_stored_unchanged(tmp_path):
    db = tmp_path / "tracker.db"
    store = RedactingSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    tracker = DialogueStateTracker.from_events("bob", [ActionExecuted("action_listen"), _user_event("hello there")])
    await store.save(tracker)
    assert (await store.retrieve("bob")).latest_message.text == "hello there"
