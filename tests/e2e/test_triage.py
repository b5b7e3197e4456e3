"""The triage dialogue over REST with the real Rasa and action server processes: a moderate
emergency signal asks first, "no" carries on with the original request (a form resumes),
"yes" escalates, and the language model never answers while the question is open (asserted
on the tracker's events). The texts are found by their tier through the HTTP API's parse
endpoint, so a retrain that moves a score picks another text, and none left fails."""

from __future__ import annotations

from typing import List, Optional

import pytest
import requests

from scripts.harness import HTTP_TIMEOUT_S

pytestmark = pytest.mark.e2e

TRIAGE = "If someone is hurt or in danger, call your local emergency number now"
EMERGENCY = "This sounds like it could be a medical emergency."
# Candidates for a moderate signal beside an order question (a body feeling without alarm words).
FEELINGS = [
    "my arm feels weird and heavy",
    "I feel a bit dizzy and strange",
    "my chest feels a bit funny",
    "my head is spinning a little",
    "I feel faint and shaky",
    "I feel really unwell and my vision is blurry",
    "my heart is racing and I feel odd",
    "I feel lightheaded and sweaty",
    "my face feels a bit numb",
    "I'm short of breath after the stairs and it's not passing",
    "I feel off and my hands are tingling",
    "my stomach hurts a lot and I feel hot",
]
MODERATE_WITH_ORDER = [f"where is order 10002? also {feeling}" for feeling in FEELINGS]
MODERATE_IN_FORM = list(FEELINGS)


def _tier(servers, text: str) -> Optional[str]:
    response = requests.post(f"{servers.rasa_url}/model/parse", params={"token": servers.token},
                             json={"text": text}, timeout=HTTP_TIMEOUT_S)
    response.raise_for_status()
    return (response.json().get("emergency_check") or {}).get("tier")


def _moderate(servers, candidates: List[str]) -> str:
    found = [t for t in candidates if _tier(servers, t) == "moderate"]
    assert found, f"none of the candidates is on the moderate tier any more: {candidates}"
    return found[0]


def _model_generated(tracker) -> bool:
    return any(e.get("event") == "slot" and e.get("name") == "llm_trace" and "new_tokens" in (e.get("value") or {})
               for e in tracker["events"])


def test_no_answers_the_original_request(servers):
    text = _moderate(servers, MODERATE_WITH_ORDER)
    sender = "e2e-triage-no"
    [question] = servers.texts(sender, text)
    assert question.startswith(TRIAGE) and "112" in question
    buttons = servers.say("e2e-triage-buttons", text)[0].get("buttons") or []
    assert [b["payload"] for b in buttons] == ["/affirm", "/deny"]
    replies = servers.texts(sender, "no")
    assert any("10002" in r for r in replies), replies  # the order status, as if asked directly
    tracker = servers.tracker(sender)
    assert tracker["slots"].get("emergency_triage") is None
    assert not _model_generated(tracker)
    assert tracker["latest_message"]["intent"]["name"] == "check_order_status"
    assert tracker["latest_message"]["emergency_check"]["triage_answer"] == "no"


def test_yes_escalates(servers):
    text = _moderate(servers, MODERATE_WITH_ORDER)
    sender = "e2e-triage-yes"
    assert servers.texts(sender, text)[0].startswith(TRIAGE)
    [reply] = servers.texts(sender, "/affirm")
    assert reply.startswith(EMERGENCY)
    tracker = servers.tracker(sender)
    assert tracker["slots"].get("emergency_triage") is None and not _model_generated(tracker)


