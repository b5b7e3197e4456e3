"""The learned rails: classifier heads on the shared sentence encoder.

Input side (one embedding per message, shared by every head and with the
``EmergencyDetector``): ``harmful_classifier`` (requests for harmful help),
``hateful_classifier`` (hateful, harassing, sexual or violent text), ``attack_classifier``
(jailbreak, injection, prompt extraction), ``medical_advice_classifier``,
``emergency_classifier``. Given earlier user turns (``RailContext.history``),
the emergency rail also scores the last turns together, so a crisis mentioned
a message earlier is not lost (see ``WINDOW_HEADS`` for why the others do not).

Output side, the reply judged together with the user's message:
``harmful_compliance`` (a hateful reply, or a reply that goes along with a
harmful or attack request instead of refusing) and ``ignored_emergency`` (the
user stated an emergency and the reply does not escalate).

A rail that cannot score (the encoder failed on this text) fires with
category ``error``: it fails closed and says so in its reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
from rasa_safe_hybrid.guardrails.learned.heads import (
    ARTIFACT_DIR,
    ATTACK,
    EMERGENCY,
    HARM_CATEGORIES,
    HARMFUL,
    HATEFUL,
    HATEFUL_CATEGORIES,
    SELF_HARM,
    category_matrix,
    load_heads,
    nearest,
)
from rasa_safe_hybrid.guardrails.verdict import MODEL, RailContext, Verdict

logger = logging.getLogger(__name__)

HISTORY_TURNS = 3  # earlier user messages scored together with the latest one
# Heads that also score the last turns together. Only the emergency head: the attack
# head scored four ordinary questions joined together at 0.73 (joined lines look like
# a jailbreak template to it), so attacks and harmful requests are scored per message.
WINDOW_HEADS = (EMERGENCY,)
REFUSAL = re.compile(
    r"\b(i (can(no|')t|cannot|won'?t|will not|am not able to|'m not able to|am unable to|'m unable to)|"
    r"not able to help|can'?t help|unable to (help|assist)|i must decline|i'm sorry, but)\b",
    re.I,
)
ESCALATION = re.compile(
    r"\b(emergency|911|112|999|ambulance|call (your|a|the)|crisis|helpline|hotline|samaritans|"
    r"poison control|right away|immediately|urgent)\b",
    re.I,
)


def _fail_closed(name: str, error: Exception) -> Verdict:
    logger.error(f"Rail '{name}' could not score this text ({error}); failing closed.")
    return Verdict(name, True, f"classifier error ({type(error).__name__}): failing closed", category="error",
                   source=MODEL)


@dataclass
class ClassifierRail:
    """Fires when ``head``'s score on the message, or on the last turns together, reaches the threshold."""

    name: str
    head: str
    encoder: Any
    heads: Any
    threshold: float
    categories: Optional[tuple] = None

    def check(self, context: RailContext) -> Verdict:
        """The verdict on ``context.text`` (and its window with ``context.history``)."""
        texts = [context.text]
        if context.history and self.head in WINDOW_HEADS:
            texts.append("\n".join([*context.history[-HISTORY_TURNS:], context.text]))
        try:
            vectors = self.encoder.encode(texts)
        except Exception as error:  # noqa: BLE001 - a rail never raises: it fails closed
            return _fail_closed(self.name, error)
        scores = self.heads.scores(vectors)
        head_scores = scores[self.head]
        best = int(np.argmax(head_scores))
        score = float(head_scores[best])
        if score < self.threshold:
            return Verdict(self.name, False, source=MODEL, score=score, threshold=self.threshold)
        where = "the last turns together" if best == 1 else "the message"
        category = self.head
        if self.categories is not None:
            category = nearest(self.categories[0], self.categories[1], vectors[best])
        elif self.head == EMERGENCY:
            category = "self_harm" if float(scores[SELF_HARM][best]) >= self.heads.thresholds[SELF_HARM] else "medical"
        return Verdict(self.name, True, f"{self.head} score {score:.2f} >= {self.threshold:.2f} on {where}",
                       category=category, source=MODEL, score=score, threshold=self.threshold)


@dataclass
class _OutputRail:
    """An output rail: scores the reply and the user's message, then ``judge`` decides."""

    name: str
    encoder: Any
    heads: Any
    threshold: float

    def check(self, context: RailContext) -> Verdict:
        """The verdict on the reply ``context.text`` given ``context.user_text``."""
        try:
            scores = self.heads.scores(self.encoder.encode([context.text, context.user_text or ""]))
        except Exception as error:  # noqa: BLE001 - a rail never raises: it fails closed
            return _fail_closed(self.name, error)
        return self.judge(context, scores)

    def judge(self, context: RailContext, scores: Dict[str, np.ndarray]) -> Verdict:
        """``scores[head][0]``: the reply's, ``scores[head][1]``: the user message's."""
        raise NotImplementedError


