"""The assistant's knowledge as passages: text, title, source, and whether it is health information."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, Iterable, List

import yaml

logger = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = (".md", ".txt", ".html", ".htm", ".pdf")
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
        """The passage as the index stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Passage:
        """The passage ``to_dict()`` wrote."""
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


class _HTMLText(HTMLParser):
    """The visible text of an HTML page: its title, and its blocks as paragraphs."""

    BLOCKS = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section", "article",
                        "pre", "blockquote", "dd", "dt"})
    HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []
        self.title = ""
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")
        if tag in ("h1", "h2", "h3"):
            self.parts.append("# ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.parts.append(data)


def _html_text(raw: str) -> str:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    body = "".join(parser.parts)
    title = " ".join(parser.title.split())
    return f"# {title}\n\n{body}" if title and not body.lstrip().startswith("# ") else body


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = [page.extract_text() or "" for page in reader.pages]
    title = reader.metadata.get("/Title") if reader.metadata else None
    text = "\n\n".join(pages)
    return f"# {title}\n\n{text}" if title else text


def document_text(path: Path) -> str:
    """A document's text: Markdown and plain text as they are, HTML's visible text, a PDF's text layer."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(path)
    raw = path.read_text("utf-8", errors="replace")
    return _html_text(raw) if suffix in (".html", ".htm") else raw


def _documents(folder: Path) -> List[Passage]:
    passages = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file()):
        if path.name.lower() == "readme.md":
            continue
        try:
            text = document_text(path)
        except Exception as error:  # noqa: BLE001 - one unreadable file must not take the knowledge down
            logger.warning(f"Document {path} is not indexed: it cannot be read ({error}).")
            continue
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
