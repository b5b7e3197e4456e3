"""Customer service: order status, returns and the hand-off to a human."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, latest_text, reset_slots
from actions.store import get_store
from actions.validation import clean_text, normalise_order_id

logger = logging.getLogger(__name__)

RETURNABLE_STATUS = "delivered"


def _status_detail(order: Any) -> str:
    if order.status == "delivered":
        return f"It was delivered on {order.delivered}."
    if order.status == "shipped":
        return (
            f"It is on its way with {order.carrier} (tracking {order.tracking}) "
            f"and should arrive by {order.eta}."
        )
    if order.status == "processing":
        return f"We are preparing it; expected delivery is {order.eta}."
    if order.status == "cancelled":
        return "It was cancelled and no payment was taken."
    if order.status == "returned":
        return "We received it back and refunded you."
    return ""


class ActionCheckOrderStatus(Action):
    """Looks up the order in the store and tells its status."""

    def name(self) -> str:
        return "action_check_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        raw = tracker.get_slot("order_id")
        order_id = normalise_order_id(raw)
        if order_id is None:
            dispatcher.utter_message(response="utter_order_id_missing")
            return reset_slots("order_id")
        order = get_store().get_order(order_id)
        if order is None:
            logger.debug("Order %s not found.", order_id)
            dispatcher.utter_message(response="utter_unknown_order", order_id=order_id)
            return reset_slots("order_id")
        dispatcher.utter_message(
            response="utter_order_status",
            order_id=order.order_id,
            item=order.item,
            status=order.status,
            detail=_status_detail(order),
        )
        return []


class ValidateReturnForm(FormValidationAction):
    """Checks the order number and the reason of a return request."""

    def name(self) -> str:
        return "validate_return_form"

    def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        order_id = normalise_order_id(slot_value)
        if order_id is None:
            dispatcher.utter_message(response="utter_order_id_missing")
            return {"order_id": None}
        order = get_store().get_order(order_id)
        if order is None:
            dispatcher.utter_message(response="utter_unknown_order", order_id=order_id)
            return {"order_id": None}
        if order.status != RETURNABLE_STATUS:
            dispatcher.utter_message(
                response="utter_return_not_possible", order_id=order_id, status=order.status
            )
            return {"order_id": None}
        return {"order_id": order_id}

    def validate_return_reason(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        reason = clean_text(slot_value)
        if reason is None:
            dispatcher.utter_message(response="utter_invalid_reason")
        return {"return_reason": reason}


class ActionSubmitReturn(Action):
    """Records the return request and gives the user its reference."""

    def name(self) -> str:
        return "action_submit_return"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        order_id = tracker.get_slot("order_id")
        reason = tracker.get_slot("return_reason")
        reference = get_store().create_return(order_id, reason, tracker.sender_id)
        logger.info("Return %s recorded for order %s.", reference, order_id)
        dispatcher.utter_message(
            response="utter_return_created", order_id=order_id, reference=reference
        )
        return reset_slots("return_reason")


class ActionHumanHandoff(Action):
    """Opens a ticket for a human agent and tells the user its reference."""

    def name(self) -> str:
        return "action_human_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        topic = latest_intent(tracker) or "unknown"
        message = clean_text(latest_text(tracker)) or ""
        reference = get_store().create_ticket(tracker.sender_id, topic, message)
        logger.info("Hand-off ticket %s opened (%s).", reference, topic)
        dispatcher.utter_message(response="utter_handoff", reference=reference)
        return []
