"""A generation backend written the way docs/plugin.md says a new one is: this module and one
line in rasa_safe_hybrid.generation.backends (the test adds the line). It answers by echoing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from rasa_safe_hybrid.generation.base import Generation
from rasa_safe_hybrid.generation.options import _fail
from rasa_safe_hybrid.generation.settings import GenerationSettings


@dataclass(frozen=True)
class EchoOptions:
    """Options only the echo backend reads."""

    prefix: str = "you said:"

    def validate(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix.strip():
            _fail(f"`prefix` must be a non-empty string, got {self.prefix!r}.")


class EchoGenerator:
    def __init__(self, settings: GenerationSettings) -> None:
        self.settings = settings

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        text = f"{self.settings.options.prefix} {user_text}"
        return Generation(text, text, len(text.split()), 0.0, False, "echo")


def cache_key(settings: GenerationSettings) -> Tuple[object, ...]:
    return (settings.model,)


def build(settings: GenerationSettings, cached: Optional[EchoGenerator]) -> EchoGenerator:
    return cached if cached is not None and cached.settings == settings else EchoGenerator(settings)
