"""Detects emergency statements in user messages and makes them win the turn.

An emergency ("I have chest pain", "I took an overdose", "I want to end my
life") must be escalated first, whatever else the message asks for and however
sure the intent classifier is about something else. This component runs after
the classifiers (and after ``FallbackClassifier``) and asks the emergency signal
(``rasa_safe_hybrid.emergency``: patterns, the learned classifier on the message and
each of its clauses, the NLU's own emergency intent) for the message's tier:

- ``strong``: the configured emergency intent with full confidence (a rule maps it
  to the escalation action), and an ``emergency_type`` entity (``medical`` or
  ``self_harm``);
- ``moderate``: the triage intent (the triage policy asks "is this happening right
  now?", with the emergency number in the question); the classifier's own intent
  is kept in the record, so "no" carries on with it.

Every signal's verdict, with its source, score and threshold, and the tier go into
the parse data under ``emergency_check``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa_safe_hybrid import emergency
from rasa_safe_hybrid.guardrails import RailsRecord
from rasa_safe_hybrid.guardrails.record import EMERGENCY_CHECK_KEY

logger = logging.getLogger(__name__)

INTENT_KEY = "intent"
TRIAGE_INTENT_KEY = "triage_intent"
ENTITY_KEY = "entity"
PATTERNS_KEY = "patterns"
WORDS_KEY = "words"
CLASSIFIER_KEY = "classifier"
TIERS_KEY = "tiers"
DEMOTE_TO_KEY = "demote_to"
DEMOTE_MIN_CONFIDENCE_KEY = "demote_min_confidence"
# Keys of earlier versions and what replaced them.
REPLACED_KEYS = {
    "intent_threshold": "tiers.intent_strong / tiers.intent_moderate (the NLU intent's two tiers)",
    "lenient_intents": "tiers.moderate (the moderate tier asks a triage question on every turn)",
}


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class EmergencyDetector(GraphComponent, IntentClassifier):
    """Overrides the intent of messages that state an emergency (strong) or may (moderate)."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Runs after an intent classifier, whose prediction it may override."""
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The component's default config."""
        return {
            # Intent set on the strong tier; a rule in data/rules.yml maps it to an action.
            INTENT_KEY: emergency.INTENT,
            # Intent set on the moderate tier; the triage policy asks about it.
            TRIAGE_INTENT_KEY: emergency.TRIAGE_INTENT,
            # Entity added on both tiers; its value is the kind (medical, self_harm).
            ENTITY_KEY: emergency.ENTITY,
            # {kind: [regex]}: phrases that say a person is in danger now (strong at once).
            # None: components/guardrails/lists/emergency.yml.
            PATTERNS_KEY: None,
            # {kind: [regex]}: danger words that escalate only with the classifier agreeing.
            # None: components/guardrails/lists/emergency_words.yml; {}: none.
            WORDS_KEY: None,
            # The learned emergency classifier: rails settings (encoder, heads); {} = the
            # shipped ones; null: off.
            CLASSIFIER_KEY: {},
            # Thresholds of the two tiers: strong, moderate (classifier scores; default: the
            # trained ones), intent_strong, intent_moderate (the NLU emergency intent).
            TIERS_KEY: {},
            # The intent classifier's own emergency guess without a signal behind it becomes the
            # next intent of the ranking when that is at least this sure, else `demote_to`.
            DEMOTE_MIN_CONFIDENCE_KEY: 0.4,
            DEMOTE_TO_KEY: "nlu_fallback",
        }

    def __init__(self, config: Dict[str, Any]) -> None:
        """Validates the config and builds the signal (loads the classifier once per process)."""
        replaced = sorted(set(config) & set(REPLACED_KEYS))
        if replaced:
            raise InvalidConfigException(
                "EmergencyDetector: " + "; ".join(f"'{k}' is replaced by {REPLACED_KEYS[k]}" for k in replaced)
                + ". Remove the old key(s) from config.yml (docs/guardrails.md, emergencies).")
        self._config = config
        self._intent = _non_empty_str(config, INTENT_KEY)
        self._triage_intent = _non_empty_str(config, TRIAGE_INTENT_KEY)
        self._entity = _non_empty_str(config, ENTITY_KEY)
        self.signal = emergency.EmergencySignal.from_config(config, owner="EmergencyDetector")

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyDetector:
        """Creates the component (see ``GraphComponent.create``)."""
        return cls(config)

    def detect(self, text: str) -> Optional[Tuple[str, int, int]]:
        """Returns the kind and span of a strong pattern, or None (patterns only)."""
        return self.signal.detect(text)

    def assess(self, message: Message) -> emergency.Assessment:
        """Every signal for one message and its tier."""
        confidence = max((float(r.get(PREDICTED_CONFIDENCE_KEY) or 0) for r in message.get(INTENT_RANKING_KEY) or []
                          if r.get(INTENT_NAME_KEY) == self._intent), default=None)
        return self.signal.assess(message.get(TEXT) or "", intent_confidence=confidence)

    def check(self, message: Message) -> RailsRecord:
        """The verdicts for one message; ``decisive`` is set on both tiers."""
        return self.assess(message).record

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the emergency intent (strong) or the triage intent (moderate)."""
        for message in messages:
            assessment = self.assess(message)
            previous = message.get(INTENT) or {}
            assessment.record.original_intent = previous.get(INTENT_NAME_KEY)
            if assessment.tier is None and previous.get(INTENT_NAME_KEY) in (self._intent, self._triage_intent):
                self._demote(message, assessment)
            message.set(EMERGENCY_CHECK_KEY, assessment.to_dict(), add_to_output=True)
            if assessment.tier is None:
                continue
            decisive = assessment.record.decisive
            why = f"{decisive.rail} [{decisive.source}]: {decisive.reason}" if decisive else "the tiers"
            name = self._intent if assessment.tier == emergency.STRONG else self._triage_intent
            logger.debug(
                f"Emergency ({assessment.kind}, {assessment.tier} tier) from {why}; "
                f"intent '{previous.get(INTENT_NAME_KEY)}' is replaced by '{name}'."
            )
            intent = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != name]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
            start, end = assessment.span
            entities = [e for e in message.get(ENTITIES) or [] if e.get(ENTITY_ATTRIBUTE_TYPE) != self._entity]
            entities.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: self._entity,
                    ENTITY_ATTRIBUTE_VALUE: assessment.kind,
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    EXTRACTOR: self.__class__.__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages


    def _demote(self, message: Message, assessment: emergency.Assessment) -> None:
        """The intent classifier's own emergency guess that no signal backs (its confidence is
        below the intent tiers, no pattern, no classifier): the next intent of the ranking when it
        is at least ``demote_min_confidence`` sure, else ``demote_to``. Only this component sets
        the emergency intent, so a guess never escalates past the tiers.
        """
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or []
                   if r.get(INTENT_NAME_KEY) not in (self._intent, self._triage_intent)]
        best = ranking[0] if ranking else None
        floor = self._config.get(DEMOTE_MIN_CONFIDENCE_KEY, 0.4)
        if best is None or float(best.get(PREDICTED_CONFIDENCE_KEY) or 0) < floor:
            best = {INTENT_NAME_KEY: self._config.get(DEMOTE_TO_KEY) or "nlu_fallback",
                    PREDICTED_CONFIDENCE_KEY: float((message.get(INTENT) or {}).get(PREDICTED_CONFIDENCE_KEY) or 0)}
        logger.debug(f"The intent classifier's '{self._intent}' guess has no emergency signal behind it "
                     f"(below the intent tiers); intent '{best[INTENT_NAME_KEY]}' instead.")
        assessment.record.overridden_by = f"'{self._intent}' guess without a signal: {best[INTENT_NAME_KEY]}"
        message.set(INTENT, dict(best), add_to_output=True)
        message.set(INTENT_RANKING_KEY, [dict(best), *[r for r in ranking if r is not best
                                                        and r.get(INTENT_NAME_KEY) != best[INTENT_NAME_KEY]]],
                    add_to_output=True)


def _non_empty_str(config: Dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigException(
            f"EmergencyDetector: '{key}' must be a non-empty string, got {value!r}. "
            f"Set it in config.yml or remove it to use the default."
        )
    return value
