"""Emergencies in one home: the signal, its two tiers, the triage question, the responses.

Whether a person is in danger now is decided here, once, and every part of the
assistant asks this module: the NLU component (``EmergencyDetector``), the LLM
action's check before generation, the actions that escalate or triage, and the
handler of failed actions.

The signal combines three detectors:

- **patterns** (``lists/emergency.yml``): phrases that say a person is in danger
  now ("I'm having a heart attack", "he's not breathing", "I want to kill
  myself") escalate at once. Words that name a danger without saying anyone is
  in it ("stroke", "choking", "overdose", "suicide"; ``lists/emergency_words.yml``)
  only count when the classifier agrees;
- **the emergency classifier** (a head on the shared sentence encoder), scored on
  the message, on each of its clauses (so an emergency beside an order number is
  not averaged away) and on the last user turns together;
- **the NLU's emergency intent** (its confidence in the intent ranking).

Two tiers, with thresholds in config (``tiers``):

- ``strong``: escalate at once (emergency numbers or crisis lines; any form ends);
- ``moderate``: ask first. The triage question itself carries the emergency
  number; "yes", an unclear answer or any new signal escalates, "no" carries on
  with what the user asked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Pattern, Sequence, Tuple

from rasa_safe_hybrid.guardrails.record import EMERGENCY_CHECK_KEY, RailsRecord
from rasa_safe_hybrid.guardrails.verdict import MODEL, PATTERN, Verdict

logger = logging.getLogger(__name__)

INTENT = "emergency"  # the strong tier's intent (a rule maps it to the escalation action)
TRIAGE_INTENT = "emergency_triage"  # the moderate tier's intent (the triage policy asks)
ENTITY = "emergency_type"  # entity with the kind
MEDICAL = "medical"
SELF_HARM = "self_harm"
KINDS = (MEDICAL, SELF_HARM)
STRONG = "strong"
MODERATE = "moderate"
TRIAGE_SLOT = "emergency_triage"  # the open triage question: the kind it asks about (None: none open)
TRIAGE_ACTION = "action_emergency_triage"
CHECK_KEY = EMERGENCY_CHECK_KEY  # parse-data key of the assessment record
TRIAGE_ANSWER_KEY = "triage_answer"  # in a re-played message's record: what the user answered
# Rails names in the record.
PATTERN_RAIL = "emergency"
WORDS_RAIL = "emergency_words"
CLASSIFIER_RAIL = "emergency_classifier"
INTENT_RAIL = "emergency_intent"
HISTORY_TURNS = 3  # earlier user messages scored together with the latest one

# Where a message is split into clauses: sentence ends, and the words people use to add a
# second thing to a message ("where's my order? also my chest hurts", "... and btw ...").
_CLAUSE_BREAK = re.compile(
    r"[.!?;\n]+\s*|,\s*(?=(?:and |but )?(?:also|btw|by the way|ps|plus|oh and|and also|but)\b)|"
    r"\s+(?=(?:and also|and btw|but also|also|btw|by the way|ps|p\.s\.)\b)",
    re.I,
)
MIN_CLAUSE_WORDS = 2


def clauses(text: str) -> List[str]:
    """The message's clauses of at least two words (empty when it has only one clause)."""
    parts = [p.strip(" ,") for p in _CLAUSE_BREAK.split(text or "") if p and p.strip(" ,")]
    parts = [p for p in parts if len(p.split()) >= MIN_CLAUSE_WORDS]
    return parts if len(parts) > 1 else []


