"""Guardrails: input and output rails that detect and report.

One module per concern: ``registry`` (every rail in one table), ``engine``
(runs the configured rails), ``record`` (the typed record stored in parse data
and traces), ``verdict``, ``pii`` (detection and redaction), ``patterns``
(pattern rails whose lists live in ``lists/<rail>.yml``), ``output``
(degenerate replies, prompt leaks). Nothing here imports Rasa's graph classes.
"""

from components.guardrails.engine import Guardrails
from components.guardrails.record import GUARDRAILS_KEY, RailsRecord, text_for_model
from components.guardrails.registry import RAILS, RailContext, RailSpec
from components.guardrails.verdict import Verdict

__all__ = [
    "GUARDRAILS_KEY", "Guardrails", "RAILS", "RailContext", "RailSpec", "RailsRecord",
    "Verdict", "text_for_model",
]
