"""The triage question and its answer (``action_emergency_triage``), in the action server.

Asked on a moderate emergency signal (``rasa_safe_hybrid.emergency``). The question
carries the emergency number, so a real emergency loses nothing by being asked.
The user's next message is its answer:

- "yes", an unclear answer ("not sure", "maybe") or any new emergency signal:
  the emergency (or crisis) response, and any form ends;
- "no": the question closes and the original message is replayed with its own
  intent (the way Rasa's two-stage fallback replays a clarified message), so the
  original request is answered and a form resumes;
- anything else: the question closes and the new message is handled as usual.

An assistant's ``actions`` package registers it by importing it.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Dict, List, Optional

from rasa_safe_hybrid import emergency
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, SlotSet, UserUtteranceReverted, UserUttered
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

logger = logging.getLogger(__name__)

YES = re.compile(r"^\W*(y|yes|yeah|yea|yep|yup|ya|aye|si|ja|oui|correct|right now|now|it is|it's happening|"
                 r"happening now|affirmative|please help|help)\b", re.I)
NO = re.compile(r"^\W*(n|no|nope|nah|not really|not now|it isn'?t|it'?s not|it is not|not happening|negative|"
                r"no emergency|(i'?m|i am|we'?re|we are|everyone'?s|everybody'?s|all) (fine|ok|okay|good|safe)|"
                r"all good|false alarm)\b", re.I)
UNCLEAR = re.compile(r"\b(not sure|unsure|maybe|perhaps|possibly|i (do ?n'?t|dont) know|idk|dunno|"
                     r"kind of|sort of|i think so|might be|could be)\b", re.I)
AFFIRM, DENY = "affirm", "deny"
# Intents a message answered "no" is never replayed with, and the confidence the next-best intent
# needs to be replayed with (below it, the open-ended turn: config.yml's FallbackClassifier threshold).
NOT_REPLAYED = (emergency.TRIAGE_INTENT, emergency.INTENT)
REPLAY_MIN_CONFIDENCE = 0.4
REQUESTED_SLOT = "requested_slot"


def answer_of(message: Dict[str, Any]) -> str:
    """``emergency``, ``yes``, ``unclear``, ``no`` or ``other`` for the user's reply to the question."""
    intent = (message.get("intent") or {}).get("name")
    text = message.get("text") or ""
    if intent in (emergency.INTENT, emergency.TRIAGE_INTENT):
        return "emergency"
    if UNCLEAR.search(text):
        return "unclear"
    if intent == DENY or NO.search(text):
        return "no"
    if intent == AFFIRM or YES.search(text):
        return "yes"
    return "other"


def _kind(message: Dict[str, Any], default: Optional[str] = None) -> str:
    entities = message.get("entities") or []
    found = emergency.kind_of_message((message.get("intent") or {}).get("name"), entities)
    return found or default or emergency.MEDICAL


class ActionEmergencyTriage(Action):
    """Asks whether an emergency is happening now, then acts on the answer."""

    responses = emergency.Responses()

    def name(self) -> str:
        """The action's name in the domain."""
        return emergency.TRIAGE_ACTION

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        """Asks the question, or reads the answer to the open one."""
        message = tracker.latest_message or {}
        open_kind = tracker.get_slot(emergency.TRIAGE_SLOT)
        if not open_kind:
            return ask(dispatcher, tracker, _kind(message), self.responses)
        answer = answer_of(message)
        if answer in ("yes", "unclear", "emergency"):
            kind = _kind(message, open_kind) if answer == "emergency" else open_kind
            logger.warning("Triage for %s: answer '%s' -> escalation (%s).", tracker.sender_id, answer, kind)
            dispatcher.utter_message(response=self.responses.escalation(kind))
            events: List[EventType] = [SlotSet(emergency.TRIAGE_SLOT, None)]
            if tracker.active_loop.get("name"):
                events += [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]
            return events
        if answer == "no":
            original = _original_message(tracker)
            if original is None:  # nothing to replay (should not happen): close the question
                logger.warning("Triage for %s: 'no', but no original message to replay.", tracker.sender_id)
                return [SlotSet(emergency.TRIAGE_SLOT, None)]
            logger.info("Triage for %s: 'no' -> the original message is handled with intent '%s'.",
                        tracker.sender_id, (original.get("parse_data") or {}).get("intent", {}).get("name"))
            return [UserUtteranceReverted(), UserUtteranceReverted(), ActionExecuted("action_listen"),
                    UserUttered(original.get("text"), original.get("parse_data"),
                                input_channel=original.get("input_channel"))]
        logger.info("Triage for %s: no yes or no -> the question closes and the new message is handled.",
                    tracker.sender_id)
        return [UserUtteranceReverted(), SlotSet(emergency.TRIAGE_SLOT, None), ActionExecuted("action_listen"),
                UserUttered(message.get("text"), dict(message),
                            input_channel=message.get("input_channel"))]


DEFAULT_RESPONSES = emergency.Responses()


def ask(dispatcher: CollectingDispatcher, tracker: Tracker, kind: str,
        responses: emergency.Responses = DEFAULT_RESPONSES) -> List[EventType]:
    """Sends the triage question and opens it (the LLM action asks through this too)."""
    logger.warning("Triage question for %s (%s): a moderate emergency signal.", tracker.sender_id, kind)
    dispatcher.utter_message(response=responses.triage)
    return [SlotSet(emergency.TRIAGE_SLOT, kind)]


def _original_message(tracker: Tracker) -> Optional[Dict[str, Any]]:
    """The message the open question asked about (the user message before the answer), its
    intent restored to what the classifiers said and the answer recorded.
    """
    users = [e for e in tracker.applied_events() if e.get("event") == "user"]
    if len(users) < 2:
        return None
    original = copy.deepcopy(users[-2])
    parse = original.get("parse_data") or {}
    check = dict(parse.get(emergency.CHECK_KEY) or {})
    check[emergency.TRIAGE_ANSWER_KEY] = "no"
    parse[emergency.CHECK_KEY] = check
    # The user said no: neither the question's intent nor the emergency intent is what they asked
    # (replayed as "emergency", the NLU's own guess, it escalated after a "no": found on the review page).
    if (parse.get("intent") or {}).get("name") in NOT_REPLAYED:
        ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") not in NOT_REPLAYED]
        wanted = check.get("original_intent")
        restored = next((r for r in ranking if r.get("name") == wanted), None) or (ranking[0] if ranking else None)
        if restored is not None and float(restored.get("confidence") or 0.0) < REPLAY_MIN_CONFIDENCE:
            restored = None
        parse["intent"] = dict(restored or {"name": "nlu_fallback", "confidence": 1.0})
        parse["intent_ranking"] = ranking
        parse["entities"] = [e for e in parse.get("entities") or [] if e.get("entity") != emergency.ENTITY]
    original["parse_data"] = parse
    return original
