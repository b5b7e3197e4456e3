"""The policy that hands open-ended turns to the language model.

``LLMResponsePolicy`` never generates text itself: Rasa runs policies inside
the server's event loop, so seconds of generation there would stall every
conversation. It only decides *that* the LLM takes the turn, by predicting the
delivering action (``action_llm_response`` by default), which runs in the
action server and generates off its event loop. Its reply is an ordinary bot
message, so channels, the tracker and tests see nothing special.

It predicts the action when the latest user intent is one of
``trigger_intents`` and no form is active, and ``action_listen`` right after
the action. Turns that no rule or story covers reach the same action through
``RulePolicy``'s ``core_fallback_action_name``.

Created in the Rasa process, it also makes every custom action call answer
when the action cannot run (``rasa_safe_hybrid.actions.action_failure``), with the
``on_output`` responses ``action_failed`` and, on emergency turns, ``emergency``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.actions import action_failure
from rasa_safe_hybrid.config import (
    ON_OUTPUT_KEY,
    PolicyConfig,
    policy_defaults,
)

logger = logging.getLogger(__name__)

PERSISTED_FILE = "llm_response_policy.json"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class LLMResponsePolicy(Policy):
    """Predicts the LLM action for open-ended turns."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The policy's default config (keys and comments: ``rasa_safe_hybrid.config``)."""
        return policy_defaults()

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[Any] = None,
    ) -> None:
        """Validates the config (fields first, then combinations)."""
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.plugin = PolicyConfig.from_config(config)
        self.settings = self.plugin.generation
        self.trigger_intents = set(self.plugin.trigger_intents)
        self.action_name: str = self.plugin.action
        plugin = self.plugin
        action_failure.install(action_failure.ActionFailureHandler(action_failure.FailureResponses(
            failed=plugin.action_failed_response,
            emergency=lambda kind: plugin.response_for("emergency", kind),
        )))

    def train(
        self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any
    ) -> Resource:
        """Checks the config against the domain and persists it (no weights)."""
        responses = [r for r in self.plugin.on_output.values() if r not in domain.responses]
        slot = self.plugin.trace_slot
        problems = []
        if self.action_name not in domain.action_names_or_texts:
            problems.append(f"action {self.action_name!r} is not in domain.yml `actions`")
        if responses:
            problems.append(f"responses {responses} of `{ON_OUTPUT_KEY}` are not in domain.yml")
        if slot and slot not in {s.name for s in domain.slots}:
            problems.append(f"trace slot {slot!r} is not in domain.yml `slots` (type: any)")
        retrieval = self.plugin.retrieval
        if retrieval.enabled and retrieval.dont_know_response not in domain.responses:
            problems.append(f"response {retrieval.dont_know_response!r} (retrieval's `dont_know_response`) is "
                            f"not in domain.yml")
        if self.plugin.action_failed_response not in domain.responses:
            logger.warning(
                f"LLMResponsePolicy: response {self.plugin.action_failed_response!r} (answers a custom "
                f"action that could not run) is not in domain.yml; a built-in English apology is sent instead."
            )
        if problems:
            raise InvalidConfigException(
                "LLMResponsePolicy: " + "; ".join(problems) + ". Add them or change the config."
            )
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Writes the model id, generation settings and prompt into the model."""
        with self._model_storage.write_to(self._resource) as path:
            record = {
                "model_id": self.settings.model_id,
                "generation": self.settings.as_dict(),
                "trigger_intents": sorted(self.trigger_intents),
                "action": self.action_name,
            }
            (path / PERSISTED_FILE).write_text(json.dumps(record, indent=2), "utf-8")

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LLMResponsePolicy:
        """Loads the policy and logs what the model was trained with."""
        try:
            with model_storage.read_from(resource) as path:
                record = json.loads((path / PERSISTED_FILE).read_text("utf-8"))
                logger.debug(f"LLMResponsePolicy trained with model {record['model_id']}.")
        except (ValueError, FileNotFoundError, KeyError) as error:
            logger.debug(f"LLMResponsePolicy: no persisted record ({error}).")
        return cls(config, model_storage, resource, execution_context)

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """Predicts the LLM action for a trigger intent, listen right after it."""
        probabilities = self._default_predictions(domain)
        latest_action = tracker.latest_action_name
        if latest_action == self.action_name:
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities)
        if tracker.active_loop_name:
            logger.debug(f"LLMResponsePolicy: form '{tracker.active_loop_name}' is active; abstaining.")
            return self._prediction(probabilities)
        if latest_action != ACTION_LISTEN_NAME:
            return self._prediction(probabilities)
        intent = tracker.latest_message.intent.get("name") if tracker.latest_message else None
        if intent in self.trigger_intents:
            confidence = tracker.latest_message.intent.get("confidence")
            logger.debug(
                f"LLMResponsePolicy: intent '{intent}' (confidence {confidence}) is a trigger "
                f"intent; predicting '{self.action_name}'."
            )
            probabilities[domain.index_for_action(self.action_name)] = 1.0
        return self._prediction(probabilities)

