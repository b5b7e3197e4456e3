"""The assistant's knowledge as passages: text, title, source, and whether it is health information."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List

import yaml

DOCUMENT_SUFFIXES = (".md", ".txt")
CHUNK_CHARS = 600  # documents are cut at paragraph boundaries into pieces of about this size
HEALTH_KINDS = frozenset({"symptom", "medication"})


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of knowledge."""

    id: str
    title: str
    text: str
    source: str
    kind: str  # glossary | symptom | medication | open_qa | course | clinic | document
    health: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Passage":
        return cls(**data)


def _sources(entry: Dict[str, Any]) -> str:
    sources = entry.get("sources") or ([entry["source"]] if entry.get("source") else [])
    return "; ".join(str(s) for s in sources) or "curated"


def _curated(path: Path, kind: str) -> List[Passage]:
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    passages = []
    for term, entry in data.items():
        if not isinstance(entry, dict) or not entry.get("text"):
            continue
        aliases = [a for a in entry.get("aliases") or [] if a]
        title = term + (f" ({', '.join(aliases)})" if aliases else "")
        passages.append(Passage(f"{kind}:{term}", title, " ".join(str(entry["text"]).split()), _sources(entry),
                                kind, kind in HEALTH_KINDS))
    return passages


def _open_qa(path: Path) -> List[Passage]:
    items = (yaml.safe_load(path.read_text("utf-8")) or {}).get("qa") or []
    return [Passage(f"open_qa:{i}", str(item["question"]).strip(), str(item["answer"]).strip(),
                    "the assistant's curated answers", "open_qa", item.get("domain") == "medical")
            for i, item in enumerate(items)]


def _courses(path: Path) -> List[Passage]:
    courses = json.loads(path.read_text("utf-8")).get("courses") or []
    return [Passage(f"course:{c['code']}", f"{c['code']} {c['title']}",
                    f"{c['code']} {c['title']} is a {c['weeks']}-week {c['level']} course about "
                    f"{', '.join(c.get('topics') or [])}.", "course catalogue", "course") for c in courses]


def _clinics(path: Path) -> List[Passage]:
    clinics = json.loads(path.read_text("utf-8")).get("clinics") or []
    return [Passage(f"clinic:{c['name']}", c["name"],
                    f"{c['name']} is a {c['specialty']} clinic in {c['city'].title()} at {c['address']}, "
                    f"phone {c['phone']}.", "clinic directory", "clinic") for c in clinics]


def _chunks(text: str) -> Iterable[str]:
    piece: List[str] = []
    size = 0
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if piece and size + len(paragraph) > CHUNK_CHARS:
            yield " ".join(piece)
            piece, size = [], 0
        piece.append(paragraph)
        size += len(paragraph)
    if piece:
        yield " ".join(piece)


def _documents(folder: Path) -> List[Passage]:
    passages = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file()):
        if path.name.lower() == "readme.md":
            continue
        text = path.read_text("utf-8", errors="replace")
        heading = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), path.stem)
        for i, chunk in enumerate(_chunks(text)):
            # the source is the file as the configured folder names it (knowledge/documents/x.md)
            passages.append(Passage(f"document:{path.relative_to(folder)}#{i}", heading, chunk.lstrip("# "),
                                    str(path), "document"))
    return passages


def load_passages(knowledge: Path, documents: Path) -> List[Passage]:
    """Every passage of the curated knowledge and the documents folder."""
    passages: List[Passage] = []
    readers = [("glossary.yml", lambda p: _curated(p, "glossary")), ("symptoms.yml", lambda p: _curated(p, "symptom")),
               ("medications.yml", lambda p: _curated(p, "medication")), ("open_qa.yml", _open_qa),
               ("courses.json", _courses), ("clinics.json", _clinics)]
    for name, read in readers:
        if (knowledge / name).exists():
            passages += read(knowledge / name)
    if documents.is_dir():
        passages += _documents(documents)
    return passages


def fingerprint(passages: List[Passage]) -> str:
    """A digest of the passages (the index is rebuilt when it changes)."""
    digest = hashlib.sha256()
    for passage in passages:
        digest.update(json.dumps(passage.to_dict(), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()
