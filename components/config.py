"""The plugin's configuration: defaults, validation, and reading it from ``config.yml``.

One home for every setting of the plugin. The graph components
(``InputRails``, ``LLMResponsePolicy``) take their defaults and validation
from here, and so does the action server, which reads the same ``config.yml``
the model was trained with (``load_plugin_config``): one source of truth, and
nothing here imports Rasa's graph classes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Tuple

import yaml
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.generation.settings import GenerationSettings
from rasa_safe_hybrid.guardrails import Guardrails
from rasa_safe_hybrid.guardrails.registry import INPUT, OUTPUT, blocking_names, default_names, names
from rasa_safe_hybrid.retrieval.settings import RetrievalConfigError, RetrievalSettings

# The Rasa config the action server reads the plugin's settings from (default:
# config.yml in the folder the action server runs in).
ENV_RASA_CONFIG = "ASSISTANT_RASA_CONFIG"

POLICY_NAME = "LLMResponsePolicy"
INPUT_RAILS_NAME = "InputRails"

# InputRails keys
RAILS_KEY = "rails"
ON_INPUT_KEY = "on_input"
SKIP_INTENTS_KEY = "skip_intents"
SKIP_MIN_CONFIDENCE_KEY = "skip_min_confidence"
REDACT_LOGS_KEY = "redact_logs"
# LLMResponsePolicy keys
PRIORITY_KEY = "priority"
TRIGGER_INTENTS_KEY = "trigger_intents"
ACTION_KEY = "action"
GENERATION_KEY = "generation"
OUTPUT_RAILS_KEY = "output_rails"
ON_OUTPUT_KEY = "on_output"
TRACE_SLOT_KEY = "trace_slot"
RETRIEVAL_KEY = "retrieval"
DEFAULT_RESPONSE_KEY = "default"
ERROR_RESPONSE_KEY = "error"
ACTION_FAILED_KEY = "action_failed"
ACTION_FAILED_RESPONSE = "utter_action_failed"


def input_rails_defaults() -> Dict[str, Any]:
    """``InputRails``' default config."""
    return {
        # Settings of rasa_safe_hybrid.guardrails.Guardrails: input_rails, output_rails,
        # patterns, extra_patterns, allow, pii_types. Empty: the generic rails.
        RAILS_KEY: {},
        # Fired rail -> intent that replaces the classifier's intent (a rule maps
        # each intent to a response). Only rails that run need an entry.
        ON_INPUT_KEY: {
            "injection": "guardrail_injection",
            "attack_classifier": "guardrail_injection",
            "harmful": "guardrail_harmful",
            "harmful_classifier": "guardrail_harmful",
            "hateful_classifier": "guardrail_harmful",
            "medical_advice": "guardrail_medical_advice",
            "medical_advice_classifier": "guardrail_medical_advice",
            "scope": "guardrail_out_of_scope",
        },
        # Intents that are never overridden (e.g. an emergency intent wins over every rail)...
        SKIP_INTENTS_KEY: [],
        # ...when the NLU is at least this sure of them (EmergencyDetector sets 1.0 when
        # it escalates); a weaker top guess yields to a rail that fired. 0: always kept.
        SKIP_MIN_CONFIDENCE_KEY: 0.0,
        # Redact PII in every log line of the process (Rasa logs raw messages at DEBUG).
        REDACT_LOGS_KEY: True,
    }


def policy_defaults() -> Dict[str, Any]:
    """``LLMResponsePolicy``'s default config."""
    return {
        # Between MemoizationPolicy (3) and RulePolicy (6): a rule still wins a tie.
        PRIORITY_KEY: 4,
        # Intents the LLM answers (outside forms).
        TRIGGER_INTENTS_KEY: ["nlu_fallback", "out_of_scope", "chitchat"],
        # The custom action that generates and delivers the reply.
        ACTION_KEY: "action_llm_response",
        # Model and decoding settings (rasa_safe_hybrid.generation.GenerationSettings).
        GENERATION_KEY: {},
        # Output rails run on each reply, in order (default: the generic ones).
        OUTPUT_RAILS_KEY: None,
        # Fired rail (output rails, the rails run before generation) or "error" (generation
        # failed) -> the domain response sent instead of a reply. "rail:category" keys
        # are more specific (e.g. "emergency:self_harm"); "default" covers the rest.
        # "action_failed": a custom action could not run (rasa_safe_hybrid.actions.action_failure);
        # on an emergency turn the "emergency" responses answer instead.
        ON_OUTPUT_KEY: {
            DEFAULT_RESPONSE_KEY: "utter_llm_fallback",
            ERROR_RESPONSE_KEY: "utter_llm_unavailable",
            ACTION_FAILED_KEY: ACTION_FAILED_RESPONSE,
            "emergency": "utter_llm_emergency",
            "emergency_classifier": "utter_llm_emergency",
            "ignored_emergency": "utter_llm_emergency",
            "harmful_classifier": "utter_guardrail_harmful",
            "hateful_classifier": "utter_guardrail_harmful",
            "attack_classifier": "utter_guardrail_injection",
        },
        # Slot that receives the per-turn trace (model, tokens, latency, verdicts); null: none.
        TRACE_SLOT_KEY: "llm_trace",
        # Answers from the knowledge index (rasa_safe_hybrid.retrieval.RetrievalSettings); off by default.
        RETRIEVAL_KEY: {},
    }


