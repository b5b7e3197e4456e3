"""A custom action that cannot run answers with a response, never with silence."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

import aiohttp
import pytest
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig
from rasa_safe_hybrid.actions import action_failure
from rasa_safe_hybrid.actions.action_failure import (
    LAST_RESORT,
    ActionFailureHandler,
    FailureResponses,
    endpoint_timeout,
)

from scripts.harness import free_port

DOMAIN = Domain.from_dict({
    "intents": ["order_status", "emergency", "return_item"],
    "entities": ["emergency_type"],
    "slots": {"order_id": {"type": "text", "mappings": [{"type": "custom"}]}},
    "forms": {"return_form": {"required_slots": ["order_id"]}},
    "responses": {
        "utter_action_failed": [{"text": "Sorry, something went wrong on my side."}],
        "utter_emergency": [{"text": "Call 112 now."}],
        "utter_crisis_support": [{"text": "Crisis line: 988."}],
    },
    "actions": ["action_check_order_status"],
})
RESPONSES = FailureResponses(
    failed="utter_action_failed",
    emergency=lambda kind: "utter_crisis_support" if kind == "self_harm" else "utter_emergency",
)


def tracker(intent: str, entities: Any = (), form: bool = False) -> DialogueStateTracker:
    events: List[Any] = [ActionExecuted("action_listen")]
    if form:
        events += [ActiveLoop("return_form"), SlotSet("requested_slot", "order_id")]
    events.append(UserUttered("text", intent={"name": intent, "confidence": 1.0}, entities=list(entities)))
    return DialogueStateTracker.from_events("user", events, DOMAIN.slots)


def run(handler: ActionFailureHandler, original: Any, state: DialogueStateTracker,
        endpoint: Optional[EndpointConfig] = None) -> List[Any]:
    action = RemoteAction("action_check_order_status", endpoint or EndpointConfig("http://127.0.0.1:1/webhook"))
    return asyncio.run(handler.run(original, action, CollectingOutputChannel(),
                                   TemplatedNaturalLanguageGenerator(DOMAIN.responses), state, DOMAIN))


def refused() -> RasaException:
    """What Rasa raises when the connection was refused (aiohttp's error as context)."""
    try:
        try:
            raise aiohttp.ClientConnectorError(None, ConnectionRefusedError(111, "Connection refused"))
        except aiohttp.ClientConnectionError as cause:
            raise RasaException("Failed to execute custom action. Couldn't connect") from cause
    except RasaException as error:
        return error


def test_an_exception_is_answered_with_the_apology_and_recorded():
    async def original(*_: Any) -> List[Any]:
        raise RasaException("Failed to execute custom action 'action_check_order_status'")

    [event] = run(ActionFailureHandler(RESPONSES), original, tracker("order_status"))
    assert isinstance(event, BotUttered)
    assert event.text == "Sorry, something went wrong on my side."
    record = action_failure.failure_record(event.metadata)
    assert record["action"] == "action_check_order_status"
    assert "Failed to execute custom action" in record["cause"]


def test_a_refused_connection_is_retried_once_then_the_action_runs():
    calls = []

    async def original(*_: Any) -> List[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise refused()
        return [SlotSet("order_id", "10002")]

    events = run(ActionFailureHandler(RESPONSES, retry_delay=0), original, tracker("order_status"))
    assert events == [SlotSet("order_id", "10002")]
    assert len(calls) == 2


def test_a_refused_connection_twice_is_answered():
    calls = []

    async def original(*_: Any) -> List[Any]:
        calls.append(1)
        raise refused()

    [event] = run(ActionFailureHandler(RESPONSES, retry_delay=0), original, tracker("order_status"))
    assert event.text == "Sorry, something went wrong on my side."
    assert len(calls) == 2


def test_other_failures_are_not_retried():
    calls = []

    async def original(*_: Any) -> List[Any]:
        calls.append(1)
        raise RasaException("HTTP 500")

    run(ActionFailureHandler(RESPONSES, retry_delay=0), original, tracker("order_status"))
    assert len(calls) == 1


def test_a_hung_call_is_cut_at_the_endpoint_timeout():
    async def original(*_: Any) -> List[Any]:
        await asyncio.sleep(3600)
        return []

    endpoint = EndpointConfig("http://127.0.0.1:1/webhook", timeout=0.2)
    [event] = run(ActionFailureHandler(RESPONSES), original, tracker("order_status"), endpoint)
    assert event.text == "Sorry, something went wrong on my side."
    assert "no answer within 0.2 s" in action_failure.failure_record(event.metadata)["cause"]


def test_a_form_rejection_is_a_decision_and_passes_through():
    async def original(*_: Any) -> List[Any]:
        raise ActionExecutionRejection("validate_return_form")

    with pytest.raises(ActionExecutionRejection):
        run(ActionFailureHandler(RESPONSES), original, tracker("order_status"))


@pytest.mark.parametrize("entities, expected", [
    ([], "Call 112 now."),
    ([{"entity": "emergency_type", "value": "medical"}], "Call 112 now."),
    ([{"entity": "emergency_type", "value": "self_harm"}], "Crisis line: 988."),
])
def test_an_emergency_turn_gets_the_emergency_response_and_ends_the_form(entities, expected):
    async def original(*_: Any) -> List[Any]:
        raise RasaException("Couldn't connect")

    events = run(ActionFailureHandler(RESPONSES), original, tracker("emergency", entities, form=True))
    assert events[0].text == expected
    assert events[1:] == [ActiveLoop(None), SlotSet("requested_slot", None)]


def test_a_response_missing_from_the_domain_still_answers():
    async def original(*_: Any) -> List[Any]:
        raise RasaException("down")

    missing = FailureResponses(failed="utter_not_in_domain", emergency=lambda kind: "utter_emergency")
    [event] = run(ActionFailureHandler(missing), original, tracker("order_status"))
    assert event.text == LAST_RESORT


@pytest.mark.parametrize("value, expected", [(5, 5.0), ("2.5", 2.5), ("soon", 30.0), (-1, 30.0), (None, 30.0)])
def test_endpoint_timeout_reads_the_endpoint_config(value, expected):
    config = {} if value is None else {"timeout": value}
    assert endpoint_timeout(EndpointConfig("http://x/webhook", **config)) == expected


def test_install_routes_rasas_remote_action_through_the_handler_against_a_closed_port():
    """The real RemoteAction and aiohttp against a port nothing listens on."""
    original = RemoteAction.run
    action_failure.install(ActionFailureHandler(RESPONSES, retry_delay=0))
    try:
        action_failure.install(ActionFailureHandler(RESPONSES, retry_delay=0))  # idempotent
        action = RemoteAction("action_check_order_status",
                              EndpointConfig(f"http://127.0.0.1:{free_port()}/webhook"))
        [event] = asyncio.run(action.run(CollectingOutputChannel(),
                                         TemplatedNaturalLanguageGenerator(DOMAIN.responses),
                                         tracker("order_status"), DOMAIN))
        assert event.text == "Sorry, something went wrong on my side."
        assert "Couldn't connect" in action_failure.failure_record(event.metadata)["cause"]
    finally:
        action_failure.uninstall()
    assert RemoteAction.run is original


def test_a_failed_form_validation_does_not_accept_the_slots_of_this_message():
    async def original(*_: Any) -> List[Any]:
        raise RasaException("down")

    state = DialogueStateTracker.from_events("user", [
        ActionExecuted("action_listen"), UserUttered("return 10008", intent={"name": "return_item"}),
        SlotSet("order_id", "10008"), ActiveLoop("return_form"), SlotSet("requested_slot", "order_id"),
        ActionExecuted("action_listen"), UserUttered("no, 10002", intent={"name": "return_item"}),
        SlotSet("order_id", "10002"),
    ], DOMAIN.slots)
    action = RemoteAction("validate_return_form", EndpointConfig("http://127.0.0.1:1/webhook"))
    events = asyncio.run(ActionFailureHandler(RESPONSES).run(
        original, action, CollectingOutputChannel(), TemplatedNaturalLanguageGenerator(DOMAIN.responses),
        state, DOMAIN))
    assert events[0].text == "Sorry, something went wrong on my side."
    assert events[1:] == [SlotSet("order_id", "10008")]  # the validated value, not the new one
