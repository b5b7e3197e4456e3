"""Reference corpora that registry packages ship offline, read into passages.

Each corpus is one entry of ``CORPORA``: the Debian package that installs it,
the files it reads, the licence its copyright file must state, and a reader
that turns the files into :class:`Passage` objects. ``knowledge/corpora.yml``
says which corpora an assistant uses and pins the sha256 of every file; a file
whose digest differs (another release, a damaged install) is refused, so the
index never holds text nobody checked.

- ``wordnet`` (wordnet-base, WordNet 3.0 licence): one passage per noun and verb
  synset, its words, its gloss (examples dropped), what it is a kind or an
  instance of, and what it is part of;
- ``foldoc`` (dict-foldoc, GNU FDL): one passage per entry of the Free On-line
  Dictionary of Computing, its first sense's first paragraphs.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import yaml
from rasa_safe_hybrid.retrieval.passages import Passage

logger = logging.getLogger(__name__)

MANIFEST = Path("knowledge") / "corpora.yml"
CHUNK_CHARS = 600


class Entry(NamedTuple):
    """A passage of a corpus, with what the index ranks senses by."""

    passage: Passage
    first_sense: bool  # the most common sense of its word (WordNet's index files order senses by use)
    category: str  # WordNet's lexicographer file ("noun.person", ...), FOLDOC's "computing"


class CorpusError(ValueError):
    """A corpus is missing, unlicensed or not the release that was checked; the message says what to do."""


@dataclass(frozen=True)
class Corpus:
    """One reference corpus: where its files are and how to read them."""

    name: str
    package: str
    licence: str
    licence_phrase: str  # must appear in the package's copyright file
    files: Tuple[str, ...]
    read: Callable[[Path], Iterator[Entry]]
    root: Path = Path("/")

    def path(self, name: str) -> Path:
        """The path of one of the package's files."""
        return self.root / name.lstrip("/")

    @property
    def copyright(self) -> Path:
        """The package's Debian copyright file (its licence)."""
        return self.path(f"/usr/share/doc/{self.package}/copyright")


# --- WordNet ---------------------------------------------------------------------------------

