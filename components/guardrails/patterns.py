"""A rail made of named groups of regular expressions: the first match fires it."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Pattern, Tuple

import yaml
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.guardrails.verdict import RailContext, Verdict, clean

LISTS_DIR = Path(__file__).resolve().parent / "lists"


@functools.cache
def _read(name: str) -> Dict[str, List[str]]:
    return yaml.safe_load((LISTS_DIR / f"{name}.yml").read_text("utf-8")) or {}


def load_groups(rail: str) -> Dict[str, List[str]]:
    """The default pattern groups of a rail, from ``lists/<rail>.yml``."""
    return {k: list(v) for k, v in _read(rail).items()}


def load_allow() -> Dict[str, List[str]]:
    """The default near-miss allow-lists per rail, from ``lists/allow.yml``."""
    return {k: list(v) for k, v in _read("allow").items()}


class PatternRail:
    """Fires when any pattern of any group matches (case-insensitive).

    Args:
        name: the rail's name, used in verdicts and config.
        groups: ``{category: [regex, ...]}``.
        allow: regexes that, when they match the text, keep the rail quiet
            (near-misses such as "kill a Python process").
    """

    def __init__(
        self, name: str, groups: Dict[str, List[str]], allow: Optional[List[str]] = None
    ) -> None:
        self.name = name
        self._groups = compile_groups(f"Rail '{name}'", groups)
        self._allow = [p for _, ps in compile_groups(f"Rail '{name}'", {"allow": allow or []}) for p in ps]

    def check(self, context: RailContext) -> Verdict:
        """The verdict on ``context.text`` (see ``check_text``)."""
        return self.check_text(context.text)

    def check_text(self, text: str) -> Verdict:
        """Returns a fired verdict naming the category and the matched words."""
        if any(p.search(text) for p in self._allow):
            masked = text
            for pattern in self._allow:
                masked = pattern.sub(" ", masked)
        else:
            masked = text
        for category, patterns in self._groups:
            for pattern in patterns:
                match = pattern.search(masked)
                if match:
                    return Verdict(
                        rail=self.name,
                        triggered=True,
                        reason=f"{category}: '{match.group(0).strip()[:60]}'",
                        category=category,
                    )
        return clean(self.name)


def compile_groups(
    owner: str, groups: Any, allow_empty: bool = True
) -> List[Tuple[str, List[Pattern]]]:
    """Compiles ``{category: [regex]}`` case-insensitively.

    Args:
        owner: who the patterns belong to, for error messages.
        groups: the mapping from config.
        allow_empty: whether an empty mapping or an empty list is acceptable.

    Raises:
        InvalidConfigException: saying which pattern or group to fix.
    """
    if not isinstance(groups, dict) or (not groups and not allow_empty):
        raise InvalidConfigException(
            f"{owner}: patterns must be a mapping of category -> list of regular "
            f"expressions, got {groups!r}."
        )
    compiled = []
    for category, patterns in groups.items():
        if not isinstance(patterns, list) or (not patterns and not allow_empty):
            raise InvalidConfigException(
                f"{owner}: patterns of '{category}' must be a non-empty list of regular "
                f"expressions, got {patterns!r}."
            )
        group = []
        for pattern in patterns:
            if isinstance(pattern, (int, float)) and not isinstance(pattern, bool):
                pattern = str(pattern)  # a bare number in YAML, e.g. 911
            if not isinstance(pattern, str):
                raise InvalidConfigException(
                    f"{owner}: pattern {pattern!r} of '{category}' is not a string but a "
                    f"{type(pattern).__name__}; quote it in YAML (a pattern that contains ': ' or ends "
                    f"in ':' is read as a mapping)."
                )
            try:
                group.append(re.compile(pattern, re.IGNORECASE))
            except re.error as error:
                raise InvalidConfigException(
                    f"{owner}: pattern {pattern!r} of '{category}' is not a valid "
                    f"regular expression ({error}); fix or remove it."
                ) from error
        compiled.append((str(category), group))
    return compiled
