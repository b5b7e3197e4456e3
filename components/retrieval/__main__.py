"""``make index``: builds the knowledge index into .cache/index and prints what it holds.

Usage: python -m components.retrieval [--knowledge knowledge] [--documents knowledge/documents]
       [--out .cache/index] [--encoder .cache/models/all-MiniLM-L6-v2] [--query "..."]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from components.embeddings import DEFAULT_MODEL, EncoderUnavailable
from components.retrieval.index import DEFAULT_DIR, KnowledgeIndex
from components.retrieval.passages import fingerprint, load_passages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", type=Path, default=Path("knowledge"))
    parser.add_argument("--documents", type=Path, default=Path("knowledge") / "documents")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--encoder", default=DEFAULT_MODEL)
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
    if args.query:
        for hit in index.search(args.query, k=3):
            print(f"  {hit.score:.3f} (dense {hit.dense:.3f}, lexical {hit.lexical:.3f})  {hit.passage.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
