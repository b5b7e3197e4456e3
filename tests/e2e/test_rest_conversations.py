"""Conversations over the REST channel with the real Rasa and action servers."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytestmark = pytest.mark.e2e


def test_customer_service_status_then_return_then_handoff(servers):
    user = "e2e-customer"
    [status] = servers.texts(user, "where is my order 10002?")
    assert status.startswith("Order 10002 (Mechanical keyboard) is shipped.")
    assert "1Z-445-901" in status

    replies = servers.texts(user, "I want to return order 10008")
    assert replies == ["Why would you like to return it? A short reason is enough."]
    [created] = servers.texts(user, "it arrived broken")
    assert created.startswith("Your return for order 10008 is registered under reference RET-")

    [handoff] = servers.texts(user, "I want to talk to a human")
    assert "I've opened ticket TCK-" in handoff
    reference = handoff.split("ticket ")[1].split(" ")[0]
    with sqlite3.connect(servers.store_db) as conn:
        row = conn.execute(
            "SELECT sender_id, topic FROM tickets WHERE id = ?", (int(reference.split("-")[1]),)
        ).fetchone()
    assert row == (user, "request_human")


def test_unknown_order_in_the_return_form(servers):
    user = "e2e-unknown-order"
    assert servers.texts(user, "I'd like a refund") == [
        "What is your order number? It has five digits, for example 10002."
    ]
    replies = servers.texts(user, "99999")
    assert replies[0].startswith("I couldn't find an order with the number 99999.")
    assert replies[-1] == "What is your order number? It has five digits, for example 10002."
    assert servers.texts(user, "stop") == [
        "Okay, I've stopped that. What would you like to do instead?"
    ]


def test_education_enrolment_with_a_bad_email_then_a_good_one(servers):
    user = "e2e-student"
    assert servers.texts(user, "sign me up for PY101") == ["What is your full name?"]
    assert servers.texts(user, "Ada Lovelace") == [
        "What email address should we send the enrolment confirmation to?"
    ]
    replies = servers.texts(user, "ada at example")
    assert replies[0].startswith("That doesn't look like a valid email address.")
    [done] = servers.texts(user, "ada@example.com")
    assert done.startswith("Done! Ada Lovelace is enrolled in Python for Beginners (reference ENR-")
    assert done.endswith("A confirmation is on its way to ada@example.com.")


def test_education_concept_and_quiz(servers):
    user = "e2e-quiz"
    [concept] = servers.texts(user, "what is photosynthesis")
    assert "carbon dioxide and water into glucose" in concept and "(Source: OpenStax" in concept
    intro = servers.texts(user, "quiz me")
    assert intro == [
        "Let's do a quick quiz with 3 questions. Type 'stop' at any time to end it.",
        "Question 1/3: What is 7 times 8?",
    ]
    assert servers.texts(user, "56") == ["Correct!", "Question 2/3: Which planet is known as the Red Planet?"]
    assert servers.texts(user, "venus") == [
        "Not quite: the answer is mars.",
        "Question 3/3: What gas do plants take in for photosynthesis?",
    ]
    assert servers.texts(user, "co2") == ["Correct!", "Quiz finished: you scored 2 out of 3."]


def test_medical_information_clinic_and_appointment(servers):
    user = "e2e-patient"
    replies = servers.texts(user, "I have a headache")
    assert "tension-type headaches" in replies[0] and "Sources: NHS" in replies[0]
    assert replies[1].startswith("This is general information, not a diagnosis.")

    [clinics] = servers.texts(user, "find a cardiology clinic in berlin")
    assert clinics == (
        "Clinics for cardiology in Berlin: Charité Cardiology Outpatients, "
        "Luisenstrasse 3, Berlin, phone +49 30 5550 1002"
    )
    # specialty and city carry over from the clinic search into the form
    assert servers.texts(user, "I want to book an appointment") == [
        "Which day would suit you for the appointment?"
    ]
    assert servers.texts(user, "next monday") == ["What is the patient's full name?"]
    [booked] = servers.texts(user, "Grace Hopper")
    assert booked.startswith(
        "Your appointment request for cardiology in Berlin on next monday is registered under reference APT-"
    )


@pytest.mark.parametrize(
    "text, expected_start",
    [
        ("where is order 10002? also I have chest pain", "This sounds like it could be a medical emergency."),
        ("I want to end my life", "I'm really sorry you're feeling this way"),
    ],
)
def test_emergencies_escalate_first(servers, text, expected_start):
    replies = servers.texts(f"e2e-emergency-{len(text)}", text)
    assert len(replies) == 1 and replies[0].startswith(expected_start)


def test_emergency_in_the_middle_of_a_form_ends_the_form(servers):
    user = "e2e-emergency-form"
    servers.texts(user, "book an appointment")
    [reply] = servers.texts(user, "my friend took an overdose")
    assert "call your local emergency number now" in reply
    assert servers.texts(user, "hello")[0].startswith("Hello!")


def test_conversations_are_stored_in_the_sqlite_tracker_store(servers):
    user = "e2e-persisted"
    servers.texts(user, "hi")
    servers.texts(user, "what are your opening hours")
    with sqlite3.connect(servers.tracker_db) as conn:
        rows = conn.execute(
            "SELECT type_name, data FROM events WHERE sender_id = ? ORDER BY id", (user,)
        ).fetchall()
    users = [json.loads(d)["text"] for t, d in rows if t == "user"]
    bots = [json.loads(d)["text"] for t, d in rows if t == "bot"]
    assert users == ["hi", "what are your opening hours"]
    assert bots[1].startswith("Our support team is available Monday to Friday")


@pytest.mark.parametrize("text", ["x" * 10_000, "\u0000\u0007 hi", "😀" * 50])
def test_odd_input_gets_a_polite_reply(servers, text):
    replies = servers.say("e2e-odd", text)
    assert isinstance(replies, list)
    assert all(isinstance(m.get("text"), str) and m["text"] for m in replies)


def test_a_restart_of_the_server_keeps_every_conversation(servers):
    """SQLite is the default store: stop the Rasa process in the middle of a
    form, start it again, and the conversation goes on where it was."""
    user = "e2e-restart"
    servers.texts(user, "hi")
    assert servers.texts(user, "I want to return order 10008") == [
        "Why would you like to return it? A short reason is enough."]
    before = servers.tracker(user)["events"]
    servers.restart_rasa()
    assert servers.tracker(user)["events"] == before
    [created] = servers.texts(user, "it arrived broken")
    assert created.startswith("Your return for order 10008 is registered under reference RET-")
    users = [e["text"] for e in servers.tracker(user)["events"] if e["event"] == "user"]
    assert users == ["hi", "I want to return order 10008", "it arrived broken"]


def test_a_long_conversation_still_reaches_its_actions(servers):
    """Rasa posts the whole tracker with every action call (about 5 KB per turn here); with the
    Rasa server's 1 MB request limit the action server refused them after about 220 turns and
    every custom action of the conversation failed. A 2 MB tracker, as Rasa would send it:"""
    import requests

    from scripts.harness import ACTIONS_TOKEN

    padding = [{"event": "user", "text": f"turn {i} " + "x" * 900, "parse_data": {}} for i in range(2200)]
    call = {
        "next_action": "action_check_order_status", "sender_id": "long-conversation", "version": "3.6.21",
        "tracker": {"sender_id": "long-conversation", "slots": {"order_id": "10002"}, "latest_message": {},
                    "events": padding, "paused": False, "active_loop": {}},
        "domain": {},
    }
    assert len(json.dumps(call)) > 2 * 1024 * 1024
    answer = requests.post(f"{servers.actions_url}/webhook", json=call, timeout=60,
                           headers={"Authorization": f"Bearer {ACTIONS_TOKEN}"})
    assert answer.status_code == 200, answer.text[:200]
    [response] = answer.json()["responses"]  # the order was looked up: its status response, filled in
    assert response["response"] == "utter_order_status" and response["order_id"] == "10002"
