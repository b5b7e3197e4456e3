"""Runs the configured input and output rails and says which verdict decides.

Rails only detect and report. What the assistant does about a verdict is
configuration: the input side maps a fired rail to an intent (``on_input``),
which rules map to a domain response; the output side maps a fired rail to the
domain response that replaces the reply (``on_output``).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.guardrails import pii, registry
from rasa_safe_hybrid.guardrails.record import RailsRecord
from rasa_safe_hybrid.guardrails.registry import INPUT, OUTPUT, RailContext, RailSettings


class Guardrails:
    """The input and output rails, built from a validated config dict.

    Config keys (all optional):
        input_rails: rails run on user messages, in order (default: the
            generic ones; ``medical_advice``, ``scope`` and ``emergency`` are opt-in).
        output_rails: rails run on generated replies, in order.
        patterns: ``{rail: {category: [regex]}}``, replaces a rail's default groups.
        extra_patterns: ``{rail: {category: [regex]}}``, added to the defaults.
        allow: ``{rail: [regex]}``, near-misses masked before that rail looks;
            replaces the defaults (``lists/allow.yml``) for that rail.
        pii_types: PII types to detect (default: all).
        before_generation: input rails the LLM action runs on the latest message and
            the last user turns together before it generates (default: the harmful,
            hateful and attack classifiers; emergencies are checked by
            ``rasa_safe_hybrid.emergency`` first); a fired one replaces generation.
        passage_rails: input rails every retrieved passage must pass before it reaches the
            prompt or the user (default: the injection patterns; indexed text is untrusted, an
            instruction in it is never followed or shown).
        document_rails: the same for passages of the user's own documents (default: the
            injection patterns and the attack classifier; the classifier reads dictionary
            definitions as attacks, 9 % of WordNet's and 21 % of FOLDOC's, so the pinned
            corpora get the patterns only).
        thresholds: ``{rail: score}``, overrides a learned rail's trained threshold.
        encoder: folder of the sentence encoder (default .cache/models/all-MiniLM-L6-v2).
        heads: folder of the trained heads (default: the ones shipped in learned/).
    """

    KEYS = ("input_rails", "output_rails", "before_generation", "passage_rails", "document_rails", "patterns",
            "extra_patterns", "allow", "pii_types", "thresholds", "encoder", "heads")
    DEFAULT_BEFORE_GENERATION = ["harmful_classifier", "hateful_classifier", "attack_classifier"]
    DEFAULT_PASSAGE_RAILS = ["injection"]
    DEFAULT_DOCUMENT_RAILS = ["injection", "attack_classifier"]

    def __init__(self, config: Dict[str, Any]) -> None:
        unknown = sorted(set(config) - set(self.KEYS))
        if unknown:
            raise InvalidConfigException(
                f"Guardrails: unknown key(s) {unknown} under `rails`; known keys: {list(self.KEYS)}."
            )
        self.input_rails = _names(config, "input_rails", INPUT)
        self.output_rails = _names(config, "output_rails", OUTPUT)
        self.before_generation = _names(config, "before_generation", INPUT, self.DEFAULT_BEFORE_GENERATION)
        self.settings = _settings(config)
        self._cache: Dict[str, Any] = {}
        self._input = registry.build(self.input_rails, self.settings, self._cache)
        self._output = registry.build(self.output_rails, self.settings, self._cache)
        self.passage_rails = _names(config, "passage_rails", INPUT, self.DEFAULT_PASSAGE_RAILS)
        self.document_rails = _names(config, "document_rails", INPUT, self.DEFAULT_DOCUMENT_RAILS)
        self._before: List[registry.Rail] = []  # built on first use: only the action server needs them
        self._passage: Dict[bool, List[registry.Rail]] = {}

    def check_input(self, text: str, history: Sequence[str] = ()) -> RailsRecord:
        """Runs the input rails; the first fired blocking rail decides."""
        context = RailContext(text=text, history=tuple(history))
        record = self._run(self._input, context)
        pii_verdict = record.verdict(pii.RAIL)
        if pii_verdict is not None and pii_verdict.triggered:
            record.redacted_text = pii_verdict.redacted
        return record

    def check_before_generation(self, text: str, history: Sequence[str] = ()) -> RailsRecord:
        """The rails of ``before_generation`` on the latest message and the last user turns."""
        if not self._before and self.before_generation:
            self._before = registry.build(self.before_generation, self.settings, self._cache)
        return self._run(self._before, RailContext(text=text, history=tuple(history)))

    def check_passage(self, text: str, document: bool = False) -> RailsRecord:
        """The ``passage_rails`` (``document``: the ``document_rails``) on one retrieved passage;
        a fired one keeps it out of the turn.
        """
        if document not in self._passage:
            names = self.document_rails if document else self.passage_rails
            self._passage[document] = registry.build(names, self.settings, self._cache)
        return self._run(self._passage[document], RailContext(text=text))

    def check_output(self, reply: str, user_text: str = "", system_prompt: str = "",
                     passages: Optional[Sequence[str]] = None, emergency_denied: bool = False) -> RailsRecord:
        """Runs the output rails; the first fired rail decides. ``passages``: what a
        grounded reply must rest on (``ungrounded`` checks it; None: not grounded).
        ``emergency_denied``: the user said "no" to the triage question about ``user_text``.
        """
        context = RailContext(text=reply, user_text=user_text, system_prompt=system_prompt,
                              passages=None if passages is None else tuple(passages),
                              emergency_denied=emergency_denied)
        return self._run(self._output, context)

    @staticmethod
    def _run(rails: List[registry.Rail], context: RailContext) -> RailsRecord:
        start = time.perf_counter()
        verdicts = [rail.check(context) for rail in rails]
        decisive = next((v for v in verdicts if v.triggered and registry.RAILS[v.rail].blocking), None)
        return RailsRecord(verdicts, decisive, latency_ms=(time.perf_counter() - start) * 1000)


def _names(config: Dict[str, Any], key: str, side: str, default: Optional[List[str]] = None) -> List[str]:
    value = config.get(key)
    if value is None:
        return list(default) if default is not None else registry.default_names(side)
    allowed = registry.names(side)
    if not isinstance(value, list) or any(v not in allowed for v in value) or len(set(value)) != len(value):
        raise InvalidConfigException(
            f"Guardrails: '{key}' must be a list of distinct rail names from {allowed}, got {value!r}."
        )
    return list(value)


def _settings(config: Dict[str, Any]) -> RailSettings:
    pii_types = tuple(config.get("pii_types") or pii.ALL_TYPES)
    unknown = set(pii_types) - set(pii.ALL_TYPES)
    if unknown:
        raise InvalidConfigException(
            f"Guardrails: unknown pii_types {sorted(unknown)}; use some of {list(pii.ALL_TYPES)}."
        )
    mappings = {key: config.get(key) or {} for key in ("patterns", "extra_patterns", "allow")}
    for key, value in mappings.items():
        if not isinstance(value, dict) or set(value) - set(registry.PATTERN_RAILS):
            raise InvalidConfigException(
                f"Guardrails: '{key}' must map pattern rail names ({', '.join(registry.PATTERN_RAILS)}) "
                f"to patterns, got {value!r}."
            )
    thresholds = config.get("thresholds") or {}
    if not isinstance(thresholds, dict) or any(
        name not in registry.RAILS or not isinstance(v, (int, float)) or not 0 < v < 1 for name, v in thresholds.items()
    ):
        raise InvalidConfigException(
            f"Guardrails: 'thresholds' must map learned rail names to scores between 0 and 1, got {thresholds!r}."
        )
    for key in ("encoder", "heads"):
        if config.get(key) is not None and (not isinstance(config[key], str) or not config[key].strip()):
            raise InvalidConfigException(f"Guardrails: '{key}' must be a folder path, got {config[key]!r}.")
    return RailSettings(
        patterns=mappings["patterns"], extra_patterns=mappings["extra_patterns"],
        allow=mappings["allow"], pii_types=pii_types, thresholds=dict(thresholds),
        encoder=config.get("encoder") or RailSettings.encoder, heads=config.get("heads"),
    )