def test_inside_a_form_no_resumes_the_form(servers):
    sender = "e2e-triage-form"
    first = servers.texts(sender, "I want to return something")
    assert servers.tracker(sender)["active_loop"].get("name") == "return_form", first
    text = _moderate(servers, MODERATE_IN_FORM)
    assert servers.texts(sender, text)[0].startswith(TRIAGE)
    assert servers.tracker(sender)["active_loop"].get("name") == "return_form"
    replies = servers.texts(sender, "no")
    tracker = servers.tracker(sender)
    assert tracker["active_loop"].get("name") == "return_form", replies  # the form resumes
    assert replies and not replies[0].startswith((TRIAGE, EMERGENCY)), replies
    after = servers.texts(sender, "10008")  # the form goes on with the order number
    assert servers.tracker(sender)["slots"].get("order_id") == "10008", after
    assert not _model_generated(servers.tracker(sender))


def test_inside_a_form_yes_ends_it(servers):
    sender = "e2e-triage-form-yes"
    servers.texts(sender, "I want to return something")
    text = _moderate(servers, MODERATE_IN_FORM)
    assert servers.texts(sender, text)[0].startswith(TRIAGE)
    [reply] = servers.texts(sender, "yes")
    assert reply.startswith(EMERGENCY)
    assert not servers.tracker(sender)["active_loop"].get("name")


def test_an_emergency_beside_an_order_number_escalates(servers):
    sender = "e2e-mixed"
    replies = servers.texts(sender, "hey, where's order 10003? also I think I'm having a heart attack")
    assert replies[0].startswith(EMERGENCY), replies
    assert not _model_generated(servers.tracker(sender))


@pytest.mark.parametrize("text", ["yes", "no", "x" * 10_000, "\x00\x01\x02\ufffd\ud7ff binary",
                                  "помогите 助けて help ayuda"])
def test_odd_input_gets_a_reply_never_an_error(servers, text):
    """A "yes" with no open question, very long, noise and mixed scripts: a normal reply."""
    sender = f"e2e-odd-{abs(hash(text)) % 10_000}"
    replies = servers.say(sender, text)
    assert isinstance(replies, list)
    assert servers.tracker(sender)["slots"].get("emergency_triage") is None


def test_an_empty_message_is_refused_with_a_clear_error(servers):
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", headers=servers.auth,
                             json={"sender": "e2e-empty", "message": ""}, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 400 and "empty" in response.json()["error"]


def test_an_emergency_inside_a_form_that_also_fills_its_slot_escalates(servers):
    sender = "e2e-form-slot-and-emergency"
    servers.texts(sender, "I want to return something")
    replies = servers.texts(sender, "10008, and my husband just collapsed and isn't breathing")
    assert replies[0].startswith(EMERGENCY), replies
    assert not servers.tracker(sender)["active_loop"].get("name")


def test_no_is_never_answered_with_the_escalation_it_denied(servers):
    """A moderate signal whose NLU intent was 'emergency': after "no" the message is an ordinary
    turn (replayed as 'emergency' it used to escalate anyway; found on the review page)."""
    def nlu_said_emergency(text: str) -> bool:
        parse = requests.post(f"{servers.rasa_url}/model/parse", params={"token": servers.token},
                              json={"text": text}, timeout=HTTP_TIMEOUT_S).json()
        check = parse.get("emergency_check") or {}
        return check.get("tier") == "moderate" and check.get("original_intent") == "emergency"

    candidates = ["I just got back from a long walk with my dog", "there was a car accident outside",
                  *FEELINGS]
    found = [t for t in candidates if nlu_said_emergency(t)]
    assert found, f"no candidate is a moderate signal the NLU calls 'emergency' any more: {candidates}"
    sender = "e2e-triage-no-emergency-intent"
    [question] = servers.texts(sender, found[0])
    assert question.startswith(TRIAGE)
    replies = servers.texts(sender, "no")
    assert replies and not any(EMERGENCY in r or TRIAGE in r for r in replies), replies
    tracker = servers.tracker(sender)
    assert tracker["latest_message"]["intent"]["name"] not in ("emergency", "emergency_triage")
    assert tracker["latest_message"]["emergency_check"]["triage_answer"] == "no"
