"""What a rail reports: whether it fired, why, and optionally a fixed text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


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
    """

    rail: str
    triggered: bool
    reason: str = ""
    category: Optional[str] = None
    redacted: Optional[str] = None
    findings: List[Dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable form for the tracker and logs (no raw PII)."""
        data = asdict(self)
        data.pop("redacted")
        data["findings"] = [{k: v for k, v in f.items() if k != "value"} for f in self.findings]
        return data


def clean(rail: str) -> Verdict:
    """A verdict that did not fire."""
    return Verdict(rail=rail, triggered=False)
