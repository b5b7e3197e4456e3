"""The reference corpora's index: SQLite FTS5 (BM25) + exact dense search, on disk.

At 100,000+ passages the curated index's way (every passage's words in memory,
scored one by one) is too slow, so the corpora live apart:

- ``corpora.sqlite``: the passages, an FTS5 table over title and text (Porter
  stemming, BM25 with the title weighted 4x) and each word's document count;
- ``titles.npy`` / ``bodies.npy``: the shared sentence encoder's vectors,
  memory-mapped (processes share the pages; nothing is copied at start).

A query takes the ``CANDIDATES`` best passages by cosine and the ``CANDIDATES``
best by BM25, then scores their union exactly as the curated index scores its
passages (``DENSE_WEIGHT`` x cosine + the rest x the IDF-weighted share of the
query's words the passage has), plus a small prior for a word's most common
sense. Exact search over 10^5 vectors costs a few milliseconds; past about 10^6
a deployment puts an ANN index or a vector database server (pgvector, Qdrant)
behind ``VectorSearch``, the one seam this module calls.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, get_encoder
from rasa_safe_hybrid.retrieval.corpora import CorpusPin, Entry, fingerprint
from rasa_safe_hybrid.retrieval.index import DENSE_WEIGHT, Hit, words
from rasa_safe_hybrid.retrieval.passages import Passage

logger = logging.getLogger(__name__)

FORMAT = 2
CORPORA_ENV = "ASSISTANT_CORPORA"  # a manifest to use instead of the configured one ("": none)
CANDIDATES = 40
# A passage whose head word (or one of its synonyms) is what the question names scores this much
# more: "what is a lion" is the lion's entry, not the lionet's (chosen on knowledge_dev.yml).
HEAD_BONUS = 0.08
# Among the entries for that word, its most common sense (WordNet's index files order the senses by
# use) scores this much more: the arachnid before the skillet (chosen on knowledge_dev.yml).
SENSE_PRIOR = 0.1
# A "who" question prefers an entry about a person ("who was Homer": the poet, not the home run).
PERSON_BONUS = 0.15
WHO = re.compile(r"^\s*(who|whom|whose)\b", re.I)
# "what is a ...", "who was ...": a thing or a person, not a verb ("who was Homer": not "to hit a home run").
NOUN_QUESTION = re.compile(
    r"^\s*(who|whom|whose|what\s*(is|are|was|were|'s)\s+(an?|the)\b|define\s+(an?|the)\b)", re.I)
VERB_PENALTY = 0.1
_QUESTION_FRAME = re.compile(
    r"^\s*(what|who|where)\s*(is|are|was|were|'s|s)\s+((an?|the)\s+)?|^\s*(define|describe|explain)\s+((an?|the)\s+)?|"
    r"^\s*tell me (something )?about\s+((an?|the)\s+)?|^\s*what does ((an?|the)\s+)?|"
    r"\s+(mean|means|stand for|do)\s*\??\s*$|[?.!\s]+$", re.I)
DB_NAME = "corpora.sqlite"
_FTS_TOKEN = re.compile(r"[A-Za-z0-9]+")
# A reference work knows nothing of the user's own things or of the news: such questions are not
# looked up in it ("what's my account balance", "who won yesterday's game").
PERSONAL_OR_CURRENT = re.compile(
    r"\b(my|mine|our|ours|today|tonight|tomorrow|yesterday|now|currently|latest|next|"
    r"this (morning|afternoon|evening|week|month|year|weekend)|right now)\b", re.I)
# Nor what the user asks the assistant about itself ("where do you live", "do you like music").
ABOUT_THE_ASSISTANT = re.compile(r"\b(you|your|yours|yourself)\b", re.I)
ASKING_THE_ASSISTANT_TO_TELL = re.compile(
    r"\b(can|could|would|will) you (please )?(tell|explain|define|describe|give|show|help)|\bdo you know\b|"
    r"\b(tell|explain to|show) (me|us)\b", re.I)


def about_the_assistant(text: str) -> bool:
    """Whether a message asks the assistant about itself (not: "can you tell me what X is")."""
    stripped = ASKING_THE_ASSISTANT_TO_TELL.sub(" ", text)
    return bool(ABOUT_THE_ASSISTANT.search(stripped))
# A question for a count or a date wants a passage that states a number.
NUMBER_QUESTION = re.compile(r"\b(how many|how much|how old|how long|how far|what year|which year|when)\b", re.I)
_STATES_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
                            r"hundred|thousand|million|billion|dozen)\b", re.I)
MIN_UNKNOWN_CHARS = 4


class VectorSearch:
    """Exact cosine search over unit vectors (the seam for an ANN index or a vector server)."""

    def __init__(self, titles: np.ndarray, bodies: np.ndarray) -> None:
        self.titles = titles
        self.bodies = bodies

    def __len__(self) -> int:
        return len(self.bodies)

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """Per row: the best cosine with its title and its title + text."""
        return np.maximum(self.titles @ vector, self.bodies @ vector)

    def top(self, vector: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the ``k`` best rows, and every row's score."""
        scores = self.scores(vector)
        k = min(k, len(scores))
        rows = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        return rows, scores


