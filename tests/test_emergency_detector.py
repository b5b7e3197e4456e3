"""EmergencyDetector: created through Rasa's real graph plumbing, hits and near-misses."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from components.emergency_detector import EmergencyDetector


def _create(tmp_path, **overrides):
    config = {**EmergencyDetector.get_default_config(), **overrides}
    return EmergencyDetector.create(
        config,
        LocalModelStorage(tmp_path),
        Resource("emergency_detector"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def _classified(text, intent="check_order_status", confidence=0.93):
    return Message(
        data={
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}],
            "entities": [{"entity": "order_id", "value": "10002", "start": 0, "end": 5}],
        }
    )


@pytest.mark.parametrize(
    "text, kind",
    [
        ("where is order 10002? also I have chest pain", "medical"),
        ("I CAN'T BREATHE", "medical"),
        ("my son took too many pills", "medical"),
        ("I think I overdosed", "medical"),
        ("she is unconscious on the floor", "medical"),
        ("I'm having suicidal thoughts", "self_harm"),
        ("i want to kill myself", "self_harm"),
        ("I don't want to live anymore", "self_harm"),
        ("sometimes I think about ending my life", "self_harm"),
    ],
)
def test_emergencies_override_the_intent(tmp_path, text, kind):
    detector = _create(tmp_path)
    [message] = detector.process([_classified(text)])
    assert message.get("intent") == {"name": "emergency", "confidence": 1.0}
    assert [r["name"] for r in message.get("intent_ranking")] == ["emergency", "check_order_status"]
    emergency = [e for e in message.get("entities") if e["entity"] == "emergency_type"]
    assert [e["value"] for e in emergency] == [kind]
    assert text[emergency[0]["start"]:emergency[0]["end"]].strip()
    assert any(e["entity"] == "order_id" for e in message.get("entities"))


@pytest.mark.parametrize(
    "text",
    [
        "how do I kill a Python process",
        "my chest of drawers arrived broken",
        "what is the maximum dose of sunlight for plants",
        "I can breathe fine, just want to know about coughs",
        "this price is killing me",
    ],
)
def test_near_misses_are_left_alone(tmp_path, text):
    detector = _create(tmp_path)
    original = _classified(text)
    before = dict(original.data)
    [message] = detector.process([original])
    assert message.data == before


def test_stroke_out_of_context_escalates_on_purpose(tmp_path):
    # A missed stroke costs more than a false alarm: this over-escalation is accepted.
    [message] = _create(tmp_path).process([_classified("the stroke order of chinese characters")])
    assert message.get("intent")["name"] == "emergency"


def test_custom_patterns_and_names_from_config(tmp_path):
    detector = _create(
        tmp_path, intent="urgent", entity="kind", patterns={"poison": [r"\bswallowed bleach\b"]}
    )
    [message] = detector.process([_classified("my kid swallowed bleach")])
    assert message.get("intent")["name"] == "urgent"
    assert [e["value"] for e in message.get("entities") if e["entity"] == "kind"] == ["poison"]
    [untouched] = detector.process([_classified("I have chest pain")])
    assert untouched.get("intent")["name"] == "check_order_status"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"intent": ""}, "'intent' must be a non-empty string"),
        ({"entity": None}, "'entity' must be a non-empty string"),
        ({"patterns": []}, "patterns must be a mapping"),
        ({"patterns": {"medical": []}}, "patterns of 'medical' must be a non-empty list"),
        ({"patterns": {"medical": ["(unclosed"]}}, "is not a valid regular expression"),
    ],
)
def test_bad_config_is_rejected_with_advice(tmp_path, overrides, fragment):
    with pytest.raises(InvalidConfigException, match=fragment.replace("(", r"\(")):
        _create(tmp_path, **overrides)