@dataclass(frozen=True)
class InputRailsConfig:
    """Validated ``InputRails`` settings."""

    guardrails: Guardrails
    on_input: Dict[str, str]
    skip_intents: FrozenSet[str]
    redact_logs: bool
    skip_min_confidence: float = 0.0

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> InputRailsConfig:
        """Validates fields, then combinations; raises ``InvalidConfigException``."""
        config = {**input_rails_defaults(), **config}
        rails = config.get(RAILS_KEY) or {}
        if not isinstance(rails, dict):
            raise InvalidConfigException(f"InputRails: '{RAILS_KEY}' must be a mapping, got {rails!r}.")
        guardrails = Guardrails(rails)
        blocking = blocking_names(INPUT)
        on_input = config.get(ON_INPUT_KEY) or {}
        if not isinstance(on_input, dict) or any(
            rail not in blocking or not isinstance(intent, str) or not intent for rail, intent in on_input.items()
        ):
            raise InvalidConfigException(
                f"InputRails: '{ON_INPUT_KEY}' must map blocking rail names ({', '.join(blocking)}) "
                f"to intent names, got {on_input!r}. PII is redacted, never routed."
            )
        missing = [r for r in guardrails.input_rails if r in blocking and r not in on_input]
        if missing:
            raise InvalidConfigException(
                f"InputRails: rails {missing} run but '{ON_INPUT_KEY}' names no intent for "
                f"them; add one per rail (and a rule for each intent)."
            )
        skip = config.get(SKIP_INTENTS_KEY) or []
        if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
            raise InvalidConfigException(f"InputRails: '{SKIP_INTENTS_KEY}' must be a list of intents, got {skip!r}.")
        floor = config.get(SKIP_MIN_CONFIDENCE_KEY)
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
            raise InvalidConfigException(
                f"InputRails: '{SKIP_MIN_CONFIDENCE_KEY}' must be a number from 0 to 1, got {floor!r}.")
        return cls(guardrails, dict(on_input), frozenset(skip), bool(config.get(REDACT_LOGS_KEY, True)),
                   float(floor))


@dataclass(frozen=True)
class PolicyConfig:
    """Validated ``LLMResponsePolicy`` settings."""

    trigger_intents: FrozenSet[str]
    action: str
    generation: GenerationSettings
    output_rails: Tuple[str, ...]
    on_output: Dict[str, str]
    trace_slot: Optional[str]
    retrieval: RetrievalSettings = RetrievalSettings()

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> PolicyConfig:
        """Validates fields, then combinations; raises ``InvalidConfigException``."""
        config = {**policy_defaults(), **config}
        triggers = config.get(TRIGGER_INTENTS_KEY)
        if not isinstance(triggers, list) or not triggers or not all(isinstance(t, str) for t in triggers):
            raise InvalidConfigException(
                f"LLMResponsePolicy: '{TRIGGER_INTENTS_KEY}' must be a non-empty list of intent "
                f"names, got {triggers!r}."
            )
        action = config.get(ACTION_KEY)
        if not isinstance(action, str) or not action.startswith("action_"):
            raise InvalidConfigException(
                f"LLMResponsePolicy: '{ACTION_KEY}' must name a custom action (action_...), got {action!r}."
            )
        allowed = names(OUTPUT)
        known = set(allowed) | set(names(INPUT))
        rails = config.get(OUTPUT_RAILS_KEY)
        if rails is not None and (not isinstance(rails, list) or any(r not in allowed for r in rails)):
            raise InvalidConfigException(
                f"LLMResponsePolicy: '{OUTPUT_RAILS_KEY}' must be a list of rails from {allowed}, got {rails!r}."
            )
        on_output = config.get(ON_OUTPUT_KEY)
        if not isinstance(on_output, dict) or DEFAULT_RESPONSE_KEY not in on_output or any(
            (str(k).split(":")[0] not in known
             and k not in (DEFAULT_RESPONSE_KEY, ERROR_RESPONSE_KEY, ACTION_FAILED_KEY))
            or not str(v).startswith("utter_")
            for k, v in on_output.items()
        ):
            raise InvalidConfigException(
                f"LLMResponsePolicy: '{ON_OUTPUT_KEY}' must map rail names (or rail:category), "
                f"'{ERROR_RESPONSE_KEY}', '{ACTION_FAILED_KEY}' and '{DEFAULT_RESPONSE_KEY}' (required) to domain "
                f"responses (utter_...), got {on_output!r}."
            )
        slot = config.get(TRACE_SLOT_KEY)
        if slot is not None and (not isinstance(slot, str) or not slot):
            raise InvalidConfigException(
                f"LLMResponsePolicy: '{TRACE_SLOT_KEY}' must be a slot name or null, got {slot!r}."
            )
        try:
            retrieval = RetrievalSettings.from_config(config.get(RETRIEVAL_KEY))
        except RetrievalConfigError as error:
            raise InvalidConfigException(f"LLMResponsePolicy: '{RETRIEVAL_KEY}': {error}") from error
        return cls(
            frozenset(triggers), action, GenerationSettings.from_config(config.get(GENERATION_KEY)),
            tuple(rails) if rails is not None else tuple(default_names(OUTPUT)),
            dict(on_output), slot, retrieval,
        )

    def response_for(self, key: str, category: Optional[str] = None) -> str:
        """The domain response sent when ``key`` (a rail or "error") fires, most specific first."""
        specific = self.on_output.get(f"{key}:{category}") if category else None
        return specific or self.on_output.get(key) or self.on_output[DEFAULT_RESPONSE_KEY]

    @property
    def action_failed_response(self) -> str:
        """The response that answers a custom action that could not run."""
        return self.on_output.get(ACTION_FAILED_KEY, ACTION_FAILED_RESPONSE)


