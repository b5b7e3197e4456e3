"""The ``retrieval`` block of ``LLMResponsePolicy``'s config, validated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Tuple

from rasa_safe_hybrid.embeddings import DEFAULT_MODEL

GENERATE = "generate"
EXTRACT = "extract"
# Output rails about the model's own wording: on a grounded turn, the best passage may stand in for
# a reply they stop. Safety rails (medical_claims, harmful, toxicity, prompt_leak, harmful_compliance,
# ignored_emergency) always send their own response.
PASSAGE_CAPABLE_RAILS = ("ungrounded", "degenerate", "unsupported_claims", "pii_leak")


class RetrievalConfigError(ValueError):
    """A retrieval setting is wrong; the message says what to change."""


@dataclass(frozen=True)
class RetrievalSettings:
    """Attributes:
    enabled: answer open questions from the knowledge index (off: free generation, as before).
    knowledge: folder of the curated knowledge files.
    documents: folder whose .md/.txt/.html/.pdf files are indexed too (re-read when one changes).
    corpora: the manifest of the reference corpora to search beside the knowledge (WordNet,
        FOLDOC; ``knowledge/corpora.yml`` pins each file's sha256); empty: none.
    index_dir: where `make index` writes the index.
    encoder: the sentence encoder (the one the learned rails use: one model per process).
    top_k: passages put into the prompt.
    threshold: hybrid score below which nothing counts as retrieved (calibrated in `make eval`).
    answer: ``generate`` (the model answers from the passages; the ``ungrounded`` rail
        checks it, falling back to the passage) or ``extract`` (the best passage itself).
        Health passages are always answered by extraction.
    chitchat_intents: intents answered by the model without passages when nothing is
        retrieved (numbers and names in the reply are still checked).
    dont_know_response: the domain response when nothing relevant is retrieved.
    passage_replaces: output rails after which a grounded turn sends the best passage
        (with its source) instead of the rail's response: the model's wording failed, the
        curated passage did not. Only rails in ``PASSAGE_CAPABLE_RAILS``.
    """

    enabled: bool = False
    knowledge: str = "knowledge"
    documents: str = "knowledge/documents"
    corpora: str = "knowledge/corpora.yml"
    index_dir: str = ".cache/index"
    encoder: str = DEFAULT_MODEL
    top_k: int = 3
    threshold: float = 0.5
    answer: str = GENERATE
    chitchat_intents: Tuple[str, ...] = ("chitchat",)
    dont_know_response: str = "utter_llm_dont_know"
    passage_replaces: Tuple[str, ...] = PASSAGE_CAPABLE_RAILS

    @classmethod
    def from_config(cls, config: Optional[Dict[str, Any]]) -> RetrievalSettings:
        """The settings from the policy's ``retrieval`` block (defaults for what it leaves out)."""
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise RetrievalConfigError(f"unknown key(s) {unknown}; known keys: {sorted(known)}.")
        for key in ("chitchat_intents", "passage_replaces"):
            if key in config:
                config[key] = tuple(config[key] or ())
        settings = cls(**config)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuses a bad setting with a message that names it."""
        if not isinstance(self.enabled, bool):
            raise RetrievalConfigError(f"`enabled` must be true or false, got {self.enabled!r}.")
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= 10:
            raise RetrievalConfigError(f"`top_k` must be between 1 and 10, got {self.top_k!r}.")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise RetrievalConfigError(f"`threshold` must be in (0, 1), got {self.threshold!r}.")
        if self.answer not in (GENERATE, EXTRACT):
            raise RetrievalConfigError(f"`answer` must be {GENERATE!r} or {EXTRACT!r}, got {self.answer!r}.")
        wrong = [r for r in self.passage_replaces if r not in PASSAGE_CAPABLE_RAILS]
        if wrong:
            raise RetrievalConfigError(
                f"`passage_replaces` may only name {list(PASSAGE_CAPABLE_RAILS)} (rails about the model's "
                f"wording; safety rails always send their own response), got {wrong}.")
        if not str(self.dont_know_response).startswith("utter_"):
            raise RetrievalConfigError(
                f"`dont_know_response` must be a domain response (utter_...), got {self.dont_know_response!r}.")
