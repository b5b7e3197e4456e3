"""Fine-tuning the response model on the assistant's own conversations.

One command (``make finetune`` / ``python -m finetune``) runs the pipeline:

1. ``collect``: domain responses paired with their intents' NLU examples,
   ``data/`` stories turned into multi-turn dialogues, the curated open Q&A in
   ``knowledge/open_qa.yml``, and optionally conversations exported from the
   tracker store (SQLite or PostgreSQL) within a date range;
2. ``preprocess``: PII redacted with the input rail's code, duplicates and
   guardrail-blocked turns dropped, replies that fail the output rails
   dropped, chat-formatted with the assistant's system prompt, split into
   train and held-out sets by reply with a fixed seed;
3. ``train``: full fine-tuning with a progress bar, a resumable checkpoint
   and early stopping on held-out loss (GPU when there is one);
4. ``evaluate``: perplexity, BLEU-4 and ROUGE-L on the held-out set and the
   output-rail pass rate on a fixed prompt set, before and after;
5. ``promote``: a versioned folder and the config lines that use it, refused
   when the rail pass rate drops.
"""
