"""``make index``: builds the knowledge index into .cache/index and prints what it holds.

Usage: python -m rasa_safe_hybrid.retrieval [--knowledge knowledge] [--documents knowledge/documents]
       [--corpora knowledge/corpora.yml | --no-corpora] [--out .cache/index]
       [--encoder .cache/models/all-MiniLM-L6-v2] [--query "..."]

The reference corpora (``knowledge/corpora.yml``) are indexed once (a few minutes, with a
progress bar) and again only when their pinned release or the encoder changes; a corpus
that is not installed is reported and left out.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, EncoderUnavailable
from rasa_safe_hybrid.retrieval.corpora import MANIFEST, CorpusError, available, index_folder, read_manifest
from rasa_safe_hybrid.retrieval.corpus_index import CorpusIndex
from rasa_safe_hybrid.retrieval.index import DEFAULT_DIR, KnowledgeIndex
from rasa_safe_hybrid.retrieval.passages import fingerprint, load_passages


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", type=Path, default=Path("knowledge"))
    parser.add_argument("--documents", type=Path, default=Path("knowledge") / "documents")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--encoder", default=DEFAULT_MODEL)
    parser.add_argument("--corpora", type=Path, default=MANIFEST, help="manifest of the reference corpora")
    parser.add_argument("--no-corpora", action="store_true", help="index the curated knowledge only")
    parser.add_argument("--corpora-root", type=Path, default=None,
                        help="where the corpora's files are (default: the manifest's root, else /)")
    parser.add_argument("--query", help="search the new index once and print the hits")
    args = parser.parse_args()
    if not args.knowledge.is_dir():
        print(f"error: no knowledge folder {args.knowledge}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    passages = load_passages(args.knowledge, args.documents)
    try:
        index = KnowledgeIndex.build(passages, args.encoder)
    except EncoderUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    index.save(args.out, fingerprint(passages))
    kinds = Counter(p.kind for p in passages)
    print(f"index: {len(passages)} passages ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}) "
          f"-> {args.out} in {time.perf_counter() - start:.1f} s")
    corpus = None
    if not args.no_corpora:
        try:
            pins = read_manifest(args.corpora, args.corpora_root)
        except CorpusError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        usable, refused = available(pins)
        for name, reason in refused.items():
            print(f"corpus {name}: not indexed: {reason}")
        if usable:
            folder = index_folder(args.out, usable)
            corpus = CorpusIndex.open(folder, usable, args.encoder)
            if corpus is None:
                start = time.perf_counter()
                corpus = CorpusIndex.build(usable, folder, args.encoder)
                print(f"corpora: {len(corpus)} passages ({', '.join(p.corpus.name for p in usable)}) -> {folder} "
                      f"in {time.perf_counter() - start:.0f} s, {_size_mb(folder):.0f} MB on disk")
            else:
                print(f"corpora: {len(corpus)} passages ({', '.join(p.corpus.name for p in usable)}), "
                      f"already indexed in {folder}")
    if args.query:
        hits = index.search(args.query, k=3) + (corpus.search(args.query, k=3) if corpus else [])
        for hit in sorted(hits, key=lambda h: -h.score)[:5]:
            print(f"  {hit.score:.3f} (dense {hit.dense:.3f}, lexical {hit.lexical:.3f})  {hit.passage.id}  "
                  f"{hit.passage.text[:100]}")
    return 0


def _size_mb(folder: Path) -> float:
    return sum(folder.joinpath(n).stat().st_size for n in ("corpora.sqlite", "titles.npy", "bodies.npy")) / 1e6


if __name__ == "__main__":
    sys.exit(main())
