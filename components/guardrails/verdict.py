"""What a rail looks at (``RailContext``) and what it reports (``Verdict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

PATTERN = "pattern"
MODEL = "model"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rail on one text.

    Attributes:
        rail: the rail's name, e.g. ``"injection"``.
        triggered: whether the rail fired.
        reason: a short human-readable reason (what matched), empty when clean.
        category: a finer label, e.g. ``"weapons"`` for the harmful rail.
        redacted: the text with the offending parts replaced (PII rails).
        findings: what was found, e.g. ``[{"type": "EMAIL", "start": 3, "end": 20}]``.
        source: ``"pattern"`` (lists, checksums, heuristics) or ``"model"`` (a classifier).
        score: a classifier's score (None for patterns).
        threshold: the score at or above which the classifier fires (None for patterns).
    """

    rail: str
    triggered: bool
    reason: str = ""
    category: Optional[str] = None
    redacted: Optional[str] = None
    findings: List[Dict[str, Any]] = field(default_factory=list)
    source: str = PATTERN
    score: Optional[float] = None
    threshold: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable form for the tracker and logs (no raw PII)."""
        data = asdict(self)
        data.pop("redacted")
        data["findings"] = [{k: v for k, v in f.items() if k != "value"} for f in self.findings]
        if self.score is not None:
            data["score"] = round(self.score, 4)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Verdict:
        """The verdict a stored ``as_dict()`` describes (unknown keys are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{"rail": str(data.get("rail", "")), "triggered": bool(data.get("triggered")), **known})


def clean(rail: str, source: str = PATTERN) -> Verdict:
    """A verdict that did not fire."""
    return Verdict(rail=rail, triggered=False, source=source)


@dataclass(frozen=True)
class RailContext:
    """What a rail may look at.

    Attributes:
        text: the text under check (the user's message on the input side, the
            reply on the output side).
        user_text: output side: the user's message the reply answers.
        system_prompt: output side: the prompt the model was given.
        history: earlier user messages of the conversation, oldest first.
        passages: output side: the retrieved passages the reply must rest on;
            ``()`` for a reply with none (chit-chat), ``None`` when the reply
            is not checked for grounding.
        emergency_denied: output side: the user answered "no" to the triage question
            about ``user_text`` (it is not happening now).
    """

    text: str
    user_text: str = ""
    system_prompt: str = ""
    history: Tuple[str, ...] = ()
    passages: Optional[Tuple[str, ...]] = None
    emergency_denied: bool = False
