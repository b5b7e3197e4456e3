"""Helpers shared by the action modules."""

from __future__ import annotations

from typing import Any, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet

REQUESTED_SLOT = "requested_slot"


def latest_text(tracker: Tracker) -> str:
    """The text of the latest user message ('' when there is none)."""
    return (tracker.latest_message or {}).get("text") or ""


def latest_intent(tracker: Tracker) -> Optional[str]:
    """The name of the latest user message's intent."""
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    """The first value of ``entity`` in the latest user message."""
    return next(tracker.get_latest_entity_values(entity), None)


def slot_or_entity(tracker: Tracker, name: str) -> Optional[Any]:
    """The entity of this name in the latest message, else the slot's value."""
    return latest_entity(tracker, name) or tracker.get_slot(name)


def reset_slots(*names: str) -> List[EventType]:
    """SlotSet events that clear the given slots."""
    return [SlotSet(name, None) for name in names]


def stop_active_loop(tracker: Tracker) -> List[EventType]:
    """Events that end the active form, if there is one."""
    if not tracker.active_loop.get("name"):
        return []
    return [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]


def join_list(items: List[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
