"""Education actions and form validators, with a real Tracker and CollectingDispatcher."""

from __future__ import annotations

import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.education import (
    ActionAskQuizAnswer,
    ActionExplainConcept,
    ActionQuizResult,
    ActionSearchCourses,
    ActionStartQuiz,
    ActionSubmitEnrolment,
    ValidateEnrollForm,
    ValidateQuizForm,
)
from tests.helpers import entity as _entity
from tests.helpers import make_tracker


async def test_course_search_by_topic(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("statistics courses", "search_courses", _entity("topic", "statistics"))
    events = await ActionSearchCourses().run(dispatcher, tracker, domain)
    assert events == [SlotSet("topic", None)]
    [message] = dispatcher.messages
    assert message["response"] == "utter_courses_found"
    assert message["topic"] == "statistics"
    assert [part.split(" (")[0] for part in message["courses"].split("; ")] == [
        "Data Science with Python",
        "Introductory Statistics",
        "Machine Learning Foundations",
    ]


async def test_course_search_with_no_match(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("knitting courses", "search_courses", slots={"topic": "knitting"})
    events = await ActionSearchCourses().run(dispatcher, tracker, domain)
    assert events == [SlotSet("topic", None)]
    assert [(m["response"], m["topic"]) for m in dispatcher.messages] == [
        ("utter_no_courses", "knitting")
    ]


async def test_course_search_without_topic_lists_the_catalogue(store, domain):
    dispatcher = CollectingDispatcher()
    await ActionSearchCourses().run(dispatcher, make_tracker("courses?", "search_courses"), domain)
    assert dispatcher.messages[0]["courses"].count(";") == 9  # all ten courses


async def _validate_enrol(domain, slot, value):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        str(value), "inform", active_loop="enroll_form",
        slots={"requested_slot": slot}, slot_events={slot: value},
    )
    events = await ValidateEnrollForm().run(dispatcher, tracker, domain)
    return events, [m["response"] for m in dispatcher.messages]


@pytest.mark.parametrize("value", ["PY101", "py101", "Data Science with Python", "  academic   writing "])
async def test_enrol_course_by_code_or_title(store, domain, value):
    events, responses = await _validate_enrol(domain, "course", value)
    assert len(events) == 1 and events[0]["name"] == "course" and events[0]["value"]
    assert responses == []


async def test_enrol_unknown_course_lists_the_catalogue(store, domain):
    events, responses = await _validate_enrol(domain, "course", "Underwater basket weaving")
    assert events == [SlotSet("course", None)]
    assert responses == ["utter_unknown_course"]


@pytest.mark.parametrize(
    "value, expected",
    [("ADA@Example.com", "ada@example.com"), ("my.name+tag@uni.ac.uk", "my.name+tag@uni.ac.uk")],
)
async def test_enrol_valid_email(store, domain, value, expected):
    events, responses = await _validate_enrol(domain, "email", value)
    assert events == [SlotSet("email", expected)]
    assert responses == []


@pytest.mark.parametrize(
    "value", ["ada@", "ada.example.com", "ada@example", "a b@example.com", "", "x" * 300 + "@a.com"]
)
async def test_enrol_malformed_email_is_rejected(store, domain, value):
    events, responses = await _validate_enrol(domain, "email", value)
    assert events == [SlotSet("email", None)]
    assert responses == ["utter_invalid_email"]


@pytest.mark.parametrize(
    "value, expected", [("ada lovelace", "Ada Lovelace"), ("Grace Hopper", "Grace Hopper")]
)
async def test_enrol_valid_name(store, domain, value, expected):
    events, responses = await _validate_enrol(domain, "student_name", value)
    assert events == [SlotSet("student_name", expected)]
    assert responses == []


@pytest.mark.parametrize("value", ["", "12345", "ada@example.com", "x" * 101, "!!!"])
async def test_enrol_invalid_name_is_rejected(store, domain, value):
    events, responses = await _validate_enrol(domain, "student_name", value)
    assert events == [SlotSet("student_name", None)]
    assert responses == ["utter_invalid_name"]


async def test_submit_enrolment(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        "ada@example.com", "inform",
        slots={"course": "PY101", "student_name": "Ada Lovelace", "email": "ada@example.com"},
    )
    events = await ActionSubmitEnrolment().run(dispatcher, tracker, domain)
    assert events == [SlotSet("course", None)]
    [message] = dispatcher.messages
    assert (message["response"], message["course"], message["reference"]) == (
        "utter_enrolment_created", "Python for Beginners", "ENR-000001"
    )
    assert store.count("enrolments") == 1


@pytest.mark.parametrize("concept", ["photosynthesis", "Recursion", "std dev"])
async def test_explain_a_known_concept_with_its_source(store, domain, concept):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(f"explain {concept}", "explain_concept", _entity("concept", concept))
    events = await ActionExplainConcept().run(dispatcher, tracker, domain)
    assert events == [SlotSet("concept", None)]
    [message] = dispatcher.messages
    assert message["response"] == "utter_concept"
    assert message["summary"] and message["source"]


async def test_an_unknown_concept_goes_to_the_llm_action_which_answers_from_the_knowledge(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("explain quantum chromodynamics", "explain_concept")
    events = await ActionExplainConcept().run(dispatcher, tracker, domain)
    assert FollowupAction("action_llm_response") in events and dispatcher.messages == []


async def test_without_the_llm_action_an_unknown_concept_lists_what_is_known(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("explain quantum chromodynamics", "explain_concept")
    without = {**domain, "actions": [a for a in domain["actions"] if a != "action_llm_response"]}
    await ActionExplainConcept().run(dispatcher, tracker, without)
    [message] = dispatcher.messages
    assert message["response"] == "utter_unknown_concept"
    assert "photosynthesis" in message["terms"]


async def test_quiz_loop_keeps_score_in_slots(store, domain):
    dispatcher = CollectingDispatcher()
    events = await ActionStartQuiz().run(dispatcher, make_tracker("quiz me", "start_quiz"), domain)
    assert events == [SlotSet("quiz_index", 0.0), SlotSet("quiz_score", 0.0), SlotSet("quiz_answer", None)]
    assert dispatcher.messages[0]["count"] == 3

    slots = {"quiz_index": 0.0, "quiz_score": 0.0, "requested_slot": "quiz_answer"}
    answers = ["fifty-six", "Venus", "CO2"]
    expected = [
        ("utter_quiz_correct", [SlotSet("quiz_answer", None), SlotSet("quiz_index", 1.0), SlotSet("quiz_score", 1.0)]),
        ("utter_quiz_wrong", [SlotSet("quiz_answer", None), SlotSet("quiz_index", 2.0), SlotSet("quiz_score", 1.0)]),
        ("utter_quiz_correct", [SlotSet("quiz_answer", "CO2"), SlotSet("quiz_index", 3.0), SlotSet("quiz_score", 2.0)]),
    ]
    for answer, (response, expected_events) in zip(answers, expected, strict=False):
        ask = CollectingDispatcher()
        await ActionAskQuizAnswer().run(ask, make_tracker("", slots=slots), domain)
        assert ask.messages[0]["text"].startswith(f"Question {int(slots['quiz_index']) + 1}/3: ")
        dispatcher = CollectingDispatcher()
        tracker = make_tracker(answer, "inform", active_loop="quiz_form", slots=slots,
                               slot_events={"quiz_answer": answer})
        events = await ValidateQuizForm().run(dispatcher, tracker, domain)
        assert [m["response"] for m in dispatcher.messages] == [response]
        assert events == expected_events
        slots = {**slots, **{e["name"]: e["value"] for e in events}}

    dispatcher = CollectingDispatcher()
    events = await ActionQuizResult().run(dispatcher, make_tracker("", slots=slots), domain)
    assert [(m["response"], m["score"], m["total"]) for m in dispatcher.messages] == [
        ("utter_quiz_result", 2, 3)
    ]
    assert events == [SlotSet("quiz_answer", None), SlotSet("quiz_index", 0.0)]


async def test_quiz_reset_on_activation_is_not_marked_as_an_answer(store, domain):
    """action_start_quiz clears quiz_answer in the same turn the form validates."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        "quiz me", "start_quiz", active_loop="quiz_form",
        slots={"quiz_index": 0.0, "quiz_score": 0.0}, slot_events={"quiz_answer": None},
    )
    events = await ValidateQuizForm().run(dispatcher, tracker, domain)
    assert dispatcher.messages == []
    assert events == [SlotSet("quiz_answer", None)]
