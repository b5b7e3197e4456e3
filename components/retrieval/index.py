"""Hybrid retrieval: BM25-style lexical overlap + the shared sentence encoder.

``KnowledgeIndex.search(query)`` scores every passage (a few hundred here) as
``DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lexical``: ``dense`` is the best
cosine of the query with the passage's title and with its title + text,
``lexical`` the share of the query's content words (BM25-weighted by rarity)
that the passage contains. The index (vectors + passages) is written by
``make index`` to ``.cache/index`` and rebuilt when the knowledge changed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, get_encoder
from rasa_safe_hybrid.retrieval.passages import DOCUMENT_SUFFIXES, Passage, fingerprint, load_passages

logger = logging.getLogger(__name__)

DENSE_WEIGHT = 0.7
DEFAULT_DIR = Path(".cache") / "index"
FORMAT = 1
_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an and are as at be but by can could did do does doing for from had has have how i if in into is it its "
    "me my of on or our please should so than that the their them then there these they this to up us was we "
    "what when where which who whom why will with would you your tell explain about know get give".split())


def words(text: str) -> List[str]:
    """Lower-case content words (stop words out, a plural 's' folded)."""
    result = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        result.append(word)
    return result


@dataclass(frozen=True)
class Hit:
    """A passage and how well it matches the query."""

    passage: Passage
    score: float
    dense: float
    lexical: float

    def to_dict(self) -> Dict[str, object]:
        """The hit as the trace stores it."""
        return {"id": self.passage.id, "title": self.passage.title, "score": round(self.score, 4),
                "dense": round(self.dense, 4), "lexical": round(self.lexical, 4)}


class KnowledgeIndex:
    """Passages with their vectors and word statistics."""

    def __init__(self, passages: List[Passage], title_vectors: np.ndarray, body_vectors: np.ndarray,
                 encoder_model: str = DEFAULT_MODEL) -> None:
        self.passages = passages
        self.title_vectors = title_vectors
        self.body_vectors = body_vectors
        self.encoder_model = encoder_model
        self.embedded = 0  # passages the last build embedded (the others kept their vectors)
        self._words = [set(words(f"{p.title} {p.text}")) for p in passages]
        documents = Counter(w for ws in self._words for w in ws)
        n = max(len(passages), 1)
        self._idf = {w: math.log(1 + (n - df + 0.5) / (df + 0.5)) for w, df in documents.items()}
        self._unknown_idf = math.log(1 + (n + 0.5) / 0.5)

    @classmethod
    def build(cls, passages: List[Passage], encoder_model: str = DEFAULT_MODEL,
              previous: Optional[KnowledgeIndex] = None) -> KnowledgeIndex:
        """Embeds the passages; those ``previous`` already holds unchanged keep their vectors
        (a changed document re-embeds only its own passages).
        """
        encoder = get_encoder(encoder_model)
        titles = np.zeros((len(passages), encoder.dim), dtype=np.float32)
        bodies = np.zeros((len(passages), encoder.dim), dtype=np.float32)
        known: Dict[Tuple[str, str], int] = {}
        if previous is not None and previous.encoder_model == encoder_model:
            known = {(p.title, p.text): i for i, p in enumerate(previous.passages)}
        todo = []
        for i, passage in enumerate(passages):
            j = known.get((passage.title, passage.text))
            if j is None or previous is None:
                todo.append(i)
            else:
                titles[i], bodies[i] = previous.title_vectors[j], previous.body_vectors[j]
        if todo:
            titles[todo] = encoder.encode([passages[i].title for i in todo])
            bodies[todo] = encoder.encode([f"{passages[i].title}. {passages[i].text}" for i in todo])
        index = cls(passages, titles, bodies, encoder_model)
        index.embedded = len(todo)
        return index

    def lexical(self, query_words: Sequence[str]) -> np.ndarray:
        """Per passage: the IDF-weighted share of the query's content words it contains."""
        unique = list(dict.fromkeys(query_words))
        if not unique:
            return np.zeros(len(self.passages), dtype=np.float32)
        weights = np.array([self._idf.get(w, self._unknown_idf) for w in unique], dtype=np.float32)
        present = np.array([[w in ws for w in unique] for ws in self._words], dtype=np.float32)
        return present @ weights / weights.sum()

    def search(self, query: str, k: int = 3) -> List[Hit]:
        """The ``k`` best passages, best first."""
        if not self.passages or not query.strip():
            return []
        vector = get_encoder(self.encoder_model).encode([query])[0]
        dense = np.maximum(self.title_vectors @ vector, self.body_vectors @ vector)
        lexical = self.lexical(words(query))
        score = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lexical
        best = np.argsort(-score)[:k]
        return [Hit(self.passages[i], float(score[i]), float(dense[i]), float(lexical[i])) for i in best]

    def save(self, folder: Path, knowledge_fingerprint: str) -> None:
        """Writes the index to ``folder`` with the fingerprint of the knowledge it was built from."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "vectors.npz", titles=self.title_vectors, bodies=self.body_vectors)
        manifest = {"format": FORMAT, "fingerprint": knowledge_fingerprint, "encoder": self.encoder_model,
                    "passages": [p.to_dict() for p in self.passages]}
        (folder / "index.json").write_text(json.dumps(manifest, indent=1), "utf-8")

    @classmethod
    def read(cls, folder: Path, knowledge_fingerprint: Optional[str], encoder_model: str
             ) -> Optional[KnowledgeIndex]:
        """The saved index, or None when it is missing or stale (``knowledge_fingerprint`` None:
        whatever knowledge it holds, to reuse its vectors).
        """
        try:
            manifest = json.loads((folder / "index.json").read_text("utf-8"))
            if (manifest.get("format") != FORMAT or manifest.get("encoder") != encoder_model
                    or knowledge_fingerprint not in (None, manifest.get("fingerprint"))):
                return None
            vectors = np.load(folder / "vectors.npz")
            passages = [Passage.from_dict(p) for p in manifest["passages"]]
            return cls(passages, vectors["titles"], vectors["bodies"], encoder_model)
        except (OSError, ValueError, KeyError):
            return None


_INDEXES: Dict[Tuple[object, ...], KnowledgeIndex] = {}
_LOCK = threading.Lock()


def _stamp(knowledge: Path, documents: Path) -> Tuple[Tuple[str, int, int], ...]:
    """Name, size and modification time of every knowledge file: cheap to read each
    turn, and it changes whenever a file does (then the passages are read again).
    """
    files = [p for p in knowledge.glob("*") if p.suffix in (".yml", ".yaml", ".json")]
    if documents.is_dir():
        files += [p for p in documents.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES]
    stamps = []
    for path in sorted(files):
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def load_index(knowledge: Path, documents: Path, folder: Path = DEFAULT_DIR,
               encoder_model: str = DEFAULT_MODEL) -> KnowledgeIndex:
    """The process-wide index of ``knowledge`` + ``documents``: read from ``folder``,
    or built (and saved) when missing or when the knowledge changed.
    """
    key = (str(knowledge.resolve()), str(documents.resolve()), encoder_model, _stamp(knowledge, documents))
    index = _INDEXES.get(key)
    if index is not None:
        return index
    with _LOCK:
        index = _INDEXES.get(key)
        if index is not None:
            return index
        passages = load_passages(knowledge, documents)
        digest = fingerprint(passages)
        index = KnowledgeIndex.read(folder, digest, encoder_model)
        if index is None:
            start = time.perf_counter()
            previous = next((i for i in _INDEXES.values()), None) or KnowledgeIndex.read(folder, None, encoder_model)
            index = KnowledgeIndex.build(passages, encoder_model, previous)
            try:
                index.save(folder, digest)
            except OSError as error:
                logger.warning(f"Knowledge index built but not saved to {folder}: {error}")
            logger.info(f"Knowledge index built: {len(passages)} passages ({index.embedded} embedded, the others "
                        f"unchanged) in {time.perf_counter() - start:.1f} s (the knowledge changed or {folder} "
                        f"was empty).")
        _INDEXES.clear()  # an older version of the knowledge is not needed any more
        _INDEXES[key] = index
        return index
