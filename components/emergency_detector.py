"""Detects emergency statements in user messages and makes them win the turn.

An emergency ("I have chest pain", "I took an overdose", "I want to end my
life") must be escalated first, whatever else the message asks for and however
sure the intent classifier is about something else. This component runs after
the classifiers (and after ``FallbackClassifier``). Three signals, any one of
which escalates (fail closed): its patterns, the learned emergency classifier
(the shared sentence encoder, high-recall threshold), and the NLU's own
emergency intent ranked at or above ``intent_threshold``. On turns the intent
classifier routes to one of ``lenient_intents`` (health questions answered by a
curated action, where no check before generation runs), the classifier also
escalates at its lenient threshold, the one the LLM action uses. It then sets the
configured emergency intent with full confidence and adds an ``emergency_type``
entity (``medical`` or ``self_harm``); every signal's verdict, with its source,
score and threshold, goes into the parse data under ``emergency_check``. What
the bot then says is dialogue data: a rule maps the intent to an action, and
the action picks a domain response by the entity value.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Pattern, Text, Tuple

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

from components.guardrails import Guardrails, RailsRecord, Verdict
from components.guardrails.record import EMERGENCY_CHECK_KEY
from components.guardrails.patterns import compile_groups, load_groups

logger = logging.getLogger(__name__)

INTENT_KEY = "intent"
ENTITY_KEY = "entity"
PATTERNS_KEY = "patterns"
CLASSIFIER_KEY = "classifier"
INTENT_THRESHOLD_KEY = "intent_threshold"
LENIENT_INTENTS_KEY = "lenient_intents"
STRICT_RAIL = "emergency_classifier_strict"
LENIENT_RAIL = "emergency_classifier"



@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class EmergencyDetector(GraphComponent, IntentClassifier):
    """Overrides the intent of messages that state an emergency."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Runs after an intent classifier, whose prediction it may override."""
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config."""
        return {
            # Intent set on a match; a rule in data/rules.yml maps it to an action.
            INTENT_KEY: "emergency",
            # Entity added on a match; its value is the name of the pattern group.
            ENTITY_KEY: "emergency_type",
            # Pattern groups: {kind: [regex, ...]}, matched case-insensitively.
            # Replacing the dict in config.yml replaces all groups. Default: the
            # "emergency" rail's list, components/guardrails/lists/emergency.yml.
            PATTERNS_KEY: load_groups("emergency"),
            # The learned emergency classifier at its strict threshold (it overrides
            # every intent): rails settings (encoder, heads, thresholds:
            # {emergency_classifier_strict: ...}); {} = the trained defaults; null: off.
            CLASSIFIER_KEY: {},
            # Fail closed on the NLU too: escalate when the intent classifier ranks the
            # emergency intent at or above this confidence, even if it is not the top
            # intent (null: off).
            INTENT_THRESHOLD_KEY: 0.2,
            # Intents whose turns the classifier checks at its lenient threshold too
            # (e.g. symptom questions answered by a curated action); [] = none.
            LENIENT_INTENTS_KEY: [],
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Validates the config, compiles the patterns and loads the classifier."""
        self._config = config
        self._intent = _non_empty_str(config, INTENT_KEY)
        self._entity = _non_empty_str(config, ENTITY_KEY)
        self._patterns = _compile_patterns(config.get(PATTERNS_KEY))
        threshold = config.get(INTENT_THRESHOLD_KEY)
        if threshold is not None and (not isinstance(threshold, (int, float)) or not 0 < threshold <= 1):
            raise InvalidConfigException(
                f"EmergencyDetector: '{INTENT_THRESHOLD_KEY}' must be a number in (0, 1] or null, got {threshold!r}."
            )
        self._intent_threshold = threshold
        rails = config.get(CLASSIFIER_KEY)
        if rails is not None and not isinstance(rails, dict):
            raise InvalidConfigException(
                f"EmergencyDetector: '{CLASSIFIER_KEY}' must be the rails settings of the emergency classifier "
                f"(encoder, heads, thresholds) or null to switch it off, got {rails!r}."
            )
        lenient = config.get(LENIENT_INTENTS_KEY) or []
        if not isinstance(lenient, list) or not all(isinstance(i, str) and i.strip() for i in lenient):
            raise InvalidConfigException(
                f"EmergencyDetector: '{LENIENT_INTENTS_KEY}' must be a list of intent names, got {lenient!r}."
            )
        self._lenient_intents = frozenset(lenient)
        rails_names = [STRICT_RAIL, LENIENT_RAIL] if lenient else [STRICT_RAIL]
        self._classifier = (
            Guardrails({**rails, "input_rails": rails_names, "output_rails": []}) if rails is not None else None
        )

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyDetector:
        """Creates the component (see ``GraphComponent.create``)."""
        return cls(config)

    def detect(self, text: Text) -> Optional[Tuple[Text, int, int]]:
        """Returns the kind of emergency and the matched span, or None (patterns only)."""
        for kind, patterns in self._patterns:
            for pattern in patterns:
                match = pattern.search(text)
                if match:
                    return kind, match.start(), match.end()
        return None

    def check(self, message: Message) -> RailsRecord:
        """Every signal for one message: patterns, the classifier, the NLU's emergency intent.

        The decisive verdict is the first that fired; any one escalates (fail closed).
        """
        text = message.get(TEXT) or ""
        hit = self.detect(text)
        verdicts = [
            Verdict("emergency", True, f"{hit[0]}: '{text[hit[1]:hit[2]][:60]}'", category=hit[0],
                    findings=[{"start": hit[1], "end": hit[2]}])
            if hit else Verdict("emergency", False)
        ]
        if self._classifier is not None:
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            verdicts += [self._lenient_only_on_listed_intents(v, intent)
                         for v in self._classifier.check_input(text).verdicts]
        if self._intent_threshold is not None:
            confidence = max((float(r.get(PREDICTED_CONFIDENCE_KEY) or 0) for r in message.get(INTENT_RANKING_KEY) or []
                              if r.get(INTENT_NAME_KEY) == self._intent), default=0.0)
            fired = confidence >= self._intent_threshold
            kind = next((v.category for v in verdicts[1:] if v.category in ("self_harm", "medical")), "medical")
            verdicts.append(Verdict(
                "emergency_intent", fired, f"NLU intent '{self._intent}' at {confidence:.2f}" if fired else "",
                category=kind if fired else None, source="model", score=confidence,
                threshold=self._intent_threshold,
            ))
        decisive = next((v for v in verdicts if v.triggered), None)
        return RailsRecord(verdicts, decisive)

    def _lenient_only_on_listed_intents(self, verdict: Verdict, intent: Optional[Text]) -> Verdict:
        """The lenient verdict as it stands on a turn routed to a listed intent; elsewhere not fired."""
        if verdict.rail != LENIENT_RAIL or not verdict.triggered:
            return verdict
        if intent in self._lenient_intents:
            return Verdict(verdict.rail, True, f"{verdict.reason}, on a '{intent}' turn", category=verdict.category,
                           source=verdict.source, score=verdict.score, threshold=verdict.threshold)
        return Verdict(verdict.rail, False, f"not fired: '{intent}' is not in {LENIENT_INTENTS_KEY}",
                       source=verdict.source, score=verdict.score, threshold=verdict.threshold)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the emergency intent on messages that state an emergency."""
        for message in messages:
            record = self.check(message)
            message.set(EMERGENCY_CHECK_KEY, record.to_dict(), add_to_output=True)
            decisive = record.decisive
            if decisive is None:
                continue
            # a pattern group's name, or (classifier, NLU intent) medical / self_harm
            kind = decisive.category if decisive.category and decisive.category != "error" else "medical"
            previous = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            logger.debug(
                f"Emergency ({kind}) from {decisive.rail} [{decisive.source}]: {decisive.reason}; intent "
                f"'{previous}' is replaced by '{self._intent}'."
            )
            intent = {INTENT_NAME_KEY: self._intent, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [
                r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != self._intent
            ]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
            span = (record.verdict("emergency").findings or [{"start": 0, "end": len(message.get(TEXT) or "")}])[0]
            start, end = span["start"], span["end"]
            entities = [e for e in message.get(ENTITIES) or [] if e.get(ENTITY_ATTRIBUTE_TYPE) != self._entity]
            entities.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: self._entity,
                    ENTITY_ATTRIBUTE_VALUE: kind,
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    EXTRACTOR: self.__class__.__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages


def _non_empty_str(config: Dict[Text, Any], key: Text) -> Text:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigException(
            f"EmergencyDetector: '{key}' must be a non-empty string, got {value!r}. "
            f"Set it in config.yml or remove it to use the default."
        )
    return value


def _compile_patterns(raw: Any) -> List[Tuple[Text, List[Pattern]]]:
    return compile_groups(f"EmergencyDetector '{PATTERNS_KEY}'", raw, allow_empty=False)
