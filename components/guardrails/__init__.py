"""Guardrails: input and output rails that detect and report.

One module per concern: ``pii`` (detection and redaction), ``patterns``
(pattern rails whose default lists live in ``lists/<rail>.yml``), ``output``
(degenerate replies, prompt leaks), ``engine`` (runs the configured rails).
"""

from components.guardrails.engine import INPUT_RAILS, OUTPUT_RAILS, Guardrails, RailsResult
from components.guardrails.verdict import Verdict

__all__ = ["Guardrails", "RailsResult", "Verdict", "INPUT_RAILS", "OUTPUT_RAILS"]
