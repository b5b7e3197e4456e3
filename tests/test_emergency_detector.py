"""EmergencyDetector: created through Rasa's real graph plumbing, hits and near-misses."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from components.emergency_detector import EmergencyDetector
from components.guardrails import RailsRecord
from components.guardrails.record import EMERGENCY_CHECK_KEY


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
        ("ugh honestly i just want to kms", "self_harm"),
        ("gonna unalive myself tonight", "self_harm"),
        ("thinking about how to off myself", "self_harm"),
        ("honestly I just want to stop existing", "self_harm"),
        ("I wish I were dead", "self_harm"),
        ("everyone says I'd be better off dead", "self_harm"),
        ("some nights I want to go to sleep and never wake up", "self_harm"),
        ("goodbye everyone, I won't be around to see the spring", "self_harm"),
        ("I won't be here much longer", "self_harm"),
        ("my dad got an electric shock from the fuse box", "medical"),
        ("I think he was electrocuted", "medical"),
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
        "the clinic is 5 kms away",
        "we walked 10kms yesterday",
        "I want my old account to stop existing",
        "I wish I could sleep in and not wake up early",
        "my shoes give me static on the carpet",
        "I won't be here tomorrow, can you deliver on Friday",
        "goodbye, thanks for the help",
    ],
)
def test_near_misses_are_left_alone(tmp_path, text):
    detector = _create(tmp_path)
    original = _classified(text)
    before = dict(original.data)
    [message] = detector.process([original])
    record = RailsRecord.from_dict(message.data.pop(EMERGENCY_CHECK_KEY))
    assert message.data == before
    assert record.decisive is None and [v.rail for v in record.verdicts] == [
        "emergency", "emergency_classifier_strict", "emergency_intent"]


def test_the_classifier_escalates_what_no_pattern_matches(tmp_path):
    text = "my dad collapsed and isn't breathing"
    detector = _create(tmp_path)
    assert detector.detect(text) is None  # no pattern
    [message] = detector.process([_classified(text)])
    assert message.get("intent")["name"] == "emergency"
    record = RailsRecord.from_dict(message.get(EMERGENCY_CHECK_KEY))
    assert record.decisive.rail == "emergency_classifier_strict" and record.decisive.source == "model"
    assert record.decisive.score >= record.decisive.threshold


def test_the_nlu_emergency_intent_fails_closed_below_the_top(tmp_path):
    """The intent classifier put "emergency" second, at 0.3: that is enough to escalate."""
    detector = _create(tmp_path, classifier=None)
    message = Message(data={"text": "uh oh something is wrong", "intent": {"name": "chitchat", "confidence": 0.6},
                            "intent_ranking": [{"name": "chitchat", "confidence": 0.6},
                                               {"name": "emergency", "confidence": 0.3}]})
    [message] = detector.process([message])
    assert message.get("intent")["name"] == "emergency"
    assert RailsRecord.from_dict(message.get(EMERGENCY_CHECK_KEY)).decisive.rail == "emergency_intent"
    quiet = Message(data={"text": "hello", "intent": {"name": "greet", "confidence": 0.9},
                          "intent_ranking": [{"name": "greet", "confidence": 0.9},
                                             {"name": "emergency", "confidence": 0.1}]})
    assert detector.process([quiet])[0].get("intent")["name"] == "greet"


def test_the_lenient_threshold_escalates_only_on_the_listed_intents(tmp_path):
    """A health turn answered by a curated action gets the lenient threshold (the LLM
    action's check before generation); a turn routed anywhere else does not."""
    text = "my head is pounding and my neck feels stiff"
    probe = _create(tmp_path, intent_threshold=None, lenient_intents=["symptom_info"])
    [probed] = probe.process([_classified(text, intent="check_order_status")])
    score = RailsRecord.from_dict(probed.get(EMERGENCY_CHECK_KEY)).verdict("emergency_classifier").score
    assert 0.1 < score < 0.9, score  # room for a threshold on each side
    thresholds = {"emergency_classifier": score - 0.05, "emergency_classifier_strict": score + 0.05}
    detector = _create(tmp_path, intent_threshold=None, lenient_intents=["symptom_info"],
                       classifier={"thresholds": thresholds})
    [health] = detector.process([_classified(text, intent="symptom_info")])
    decisive = RailsRecord.from_dict(health.get(EMERGENCY_CHECK_KEY)).decisive
    assert health.get("intent")["name"] == "emergency"
    assert decisive.rail == "emergency_classifier" and "'symptom_info' turn" in decisive.reason
    [elsewhere] = detector.process([_classified(text, intent="check_order_status")])
    record = RailsRecord.from_dict(elsewhere.get(EMERGENCY_CHECK_KEY))
    assert elsewhere.get("intent")["name"] == "check_order_status" and record.decisive is None
    assert "not in lenient_intents" in record.verdict("emergency_classifier").reason
    unlisted = _create(tmp_path, intent_threshold=None, classifier={"thresholds": thresholds})
    [kept] = unlisted.process([_classified(text, intent="symptom_info")])
    assert kept.get("intent")["name"] == "symptom_info"


def test_stroke_out_of_context_escalates_on_purpose(tmp_path):
    # A missed stroke costs more than a false alarm: this over-escalation is accepted.
    [message] = _create(tmp_path).process([_classified("the stroke order of chinese characters")])
    assert message.get("intent")["name"] == "emergency"


def test_custom_patterns_and_names_from_config(tmp_path):
    detector = _create(
        tmp_path, intent="urgent", entity="kind", patterns={"poison": [r"\bswallowed bleach\b"]},
        classifier=None, intent_threshold=None,
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
        ({"intent_threshold": 2}, "'intent_threshold' must be a number in (0, 1]"),
        ({"classifier": "yes"}, "'classifier' must be the rails settings"),
        ({"lenient_intents": "symptom_info"}, "'lenient_intents' must be a list of intent names"),
    ],
)
def test_bad_config_is_rejected_with_advice(tmp_path, overrides, fragment):
    with pytest.raises(InvalidConfigException, match=fragment.replace("(", r"\(")):
        _create(tmp_path, **overrides)
