"""Input rails as a Rasa NLU component: every user message is checked first.

The component runs the configured input rails (prompt injection, harmful
requests, medical advice, scope, PII) on each message. Verdicts, reasons and
the PII-redacted text are added to the parse data under ``guardrails``, so they
are stored on the tracker with the message and the action server can read
them. When a blocking rail fires, the intent is replaced by the intent that
``on_input`` maps that rail to; rules in ``data/rules.yml`` map those intents
to domain responses. PII never blocks: it is redacted before the text reaches
the model, ``components.redacting_tracker_store`` keeps it out of the tracker
store, and ``redact_logs`` keeps it out of the process's log output.

Place it after ``EmergencyDetector``: an emergency is escalated even when a
rail would also fire ("how many pills for an overdose" is an emergency first).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from components.guardrails import INPUT_RAILS, Guardrails, log_filter

logger = logging.getLogger(__name__)

GUARDRAILS_KEY = "guardrails"  # key in the parse data
RAILS_KEY = "rails"
ON_INPUT_KEY = "on_input"
SKIP_INTENTS_KEY = "skip_intents"
REDACT_LOGS_KEY = "redact_logs"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class InputRails(GraphComponent, IntentClassifier):
    """Runs input rails on every message and routes blocked ones by intent."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Runs after the intent classifiers it may override."""
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config."""
        return {
            # Settings of components.guardrails.Guardrails: input_rails, output_rails,
            # patterns, extra_patterns, allow, pii_types. Empty: all defaults.
            RAILS_KEY: {},
            # Fired rail -> intent that replaces the classifier's intent.
            ON_INPUT_KEY: {
                "injection": "guardrail_injection",
                "harmful": "guardrail_harmful",
                "medical_advice": "guardrail_medical_advice",
                "scope": "guardrail_out_of_scope",
            },
            # Intents that are never overridden (emergencies win over every rail).
            SKIP_INTENTS_KEY: ["emergency"],
            # Redact PII in every log line of the process (Rasa logs raw messages at DEBUG).
            REDACT_LOGS_KEY: True,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Validates the config and builds the rails."""
        self._guardrails = Guardrails(config.get(RAILS_KEY) or {})
        on_input = config.get(ON_INPUT_KEY) or {}
        if not isinstance(on_input, dict) or any(
            rail not in INPUT_RAILS or rail == "pii" or not isinstance(intent, str) or not intent
            for rail, intent in on_input.items()
        ):
            raise InvalidConfigException(
                f"InputRails: '{ON_INPUT_KEY}' must map blocking rail names "
                f"({', '.join(r for r in INPUT_RAILS if r != 'pii')}) to intent names, "
                f"got {on_input!r}. PII is redacted, never routed."
            )
        missing = [r for r in self._guardrails.input_rails if r != "pii" and r not in on_input]
        if missing:
            raise InvalidConfigException(
                f"InputRails: rails {missing} run but '{ON_INPUT_KEY}' names no intent for "
                f"them; add one per rail (and a rule for each intent)."
            )
        self._on_input: Dict[str, str] = on_input
        self._skip = set(config.get(SKIP_INTENTS_KEY) or [])
        if config.get(REDACT_LOGS_KEY, True):
            log_filter.install()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> InputRails:
        """Creates the component (see ``GraphComponent.create``)."""
        return cls(config)

    @property
    def guardrails(self) -> Guardrails:
        """The rails this component runs."""
        return self._guardrails

    def process(self, messages: List[Message]) -> List[Message]:
        """Checks each message, records the verdicts, reroutes blocked messages."""
        for message in messages:
            self._process_one(message)
        return messages

    def _process_one(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        result = self._guardrails.check_input(text)
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        routed_to: Optional[str] = None
        if result.decisive and intent not in self._skip:
            routed_to = self._on_input[result.decisive.rail]
            logger.debug(
                f"Input rail '{result.decisive.rail}' fired ({result.decisive.reason}): "
                f"intent '{intent}' is replaced by '{routed_to}'."
            )
            new_intent = {INTENT_NAME_KEY: routed_to, "confidence": 1.0}
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != routed_to]
            message.set(INTENT, new_intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [new_intent, *ranking], add_to_output=True)
        elif result.decisive:
            logger.debug(
                f"Input rail '{result.decisive.rail}' fired but intent '{intent}' is kept "
                f"(listed in {SKIP_INTENTS_KEY})."
            )
        else:
            logger.debug(f"Input rails passed in {result.latency_ms:.2f} ms.")
        record = result.as_dict()
        record["routed_to"] = routed_to
        record["original_intent"] = intent
        if result.redacted_text is not None:
            record["redacted_text"] = result.redacted_text
        message.set(GUARDRAILS_KEY, record, add_to_output=True)