class CorpusIndex:
    """The corpora's passages, searchable by meaning and by words."""

    def __init__(self, folder: Path, vectors: VectorSearch, encoder_model: str, documents: int) -> None:
        self.folder = folder
        self.vectors = vectors
        self.encoder_model = encoder_model
        self.documents = documents
        self._local = threading.local()
        self._df: Dict[str, int] = dict(self._db().execute("SELECT word, n FROM df"))

    def __len__(self) -> int:
        return len(self.vectors)

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "db", None)
        if connection is None:  # one read-only connection per thread
            connection = sqlite3.connect(f"file:{self.folder / DB_NAME}?mode=ro", uri=True, check_same_thread=False)
            self._local.db = connection
        return connection

    def _idf(self, word: str) -> float:
        df = self._df.get(word, 0)
        return math.log(1 + (self.documents - df + 0.5) / (df + 0.5))

    def lexical_rows(self, query: str, k: int = CANDIDATES) -> List[int]:
        """The ``k`` best rows by BM25 (any of the query's content words)."""
        terms = [t for t in dict.fromkeys(_FTS_TOKEN.findall(query)) if words(t)]
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = self._db().execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 4.0, 1.0) LIMIT ?",
                                  (match, k)).fetchall()
        return [r[0] - 1 for r in rows]

    def refuses(self, query: str) -> Optional[str]:
        """Why the corpora cannot answer ``query`` at all (None: they may)."""
        if about_the_assistant(query):
            return "it asks the assistant about itself"
        personal = PERSONAL_OR_CURRENT.search(query)
        if personal:
            return f"it is about the user's own things or current events ({personal.group(0)!r})"
        unknown = [w for w in words(query) if len(w) >= MIN_UNKNOWN_CHARS and w not in self._df]
        if unknown:
            return f"the corpora have never seen {unknown}"
        return None

    def search(self, query: str, k: int = 3, vector: Optional[np.ndarray] = None, gated: bool = True) -> List[Hit]:
        """The ``k`` best passages, best first (``vector``: the query's embedding, if already made).

        ``gated``: none for a question the corpora cannot answer (``refuses``), and for a question
        for a count or a date only passages that state a number.
        """
        if not len(self) or not query.strip():
            return []
        if gated:
            reason = self.refuses(query)
            if reason:
                logger.debug(f"Reference corpora not searched for {query[:60]!r}: {reason}.")
                return []
        if vector is None:
            vector = get_encoder(self.encoder_model).encode([query])[0]
        dense_rows, dense = self.vectors.top(vector, CANDIDATES)
        rows = list(dict.fromkeys([*map(int, dense_rows), *self.lexical_rows(query)]))
        found = self._db().execute(
            f"SELECT rowid, id, title, text, source, kind, health, first_sense, category FROM passages WHERE rowid IN "
            f"({','.join('?' * len(rows))})", [r + 1 for r in rows]).fetchall()
        query_words = list(dict.fromkeys(words(query)))
        subject = " ".join(words(_QUESTION_FRAME.sub(" ", query)))
        weights = np.array([self._idf(w) for w in query_words], dtype=np.float32)
        hits = []
        person_question, noun_question = bool(WHO.match(query)), bool(NOUN_QUESTION.match(query))
        for rowid, pid, title, text, source, kind, health, first_sense, category in found:
            present = set(words(f"{title} {text}"))
            lexical = (
                float(sum(w for q, w in zip(query_words, weights, strict=False) if q in present) / weights.sum())
                if len(weights)
                else 0.0
            )
            cosine = float(dense[rowid - 1])
            score = DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * lexical
            if subject and subject in head_words(title):  # the entry is for what the question names
                score += HEAD_BONUS + SENSE_PRIOR * bool(first_sense)
            if person_question and category == "noun.person":
                score += PERSON_BONUS
            if noun_question and category.startswith("verb."):
                score -= VERB_PENALTY
            hits.append(Hit(Passage(pid, title, text, source, kind, bool(health)), score, cosine, lexical))
        if gated and NUMBER_QUESTION.search(query):
            hits = [h for h in hits if states_number(h.passage.text)]
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    @classmethod
    def open(cls, folder: Path, pins: Sequence[CorpusPin], encoder_model: str = DEFAULT_MODEL
             ) -> Optional[CorpusIndex]:
        """The saved index of exactly these corpora with this encoder, or None."""
        try:
            manifest = json.loads((folder / "corpora.json").read_text("utf-8"))
            if (manifest.get("format") != FORMAT or manifest.get("fingerprint") != fingerprint(pins)
                    or manifest.get("encoder") != encoder_model):
                return None
            vectors = VectorSearch(np.load(folder / "titles.npy", mmap_mode="r"),
                                   np.load(folder / "bodies.npy", mmap_mode="r"))
            return cls(folder, vectors, encoder_model, int(manifest["passages"]))
        except (OSError, ValueError, KeyError, sqlite3.Error):
            return None

    @classmethod
    def build(cls, pins: Sequence[CorpusPin], folder: Path, encoder_model: str = DEFAULT_MODEL,
              progress: bool = True, batch: int = 512) -> CorpusIndex:
        """Reads every corpus, embeds its passages and writes the index to ``folder``."""
        from tqdm import tqdm

        started = time.perf_counter()
        passages: List[Entry] = []
        for pin in pins:
            passages += list(pin.corpus.read(pin.corpus.root))
        folder.mkdir(parents=True, exist_ok=True)
        for name in (DB_NAME, "corpora.json"):
            (folder / name).unlink(missing_ok=True)
        encoder = get_encoder(encoder_model)
        titles = np.lib.format.open_memmap(folder / "titles.npy", "w+", np.float32, (len(passages), encoder.dim))
        bodies = np.lib.format.open_memmap(folder / "bodies.npy", "w+", np.float32, (len(passages), encoder.dim))
        bar = tqdm(total=len(passages), desc="embedding corpora", unit="passage", disable=not progress)
        for start in range(0, len(passages), batch):
            chunk = [e.passage for e in passages[start:start + batch]]
            titles[start:start + len(chunk)] = encoder.encode([p.title for p in chunk], batch_size=64)
            bodies[start:start + len(chunk)] = encoder.encode([f"{p.title}. {p.text}" for p in chunk], batch_size=64)
            encoder.clear_cache()  # a corpus is read once: do not keep it in the query cache
            bar.update(len(chunk))
        bar.close()
        titles.flush()
        bodies.flush()
        _write_db(folder / DB_NAME, passages)
        manifest = {"format": FORMAT, "fingerprint": fingerprint(pins), "encoder": encoder_model,
                    "passages": len(passages), "corpora": [p.corpus.name for p in pins],
                    "built_s": round(time.perf_counter() - started, 1)}
        (folder / "corpora.json").write_text(json.dumps(manifest, indent=1), "utf-8")
        index = cls.open(folder, pins, encoder_model)
        assert index is not None, "the corpus index just written does not open"
        return index