class HarmfulComplianceRail(_OutputRail):
    """The reply is hateful text, or goes along with a harmful or attack request instead of refusing.

    The reply itself is judged by the hateful head (harmful *text*, its threshold is
    this rail's); the harmful-request head is for requests, and on replies it scored
    ordinary study advice ("Break it into smaller parts ...") at 0.96. Harmful *help*
    in a reply is caught through the request it answers.
    """

    def judge(self, context: RailContext, scores: Dict[str, np.ndarray]) -> Verdict:
        """Fires on a hateful reply, or a non-refusal of a request a head flags."""
        reply_hate = float(scores[HATEFUL][0])
        # how far the request is over its head's threshold (>= 1: a head would have fired)
        over = {head: float(scores[head][1]) / self.heads.thresholds[head] for head in (HARMFUL, ATTACK)}
        head = max(over, key=lambda name: over[name])
        asked, t_asked = float(scores[head][1]), self.heads.thresholds[head]
        if reply_hate >= self.threshold:
            return Verdict(self.name, True, f"reply hateful score {reply_hate:.2f} >= {self.threshold:.2f}",
                           category="hateful_reply", source=MODEL, score=reply_hate, threshold=self.threshold)
        if asked >= t_asked and not REFUSAL.search(context.text):
            return Verdict(self.name, True, f"request {head} score {asked:.2f} >= {t_asked:.2f} and the reply does "
                           f"not refuse", category="compliance", source=MODEL, score=asked, threshold=t_asked)
        return Verdict(self.name, False, source=MODEL, score=max(reply_hate, asked), threshold=self.threshold)


class IgnoredEmergencyRail(_OutputRail):
    """The user's message states an emergency and the reply does not escalate."""

    def judge(self, context: RailContext, scores: Dict[str, np.ndarray]) -> Verdict:
        """Fires when the user's message scores as an emergency and the reply has no escalation,
        unless the user already said "no" to the triage question about that message.
        """
        score = float(scores[EMERGENCY][1])
        if context.emergency_denied:
            return Verdict(self.name, False, "the user said it is not happening now (triage answer 'no')",
                           source=MODEL, score=score, threshold=self.threshold)
        if score >= self.threshold and not ESCALATION.search(context.text):
            kind = "self_harm" if float(scores[SELF_HARM][1]) >= self.heads.thresholds[SELF_HARM] else "medical"
            return Verdict(self.name, True, f"user message emergency score {score:.2f} >= {self.threshold:.2f} "
                           f"and the reply does not escalate", category=kind, source=MODEL, score=score,
                           threshold=self.threshold)
        return Verdict(self.name, False, source=MODEL, score=score, threshold=self.threshold)


# Output rails that judge a reply together with the user's message, by the ``judge`` the
# registry names (every other learned rail classifies the text it is given).
JUDGES = {"compliance": HarmfulComplianceRail, "ignored_emergency": IgnoredEmergencyRail}
# Heads whose verdict names its zero-shot category.
CATEGORY_NAMES = {HARMFUL: tuple(HARM_CATEGORIES), HATEFUL: tuple(HATEFUL_CATEGORIES)}


def build(name: str, head: str, settings: Any, threshold_key: Optional[str] = None,
          judge: Optional[str] = None) -> Any:
    """Builds one learned rail from the rails settings (encoder and heads loaded once per process).

    The threshold is ``thresholds[name]`` from config, else the trained one of
    ``threshold_key`` (default: the head's). ``judge``: a key of ``JUDGES`` (the rail
    judges a reply with the user's message), else the rail classifies its text.
    """
    from rasa.shared.exceptions import InvalidConfigException
    from rasa_safe_hybrid.embeddings import EncoderUnavailable, get_encoder

    try:
        encoder = get_encoder(settings.encoder)
        folder = str(settings.heads or ARTIFACT_DIR)
        heads = load_heads(folder)
    except (EncoderUnavailable, FileNotFoundError) as error:
        raise InvalidConfigException(f"Rail '{name}': {error}") from error
    key = threshold_key or head
    missing = {head, key} - set(heads.thresholds)
    if missing:
        raise InvalidConfigException(
            f"Rail '{name}': the trained heads in {folder} have no {sorted(missing)} "
            f"(they have {sorted(heads.names)}); point the rails' `heads` setting at heads trained for them.")
    threshold = float(settings.thresholds.get(name, heads.thresholds[key]))
    if judge is not None:
        return JUDGES[judge](name, encoder, heads, threshold)
    names = CATEGORY_NAMES.get(head)
    categories = category_matrix(encoder, names) if names else None
    return ClassifierRail(name, head, encoder, heads, threshold, categories)

