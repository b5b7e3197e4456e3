"""Customer service actions, with a real Tracker and CollectingDispatcher."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.customer_service import (
    ActionCheckOrderStatus,
    ActionHumanHandoff,
    ActionSubmitReturn,
    ValidateReturnForm,
)
from tests.helpers import make_tracker, sent


async def test_order_status_of_a_shipped_order(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("where is order 10002", "check_order_status", slots={"order_id": "10002"})
    events = await ActionCheckOrderStatus().run(dispatcher, tracker, domain)
    assert events == []
    assert sent(dispatcher) == [
        {
            "response": "utter_order_status",
            "template": "utter_order_status",
            "order_id": "10002",
            "item": "Mechanical keyboard",
            "status": "shipped",
            "detail": "It is on its way with UPS (tracking 1Z-445-901) and should arrive by 2026-12-01.",
        }
    ]


async def test_order_status_of_an_unknown_order_clears_the_slot(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("where is order 99999", "check_order_status", slots={"order_id": "99999"})
    events = await ActionCheckOrderStatus().run(dispatcher, tracker, domain)
    assert events == [SlotSet("order_id", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_unknown_order"]
    assert dispatcher.messages[0]["order_id"] == "99999"


@pytest.mark.parametrize("value", [None, "", "abc", "1234", "x" * 10_000])
async def test_order_status_without_a_usable_number(store, domain, value):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("where is my order", "check_order_status", slots={"order_id": value})
    events = await ActionCheckOrderStatus().run(dispatcher, tracker, domain)
    assert events == [SlotSet("order_id", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_order_id_missing"]


async def _validate_return(domain, **slot_events):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        str(next(iter(slot_events.values()))),
        "inform",
        active_loop="return_form",
        slots={"requested_slot": next(iter(slot_events))},
        slot_events=slot_events,
    )
    events = await ValidateReturnForm().run(dispatcher, tracker, domain)
    return events, [m["response"] for m in dispatcher.messages]


async def test_return_form_accepts_a_delivered_order(store, domain):
    events, responses = await _validate_return(domain, order_id="ORD-10008")
    assert events == [SlotSet("order_id", "10008")]
    assert responses == []


async def test_return_form_rejects_an_unknown_order(store, domain):
    events, responses = await _validate_return(domain, order_id="55555")
    assert events == [SlotSet("order_id", None)]
    assert responses == ["utter_unknown_order"]


async def test_return_form_rejects_an_order_not_yet_delivered(store, domain):
    events, responses = await _validate_return(domain, order_id="10003")
    assert events == [SlotSet("order_id", None)]
    assert responses == ["utter_return_not_possible"]


async def test_return_form_rejects_text_without_a_number(store, domain):
    events, responses = await _validate_return(domain, order_id="my order")
    assert events == [SlotSet("order_id", None)]
    assert responses == ["utter_order_id_missing"]


async def test_return_reason_is_cleaned(store, domain):
    events, responses = await _validate_return(domain, return_reason="  it\x00 arrived\n broken ")
    assert events == [SlotSet("return_reason", "it arrived broken")]
    assert responses == []


@pytest.mark.parametrize("reason", ["", "   ", "\x07\x08", "x" * 501])
async def test_return_reason_empty_or_too_long_is_rejected(store, domain, reason):
    events, responses = await _validate_return(domain, return_reason=reason)
    assert events == [SlotSet("return_reason", None)]
    assert responses == ["utter_invalid_reason"]


async def test_submit_return_records_it_and_tells_the_reference(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        "it arrived broken", "inform", slots={"order_id": "10008", "return_reason": "it arrived broken"}
    )
    events = await ActionSubmitReturn().run(dispatcher, tracker, domain)
    assert events == [SlotSet("return_reason", None)]
    assert sent(dispatcher) == [
        {
            "response": "utter_return_created",
            "template": "utter_return_created",
            "order_id": "10008",
            "reference": "RET-000001",
        }
    ]
    assert store.count("returns") == 1


async def test_handoff_opens_a_ticket_with_the_users_words(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("I want to talk to a human", "request_human", sender_id="alice")
    events = await ActionHumanHandoff().run(dispatcher, tracker, domain)
    assert events == []
    assert [(m["response"], m["reference"]) for m in dispatcher.messages] == [
        ("utter_handoff", "TCK-000001")
    ]
    ticket = store.get_ticket("TCK-000001")
    assert ticket["sender_id"] == "alice"
    assert ticket["topic"] == "request_human"
    assert ticket["last_message"] == "I want to talk to a human"


async def test_handoff_truncation_keeps_overlong_messages_out_of_the_ticket(store, domain):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("a" * 10_000, "complain")
    await ActionHumanHandoff().run(dispatcher, tracker, domain)
    assert store.get_ticket("TCK-000001")["last_message"] == ""
    assert dispatcher.messages[0]["response"] == "utter_handoff"