def _wn_lines(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("  "):  # the licence header lines start with two spaces
                yield line


def _wn_synsets(path: Path) -> Iterator[Tuple[str, int, List[str], List[Tuple[str, str]], str]]:
    """(offset, lexicographer file, words, pointers (symbol, offset), gloss) per synset of a data.* file."""
    for line in _wn_lines(path):
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        offset, lexfile, count = parts[0], int(parts[1]), int(parts[3], 16)
        words = [parts[4 + 2 * i].replace("_", " ") for i in range(count)]
        at = 4 + 2 * count
        pointers = [(parts[at + 1 + 4 * i], parts[at + 2 + 4 * i]) for i in range(int(parts[at]))]
        yield offset, lexfile, words, pointers, gloss.strip()


def _definition(gloss: str) -> str:
    """The gloss without its quoted examples."""
    definition = re.split(r';\s*"', gloss, maxsplit=1)[0]
    return definition.strip().rstrip(";").strip()


# Synsets under these are health information: answered by extraction only, never by the model.
HEALTH_ROOTS = frozenset({"drug", "medicine", "disease", "illness", "symptom", "pathological state", "ill health",
                          "injury", "disorder", "medical procedure", "medical care", "poison"})
# A synset's narrower kinds are named in its passage when it has at most this many.
MAX_KINDS = 6
# Glosses that mark a word as a slur or obscenity: such synsets are not indexed at all.
UNFIT_GLOSS = re.compile(r"\b(offensive|obscene|vulgar|slur|derogatory|disparaging|ethnic slur)\b", re.I)


def _wn_first_senses(path: Path) -> Dict[str, str]:
    """Word -> the synset offset of its most common sense (index.noun / index.verb)."""
    first = {}
    for line in _wn_lines(path):
        parts = line.split()
        count = int(parts[2])
        first[parts[0]] = parts[-count]
    return first


# WordNet's lexicographer files (lexnames(5WN)) the index uses: 18 holds people.
LEXFILES = {3: "noun.Tops", 5: "noun.animal", 6: "noun.artifact", 15: "noun.location", 18: "noun.person",
            13: "noun.food", 20: "noun.plant", 26: "noun.state"}


def _is_health(offset: str, names: Dict[str, Any], parents: Dict[str, List[str]], health: Dict[str, bool],
               depth: int = 0) -> bool:
    """Whether a synset is under one of ``HEALTH_ROOTS`` (memoised in ``health``)."""
    if offset not in health:
        health[offset] = depth < 20 and offset in names and (
            any(w.lower() in HEALTH_ROOTS for w in names[offset])
            or any(_is_health(parent, names, parents, health, depth + 1) for parent in parents.get(offset, ())))
    return health[offset]


def read_wordnet(root: Path) -> Iterator[Entry]:
    """WordNet's noun and verb synsets as entries (words, gloss, first sense, category)."""
    base = root / "usr/share/wordnet"
    for pos, file_pos in (("n", "noun"), ("v", "verb")):
        synsets = list(_wn_synsets(base / f"data.{file_pos}"))
        first = _wn_first_senses(base / f"index.{file_pos}")
        names = {offset: words for offset, _, words, _, _ in synsets}
        parents = {offset: [o for s, o in pointers if s in ("@", "@i")] for offset, _, _, pointers, _ in synsets}
        health: Dict[str, bool] = {}

        for offset, lexfile, words, pointers, gloss in synsets:
            definition = _definition(gloss)
            if not definition or UNFIT_GLOSS.search(gloss):
                continue
            head = words[0]
            title = head + (f" ({', '.join(words[1:4])})" if len(words) > 1 else "")
            relations = []
            kinds = [names[o][0] for s, o in pointers if s in ("@", "@i") and o in names]
            if kinds:
                word = "an instance of" if any(s == "@i" for s, _ in pointers) else "a kind of"
                relations.append(f"{head} is {word} {', '.join(dict.fromkeys(kinds))}.")
            wholes = [names[o][0] for s, o in pointers if s == "#p" and o in names]
            if wholes:
                relations.append(f"It is part of {', '.join(dict.fromkeys(wholes[:3]))}.")
            kinds_of = [names[o][0] for s, o in pointers if s == "~" and o in names]
            if 0 < len(kinds_of) <= MAX_KINDS:  # "Japanese monetary unit ... Kinds: yen."
                relations.append(f"Kinds: {', '.join(dict.fromkeys(kinds_of))}.")
            text = " ".join([f"{title}: {definition}."] + relations)
            passage = Passage(f"wordnet:{pos}{offset}", title, text, "WordNet 3.0, Princeton University", "wordnet",
                              _is_health(offset, names, parents, health))
            category = LEXFILES.get(lexfile, f"{file_pos}.{lexfile}") if pos == "n" else f"verb.{lexfile}"
            yield Entry(passage, first.get(head.lower().replace(" ", "_")) == offset, category)


# --- FOLDOC (dictd format) ---------------------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(text: str) -> int:
    number = 0
    for char in text:
        number = number * 64 + _B64.index(char)
    return number


def _clean_foldoc(body: str) -> str:
    body = re.sub(r"\{\(?(https?|ftp)://[^}]*\}|\(?(https?|ftp)://\S+", "", body)
    body = re.sub(r"<[^<>\s]+@[^<>\s]+>", "", body)  # e-mail addresses
    body = re.sub(r"^\s*\d+\.\s*", "", body)
    body = body.replace("{", "").replace("}", "")
    body = re.sub(r"<([a-z, -]+)>", r"(\1)", body)
    return " ".join(body.split())


def read_foldoc(root: Path) -> Iterator[Entry]:
    """FOLDOC's entries: one per headword, its definition."""
    base = root / "usr/share/dictd"
    data = gzip.open(base / "foldoc.dict.dz").read()
    seen = set()
    for line in (base / "foldoc.index").read_text("utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        start, length = _b64(parts[1]), _b64(parts[2])
        if start in seen:
            continue
        seen.add(start)
        entry = data[start:start + length].decode("utf-8", errors="replace")
        heads, _, body = entry.partition("\n\n")
        words = [w.strip() for w in heads.splitlines() if w.strip()]
        first_sense = re.split(r"\n\s*2\.\s", body, maxsplit=1)[0]
        paragraphs = [p for p in re.split(r"\n\s*\n", first_sense)
                      if p.strip() and not re.fullmatch(r"\s*\(\d{4}-\d\d-\d\d\)\s*", p)]
        text: List[str] = []
        size = 0
        for paragraph in paragraphs:
            cleaned = _clean_foldoc(paragraph)
            if not cleaned or cleaned.startswith(("See also", "Usenet", "Home:")):
                continue
            if text and size + len(cleaned) > CHUNK_CHARS:
                break
            text.append(cleaned)
            size += len(cleaned)
        if not words or not text:
            continue
        title = words[0] + (f" ({', '.join(words[1:3])})" if len(words) > 1 else "")
        yield Entry(Passage(f"foldoc:{words[0]}", title, f"{words[0]}: {' '.join(text)}",
                            "The Free On-line Dictionary of Computing (foldoc.org, ed. Denis Howe)", "foldoc"),
                    True, "computing")


CORPORA: Dict[str, Corpus] = {
    "wordnet": Corpus("wordnet", "wordnet-base", "WordNet 3.0 licence (Princeton University)",
                      "WordNet 3.0 Copyright 2006 by Princeton University",
                      ("/usr/share/wordnet/data.noun", "/usr/share/wordnet/data.verb", "/usr/share/wordnet/index.noun",
                       "/usr/share/wordnet/index.verb"), read_wordnet),
    "foldoc": Corpus("foldoc", "dict-foldoc", "GNU Free Documentation License 1.1 or later",
                     "GNU Free Documentation", ("/usr/share/dictd/foldoc.index", "/usr/share/dictd/foldoc.dict.dz"),
                     read_foldoc),
}


# --- the manifest: which corpora, which release -------------------------------------------------

@dataclass(frozen=True)
class CorpusPin:
    """A corpus as ``knowledge/corpora.yml`` pins it."""

    corpus: Corpus
    version: str
    sha256: Mapping[str, str] = field(default_factory=dict)


def read_manifest(path: Path = MANIFEST, root: Optional[Path] = None) -> List[CorpusPin]:
    """The pinned corpora (an absent manifest: none). Raises CorpusError on a malformed one.

    ``root``: where the packages' files are (default: the manifest's ``root`` key, relative to
    the manifest's folder, else ``/``, where Debian installs them).
    """
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    if root is None:
        root = (path.parent / data["root"]) if data.get("root") else Path("/")
    pins = []
    for name, entry in (data.get("corpora") or {}).items():
        if name not in CORPORA:
            raise CorpusError(f"{path}: unknown corpus {name!r}; known: {sorted(CORPORA)}.")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), dict):
            raise CorpusError(f"{path}: corpus {name!r} needs `version` and a `sha256` map of its files.")
        corpus = CORPORA[name]
        missing = [f for f in corpus.files if f not in entry["sha256"]]
        if missing:
            raise CorpusError(f"{path}: corpus {name!r} pins no sha256 for {missing}.")
        pins.append(CorpusPin(Corpus(**{**corpus.__dict__, "root": root}), str(entry.get("version", "")),
                              dict(entry["sha256"])))
    return pins


