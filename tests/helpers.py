"""Builders shared by the action tests."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def make_tracker(
    text: str = "",
    intent: Optional[str] = None,
    entities: Optional[List[Dict[str, Any]]] = None,
    slots: Optional[Dict[str, Any]] = None,
    active_loop: Optional[str] = None,
    slot_events: Optional[Dict[str, Any]] = None,
    sender_id: str = "test-user",
):
    """A real rasa-sdk Tracker, built from the JSON the Rasa server sends.

    ``slot_events`` are slots set after the latest user message (what a form's
    validation action is asked to validate); they are also in ``slots``.
    """
    from rasa_sdk import Tracker

    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 1.0} if intent else {},
        "entities": entities or [],
    }
    all_slots = {**(slots or {}), **(slot_events or {})}
    events: List[Dict[str, Any]] = [
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": text, "parse_data": latest},
    ]
    events += [{"event": "slot", "name": k, "value": v} for k, v in (slot_events or {}).items()]
    state = {
        "sender_id": sender_id,
        "slots": all_slots,
        "latest_message": latest,
        "events": events,
        "paused": False,
        "followup_action": None,
        "active_loop": {"name": active_loop} if active_loop else {},
        "latest_action_name": "action_listen",
    }
    return Tracker.from_dict(state)


def sent(dispatcher) -> List[Dict[str, Any]]:
    """The messages a CollectingDispatcher collected, without empty fields."""
    return [{k: v for k, v in m.items() if v not in (None, [], {})} for m in dispatcher.messages]


def entity(name: str, value: str) -> List[Dict[str, Any]]:
    """A one-entity list as the NLU pipeline reports it."""
    return [{"entity": name, "value": value, "start": 0, "end": len(value)}]


NO_RETRIEVAL = {"enabled": False}


def config_with_generation(path, retrieval: Any = None, **generation: Any) -> str:
    """config.yml's text with the LLMResponsePolicy's generation block updated
    (and its ``retrieval`` block replaced when given)."""
    import yaml
    from rasa_safe_hybrid.generation import GenerationSettings

    config = yaml.safe_load(open(path, encoding="utf-8"))
    for policy in config["policies"]:
        if str(policy.get("name", "")).endswith("LLMResponsePolicy"):
            # with_overrides drops the old backend's keys when `backend` changes
            settings = GenerationSettings.from_config(policy.get("generation")).with_overrides(**generation)
            policy["generation"] = settings.as_dict()
            if retrieval is not None:
                policy["retrieval"] = retrieval
    return yaml.safe_dump(config, sort_keys=False)


def predicted_action(policy, tracker, domain):
    """The action a Rasa policy predicts for ``tracker``, or None when it abstains."""
    prediction = policy.predict_action_probabilities(tracker, domain)
    if max(prediction.probabilities) == 0:
        return None
    return domain.action_names_or_texts[prediction.max_confidence_index]
