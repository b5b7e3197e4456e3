"""The triage question: the emergency module's clauses and tiers, the triage action's answers
(real rasa-sdk Trackers and a CollectingDispatcher, exact events) and the policy that gives
the question the turn (through Rasa's LocalModelStorage and ExecutionContext)."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, UserUttered
from rasa.shared.core.events import SlotSet as CoreSlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid import emergency
from rasa_safe_hybrid.actions.triage_action import ActionEmergencyTriage, answer_of
from rasa_safe_hybrid.policies.triage_policy import EmergencyTriagePolicy
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted as SdkActionExecuted
from rasa_sdk.events import ActiveLoop as SdkActiveLoop
from rasa_sdk.events import SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from tests.conftest import ROOT
from tests.helpers import predicted_action


@pytest.mark.parametrize("text, expected", [
    ("where's order 10003? also my chest feels like an elephant is sitting on it",
     ["where's order 10003", "also my chest feels like an elephant is sitting on it"]),
    ("can you check order 10002, and btw my husband just fell", ["can you check order 10002",
                                                                  "btw my husband just fell"]),
    ("sign me up for PY101 please. my throat is tight", ["sign me up for PY101 please", "my throat is tight"]),
    ("how do I kill a python process?", []),
    ("", []),
])
def test_clauses_split_a_second_request_off(text, expected):
    assert emergency.clauses(text) == expected


def test_tiers_take_the_trained_thresholds_and_config_overrides():
    trained = {"emergency_strict": 0.97, "emergency": 0.8}
    tiers = emergency.Tiers.from_config({"moderate": 0.5}, trained, "test")
    assert (tiers.strong, tiers.moderate, tiers.intent_strong, tiers.intent_moderate) == (0.97, 0.5, 0.9, 0.6)
    off = emergency.Tiers.from_config({"intent_moderate": None}, trained, "test")
    assert off.intent_moderate is None


def _tracker(text, intent, *, slot=None, earlier=None, loop=None, entities=None):
    """A real rasa-sdk Tracker with the open question (``slot``) and the message it asked about."""
    def user(t, i, ents=None, extra=None):
        parse = {"text": t, "intent": {"name": i, "confidence": 1.0}, "entities": ents or [],
                 "intent_ranking": [{"name": i, "confidence": 1.0}], **(extra or {})}
        return {"event": "user", "text": t, "parse_data": parse}
    events = []
    if earlier:
        events += [{"event": "action", "name": "action_listen"}, earlier,
                   {"event": "action", "name": "action_emergency_triage"},
                   {"event": "bot", "text": "Is this happening right now?"},
                   {"event": "slot", "name": "emergency_triage", "value": slot},
                   ]
    latest = user(text, intent, entities)
    events += [{"event": "action", "name": "action_listen"}, latest]
    return Tracker.from_dict({
        "sender_id": "t", "slots": {"emergency_triage": slot}, "latest_message": latest["parse_data"],
        "events": events, "paused": False, "followup_action": None,
        "active_loop": {"name": loop} if loop else {}, "latest_action_name": "action_listen"}), user


TRIAGED = {"event": "user", "text": "where is order 10004, my arm feels heavy",
           "parse_data": {"text": "where is order 10004, my arm feels heavy",
                          "intent": {"name": "emergency_triage", "confidence": 1.0},
                          "intent_ranking": [{"name": "emergency_triage", "confidence": 1.0},
                                             {"name": "check_order_status", "confidence": 0.8}],
                          "entities": [{"entity": "order_id", "value": "10004"},
                                       {"entity": "emergency_type", "value": "medical"}],
                          "emergency_check": {"tier": "moderate", "original_intent": "check_order_status"}}}


async def test_a_moderate_signal_asks_with_the_number_in_the_question():
    tracker, _ = _tracker(TRIAGED["text"], "emergency_triage", entities=[{"entity": "emergency_type",
                                                                          "value": "medical"}])
    dispatcher = CollectingDispatcher()
    events = await ActionEmergencyTriage().run(dispatcher, tracker, {})
    assert events == [SlotSet("emergency_triage", "medical")]
    assert [m["response"] for m in dispatcher.messages] == ["utter_emergency_triage"]
    domain = Domain.load(str(ROOT / "domain.yml"))
    [question] = domain.responses["utter_emergency_triage"]
    assert "112" in question["text"] and "yes or no" in question["text"]
    assert [b["payload"] for b in question["buttons"]] == ["/affirm", "/deny"]


@pytest.mark.parametrize("text, intent", [("yes", "affirm"), ("/affirm", "affirm"), ("yeah it's now", "chitchat"),
                                          ("I'm not sure", "nlu_fallback"), ("he's not breathing", "emergency")])
async def test_yes_unclear_or_a_new_signal_escalates_and_ends_the_form(text, intent):
    entities = [{"entity": "emergency_type", "value": "medical"}] if intent == "emergency" else None
    tracker, _ = _tracker(text, intent, slot="self_harm", earlier=TRIAGED, loop="return_form", entities=entities)
    dispatcher = CollectingDispatcher()
    events = await ActionEmergencyTriage().run(dispatcher, tracker, {})
    assert events == [SlotSet("emergency_triage", None), SdkActiveLoop(None), SlotSet("requested_slot", None)]
    expected = "utter_emergency" if intent == "emergency" else "utter_crisis_support"
    assert [m["response"] for m in dispatcher.messages] == [expected]


async def test_no_replays_the_original_message_with_its_own_intent():
    tracker, _ = _tracker("no", "deny", slot="medical", earlier=TRIAGED)
    dispatcher = CollectingDispatcher()
    events = await ActionEmergencyTriage().run(dispatcher, tracker, {})
    assert dispatcher.messages == []
    assert events[:3] == [UserUtteranceReverted(), UserUtteranceReverted(), SdkActionExecuted("action_listen")]
    replay = events[3]
    assert replay["event"] == "user" and replay["text"] == TRIAGED["text"]
    parse = replay["parse_data"]
    assert parse["intent"]["name"] == "check_order_status"
    assert [e["entity"] for e in parse["entities"]] == ["order_id"]
    assert parse["emergency_check"]["triage_answer"] == "no"
    assert emergency.triage_answered(parse)


@pytest.mark.parametrize("ranking, expected", [
    ([{"name": "emergency", "confidence": 0.95}, {"name": "chitchat", "confidence": 0.6}], "chitchat"),
    ([{"name": "emergency", "confidence": 0.95}, {"name": "symptom_info", "confidence": 0.1}], "nlu_fallback"),
    ([{"name": "emergency", "confidence": 0.95}], "nlu_fallback"),
])
async def test_no_never_replays_the_message_as_an_emergency(ranking, expected):
    """The NLU's own 'emergency' (the tier was moderate) is not what the user asked once they said no."""
    walk = {"event": "user", "text": "I just got back from a long walk with my dog",
            "parse_data": {"text": "I just got back from a long walk with my dog",
                           "intent": {"name": "emergency_triage", "confidence": 1.0},
                           "intent_ranking": [{"name": "emergency_triage", "confidence": 1.0}, *ranking],
                           "entities": [{"entity": "emergency_type", "value": "medical"}],
                           "emergency_check": {"tier": "moderate", "original_intent": "emergency"}}}
    tracker, _ = _tracker("no", "deny", slot="medical", earlier=walk)
    events = await ActionEmergencyTriage().run(CollectingDispatcher(), tracker, {})
    parse = events[3]["parse_data"]
    assert parse["intent"]["name"] == expected and parse["entities"] == []
    assert {r["name"] for r in parse["intent_ranking"]}.isdisjoint({"emergency", "emergency_triage"})