@dataclass(frozen=True)
class Tiers:
    """Score thresholds of the two tiers (``tiers`` in config; the trained defaults otherwise).

    Attributes:
        strong: classifier score at or above which the turn escalates at once.
        moderate: classifier score at or above which the assistant asks first.
        intent_strong: the NLU emergency intent's confidence that escalates at once (None: the
            intent alone never escalates).
        intent_moderate: the confidence that asks first (None: the intent never asks).
    """

    strong: float
    moderate: float
    intent_strong: Optional[float] = 0.9
    intent_moderate: Optional[float] = 0.6

    @classmethod
    def from_config(cls, raw: Optional[Mapping[str, Any]], trained: Mapping[str, float], owner: str) -> Tiers:
        """Validated tiers: the trained thresholds, overridden by ``raw``.

        Raises:
            InvalidConfigException: a key is unknown, a value is not in (0, 1], or moderate > strong.
        """
        from rasa.shared.exceptions import InvalidConfigException

        raw = dict(raw or {})
        known = ("strong", "moderate", "intent_strong", "intent_moderate")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise InvalidConfigException(f"{owner}: unknown key(s) {unknown} under `tiers`; known: {list(known)}.")
        values: Dict[str, Any] = {"strong": trained["emergency_strict"], "moderate": trained["emergency"]}
        values.update(raw)
        for key, value in values.items():
            if value is None and key.startswith("intent_"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise InvalidConfigException(
                    f"{owner}: `tiers.{key}` must be a number in (0, "
                    f"1]{' or null' if key.startswith('intent_') else ''}, "
                    f"got {value!r}."
                )
        for low, high in (("moderate", "strong"), ("intent_moderate", "intent_strong")):
            if values.get(low) is not None and values.get(high) is not None and values[low] > values[high]:
                raise InvalidConfigException(
                    f"{owner}: `tiers.{low}` ({values[low]}) is above `tiers.{high}` ({values[high]}); the moderate "
                    f"tier asks below the strong one, so set {low} <= {high}.")
        numbers: Dict[str, Any] = {k: (float(v) if v is not None else None) for k, v in values.items()}
        return cls(**numbers)


@dataclass(frozen=True)
class Responses:
    """Domain responses of each outcome (``responses`` in config)."""

    medical: str = "utter_emergency"
    self_harm: str = "utter_crisis_support"
    triage: str = "utter_emergency_triage"

    def escalation(self, kind: Optional[str]) -> str:
        """The response that escalates an emergency of ``kind``."""
        return self.self_harm if kind == SELF_HARM else self.medical


@dataclass
class Assessment:
    """The emergency signal of one message: its tier (None: no emergency), kind and every verdict."""

    tier: Optional[str]
    kind: str = MEDICAL
    record: RailsRecord = field(default_factory=RailsRecord)
    span: Tuple[int, int] = (0, 0)

    def to_dict(self) -> Dict[str, Any]:
        """The record with the tier and kind, as stored under ``CHECK_KEY`` in the parse data."""
        return {**self.record.to_dict(), "tier": self.tier, "kind": self.kind if self.tier else None}


def triage_answered(parse_data: Optional[Mapping[str, Any]]) -> bool:
    """Whether the user already said "no" to the triage question about this message."""
    return bool(((parse_data or {}).get(CHECK_KEY) or {}).get(TRIAGE_ANSWER_KEY))


def kind_of_message(intent: Optional[str], entities: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """``None`` when a message is no emergency, else its kind from the entity (``""`` when it has none)."""
    if intent not in (INTENT, TRIAGE_INTENT):
        return None
    for entity in entities or []:
        if entity.get("entity") == ENTITY:
            return str(entity.get("value") or "")
    return ""


class EmergencySignal:
    """Patterns, the classifier and the NLU intent, combined into one assessment with a tier."""

    def __init__(self, patterns: Sequence[Tuple[str, List[Pattern]]], words: Sequence[Tuple[str, List[Pattern]]],
                 classifier: Any, tiers: Tiers) -> None:
        """``classifier``: ``(encoder, heads)`` or None (patterns and the intent only)."""
        self.patterns = list(patterns)
        self.words = list(words)
        self.classifier = classifier
        self.tiers = tiers

    @classmethod
    def from_config(cls, config: Mapping[str, Any], owner: str = "emergency") -> EmergencySignal:
        """Built from the detector's settings: ``patterns``, ``words``, ``classifier`` (rails settings
        or None), ``tiers``. Encoder and heads are loaded once per process.

        Raises:
            InvalidConfigException: with the setting to change.
        """
        from rasa.shared.exceptions import InvalidConfigException
        from rasa_safe_hybrid.guardrails.patterns import compile_groups, load_groups

        raw_patterns = config.get("patterns")
        patterns = compile_groups(f"{owner} 'patterns'", load_groups("emergency") if raw_patterns is None
                                  else raw_patterns, allow_empty=False)
        raw_words = config.get("words")
        words = compile_groups(f"{owner} 'words'", load_groups("emergency_words") if raw_words is None
                               else raw_words, allow_empty=True)
        for name, _ in [*patterns, *words]:
            if name not in KINDS:
                raise InvalidConfigException(
                    f"{owner}: pattern group '{name}' is not a kind of emergency; name the groups {list(KINDS)}.")
        rails = config.get("classifier", {})
        if rails is not None and not isinstance(rails, dict):
            raise InvalidConfigException(
                f"{owner}: 'classifier' must be the rails settings of the emergency classifier "
                f"(encoder, heads) or null to switch it off, got {rails!r}.")
        classifier = None
        trained = {"emergency_strict": 0.97, "emergency": 0.81}
        if rails is not None:
            from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, EncoderUnavailable, get_encoder
            from rasa_safe_hybrid.guardrails.learned.heads import ARTIFACT_DIR, load_heads

            try:
                encoder = get_encoder(rails.get("encoder") or DEFAULT_MODEL)
                heads = load_heads(str(rails.get("heads") or ARTIFACT_DIR))
            except (EncoderUnavailable, FileNotFoundError) as error:
                raise InvalidConfigException(f"{owner}: the emergency classifier cannot load: {error}") from error
            classifier = (encoder, heads)
            trained = heads.thresholds
        return cls(patterns, words, classifier, Tiers.from_config(config.get("tiers"), trained, owner))

    # -- the three detectors -------------------------------------------------------------------
    @staticmethod
    def _match(groups: Sequence[Tuple[str, List[Pattern]]], text: str) -> Optional[Tuple[str, int, int]]:
        for kind, compiled in groups:
            for pattern in compiled:
                match = pattern.search(text)
                if match:
                    return kind, match.start(), match.end()
        return None

    def detect(self, text: str) -> Optional[Tuple[str, int, int]]:
        """The kind and span of a pattern that says a person is in danger now, or None."""
        return self._match(self.patterns, text)

    def scores(self, text: str, history: Sequence[str] = ()) -> Tuple[float, float, str]:
        """``(score, self_harm score, where)``: the classifier's highest emergency score over the
        message, its clauses and the last turns together.
        """
        encoder, heads = self.classifier
        parts = [("the message", text)] + [(f"the clause '{c[:50]}'", c) for c in clauses(text)]
        if history:
            parts.append(("the last turns together", "\n".join([*history[-HISTORY_TURNS:], text])))
        vectors = encoder.encode([p for _, p in parts])
        scored = heads.scores(vectors)
        emergency, self_harm = scored["emergency"], scored["self_harm"]
        best = int(emergency.argmax())
        return float(emergency[best]), float(self_harm[best]), parts[best][0]

    def assess(self, text: str, history: Sequence[str] = (), intent_confidence: Optional[float] = None
               ) -> Assessment:
        """The tier of one message (strong, moderate or None), its kind and every verdict."""
        tiers = self.tiers
        verdicts: List[Verdict] = []
        span = (0, len(text))
        tier: Optional[str] = None
        kind = MEDICAL
        hit = self.detect(text)
        verdicts.append(Verdict(PATTERN_RAIL, bool(hit), f"{hit[0]}: '{text[hit[1]:hit[2]][:60]}'" if hit else "",
                                category=hit[0] if hit else None, source=PATTERN,
                                findings=[{"start": hit[1], "end": hit[2]}] if hit else []))
        if hit:
            tier, kind, span = STRONG, hit[0], (hit[1], hit[2])
        word = self._match(self.words, text)
        score = None
        if self.classifier is not None:
            try:
                score, self_harm, where = self.scores(text, history)
            except Exception as error:  # noqa: BLE001 - the signal never raises: it fails closed
                logger.error(f"The emergency classifier could not score this text ({error}); failing closed.")
                verdicts.append(Verdict(CLASSIFIER_RAIL, True, f"classifier error ({type(error).__name__}): "
                                        f"failing closed", category="error", source=MODEL))
                tier = STRONG
            else:
                level = STRONG if score >= tiers.strong else MODERATE if score >= tiers.moderate else None
                classifier_kind = SELF_HARM if self_harm >= heads_threshold(self.classifier, SELF_HARM) else MEDICAL
                reason = (f"emergency score {score:.2f} on {where} (strong >= {tiers.strong:.2f}, "
                          f"moderate >= {tiers.moderate:.2f})") if level else ""
                verdicts.append(Verdict(CLASSIFIER_RAIL, level is not None, reason,
                                        category=classifier_kind if level else None, source=MODEL, score=score,
                                        threshold=tiers.moderate))
                if level and tier is None:
                    tier, kind = level, classifier_kind
                if word and level:  # a danger word and a classifier that agrees: escalate
                    tier = STRONG
                    kind = word[0] if word[0] == SELF_HARM else kind
        verdicts.append(Verdict(WORDS_RAIL, bool(word and tier == STRONG and not hit),
                                f"{word[0]}: '{text[word[1]:word[2]][:60]}' with the classifier agreeing"
                                if word and tier == STRONG and not hit else "",
                                category=word[0] if word else None, source=PATTERN))
        if intent_confidence is not None and (tiers.intent_strong, tiers.intent_moderate) != (None, None):
            level = (STRONG if tiers.intent_strong is not None and intent_confidence >= tiers.intent_strong else
                     MODERATE if tiers.intent_moderate is not None and intent_confidence >= tiers.intent_moderate
                     else None)
            verdicts.append(Verdict(INTENT_RAIL, level is not None,
                                    f"NLU intent '{INTENT}' at {intent_confidence:.2f}" if level else "",
                                    category=kind if level else None, source=MODEL, score=intent_confidence,
                                    threshold=tiers.intent_moderate or tiers.intent_strong))
            if level == STRONG or (level == MODERATE and tier is None):
                tier = level
        decisive = next((v for v in verdicts if v.triggered), None)
        return Assessment(tier, kind, RailsRecord(verdicts, decisive), span)


def heads_threshold(classifier: Any, head: str) -> float:
    """A trained head's threshold."""
    return float(classifier[1].thresholds[head])
