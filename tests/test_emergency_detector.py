"""EmergencyDetector: created through Rasa's real graph plumbing, hits and near-misses."""

from __future__ import annotations

import re

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa_safe_hybrid.guardrails import RailsRecord
from rasa_safe_hybrid.guardrails.record import EMERGENCY_CHECK_KEY
from rasa_safe_hybrid.nlu.emergency_detector import EmergencyDetector

from tests.conftest import ROOT


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
        ("i've got the gun loaded in my lap", "self_harm"),
        ("i have a plan and a date, it's sunday", "self_harm"),
        ("i'm going to end it", "self_harm"),
        ("my 3 week old has a fever of 38.5", "medical"),
        ("I'm having a stroke, my arm is numb", "medical"),
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
        "my shoes give me static on the carpet",
        "I won't be here tomorrow, can you deliver on Friday",
        "goodbye, thanks for the help",
        "the gun show is loaded with people",
        "we have a plan and a date for the wedding",
        "what is a stroke in medical terms",
        "is this toy a choking hazard",
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
        "emergency", "emergency_classifier", "emergency_words"]


@pytest.mark.parametrize("text", [
    "I wish I could sleep in and not wake up early",
    "my 6 year old has a fever of 38.5",
    "my chest feels a bit tight after the run",
])
def test_borderline_messages_are_at_most_asked_about(tmp_path, text):
    """Unclear signals: the triage question (it carries the number) is the right answer at
    worst; an escalation is not."""
    import yaml

    block = next(c for c in yaml.safe_load((ROOT / "config.yml").read_text("utf-8"))["pipeline"]
                 if c["name"].endswith("EmergencyDetector"))
    [message] = _create(tmp_path, tiers=block["tiers"]).process([_classified(text)])
    assert message.get("intent")["name"] in ("check_order_status", "emergency_triage")


def test_the_classifier_escalates_what_no_pattern_matches(tmp_path):
    text = "my dad collapsed and isn't breathing"
    detector = _create(tmp_path)
    assert detector.detect(text) is None  # no pattern
    [message] = detector.process([_classified(text)])
    assert message.get("intent")["name"] == "emergency"
    record = RailsRecord.from_dict(message.get(EMERGENCY_CHECK_KEY))
    assert record.decisive.rail == "emergency_classifier" and record.decisive.source == "model"
    assert record.decisive.score >= record.decisive.threshold


def _ranked(text, emergency_confidence):
    return Message(data={"text": text, "intent": {"name": "chitchat", "confidence": 0.6},
                         "intent_ranking": [{"name": "chitchat", "confidence": 0.6},
                                            {"name": "emergency", "confidence": emergency_confidence}]})


@pytest.mark.parametrize("confidence, intent", [(0.95, "emergency"), (0.7, "emergency_triage"), (0.3, "chitchat")])
def test_the_nlu_emergency_intent_has_two_tiers(tmp_path, confidence, intent):
    """The NLU's emergency intent, even below the top: sure escalates, fairly sure asks first."""
    detector = _create(tmp_path, classifier=None, tiers={"intent_strong": 0.9, "intent_moderate": 0.6})
    [message] = detector.process([_ranked("uh oh something is wrong", confidence)])
    assert message.get("intent")["name"] == intent
    record = message.get(EMERGENCY_CHECK_KEY)
    assert record["tier"] == {"emergency": "strong", "emergency_triage": "moderate", "chitchat": None}[intent]
    if intent != "chitchat":
        assert record["decisive"] == "emergency_intent" and record["original_intent"] == "chitchat"


def test_classifier_tiers_escalate_ask_or_leave_alone(tmp_path):
    """Between the moderate and the strong threshold the triage intent is set, above it the
    emergency intent; the classifier's own intent stays in the ranking and the record."""
    text = "my head is pounding and my neck feels stiff"
    probe = _create(tmp_path)
    score = probe.assess(_classified(text)).record.verdict("emergency_classifier").score
    assert 0.02 < score < 0.98, score  # room for a threshold on each side
    cases = {"emergency_triage": {"strong": min(score + 0.01, 1.0), "moderate": score - 0.01},
             "emergency": {"strong": score - 0.01, "moderate": score - 0.02},
             "check_order_status": {"strong": min(score + 0.02, 1.0), "moderate": score + 0.01}}
    for intent, tiers in cases.items():
        [message] = _create(tmp_path, tiers=tiers).process([_classified(text)])
        assert message.get("intent")["name"] == intent, (intent, tiers)
        assert "check_order_status" in [r["name"] for r in message.get("intent_ranking")]
        assert message.get(EMERGENCY_CHECK_KEY)["original_intent"] == "check_order_status"


