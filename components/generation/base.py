"""What every backend returns, and the one method every backend has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Protocol

from rasa_safe_hybrid.generation.settings import GenerationSettings


@dataclass
class Generation:
    """One generated reply."""

    text: str
    raw: str
    new_tokens: int
    latency_s: float
    timed_out: bool
    model_id: str

    @property
    def tokens_per_s(self) -> float:
        """Generation speed."""
        return self.new_tokens / self.latency_s if self.latency_s > 0 else 0.0


class Generator(Protocol):
    """A backend: turns the conversation so far and the user's text into a reply."""

    settings: GenerationSettings

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        """Generates one reply (blocking; callers run it off the event loop)."""
