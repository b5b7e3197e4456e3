"""Detects emergency statements in user messages and makes them win the turn.

An emergency ("I have chest pain", "I took an overdose", "I want to end my
life") must be escalated first, whatever else the message asks for and however
sure the intent classifier is about something else. This component runs after
the classifiers (and after ``FallbackClassifier``) and, when one of its
patterns matches, sets the configured emergency intent with full confidence and
adds an ``emergency_type`` entity saying which kind matched. What the bot then
says is dialogue data: a rule maps the intent to an action, and the action
picks a domain response by the entity value.
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

from components.guardrails.patterns import compile_groups, load_groups

logger = logging.getLogger(__name__)

INTENT_KEY = "intent"
ENTITY_KEY = "entity"
PATTERNS_KEY = "patterns"



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
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Validates the config and compiles the patterns."""
        self._config = config
        self._intent = _non_empty_str(config, INTENT_KEY)
        self._entity = _non_empty_str(config, ENTITY_KEY)
        self._patterns = _compile_patterns(config.get(PATTERNS_KEY))

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
        """Returns the kind of emergency and the matched span, or None."""
        for kind, patterns in self._patterns:
            for pattern in patterns:
                match = pattern.search(text)
                if match:
                    return kind, match.start(), match.end()
        return None

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the emergency intent on messages that state an emergency."""
        for message in messages:
            text = message.get(TEXT) or ""
            hit = self.detect(text)
            if hit is None:
                continue
            kind, start, end = hit
            previous = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            logger.debug(
                f"Emergency ({kind}) stated in '{text[start:end]}': intent "
                f"'{previous}' is replaced by '{self._intent}'."
            )
            intent = {INTENT_NAME_KEY: self._intent, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [
                r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != self._intent
            ]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
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
