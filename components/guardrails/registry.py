"""Every rail in one table: its name, the sides it runs on, what it checks, its data.

A new rail is one ``RailSpec`` in ``RAILS`` plus its data file; the engine
and the config validation read this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Protocol, Sequence, Tuple

from rasa_safe_hybrid.embeddings import DEFAULT_MODEL as DEFAULT_ENCODER
from rasa_safe_hybrid.guardrails import output, pii
from rasa_safe_hybrid.guardrails.patterns import PatternRail, load_allow, load_groups
from rasa_safe_hybrid.guardrails.verdict import RailContext, Verdict

INPUT = "input"
OUTPUT = "output"


class Rail(Protocol):
    """A built rail: detects and reports, never decides."""

    name: str

    def check(self, context: RailContext) -> Verdict:
        """The verdict on ``context.text``."""


@dataclass(frozen=True)
class RailSettings:
    """The validated ``rails`` config a rail is built from (see ``Guardrails``)."""

    patterns: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    extra_patterns: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    allow: Dict[str, List[str]] = field(default_factory=dict)
    pii_types: Tuple[str, ...] = pii.ALL_TYPES
    thresholds: Dict[str, float] = field(default_factory=dict)
    encoder: str = DEFAULT_ENCODER
    heads: Optional[str] = None  # folder of heads.npz/heads.json; None: the trained ones shipped here


@dataclass(frozen=True)
class RailSpec:
    """One rail.

    Attributes:
        name: used in config (``input_rails``, ``on_input``, ``on_output``) and verdicts.
        sides: ``input`` and/or ``output``.
        checks: one line saying what it detects.
        build: makes the rail from the settings (lists compiled, models loaded).
        blocking: whether a fired verdict decides the turn (PII on the input side
            redacts and never blocks).
        data: the data files or models it reads, for the docs.
        default_sides: the sides on which it runs when the config names no rails
            (domain-specific rails are opt-in).
    """

    name: str
    sides: FrozenSet[str]
    checks: str
    build: Callable[[RailSettings], Rail]
    blocking: bool = True
    data: str = ""
    default_sides: FrozenSet[str] = frozenset()


@dataclass
class _FunctionRail:
    name: str
    function: Callable[[RailContext], Verdict]

    def check(self, context: RailContext) -> Verdict:
        return self.function(context)


def _pattern(name: str) -> Callable[[RailSettings], Rail]:
    def build(settings: RailSettings) -> Rail:
        groups = dict(settings.patterns.get(name) or load_groups(name))
        for category, more in (settings.extra_patterns.get(name) or {}).items():
            groups[category] = list(groups.get(category, [])) + list(more)
        allow = settings.allow[name] if name in settings.allow else load_allow().get(name)
        return PatternRail(name, groups, allow)
    return build


def _pii_input(settings: RailSettings) -> Rail:
    return _FunctionRail(pii.RAIL, lambda c: pii.check(c.text, settings.pii_types))


def _pii_leak(settings: RailSettings) -> Rail:
    return _FunctionRail(
        pii.LEAK_RAIL, lambda c: pii.new_pii(c.text, c.user_text, settings.pii_types) or Verdict(pii.LEAK_RAIL, False)
    )


def _function(name: str, function: Callable[[RailContext], Verdict]) -> Callable[[RailSettings], Rail]:
    return lambda settings: _FunctionRail(name, function)


def _learned(name: str, head: str, threshold_key: Optional[str] = None,
             judge: Optional[str] = None) -> Callable[[RailSettings], Rail]:
    def build(settings: RailSettings) -> Rail:
        from rasa_safe_hybrid.guardrails.learned import rails as learned

        return learned.build(name, head, settings, threshold_key, judge)
    return build


def _ungrounded(settings: RailSettings) -> Rail:
    def check(context: RailContext) -> Verdict:
        if context.passages is None:
            return Verdict("ungrounded", False)
        from rasa_safe_hybrid.retrieval.grounding import check as grounding

        result = grounding(context.text, context.passages, settings.encoder, context.user_text)
        if result.grounded:
            return Verdict("ungrounded", False, score=round(result.support, 4), source="model")
        return Verdict("ungrounded", True, f"{result.reason}: {(result.unsupported or '')[:120]!r}",
                       score=round(result.support, 4), source="model")
    return _FunctionRail("ungrounded", check)


def _small_talk(settings: RailSettings) -> Rail:
    def check(context: RailContext) -> Verdict:
        if context.passages != ():  # only a chit-chat turn (no passages, not a grounded or free turn)
            return Verdict("small_talk", False)
        from rasa_safe_hybrid.small_talk import shared

        reason = shared(settings.encoder).misread(context.text, [context.user_text] if context.user_text else [])
        return Verdict("small_talk", reason is not None, reason or "", source="model")
    return _FunctionRail("small_talk", check)


LEARNED = "learned/heads.npz + the sentence encoder"
BOTH = frozenset({INPUT, OUTPUT})
ONLY_INPUT = frozenset({INPUT})
ONLY_OUTPUT = frozenset({OUTPUT})
NONE: FrozenSet[str] = frozenset()

RAILS: Dict[str, RailSpec] = {
    spec.name: spec
    for spec in (
        RailSpec("injection", ONLY_INPUT, "prompt injection, jailbreak framings, system-prompt extraction",
                 _pattern("injection"), data="lists/injection.yml", default_sides=ONLY_INPUT),
        RailSpec("harmful", BOTH, "requests for (input) or replies with (output) harmful content",
                 _pattern("harmful"), data="lists/harmful.yml, lists/allow.yml", default_sides=BOTH),
        RailSpec("medical_advice", ONLY_INPUT, "requests for a diagnosis, a dose or a treatment choice",
                 _pattern("medical_advice"), data="lists/medical_advice.yml, lists/allow.yml"),
        RailSpec("scope", ONLY_INPUT, "topics the assistant does not cover (opt-in, assistant-specific)",
                 _pattern("scope"), data="lists/scope.yml"),
        RailSpec("emergency", ONLY_INPUT, "a medical emergency or self-harm stated in the message",
                 _pattern("emergency"), data="lists/emergency.yml"),
        RailSpec("attack_classifier", ONLY_INPUT, "learned: jailbreak framings, prompt injection and extraction",
                 _learned("attack_classifier", "attack"), data=LEARNED, default_sides=ONLY_INPUT),
        RailSpec("harmful_classifier", ONLY_INPUT, "learned: requests for harmful help (instructions, plans), "
                 "with a zero-shot category", _learned("harmful_classifier", "harmful"), data=LEARNED,
                 default_sides=ONLY_INPUT),
        RailSpec("hateful_classifier", ONLY_INPUT, "learned: hateful, harassing, sexual or violent text itself "
                 "(what moderation labels), with a zero-shot category", _learned("hateful_classifier", "hateful"),
                 data=LEARNED, default_sides=ONLY_INPUT),
        RailSpec("medical_advice_classifier", ONLY_INPUT, "learned: requests for a diagnosis, a dose, a "
                 "treatment choice, stopping or combining medicines (opt-in)",
                 _learned("medical_advice_classifier", "medical_advice"), data=LEARNED),
        RailSpec("emergency_classifier", ONLY_INPUT, "learned: a medical emergency or a self-harm crisis "
                 "(high recall; EmergencyDetector and the check before generation)",
                 _learned("emergency_classifier", "emergency"), data=LEARNED),
        RailSpec("emergency_classifier_strict", ONLY_INPUT, "learned: the emergency classifier at the stricter "
                 "threshold the EmergencyDetector uses (it overrides every intent)",
                 _learned("emergency_classifier_strict", "emergency", "emergency_strict"), data=LEARNED),
        RailSpec("pii", ONLY_INPUT, "emails, phones, cards, IBANs, national ids, IPs, street addresses "
                 "(redacted, never blocks)", _pii_input, blocking=False, default_sides=ONLY_INPUT),
        RailSpec("degenerate", ONLY_OUTPUT, "empty, repeated, template tokens, placeholders, not English",
                 _function("degenerate", lambda c: output.degenerate(c.text)), default_sides=ONLY_OUTPUT),
        RailSpec("toxicity", ONLY_OUTPUT, "insults and slurs in the reply", _pattern("toxicity"),
                 data="lists/toxicity.yml", default_sides=ONLY_OUTPUT),
        RailSpec("pii_leak", ONLY_OUTPUT, "PII in the reply that the user did not give", _pii_leak,
                 default_sides=ONLY_OUTPUT),
        RailSpec("prompt_leak", ONLY_OUTPUT, "the reply repeats or talks about the system prompt",
                 _function("prompt_leak", lambda c: output.prompt_leak(c.text, c.system_prompt)),
                 default_sides=ONLY_OUTPUT),
        RailSpec("harmful_compliance", ONLY_OUTPUT, "learned, with the user's message: a hateful reply, or "
                 "a reply that goes along with a harmful or attack request",
                 _learned("harmful_compliance", "hateful", judge="compliance"),
                 data=LEARNED, default_sides=ONLY_OUTPUT),
        RailSpec("ignored_emergency", ONLY_OUTPUT, "learned, with the user's message: the user stated an "
                 "emergency and the reply does not escalate",
                 _learned("ignored_emergency", "emergency", judge="ignored_emergency"),
                 data=LEARNED, default_sides=ONLY_OUTPUT),
        RailSpec("medical_claims", ONLY_OUTPUT, "diagnoses, doses or treatment claims in the reply",
                 _pattern("medical_claims"), data="lists/medical_claims.yml"),
        RailSpec("ungrounded", ONLY_OUTPUT, "a sentence of a retrieval-grounded reply that no retrieved passage "
                 "supports (numbers, names, meaning)", _ungrounded,
                 data="the retrieved passages + the sentence encoder",
                 default_sides=ONLY_OUTPUT),
        RailSpec("small_talk", ONLY_OUTPUT, "a chit-chat reply that misreads the turn: condolences without a "
                 "loss, personal facts the assistant cannot have, a reply about something else",
                 _small_talk, data="components/small_talk.py + the sentence encoder", default_sides=ONLY_OUTPUT),
        RailSpec("unsupported_claims", ONLY_OUTPUT, "claims about the user's account, a human persona, "
                 "invented contact details", _pattern("unsupported_claims"),
                 data="lists/unsupported_claims.yml", default_sides=ONLY_OUTPUT),
    )
}

PATTERN_RAILS = tuple(name for name, spec in RAILS.items() if spec.data.startswith("lists/"))


def names(side: str) -> List[str]:
    """Every rail that can run on ``side``, in table order."""
    return [name for name, spec in RAILS.items() if side in spec.sides]


def default_names(side: str) -> List[str]:
    """The rails that run on ``side`` when the config names none."""
    return [name for name, spec in RAILS.items() if side in spec.default_sides]


def blocking_names(side: str) -> List[str]:
    """The rails of ``side`` whose verdicts can decide a turn."""
    return [name for name in names(side) if RAILS[name].blocking]


def build(names_: Sequence[str], settings: RailSettings, cache: Optional[Dict[str, Any]] = None) -> List[Rail]:
    """Builds the named rails; a rail already in ``cache`` (e.g. the other side's) is reused."""
    cache = {} if cache is None else cache
    for name in names_:
        if name not in cache:
            cache[name] = RAILS[name].build(settings)
    return [cache[name] for name in names_]
