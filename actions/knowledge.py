"""The curated knowledge files: glossary, symptoms, medications and quiz.

Each file is read on first use and cached per path; entries are looked up by
their key or one of their aliases, case-insensitively.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from actions.config import get_settings

GLOSSARY_FILE = "glossary.yml"
SYMPTOMS_FILE = "symptoms.yml"
MEDICATIONS_FILE = "medications.yml"
QUIZ_FILE = "quiz.yml"


@dataclass(frozen=True)
class Entry:
    """One curated entry: the text to show and where it comes from."""

    term: str
    text: str
    sources: Tuple[str, ...]


@dataclass(frozen=True)
class QuizQuestion:
    """A quiz question with its accepted answers (normalised)."""

    question: str
    answers: Tuple[str, ...]


def normalise(text: str) -> str:
    """Lower-cases, drops punctuation (except '-' inside words) and squeezes spaces."""
    text = re.sub(r"[^\w\s-]", " ", text.lower())
    return " ".join(text.split())


@functools.cache
def _load_entries(path: Path) -> Dict[str, Entry]:
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    index: Dict[str, Entry] = {}
    for term, body in raw.items():
        sources = body.get("sources") or ([body["source"]] if body.get("source") else [])
        entry = Entry(term=term, text=" ".join(body["text"].split()), sources=tuple(sources))
        for key in [term, *body.get("aliases", [])]:
            index[normalise(key)] = entry
    return index


@functools.cache
def _load_quiz(path: Path) -> Tuple[QuizQuestion, ...]:
    raw = yaml.safe_load(path.read_text("utf-8"))
    return tuple(
        QuizQuestion(q["question"], tuple(normalise(a) for a in q["answers"]))
        for q in raw["questions"]
    )


def _entries(file_name: str) -> Dict[str, Entry]:
    return _load_entries(get_settings().knowledge_dir / file_name)


def lookup(file_name: str, term: Optional[str]) -> Optional[Entry]:
    """Finds ``term`` in one of the curated files, or returns None."""
    if not term:
        return None
    return _entries(file_name).get(normalise(term))


def terms(file_name: str) -> List[str]:
    """The main terms of one curated file, sorted."""
    return sorted({entry.term for entry in _entries(file_name).values()})


def quiz_questions() -> Tuple[QuizQuestion, ...]:
    """The quiz questions, in order."""
    return _load_quiz(get_settings().knowledge_dir / QUIZ_FILE)


CLINICS_FILE = "clinics.json"


@functools.cache
def _load_aliases(path: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    raw = json.loads(path.read_text("utf-8"))
    return raw.get("specialty_aliases", {}), raw.get("city_aliases", {})


def canonical(value: Optional[str], known: List[str], kind: str) -> Optional[str]:
    """Maps a typed city or specialty onto a known one, through the aliases.

    Args:
        value: what the user typed or the entity value.
        known: the canonical values (lower-case).
        kind: ``"specialty"`` or ``"city"``.
    """
    if not value:
        return None
    text = normalise(value)
    if text in known:
        return text
    specialties, cities = _load_aliases(get_settings().knowledge_dir / CLINICS_FILE)
    aliases = specialties if kind == "specialty" else cities
    if text in aliases:
        return aliases[text]
    for candidate in known:  # "a cardiology clinic" -> "cardiology"
        if re.search(rf"\b{re.escape(candidate)}\b", text):
            return candidate
    for alias, target in aliases.items():
        if re.search(rf"\b{re.escape(alias)}\b", text):
            return target
    return None
