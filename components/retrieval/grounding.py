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
from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, get_encoder
from rasa_safe_hybrid.retrieval.index import words

MIN_CONTENT_WORDS = 4
MIN_SIMILARITY = 0.6
MIN_COVERAGE = 0.7
MIN_PASSAGE_WORDS = 2
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
                      "million": "1000000", "billion": "1000000000"})
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-zA-Z]+")
ASKS_FOR_A_FACT = re.compile(r"^\s*(who|whom|whose|what|which|where|when|how many|how much|how old)\b", re.I)
EXPLANATION = re.compile(r"\b(explain|how (do|does|did|can|is|are)|why|describe)\b", re.I)
NOT_NAMES = frozenset({"I", "I'm", "I'll", "I've", "I'd", "OK", "Yes", "No"})


def sentences(text: str) -> List[str]:
    """The sentences of a reply (split on end punctuation)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def numbers(text: str) -> List[str]:
    """The numbers a text states, in digits ("eight legs" and "8 legs" state the same number;
    "one" as a pronoun is not a number).
    """
    found = _NUMBER.findall(text)
    for match in _NUMBER_WORD.finditer(text):
        word = match.group(1).lower()
        if word == "one" and not re.match(r"\s+(of\s+)?[a-z]+s\b|\s+(day|year|week|hour|minute|point|euro|"
                                          r"dollar|pound|time|person|leg|side)\b", text[match.end():], re.I):
            continue
        found.append(_NUMBER_WORDS[word])
    return found


def facts(sentence: str) -> Tuple[List[str], List[str]]:
    """(numbers, names) stated in a sentence."""
    names = [n for n in _NAME.findall(sentence) if n not in NOT_NAMES]
    return numbers(sentence), names


@dataclass(frozen=True)
class Grounding:
    """The verdict on a reply: the first unsupported sentence, if any, and the weakest support."""

    unsupported: Optional[str]
    reason: str
    support: float

    @property
    def grounded(self) -> bool:
        """Whether no sentence of the reply is unsupported."""
        return self.unsupported is None


def check(reply: str, passages: Sequence[str], encoder_model: str = DEFAULT_MODEL, question: str = "") -> Grounding:
    """Checks every sentence of ``reply`` against ``passages`` (``question``: the user's message)."""
    corpus = " ".join(passages)
    corpus_lower = corpus.lower()
    corpus_numbers = set(_NUMBER.findall(corpus)) | set(numbers(corpus)) | {
        _NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(corpus)}
    corpus_words = set(words(corpus))
    passage_sentences = [s for p in passages for s in sentences(p)]
    vectors: Optional[np.ndarray] = None
    weakest = 1.0
    checked = 0  # sentences that state something
    for sentence in sentences(reply):
        stated, names = facts(sentence)
        missing_numbers = [n for n in stated if n not in corpus_numbers]
        missing_names = [n for n in names if n.lower() not in corpus_lower]
        if missing_numbers or missing_names:
            what = ", ".join(missing_numbers + missing_names)
            return Grounding(sentence, f"states {what}, which no passage has", 0.0)
        content = words(sentence)
        if not passages or len(content) < MIN_CONTENT_WORDS:
            checked += bool(stated or names)
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
        # to a question for a name, a place, a time or a count, a name or a number from the passages
        # that the question lacks is an answer on its own ("The capital of Germany is Berlin."); to one
        # for an explanation it is not ('The answer would be "Photosynthesis."')
        reply_numbers, reply_names = facts(reply)
        answered = bool(ASKS_FOR_A_FACT.search(question)) and not EXPLANATION.search(question) and (
            any(n.lower() not in question.lower() for n in reply_names)
            or any(n not in numbers(question) for n in reply_numbers))
        if len(used) < MIN_PASSAGE_WORDS and not answered:
            return Grounding(reply[:120], f"takes {len(used)} word(s) from the passages beyond the question's", 0.0)
    return Grounding(None, "every sentence is supported", weakest)