def test_a_danger_word_counts_only_when_the_classifier_agrees(tmp_path):
    """'stroke' alone (a definition, a chinese character) is no emergency; with the classifier
    at its moderate tier or above, the word makes it strong."""
    [alone] = _create(tmp_path, classifier=None).process([_classified("the stroke order of chinese characters")])
    assert alone.get("intent")["name"] == "check_order_status"
    text = "is this a stroke or a migraine, my face feels numb"
    score = _create(tmp_path).assess(_classified(text)).record.verdict("emergency_classifier").score
    assert 0 < score < 1.0, score
    tiers = {"strong": 1.0, "moderate": score * 0.9}
    [agreed] = _create(tmp_path, tiers=tiers).process([_classified(text)])
    record = RailsRecord.from_dict(agreed.get(EMERGENCY_CHECK_KEY))
    assert agreed.get("intent")["name"] == "emergency" and agreed.get(EMERGENCY_CHECK_KEY)["tier"] == "strong"
    assert record.verdict("emergency_words").triggered
    [unsure] = _create(tmp_path, words={}, tiers=tiers).process([_classified(text)])
    assert unsure.get("intent")["name"] == "emergency_triage"  # without the word: the classifier alone asks


def test_custom_patterns_and_names_from_config(tmp_path):
    detector = _create(
        tmp_path, intent="urgent", entity="kind", patterns={"medical": [r"\bswallowed bleach\b"]},
        words={}, classifier=None,
    )
    [message] = detector.process([_classified("my kid swallowed bleach")])
    assert message.get("intent")["name"] == "urgent"
    assert [e["value"] for e in message.get("entities") if e["entity"] == "kind"] == ["medical"]
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
        ({"intent_threshold": 0.6}, "'intent_threshold' is replaced by tiers.intent_strong"),
        ({"classifier": "yes"}, "'classifier' must be the rails settings"),
        ({"lenient_intents": ["symptom_info"]}, "'lenient_intents' is replaced by tiers.moderate"),
        ({"patterns": {"poison": [r"\bbleach\b"]}}, "pattern group 'poison' is not a kind of emergency"),
        ({"tiers": {"strong": 1.5}}, "`tiers.strong` must be a number in (0, 1]"),
        ({"tiers": {"strong": 0.5, "moderate": 0.8}}, "`tiers.moderate` (0.8) is above `tiers.strong`"),
        ({"tiers": {"loud": 0.5}}, "unknown key(s) ['loud'] under `tiers`"),
    ],
)
def test_bad_config_is_rejected_with_advice(tmp_path, overrides, fragment):
    with pytest.raises(InvalidConfigException, match=re.escape(fragment)):
        _create(tmp_path, **overrides)


def test_an_emergency_guess_without_a_signal_is_demoted(tmp_path):
    """The intent classifier's own 'emergency' at 0.51, no pattern, no classifier, below the intent
    tiers: the next intent when it is sure enough, else nlu_fallback; never the escalation."""
    detector = _create(tmp_path, classifier=None, tiers={"intent_strong": None, "intent_moderate": 0.7})
    guess = Message(data={"text": "my feet are killing me after that concert",
                          "intent": {"name": "emergency", "confidence": 0.51},
                          "intent_ranking": [{"name": "emergency", "confidence": 0.51},
                                             {"name": "chitchat", "confidence": 0.45}]})
    [message] = detector.process([guess])
    assert message.get("intent")["name"] == "chitchat"
    assert "guess without a signal" in message.get(EMERGENCY_CHECK_KEY)["overridden_by"]
    unsure = Message(data={"text": "ouch", "intent": {"name": "emergency", "confidence": 0.5},
                           "intent_ranking": [{"name": "emergency", "confidence": 0.5},
                                              {"name": "greet", "confidence": 0.2}]})
    assert detector.process([unsure])[0].get("intent")["name"] == "nlu_fallback"
    sure = Message(data={"text": "help", "intent": {"name": "emergency", "confidence": 0.8},
                         "intent_ranking": [{"name": "emergency", "confidence": 0.8}]})
    assert detector.process([sure])[0].get("intent")["name"] == "emergency_triage"