def states_number(text: str) -> bool:
    """Whether a passage states a number (in digits or words)."""
    return bool(_STATES_NUMBER.search(text))


def head_words(title: str) -> List[str]:
    """The words an entry is for ("lion (king of beasts, Panthera leo)" -> "lion", "king beast", ...)."""
    head, _, rest = title.partition(" (")
    return [" ".join(words(name)) for name in [head, *rest.rstrip(")").split(",")] if name.strip()]


def _write_db(path: Path, passages: Iterable[Entry]) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE passages (rowid INTEGER PRIMARY KEY, id TEXT, title TEXT, text TEXT, source TEXT, kind TEXT, "
        "health INTEGER, first_sense INTEGER, category TEXT);"
        "CREATE VIRTUAL TABLE fts USING fts5(title, text, content='passages', content_rowid='rowid', "
        "tokenize='porter unicode61');"
        "CREATE TABLE df (word TEXT PRIMARY KEY, n INTEGER);")
    counts: Dict[str, int] = {}
    rows = []
    for i, (p, first_sense, category) in enumerate(passages, start=1):
        rows.append((i, p.id, p.title, p.text, p.source, p.kind, int(p.health), int(first_sense), category))
        for word in set(words(f"{p.title} {p.text}")):
            counts[word] = counts.get(word, 0) + 1
    db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO fts (rowid, title, text) SELECT rowid, title, text FROM passages")
    db.executemany("INSERT INTO df VALUES (?, ?)", counts.items())
    db.commit()
    db.close()


