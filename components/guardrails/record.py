"""The typed record of one side's verdicts, as stored in the parse data and traces.

``InputRails`` stores the input side's record in the parse data of each user
message under ``GUARDRAILS_KEY``; the LLM action stores the output side's in
its trace. Everything that reads them (the action server, the redacting
tracker store, fine-tuning, ``make trace``) goes through this class, so a
rename is one edit and no reader can drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from rasa_safe_hybrid.guardrails.verdict import Verdict

GUARDRAILS_KEY = "guardrails"  # key of the input record in a message's parse data
EMERGENCY_CHECK_KEY = "emergency_check"  # key of the EmergencyDetector's record


@dataclass
class RailsRecord:
    """All verdicts of one side for one text, the one that decides, and the timing.

    Attributes:
        verdicts: every rail's verdict, in the order the rails ran.
        decisive: the verdict that decides the turn (the first fired blocking rail).
        latency_ms: time all rails of this side took.
        redacted_text: the text with PII replaced (input side), None when nothing was found.
        routed_to: the intent a fired input rail routed the message to.
        original_intent: the classifier's intent before any rail changed it.
        overridden_by: why a fired rail did not route (e.g. an emergency intent wins).
    """

    verdicts: List[Verdict] = field(default_factory=list)
    decisive: Optional[Verdict] = None
    latency_ms: float = 0.0
    redacted_text: Optional[str] = None
    routed_to: Optional[str] = None
    original_intent: Optional[str] = None
    overridden_by: Optional[str] = None

    @property
    def fired(self) -> List[Verdict]:
        """The verdicts that fired."""
        return [v for v in self.verdicts if v.triggered]

    def verdict(self, rail: str) -> Optional[Verdict]:
        """The verdict of one rail, if it ran."""
        return next((v for v in self.verdicts if v.rail == rail), None)

    def pii_spans(self) -> List[Tuple[int, int, str]]:
        """``(start, end, type)`` of each PII finding of the input text."""
        return [
            (int(f["start"]), int(f["end"]), str(f["type"]))
            for v in self.verdicts if v.findings and v.rail == "pii"
            for f in v.findings
        ]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable, without raw PII values."""
        data: Dict[str, Any] = {
            "verdicts": [v.as_dict() for v in self.verdicts],
            "decisive": self.decisive.rail if self.decisive else None,
            "latency_ms": round(self.latency_ms, 3),
        }
        for key in ("redacted_text", "routed_to", "original_intent", "overridden_by"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> RailsRecord:
        """The record ``to_dict()`` wrote (an empty record for None)."""
        data = data or {}
        verdicts = [Verdict.from_dict(v) for v in data.get("verdicts") or []]
        decisive_name = data.get("decisive")
        decisive = next((v for v in verdicts if v.rail == decisive_name), None) if decisive_name else None
        return cls(
            verdicts=verdicts,
            decisive=decisive,
            latency_ms=float(data.get("latency_ms") or 0.0),
            redacted_text=data.get("redacted_text"),
            routed_to=data.get("routed_to"),
            original_intent=data.get("original_intent"),
            overridden_by=data.get("overridden_by"),
        )

    @classmethod
    def from_parse_data(cls, parse_data: Optional[Dict[str, Any]]) -> Optional[RailsRecord]:
        """The input record of a message's parse data, or None when no rail ran."""
        raw = (parse_data or {}).get(GUARDRAILS_KEY)
        return cls.from_dict(raw) if isinstance(raw, dict) else None

    def to_parse_data(self, parse_data: Dict[str, Any]) -> Dict[str, Any]:
        """Stores this record in ``parse_data`` (in place) and returns it."""
        parse_data[GUARDRAILS_KEY] = self.to_dict()
        return parse_data


def text_for_model(parse_data: Optional[Dict[str, Any]], text: Optional[str] = None) -> str:
    """The user's text as a model may see it: with PII redacted when the rails found some."""
    parse_data = parse_data or {}
    record = RailsRecord.from_parse_data(parse_data)
    if record is not None and record.redacted_text is not None:
        return record.redacted_text
    return text if text is not None else str(parse_data.get("text") or "")
