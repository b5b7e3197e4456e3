"""The plugin: custom Rasa graph components, guardrails and generation.

The route of one message, by folder:

- ``emergency_detector``, ``input_rails`` (NLU components): the user's text is
  checked; emergencies and fired rails set the intent; ``emergency``: the one
  home of the emergency signal, its tiers and responses;
- ``triage_policy``, ``llm_response_policy`` (policies): a moderate emergency
  signal asks first (``action_emergency_triage``, ``triage_action``);
  open-ended turns go to ``action_llm_response``;
- ``guardrails/``: every rail (registry, records, lists); ``generation/``:
  the response model backends; ``retrieval/``: the knowledge index and
  grounding; ``config``: the plugin's settings, read once;
- ``llm_action`` (action server): the LLM turn; ``action_server``: the
  action server behind loopback and a shared secret; ``action_failure``
  (Rasa process): a custom action that cannot run answers, never silence;
- ``redacting_tracker_store``: what is stored; ``channels/`` and ``stores/``:
  deployment parts (REST/Slack/Telegram, the Redis lock store).

Reference the graph components in ``config.yml`` by dotted path, e.g.
``components.llm_response_policy.LLMResponsePolicy``. The public classes are
re-exported here lazily: importing ``components.guardrails`` or
``components.generation`` (as the action server does) loads none of Rasa's
graph machinery, and no model or file.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmergencyDetector": "components.emergency_detector",
    "EmergencyTriagePolicy": "components.triage_policy",
    "InputRails": "components.input_rails",
    "LLMResponsePolicy": "components.llm_response_policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