_OPEN: Dict[Tuple[str, str, str], Optional[CorpusIndex]] = {}
_OPEN_LOCK = threading.Lock()


# Corpora this small are indexed on first use (seconds); larger ones by `make corpora` only.
INLINE_BUILD_MAX = 5000


def load_corpus_index(manifest: Path, base: Path, encoder_model: str = DEFAULT_MODEL) -> Optional[CorpusIndex]:
    """The process-wide index of the corpora ``manifest`` pins (under ``base``), or None (none
    pinned, none installed, or not indexed yet: said once in the log; the curated knowledge still
    answers). ``ASSISTANT_CORPORA``, when set, names the manifest instead ("": none).
    """
    from rasa_safe_hybrid.retrieval.corpora import available, index_folder, read_manifest

    manifest = Path(os.environ[CORPORA_ENV]) if CORPORA_ENV in os.environ else manifest
    key = (str(manifest), str(base), encoder_model)
    if key in _OPEN:
        return _OPEN[key]
    with _OPEN_LOCK:
        if key in _OPEN:
            return _OPEN[key]
        index = None
        pins = read_manifest(manifest) if str(manifest) not in ("", ".") else []
        usable, refused = available(pins)
        for name, reason in refused.items():
            logger.warning(f"Reference corpus '{name}' is not used: {reason}.")
        if usable:
            folder = index_folder(base, usable)
            index = CorpusIndex.open(folder, usable, encoder_model)
            if index is None:
                entries = sum(1 for pin in usable for _ in pin.corpus.read(pin.corpus.root))
                if entries <= INLINE_BUILD_MAX:
                    index = CorpusIndex.build(usable, folder, encoder_model, progress=False)
            if index is None:
                logger.warning(f"The reference corpora ({', '.join(p.corpus.name for p in usable)}) are not indexed "
                               f"in {folder}: the assistant answers from its curated knowledge only. Build the index "
                               f"with `python -m rasa_safe_hybrid.retrieval` (a few minutes, once).")
            else:
                logger.info(f"Reference corpora: {', '.join(p.corpus.name for p in usable)} "
                            f"({len(index)} passages, {folder}).")
        _OPEN[key] = index
        return index


def status(manifest: Path, base: Path, encoder_model: str = DEFAULT_MODEL) -> str:
    """One line for a person starting the assistant: which reference corpora answer, or why none."""
    from rasa_safe_hybrid.retrieval.corpora import CorpusError, available, index_folder, read_manifest

    manifest = Path(os.environ[CORPORA_ENV]) if CORPORA_ENV in os.environ else manifest
    try:
        pins = read_manifest(manifest) if str(manifest) not in ("", ".") else []
    except CorpusError as error:
        return f"Knowledge: curated only ({error})"
    if not pins:
        return "Knowledge: curated only (no reference corpus configured)"
    usable, refused = available(pins)
    notes = "; ".join(f"{name} not used: {reason}" for name, reason in refused.items())
    if not usable:
        return f"Knowledge: curated only ({notes})"
    index = CorpusIndex.open(index_folder(base, usable), usable, encoder_model)
    names = ", ".join(p.corpus.name for p in usable)
    if index is None:
        return (f"Knowledge: curated only ({names} not indexed yet: python -m "
                f"rasa_safe_hybrid.retrieval){'; ' + notes if notes else ''}")
    return f"Knowledge: curated + {names} ({len(index)} passages){'; ' + notes if notes else ''}"
