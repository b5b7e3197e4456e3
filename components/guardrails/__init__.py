"""Guardrails: input and output rails that detect and report.

One module per concern: ``registry`` (every rail in one table), ``engine``
(runs the configured rails), ``record`` (the typed record stored in parse data
and traces), ``verdict``, ``pii`` (detection and redaction), ``patterns``
(pattern rails whose lists live in ``lists/<rail>.yml``), ``output``
(degenerate replies, prompt leaks). Nothing here imports Rasa's graph classes.
"""

from rasa_safe_hybrid.guardrails.engine import Guardrails
from rasa_safe_hybrid.guardrails.record import GUARDRAILS_KEY, RailsRecord, text_for_model
from rasa_safe_hybrid.guardrails.registry import RAILS, RailContext, RailSpec
from rasa_safe_hybrid.guardrails.verdict import Verdict

__all__ = [
    "GUARDRAILS_KEY", "Guardrails", "RAILS", "RailContext", "RailSpec", "RailsRecord",
    "Verdict", "text_for_model",
]
