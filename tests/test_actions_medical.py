"""Medical information actions, with a real Tracker and CollectingDispatcher."""

from __future__ import annotations

import pytest
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.medical import (
    ActionEmergencyEscalation,
    ActionFindClinic,
    ActionMedicationInfo,
    ActionSubmitAppointment,
    ActionSymptomInfo,
    ValidateAppointmentForm,
)
from tests.helpers import entity as _entity
from tests.helpers import make_tracker


async def test_symptom_info_has_sources_and_a_disclaimer(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("I have a migraine", "symptom_info", _entity("symptom", "migraine"))
    events = await ActionSymptomInfo().run(dispatcher, tracker, domain)
    assert events == [SlotSet("symptom", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_symptom_info", "utter_medical_disclaimer"]
    assert "tension-type" in dispatcher.messages[0]["summary"]
    assert "NHS" in dispatcher.messages[0]["sources"]


async def test_symptom_info_without_a_symptom_asks_for_one(store, domain):
    dispatcher = CollectingDispatcher()
    events = await ActionSymptomInfo().run(dispatcher, make_tracker("a symptom", "symptom_info"), domain)
    assert events == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_symptom"]


async def test_unknown_symptom_still_gets_the_disclaimer(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("my elbow glows", "symptom_info", slots={"symptom": "glowing elbow"})
    await ActionSymptomInfo().run(dispatcher, tracker, domain)
    assert [m["response"] for m in dispatcher.messages] == ["utter_unknown_symptom", "utter_medical_disclaimer"]
    assert "headache" in dispatcher.messages[0]["terms"]


async def test_medication_info_never_contains_a_dose(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("what is tylenol", "medication_info", slots={"medication": "tylenol"})
    events = await ActionMedicationInfo().run(dispatcher, tracker, domain)
    assert events == [SlotSet("medication", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_medication_info", "utter_medical_disclaimer"]
    text = dispatcher.messages[0]["summary"]
    assert text.startswith("Paracetamol")
    assert " mg" not in text and "tablet" not in text


async def test_every_curated_medicine_is_free_of_doses():
    import re

    from actions import knowledge

    for term in knowledge.terms(knowledge.MEDICATIONS_FILE):
        text = knowledge.lookup(knowledge.MEDICATIONS_FILE, term).text
        assert not re.search(r"\d+\s*(mg|ml|g|mcg|units?)\b", text, re.I), term


@pytest.mark.parametrize(
    "city, specialty, expected",
    [
        ("berlin", None, ["Charité Cardiology Outpatients", "Mitte Dermatology Centre", "Riverside General Practice"]),
        ("nyc", "heart doctor", ["Hudson Heart Institute"]),
        (None, "pediatrics", ["Seine Pediatric Centre", "St Mary's Paediatrics"]),
    ],
)
async def test_find_clinic(store, domain, city, specialty, expected):
    dispatcher = CollectingDispatcher()
    entities = (_entity("city", city) if city else []) + (_entity("specialty", specialty) if specialty else [])
    tracker = make_tracker("find a clinic", "find_clinic", entities)
    events = await ActionFindClinic().run(dispatcher, tracker, domain)
    [message] = dispatcher.messages
    assert message["response"] == "utter_clinics_found"
    assert [c.split(",")[0] for c in message["clinics"].split("; ")] == expected
    assert [e["name"] for e in events] == ["city", "specialty"]


async def test_find_clinic_with_no_match(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("", "find_clinic", _entity("city", "tokyo") + _entity("specialty", "cardiology"))
    await ActionFindClinic().run(dispatcher, tracker, domain)
    assert [m["response"] for m in dispatcher.messages] == ["utter_no_clinics"]


async def test_find_clinic_without_city_or_specialty_asks(store, domain):
    dispatcher = CollectingDispatcher()
    events = await ActionFindClinic().run(dispatcher, make_tracker("find a clinic", "find_clinic"), domain)
    assert events == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_city"]


async def _validate_appointment(domain, slot, value):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        str(value), "inform", active_loop="appointment_form",
        slots={"requested_slot": slot}, slot_events={slot: value},
    )
    events = await ValidateAppointmentForm().run(dispatcher, tracker, domain)
    return events, [m["response"] for m in dispatcher.messages]


@pytest.mark.parametrize(
    "slot, value, expected",
    [
        ("specialty", "a skin doctor please", "dermatology"),
        ("specialty", "Cardiology", "cardiology"),
        ("city", "New York City", "new york"),
        ("city", "london", "london"),
        ("appointment_date", "next Monday morning", "next Monday morning"),
        ("appointment_date", "2026-12-03", "2026-12-03"),
        ("patient_name", "barbara liskov", "Barbara Liskov"),
    ],
)
async def test_appointment_form_accepts(store, domain, slot, value, expected):
    events, responses = await _validate_appointment(domain, slot, value)
    assert events == [SlotSet(slot, expected)]
    assert responses == []


@pytest.mark.parametrize(
    "slot, value, response",
    [
        ("specialty", "astrology", "utter_ask_specialty"),
        ("city", "Atlantis", "utter_ask_city"),
        ("appointment_date", "whenever you like", "utter_invalid_date"),
        ("appointment_date", "next monday " * 20, "utter_invalid_date"),
        ("appointment_date", "", "utter_invalid_date"),
        ("patient_name", "", "utter_invalid_name"),
    ],
)
async def test_appointment_form_rejects(store, domain, slot, value, response):
    events, responses = await _validate_appointment(domain, slot, value)
    assert events == [SlotSet(slot, None)]
    assert responses == [response]


async def test_submit_appointment(store, domain):
    dispatcher = CollectingDispatcher()
    slots = {"specialty": "cardiology", "city": "berlin", "appointment_date": "next Monday",
             "patient_name": "Ada Lovelace"}
    events = await ActionSubmitAppointment().run(
        dispatcher, make_tracker("Ada Lovelace", "inform", slots=slots), domain
    )
    assert events == [SlotSet("appointment_date", None), SlotSet("patient_name", None)]
    [message] = dispatcher.messages
    assert (message["response"], message["city"], message["reference"]) == (
        "utter_appointment_created", "Berlin", "APT-000001"
    )
    assert store.count("appointments") == 1


async def test_emergency_outside_a_form(domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("I have chest pain", "emergency", _entity("emergency_type", "medical"))
    events = await ActionEmergencyEscalation().run(dispatcher, tracker, domain)
    assert events == [SlotSet("emergency_triage", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_emergency"]


async def test_emergency_inside_a_form_stops_it(domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        "I want to end my life", "emergency", _entity("emergency_type", "self_harm"),
        active_loop="appointment_form", slots={"requested_slot": "city"},
    )
    events = await ActionEmergencyEscalation().run(dispatcher, tracker, domain)
    assert events == [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("emergency_triage", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_crisis_support"]
