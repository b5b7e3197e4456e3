"""Input rails as a Rasa NLU component: every user message is checked first.

The component runs the configured input rails (prompt injection, harmful
requests, medical advice, scope, PII) on each message. Verdicts, reasons and
the PII-redacted text are stored in the parse data (a ``RailsRecord``), so they
are stored on the tracker with the message and the action server can read
them. When a blocking rail fires, the intent is replaced by the intent that
``on_input`` maps that rail to; rules in ``data/rules.yml`` map those intents
to domain responses. PII never blocks: it is redacted before the text reaches
the model, ``rasa_safe_hybrid.stores.redacting_tracker_store`` keeps it out of the tracker
store, and ``redact_logs`` keeps it out of the process's log output.

Place it before ``EmergencyDetector``, which overrides any intent when an
emergency signal fires ("how many pills for an overdose" is an emergency first;
a crisis the attack rails misread gets crisis support or the triage question,
not a refusal).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa_safe_hybrid.config import InputRailsConfig, input_rails_defaults
from rasa_safe_hybrid.guardrails import GUARDRAILS_KEY, Guardrails, log_filter

logger = logging.getLogger(__name__)


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
    def get_default_config() -> Dict[str, Any]:
        """The component's default config (keys and comments: ``rasa_safe_hybrid.config``)."""
        return input_rails_defaults()

    def __init__(self, config: Dict[str, Any]) -> None:
        """Validates the config and builds the rails."""
        self._config = InputRailsConfig.from_config(config)
        if self._config.redact_logs:
            log_filter.install()

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> InputRails:
        """Creates the component (see ``GraphComponent.create``)."""
        return cls(config)

    @property
    def guardrails(self) -> Guardrails:
        """The rails this component runs."""
        return self._config.guardrails

    def process(self, messages: List[Message]) -> List[Message]:
        """Checks each message, records the verdicts, reroutes blocked messages."""
        for message in messages:
            self._process_one(message)
        return messages

    def _process_one(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        record = self.guardrails.check_input(text)
        predicted = message.get(INTENT) or {}
        intent = predicted.get(INTENT_NAME_KEY)
        record.original_intent = intent
        decisive = record.decisive
        kept = intent in self._config.skip_intents and float(
            predicted.get(PREDICTED_CONFIDENCE_KEY) or 0.0) >= self._config.skip_min_confidence
        if decisive and not kept:
            record.routed_to = self._config.on_input[decisive.rail]
            logger.debug(
                f"Input rail '{decisive.rail}' fired ({decisive.source}, {decisive.reason}): "
                f"intent '{intent}' is replaced by '{record.routed_to}'."
            )
            new_intent = {INTENT_NAME_KEY: record.routed_to, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [
                r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != record.routed_to
            ]
            message.set(INTENT, new_intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [new_intent, *ranking], add_to_output=True)
        elif decisive:
            record.overridden_by = f"intent {intent}"
            logger.debug(
                f"Input rail '{decisive.rail}' fired but intent '{intent}' is kept (listed in skip_intents, "
                f"confidence at least {self._config.skip_min_confidence})."
            )
        else:
            logger.debug(f"Input rails passed in {record.latency_ms:.2f} ms.")
        message.set(GUARDRAILS_KEY, record.to_dict(), add_to_output=True)
