"""Is each sentence of a reply supported by the passages it was meant to come from?

A sentence is checked when it carries a fact: a number, a name (a capitalised
word inside the sentence), or at least ``MIN_CONTENT_WORDS`` content words.
It is supported when every number and name in it occurs in the passages and
its meaning is close to some passage: the sentence encoder's cosine with a
passage sentence at least ``MIN_SIMILARITY``, or at least ``MIN_COVERAGE`` of
its content words found in the passages. A reply to passages that states
nothing at all ("Happy to help! What's next?") does not answer: it fails too,
as does one that takes fewer than ``MIN_PASSAGE_WORDS`` content words from the
passages beyond those of the question (``The answer would be "Photosynthesis."``
to "how do plants make food from sunlight": it names the topic, says nothing of it).
With no passages (a chit-chat reply), only numbers and names are checked:
small talk passes, an invented date or person does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from components.embeddings import DEFAULT_MODEL, get_encoder
from components.retrieval.index import words

MIN_CONTENT_WORDS = 4
MIN_SIMILARITY = 0.6
MIN_COVERAGE = 0.7
MIN_PASSAGE_WORDS = 2
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-zA-Z]+")
NOT_NAMES = frozenset({"I", "I'm", "I'll", "I've", "I'd", "OK", "Yes", "No"})


def sentences(text: str) -> List[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def facts(sentence: str) -> Tuple[List[str], List[str]]:
    """(numbers, names) stated in a sentence."""
    names = [n for n in _NAME.findall(sentence) if n not in NOT_NAMES]
    return _NUMBER.findall(sentence), names


@dataclass(frozen=True)
class Grounding:
    """The verdict on a reply: the first unsupported sentence, if any, and the weakest support."""

    unsupported: Optional[str]
    reason: str
    support: float

    @property
    def grounded(self) -> bool:
        return self.unsupported is None


def check(reply: str, passages: Sequence[str], encoder_model: str = DEFAULT_MODEL, question: str = "") -> Grounding:
    """Checks every sentence of ``reply`` against ``passages`` (``question``: the user's message)."""
    corpus = " ".join(passages)
    corpus_lower = corpus.lower()
    corpus_numbers = set(_NUMBER.findall(corpus))
    corpus_words = set(words(corpus))
    passage_sentences = [s for p in passages for s in sentences(p)]
    vectors: Optional[np.ndarray] = None
    weakest = 1.0
    checked = 0  # sentences that state something
    for sentence in sentences(reply):
        numbers, names = facts(sentence)
        missing_numbers = [n for n in numbers if n not in corpus_numbers]
        missing_names = [n for n in names if n.lower() not in corpus_lower]
        if missing_numbers or missing_names:
            what = ", ".join(missing_numbers + missing_names)
            return Grounding(sentence, f"states {what}, which no passage has", 0.0)
        content = words(sentence)
        if not passages or len(content) < MIN_CONTENT_WORDS:
            checked += bool(numbers or names)
            continue
        checked += 1
        coverage = sum(w in corpus_words for w in content) / len(content)
        if coverage >= MIN_COVERAGE:
            weakest = min(weakest, coverage)
            continue
        encoder = get_encoder(encoder_model)
        if vectors is None:
            vectors = encoder.encode(passage_sentences)
        similarity = float(np.max(vectors @ encoder.encode([sentence])[0])) if len(passage_sentences) else 0.0
        if similarity < MIN_SIMILARITY:
            return Grounding(sentence, f"no passage supports it (similarity {similarity:.2f}, "
                                       f"words found {coverage:.0%})", similarity)
        weakest = min(weakest, similarity)
    if passages and not checked:
        return Grounding(reply[:120], "states nothing from the passages", 0.0)
    if passages:
        used = {w for w in words(reply) if w in corpus_words} - set(words(question))
        if len(used) < MIN_PASSAGE_WORDS:
            return Grounding(reply[:120], f"takes {len(used)} word(s) from the passages beyond the question's", 0.0)
    return Grounding(None, "every sentence is supported", weakest)
