"""Runs the configured input and output rails and says which verdict decides.

Rails only detect and report. What the assistant does about a verdict is
configuration: the input side maps a fired rail to an intent (``on_input``),
which rules in ``data/rules.yml`` map to a domain response; the output side
maps a fired rail to the domain response that replaces the reply
(``on_output``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from rasa.shared.exceptions import InvalidConfigException

from components.guardrails import output, pii
from components.guardrails.patterns import PatternRail, load_groups
from components.guardrails.verdict import Verdict

INPUT_RAILS = ("injection", "harmful", "medical_advice", "scope", "pii")
OUTPUT_RAILS = (
    "degenerate", "toxicity", "harmful", "pii_leak", "prompt_leak", "medical_claims",
    "unsupported_claims",
)
PATTERN_RAILS = (
    "injection", "harmful", "medical_advice", "scope", "toxicity", "medical_claims",
    "unsupported_claims",
)

# Ordinary questions that only sound risky; matched text is masked before the
# rails look (e.g. "kill a Python process", "shoot a photo").
DEFAULT_ALLOW = {
    "harmful": [
        r"\bkill(ing)?\s+(a |the |this |that |all |my |every |each |zombie |background |hung |stuck |running |old |orphan(ed)? |child )*"
        r"(\w+ )?(process(es)?|tasks?|jobs?|threads?|programs?|apps?|commands?|servers?|sessions?|terminals?|containers?|pods?|pids?|signals?|daemons?|services?|loops?)\b",
        r"\bkill (time|the lights|the engine|the music|it)\b",
        r"\bshoot(ing)? (a |an |the |some )?(\w+ ){0,2}(photo|picture|video|film|movie|scene|portrait|hoops|basket|email|message)s?\b",
        r"\b(report|avoid|spot|recogni[sz]e|detect|identify|block|prevent|protect \w+ from)\b.{0,20}\b(scams?|phishing|fraud|malware|viruses|hackers?)\b",
        r"\b(exploit|exploiting) (this|the|an?) (opportunity|feature|pattern|property)\b",
        r"\bgrow (tomatoes|plants|vegetables|herbs|flowers)\b",
        r"\bprocess(es)? killed\b",
    ],
    "medical_advice": [r"\bdose of (sunlight|sun|light|water|fertili[sz]er|exercise|humou?r|reality|caffeine for plants)\b"],
}


@dataclass
class RailsResult:
    """All verdicts of one side, the one that decides, and the timing."""

    verdicts: List[Verdict]
    decisive: Optional[Verdict]
    redacted_text: Optional[str] = None
    latency_ms: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        """What is recorded on the tracker: verdicts without raw PII."""
        return {
            "verdicts": [v.as_dict() for v in self.verdicts],
            "decisive": self.decisive.rail if self.decisive else None,
            "latency_ms": round(self.latency_ms, 3),
        }


class Guardrails:
    """The input and output rails, built from a validated config dict.

    Config keys (all optional):
        input_rails: rails run on user messages, in order.
        output_rails: rails run on generated replies, in order.
        patterns: ``{rail: {category: [regex]}}``, replaces a rail's default groups.
        extra_patterns: ``{rail: {category: [regex]}}``, added to the defaults.
        allow: ``{rail: [regex]}``, near-misses masked before that rail looks;
            replaces the defaults for that rail.
        pii_types: PII types to detect (default: all).
    """

    def __init__(self, config: Dict[str, Any]) -> None:
        self.input_rails = _names(config, "input_rails", INPUT_RAILS)
        self.output_rails = _names(config, "output_rails", OUTPUT_RAILS)
        self.pii_types = tuple(config.get("pii_types") or pii.ALL_TYPES)
        unknown = set(self.pii_types) - set(pii.ALL_TYPES)
        if unknown:
            raise InvalidConfigException(
                f"Guardrails: unknown pii_types {sorted(unknown)}; use some of {list(pii.ALL_TYPES)}."
            )
        patterns = config.get("patterns") or {}
        extra = config.get("extra_patterns") or {}
        allow = {**DEFAULT_ALLOW, **(config.get("allow") or {})}
        for key, value in (("patterns", patterns), ("extra_patterns", extra), ("allow", allow)):
            if not isinstance(value, dict) or set(value) - set(PATTERN_RAILS):
                raise InvalidConfigException(
                    f"Guardrails: '{key}' must map rail names ({', '.join(PATTERN_RAILS)}) "
                    f"to patterns, got {value!r}."
                )
        self._pattern_rails: Dict[str, PatternRail] = {}
        for name in PATTERN_RAILS:
            groups = dict(patterns.get(name) or load_groups(name))
            for category, more in (extra.get(name) or {}).items():
                groups[category] = list(groups.get(category, [])) + list(more)
            self._pattern_rails[name] = PatternRail(name, groups, allow.get(name))

    def check_input(self, text: str) -> RailsResult:
        """Runs the input rails; the first fired blocking rail decides."""
        start = time.perf_counter()
        verdicts, decisive, redacted = [], None, None
        for name in self.input_rails:
            if name == "pii":
                verdict = pii.check(text, self.pii_types)
                redacted = verdict.redacted
            else:
                verdict = self._pattern_rails[name].check(text)
                if verdict.triggered and decisive is None:
                    decisive = verdict
            verdicts.append(verdict)
        return RailsResult(verdicts, decisive, redacted, (time.perf_counter() - start) * 1000)

    def check_output(self, reply: str, user_text: str = "", system_prompt: str = "") -> RailsResult:
        """Runs the output rails; the first fired rail decides."""
        start = time.perf_counter()
        verdicts: List[Verdict] = []
        for name in self.output_rails:
            if name == "degenerate":
                verdict = output.degenerate(reply)
            elif name == "prompt_leak":
                verdict = output.prompt_leak(reply, system_prompt)
            elif name == "pii_leak":
                verdict = pii.new_pii(reply, user_text, self.pii_types) or Verdict("pii_leak", False)
            else:
                verdict = self._pattern_rails[name].check(reply)
            verdicts.append(verdict)
        decisive = next((v for v in verdicts if v.triggered), None)
        return RailsResult(verdicts, decisive, None, (time.perf_counter() - start) * 1000)


def _names(config: Dict[str, Any], key: str, allowed: Sequence[str]) -> List[str]:
    value = config.get(key)
    if value is None:
        return list(allowed)
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise InvalidConfigException(
            f"Guardrails: '{key}' must be a list of rail names from {list(allowed)}, got {value!r}."
        )
    return list(value)