def sha256(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(pin: CorpusPin) -> Optional[str]:
    """Why the corpus cannot be used (None: installed, licensed and the pinned release)."""
    corpus = pin.corpus
    for name in corpus.files:
        path = corpus.path(name)
        if not path.exists():
            return (f"{path} is missing (install the Debian package {corpus.package}: "
                    f"`apt-get install {corpus.package}`)")
        actual = sha256(path)
        if actual != pin.sha256[name]:
            return (f"{path} has sha256 {actual[:16]}..., not the pinned {pin.sha256[name][:16]}... "
                    f"(another release of {corpus.package}; check it, then update knowledge/corpora.yml)")
    try:
        licence = corpus.copyright.read_text("utf-8", errors="replace")
    except OSError:
        return f"{corpus.copyright} is missing: the licence of {corpus.name} cannot be checked"
    if corpus.licence_phrase not in licence:
        return f"{corpus.copyright} does not state the expected licence ({corpus.licence})"
    return None


def available(pins: Sequence[CorpusPin]) -> Tuple[List[CorpusPin], Dict[str, str]]:
    """(the usable corpora, why each other one is not)."""
    usable, refused = [], {}
    for pin in pins:
        reason = check(pin)
        if reason:
            refused[pin.corpus.name] = reason
        else:
            usable.append(pin)
    return usable, refused


def index_folder(base: Path, pins: Sequence[CorpusPin]) -> Path:
    """Where the index of exactly these corpus releases lives under ``base`` (each set its own)."""
    return base / f"corpora-{fingerprint(pins)[:12]}"


def fingerprint(pins: Sequence[CorpusPin]) -> str:
    """A digest of which corpus releases are indexed (the corpus index is rebuilt when it changes)."""
    digest = hashlib.sha256()
    for pin in pins:
        digest.update(pin.corpus.name.encode())
        for name in sorted(pin.sha256):
            digest.update(pin.sha256[name].encode())
    return digest.hexdigest()
