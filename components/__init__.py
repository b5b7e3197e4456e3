"""rasa-safe-hybrid: an LLM in a Rasa 3.6 assistant, inside guardrails (``pip install rasa-safe-hybrid``).

The route of one message, by folder (the source lives in the repository's
``components/`` folder and installs as ``rasa_safe_hybrid``):

- ``nlu/`` (Rasa NLU components): the featurizer and intent classifier; the
  input rails and emergency detection check the user's text, and emergencies
  and fired rails set the intent;
- ``policies/``: a moderate emergency signal asks first (the triage policy);
  open-ended turns go to ``action_llm_response`` (the LLM response policy);
- ``actions/`` (the action server): the LLM turn, the triage question, the
  action server behind loopback and a shared secret, and action-failure
  handling (a custom action that cannot run answers, never silence);
- ``channels/``: REST (+ the web chat page), Slack, Telegram, the review page;
  ``stores/``: the PII-redacting tracker store, the atomic Redis lock store;
- the shared core below them: ``guardrails/`` (every rail: registry, records,
  lists), ``generation/`` (the response model backends), ``retrieval/`` (the
  knowledge index and grounding), ``embeddings`` (one encoder per process),
  ``emergency`` (the one home of the emergency signal, its tiers and
  responses), ``small_talk``, ``review/`` (ratings and their export),
  ``config`` (the plugin's settings, read once), ``texts`` (the fallback texts
  channels and actions share);
- ``init``: ``python -m rasa_safe_hybrid init PATH`` adds the plugin to a project.

Reference the graph components in ``config.yml`` by dotted path, e.g.
``rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy``. The public classes are
re-exported here lazily: importing ``rasa_safe_hybrid.guardrails`` or
``rasa_safe_hybrid.generation`` (as the action server does) loads none of Rasa's
graph machinery, and no model or file.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmergencyDetector": "rasa_safe_hybrid.nlu.emergency_detector",
    "EmergencyTriagePolicy": "rasa_safe_hybrid.policies.triage_policy",
    "InputRails": "rasa_safe_hybrid.nlu.input_rails",
    "LLMResponsePolicy": "rasa_safe_hybrid.policies.llm_response_policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rasa_safe_hybrid' has no attribute {name!r}")
