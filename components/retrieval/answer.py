"""How an open-ended turn is answered from the knowledge: the retrieval decision.

- ``abstain``: nothing scored at or above the threshold and the turn is not
  chit-chat: the assistant says it does not know (``dont_know_response``);
- ``extract``: the best passage itself, with its source (health passages
  always; every passage with ``answer: extract``);
- ``grounded``: the model answers from the top passages, the ``ungrounded``
  rail checks the reply against them, and a reply it rejects is replaced by
  the extractive answer;
- ``chitchat``: nothing retrieved and the message is small talk (a chit-chat
  intent, no request for information: no what/who/when/why/how ...,
  "explain", "recommend", and no yes/no question about anything but the
  assistant; or a question to the assistant about itself): the model answers
  without passages; numbers and names in its reply are still checked, and the
  ``small_talk`` rail checks that the reply fits the turn;
- ``off``: retrieval disabled (free generation, as before).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rasa_safe_hybrid.retrieval.corpus_index import load_corpus_index
from rasa_safe_hybrid.retrieval.index import Hit, load_index
from rasa_safe_hybrid.retrieval.settings import EXTRACT, RetrievalSettings

logger = logging.getLogger(__name__)

OFF, ABSTAIN, EXTRACTED, GROUNDED, CHITCHAT = "off", "abstain", "extract", "grounded", "chitchat"
# A message that asks for information (a fact, an explanation) is never answered
# from the model's own knowledge; small talk ("how are you?", "I like cats") may be.
INFORMATION_REQUEST = re.compile(
    r"\b(what|who|whom|whose|when|where|which|why|explain|define|definition|meaning|tell me about|"
    r"how (?!are you|r u|is it going|are things|do you do|have you been)\w+|is it true|facts?|"
    r"recommend|suggest|list|compare|difference|cause|causes)\b"
    # a yes/no question about something other than the assistant ("do vaccines ...", "can I ...")
    r"|^\s*(do|does|did|is|are|was|were|can|could|should|would|will|has|have|may|might|must)\s+(?!you\b)\w+",
    re.IGNORECASE)
# A question to the assistant about its own life is small talk, not a request for facts ("how old are
# you?", "what's your favourite colour"); "do you deliver abroad" or "your return policy" are not.
PERSONAL_QUESTION = re.compile(
    r"\b(are|were|have|do|did) you (ever |really |even )?(like|love|enjoy|prefer|sleep|dream|eat|feel|live|"
    r"get tired|have (any |a )?(pets?|family|friends|feelings|hobb))|"
    r"\byour (favou?rite|name|age|hobb\w*|family|weekend|day|life|home|pets?|feelings|opinion|dreams?)\b|"
    r"\bhow old are you\b|\bwhere do you live\b|\bwho are you\b|\bwhat do you (like|do for fun)\b|"
    r"\bare you (a |an )?(robot|human|bot|real|happy|ok|okay|tired|still there)\b", re.IGNORECASE)
PROMPT = ("Answer the question using only the facts below. If they do not answer it, say you don't know.\n"
          "Facts:\n{facts}\nQuestion: {question}")


@dataclass(frozen=True)
class RetrievalDecision:
    """What retrieval found for a turn and how the turn is answered."""

    mode: str
    hits: Tuple[Hit, ...] = ()
    error: Optional[str] = None
    threshold: Optional[float] = None
    relevant: Tuple[Hit, ...] = ()

    @property
    def passages(self) -> Optional[Tuple[str, ...]]:
        """What the ``ungrounded`` rail checks the reply against (None: not checked)."""
        if self.mode == GROUNDED:
            return tuple(h.passage.text for h in self.relevant)
        if self.mode == CHITCHAT:
            return ()
        return None

    def prompt(self, question: str) -> str:
        """The user turn the model sees: the question, with the passages when grounded."""
        if self.mode != GROUNDED:
            return question
        facts = "\n".join(f"- {h.passage.text}" for h in self.relevant)
        return PROMPT.format(facts=facts, question=question)

    def sources(self) -> List[str]:
        """``title (source)`` of each relevant passage, best first."""
        return [f"{h.passage.title} ({h.passage.source})" for h in self.relevant]

    def with_sources(self, reply: str) -> str:
        """The reply with the sources it rests on."""
        sources = self.sources()
        return f"{reply}\n(Source: {'; '.join(sources)})" if sources else reply

    def extractive(self) -> str:
        """The best passage itself, with its source."""
        best = self.relevant[0].passage
        return f"{best.text}\n(Source: {best.title} ({best.source}))"

    def withholding(self, passage_ids: Sequence[str]) -> RetrievalDecision:
        """The decision without the passages ``passage_ids`` (a rail flagged them).

        With none left, the turn abstains.
        """
        relevant = tuple(h for h in self.relevant if h.passage.id not in passage_ids)
        if relevant or not self.relevant:
            return replace(self, relevant=relevant)
        return replace(self, mode=ABSTAIN, relevant=())

    def to_trace(self) -> Dict[str, Any]:
        """The decision as the LLM trace stores it."""
        return {"mode": self.mode, "threshold": self.threshold, "hits": [h.to_dict() for h in self.hits],
                "sources": [h.passage.id for h in self.relevant], **({"error": self.error} if self.error else {})}


def decide(settings: RetrievalSettings, question: str, intent: Optional[str]) -> RetrievalDecision:
    """Searches the index for ``question`` and picks the mode (fails closed: an index
    that cannot load means ``abstain``, never free invention).
    """
    if not settings.enabled:
        return RetrievalDecision(OFF)
    try:
        index = load_index(Path(settings.knowledge), Path(settings.documents), Path(settings.index_dir),
                           settings.encoder)
        found = list(index.search(question, k=settings.top_k))
        # a reference work answers questions, not small talk ("nice" is not the city of Nice)
        if settings.corpora and INFORMATION_REQUEST.search(question):
            corpus = load_corpus_index(Path(settings.corpora), Path(settings.index_dir), settings.encoder)
            if corpus is not None:
                found += corpus.search(question, k=settings.top_k)
        hits = tuple(sorted(found, key=lambda h: -h.score)[:settings.top_k])
    except Exception as error:  # noqa: BLE001 - no index: do not improvise facts
        logger.error(f"Retrieval failed ({error}); the turn abstains.")
        return RetrievalDecision(ABSTAIN, error=str(error)[:300], threshold=settings.threshold)
    relevant = tuple(h for h in hits if h.score >= settings.threshold)
    if not relevant:
        small_talk = (intent in settings.chitchat_intents or not INFORMATION_REQUEST.search(question)
                      or bool(PERSONAL_QUESTION.search(question)))
        mode = CHITCHAT if small_talk else ABSTAIN
        best = f"{hits[0].score:.3f} ({hits[0].passage.title})" if hits else "none"
        logger.debug(f"Retrieval: best {best} below {settings.threshold}: {mode}.")
        return RetrievalDecision(mode, hits, threshold=settings.threshold)
    if relevant[0].passage.health or settings.answer == EXTRACT:
        return RetrievalDecision(EXTRACTED, hits, threshold=settings.threshold, relevant=relevant[:1])
    # Health passages never go to the model, even as second or third passage.
    relevant = tuple(h for h in relevant if not h.passage.health)
    return RetrievalDecision(GROUNDED, hits, threshold=settings.threshold, relevant=relevant)
