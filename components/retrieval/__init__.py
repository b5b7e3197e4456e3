"""Retrieval over the assistant's own knowledge: passages, a hybrid index, grounding.

- ``passages``: the curated knowledge (``knowledge/``) and user documents
  (``knowledge/documents/*.md|*.txt``) as ``Passage`` records with a source;
- ``index``: ``KnowledgeIndex``, BM25 + the shared sentence encoder, built by
  ``make index`` (``python -m rasa_safe_hybrid.retrieval``) into ``.cache/index``;
- ``grounding``: the per-sentence support check of a reply against passages.

Nothing here imports Rasa; the encoder is ``rasa_safe_hybrid.embeddings``' one per
process, shared with the learned rails.
"""
