"""Reads this plugin's component settings from a Rasa ``config.yml``.

The action server is a separate process that generates the LLM replies and
runs the output rails. It takes their settings from the same ``config.yml``
the model was trained with, so there is one source of truth: the
``LLMResponsePolicy`` block (generation, output rails, responses) and the
``InputRails`` block (rail lists and patterns shared by both sides).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import yaml
from rasa.shared.exceptions import InvalidConfigException

from components.generation import GenerationSettings
from components.guardrails import Guardrails

POLICY_NAME = "LLMResponsePolicy"
INPUT_RAILS_NAME = "InputRails"


@dataclass(frozen=True)
class PluginConfig:
    """What the delivering action needs."""

    generation: GenerationSettings
    guardrails: Guardrails
    on_output: Dict[str, str]
    trace_slot: Optional[str]


def _block(config: Dict[str, Any], section: str, class_name: str) -> Optional[Dict[str, Any]]:
    for item in config.get(section) or []:
        if str(item.get("name", "")).split(".")[-1] == class_name:
            return {k: v for k, v in item.items() if k != "name"}
    return None


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> PluginConfig:
    from components.input_rails import InputRails
    from components.llm_response_policy import (
        LLMResponsePolicy,
        ON_OUTPUT_KEY,
        OUTPUT_RAILS_KEY,
        TRACE_SLOT_KEY,
        validate_config,
    )

    raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    policy_block = _block(raw, "policies", POLICY_NAME)
    if policy_block is None:
        raise InvalidConfigException(
            f"{path} has no {POLICY_NAME} under `policies`; add "
            f"`- name: components.llm_response_policy.{POLICY_NAME}`."
        )
    policy = {**LLMResponsePolicy.get_default_config(), **policy_block}
    settings = validate_config(policy)
    rails_block = {**InputRails.get_default_config(), **(_block(raw, "pipeline", INPUT_RAILS_NAME) or {})}
    rails = {**(rails_block.get("rails") or {}), "output_rails": policy[OUTPUT_RAILS_KEY]}
    return PluginConfig(settings, Guardrails(rails), dict(policy[ON_OUTPUT_KEY]), policy[TRACE_SLOT_KEY])


def load_plugin_config(path: Path) -> PluginConfig:
    """The plugin settings of ``path`` (re-read when the file changes)."""
    path = Path(path)
    if not path.exists():
        raise InvalidConfigException(f"Rasa config {path} not found (set ASSISTANT_RASA_CONFIG).")
    return _load(str(path.resolve()), path.stat().st_mtime_ns)