@dataclass(frozen=True)
class PluginConfig:
    """What the action server needs: the policy's settings and the rails of both sides."""

    policy: PolicyConfig
    guardrails: Guardrails
    emergency: Any = None  # rasa_safe_hybrid.emergency.EmergencySignal, as the EmergencyDetector is configured

    @property
    def generation(self) -> GenerationSettings:
        """The generation settings."""
        return self.policy.generation

    @property
    def trace_slot(self) -> Optional[str]:
        """The slot that receives the per-turn trace."""
        return self.policy.trace_slot


def component_block(config: Dict[str, Any], section: str, class_name: str) -> Optional[Dict[str, Any]]:
    """The settings of the component ``class_name`` (matched by its last dotted part) in a config."""
    for item in config.get(section) or []:
        if isinstance(item, dict) and str(item.get("name", "")).split(".")[-1] == class_name:
            return {k: v for k, v in item.items() if k != "name"}
    return None


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> PluginConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except yaml.YAMLError as error:
        raise InvalidConfigException(f"{path} is not valid YAML: {error}") from error
    policy_block = component_block(raw, "policies", POLICY_NAME)
    if policy_block is None:
        raise InvalidConfigException(
            f"{path} has no {POLICY_NAME} under `policies`; add "
            f"`- name: rasa_safe_hybrid.policies.llm_response_policy.{POLICY_NAME}`."
        )
    policy = PolicyConfig.from_config(policy_block)
    rails = dict((component_block(raw, "pipeline", INPUT_RAILS_NAME) or {}).get(RAILS_KEY) or {})
    rails["output_rails"] = list(policy.output_rails)
    from rasa_safe_hybrid.emergency import EmergencySignal

    # the EmergencyDetector's settings (EmergencySignal defaults every key it reads)
    detector = dict(component_block(raw, "pipeline", "EmergencyDetector") or {})
    if detector.get("classifier", {}) == {}:  # the default: the encoder and heads the rails are configured with
        detector["classifier"] = {k: rails[k] for k in ("encoder", "heads") if rails.get(k)}
    return PluginConfig(policy, Guardrails(rails), EmergencySignal.from_config(detector, owner="EmergencyDetector"))


def rasa_config_path() -> Path:
    """The config.yml the action server reads: ``$ASSISTANT_RASA_CONFIG`` or ./config.yml."""
    return Path(os.environ.get(ENV_RASA_CONFIG) or "config.yml")


def load_plugin_config(path: Path) -> PluginConfig:
    """The plugin settings of the Rasa config at ``path`` (re-read when the file changes).

    Raises:
        InvalidConfigException: the file is missing, not YAML, or its settings are invalid.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidConfigException(
            f"Rasa config {path} not found; set ASSISTANT_RASA_CONFIG to the config.yml the model was trained with."
        )
    return _load(str(path.resolve()), path.stat().st_mtime_ns)
