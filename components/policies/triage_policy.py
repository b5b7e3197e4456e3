"""Emergencies win the turn: the escalation on the strong tier, the triage question on the moderate one.

A strong emergency signal (``rasa_safe_hybrid.emergency``) escalates and a moderate one
asks "is this happening right now?" before anything else happens, in a form or
not. This policy makes the escalation action win a strong turn, and the triage
action win a moderate turn and the user's answer to it, whatever the rules or an
active form would predict (a form that can fill its slot from the same message,
"10008, but also my wife just fainted", would otherwise keep the turn), and
predicts listening after them. It abstains on every other turn, so a "yes" with
no open question is an ordinary "yes".
"""

from __future__ import annotations

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
from rasa_safe_hybrid import emergency

logger = logging.getLogger(__name__)

TRIAGE_INTENT_KEY = "triage_intent"
SLOT_KEY = "slot"
ACTION_KEY = "action"
EMERGENCY_INTENT_KEY = "emergency_intent"
ESCALATION_ACTION_KEY = "escalation_action"
PRIORITY_KEY = "priority"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class EmergencyTriagePolicy(Policy):
    """Predicts the escalation on a strong emergency signal, the triage action on a moderate one and on
    the answer to its question.
    """

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The policy's default config."""
        return {
            # The intent the EmergencyDetector sets on the moderate tier.
            TRIAGE_INTENT_KEY: emergency.TRIAGE_INTENT,
            # The slot that holds the open question's kind (None: no question open).
            SLOT_KEY: emergency.TRIAGE_SLOT,
            # The action that asks and reads the answer.
            ACTION_KEY: emergency.TRIAGE_ACTION,
            # The intent the EmergencyDetector sets on the strong tier, and the action that escalates.
            EMERGENCY_INTENT_KEY: emergency.INTENT,
            ESCALATION_ACTION_KEY: "action_emergency_escalation",
            # Above RulePolicy (6): the question wins over rules and an active form.
            PRIORITY_KEY: 7,
        }

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, featurizer: Optional[Any] = None) -> None:
        """Validates the config (keys a model trained with an earlier version lacks take their defaults)."""
        config = {**self.get_default_config(), **config}
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        for key in (TRIAGE_INTENT_KEY, SLOT_KEY, ACTION_KEY, EMERGENCY_INTENT_KEY, ESCALATION_ACTION_KEY):
            if not isinstance(config.get(key), str) or not config[key].strip():
                raise InvalidConfigException(
                    f"EmergencyTriagePolicy: '{key}' must be a non-empty string, got {config.get(key)!r}.")
        self.triage_intent: str = config[TRIAGE_INTENT_KEY]
        self.slot: str = config[SLOT_KEY]
        self.action: str = config[ACTION_KEY]
        self.emergency_intent: str = config[EMERGENCY_INTENT_KEY]
        self.escalation_action: str = config[ESCALATION_ACTION_KEY]

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Checks that the domain has what the question needs (nothing is learned)."""
        problems = []
        for action in (self.action, self.escalation_action):
            if action not in domain.action_names_or_texts:
                problems.append(f"action {action!r} is not in domain.yml `actions`")
        if self.slot not in {s.name for s in domain.slots}:
            problems.append(f"slot {self.slot!r} is not in domain.yml `slots` (type: text, mapping: custom)")
        if self.triage_intent not in domain.intents:
            problems.append(f"intent {self.triage_intent!r} is not in domain.yml `intents`")
        if problems:
            raise InvalidConfigException("EmergencyTriagePolicy: " + "; ".join(problems) + ".")
        return self._resource

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> EmergencyTriagePolicy:
        """Nothing is persisted: the config is the policy."""
        return cls(config, model_storage, resource, execution_context)

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: Optional[Dict[str, Any]] = None,
                                     **kwargs: Any) -> PolicyPrediction:
        """The escalation on a strong turn, the triage action on a triage turn or an answer; listening
        right after either.
        """
        probabilities = self._default_predictions(domain)
        latest_action = tracker.latest_action_name
        if latest_action in (self.action, self.escalation_action):
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities)
        if latest_action != ACTION_LISTEN_NAME:  # the user's turn (Rasa may log featurization events after it)
            return self._prediction(probabilities)
        intent = tracker.latest_message.intent.get("name") if tracker.latest_message else None
        open_question = tracker.get_slot(self.slot)
        if intent == self.emergency_intent and not open_question:
            logger.debug(
                f"EmergencyTriagePolicy: a strong emergency signal; predicting '{self.escalation_action}'"
                f"{' over the active form ' + repr(tracker.active_loop_name) if tracker.active_loop_name else ''}."
            )
            probabilities[domain.index_for_action(self.escalation_action)] = 1.0
        elif intent == self.triage_intent or open_question:
            logger.debug(
                "EmergencyTriagePolicy: "
                f"{'the answer to the open triage question' if open_question else 'a moderate emergency signal'} "
                f"(intent '{intent}'); predicting '{self.action}'."
            )
            probabilities[domain.index_for_action(self.action)] = 1.0
        return self._prediction(probabilities)