async def test_another_request_closes_the_question_and_is_handled():
    tracker, _ = _tracker("what are your opening hours", "ask_opening_hours", slot="medical", earlier=TRIAGED)
    events = await ActionEmergencyTriage().run(CollectingDispatcher(), tracker, {})
    assert events[:3] == [UserUtteranceReverted(), SlotSet("emergency_triage", None),
                          SdkActionExecuted("action_listen")]
    assert events[3]["text"] == "what are your opening hours"
    assert events[3]["parse_data"]["intent"]["name"] == "ask_opening_hours"


@pytest.mark.parametrize("text, intent, answer", [
    ("no", "deny", "no"), ("nope, all good", "chitchat", "no"), ("No.", "nlu_fallback", "no"),
    ("yes", "affirm", "yes"), ("Y", "nlu_fallback", "yes"), ("maybe", "nlu_fallback", "unclear"),
    ("idk", "deny", "unclear"), ("where is my order", "check_order_status", "other"),
    ("my chest hurts", "emergency", "emergency"), ("", None, "other"),
])
def test_answers_are_read_from_intent_and_words(text, intent, answer):
    assert answer_of({"text": text, "intent": {"name": intent}}) == answer


# -- the policy ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rasa_domain():
    return Domain.load(str(ROOT / "domain.yml"))


def _policy(tmp_path, **overrides):
    config = {**EmergencyTriagePolicy.get_default_config(), **overrides}
    return EmergencyTriagePolicy.create(config, LocalModelStorage(tmp_path), Resource("triage"),
                                        ExecutionContext(GraphSchema({}), "test"))


def _core_tracker(intent, *, slot=None, after=None, loop=None):
    events = [ActionExecuted(ACTION_LISTEN_NAME)]
    if loop:
        events.append(ActiveLoop(loop))
    if slot:
        events.append(CoreSlotSet("emergency_triage", slot))
    events.append(UserUttered("text", intent={"name": intent, "confidence": 1.0}))
    if after:
        events.append(ActionExecuted(after))
    return DialogueStateTracker.from_events("someone", events, slots=Domain.load(str(ROOT / "domain.yml")).slots)


_predicted = predicted_action


def test_the_policy_asks_on_a_triage_turn_even_in_a_form(tmp_path, rasa_domain):
    policy = _policy(tmp_path)
    assert _predicted(policy, _core_tracker("emergency_triage", loop="return_form"), rasa_domain) == \
        "action_emergency_triage"
    assert policy.priority > 6  # above RulePolicy, which runs forms


def test_the_policy_reads_any_answer_while_the_question_is_open(tmp_path, rasa_domain):
    policy = _policy(tmp_path)
    for intent in ("affirm", "deny", "check_order_status", "nlu_fallback"):
        assert _predicted(policy, _core_tracker(intent, slot="medical"), rasa_domain) == "action_emergency_triage"


def test_a_strong_signal_escalates_even_when_a_form_could_fill_its_slot(tmp_path, rasa_domain):
    """'10008, but also my wife just fainted' inside the return form: the escalation, not the form."""
    policy = _policy(tmp_path)
    assert _predicted(policy, _core_tracker("emergency", loop="return_form"), rasa_domain) == \
        "action_emergency_escalation"
    assert _predicted(policy, _core_tracker("emergency", after="action_emergency_escalation"),
                      rasa_domain) == ACTION_LISTEN_NAME


def test_the_policy_listens_after_its_action_and_abstains_otherwise(tmp_path, rasa_domain):
    policy = _policy(tmp_path)
    assert _predicted(policy, _core_tracker("emergency_triage", after="action_emergency_triage"),
                      rasa_domain) == ACTION_LISTEN_NAME
    assert _predicted(policy, _core_tracker("affirm"), rasa_domain) is None  # a "yes" with no question open
    assert _predicted(policy, _core_tracker("check_order_status"), rasa_domain) is None


def test_the_policy_checks_the_domain(tmp_path, rasa_domain):
    policy = _policy(tmp_path, action="action_missing")
    with pytest.raises(InvalidConfigException, match="action 'action_missing' is not in domain.yml"):
        policy.train([], rasa_domain)
    with pytest.raises(InvalidConfigException, match="'slot' must be a non-empty string"):
        _policy(tmp_path, slot="")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "x" * 10_000,
        "\x00\x01\x02\ufffd binary \udcff noise",
        "помогите 助けて help ayuda",
        "yes",
        ". . . ;;; !!!",
        "also, and, btw, ps",
    ],
)
def test_odd_input_gets_a_verdict_never_an_exception(text):
    from rasa_safe_hybrid.config import load_plugin_config

    signal = load_plugin_config(ROOT / "config.yml").emergency
    assessment = signal.assess(text, history=["hi", text])
    assert assessment.tier in (None, emergency.MODERATE, emergency.STRONG)
    assert assessment.to_dict()["verdicts"]
