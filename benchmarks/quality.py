"""Response quality of the LLM: the measures the field uses for dialogue models.

- perplexity of the model on reference replies (given the same chat prompt),
- BLEU-4 (corpus level, smoothed) and ROUGE-L F1 of generated replies
  against the references,
- average reply length, and the share of replies the output rails replace.

References live in ``benchmarks/data/reference_replies.jsonl`` (written for
this project, within the guardrails: no doses, no diagnoses).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REFERENCES = Path(__file__).resolve().parent / "data" / "reference_replies.jsonl"


def tokenize(text: str) -> List[str]:
    """Lower-cased word and punctuation tokens."""
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU with one reference per hypothesis and add-one smoothing for n > 1."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = tokenize(hyp), tokenize(ref)
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_n + 1):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            matches[n - 1] += sum(min(c, rn[g]) for g, c in hn.items())
            totals[n - 1] += max(0, len(h) - n + 1)
    if hyp_len == 0:
        return 0.0
    log_precision = 0.0
    for n in range(max_n):
        num, den = (matches[n], totals[n]) if n == 0 else (matches[n] + 1, totals[n] + 1)
        if num == 0 or den == 0:
            return 0.0
        log_precision += math.log(num / den) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 from the longest common subsequence of tokens."""
    h, r = tokenize(hypothesis), tokenize(reference)
    if not h or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for x in h:
        row = [0]
        for j, y in enumerate(r, 1):
            row.append(prev[j - 1] + 1 if x == y else max(prev[j], row[j - 1]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def load_references(path: Path = REFERENCES) -> List[Dict[str, str]]:
    """Prompt/reference pairs."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def perplexity(generator: Any, pairs: Sequence[Dict[str, str]]) -> float:
    """exp(mean negative log-likelihood) of the reference reply tokens, each
    conditioned on the system prompt and its user prompt (the fine-tuning
    pipeline's measure, on prompt/reference pairs)."""
    from finetune.evaluate import perplexity as reply_perplexity

    examples = [{"messages": generator.build_messages([], pair["prompt"])
                 + [{"role": "assistant", "content": pair["reference"]}]} for pair in pairs]
    return reply_perplexity(generator.model, generator.tokenizer, examples)


def evaluate(generator: Any, guardrails: Any, pairs: Optional[Sequence[Dict[str, str]]] = None,
             progress: bool = True) -> Dict[str, Any]:
    """All quality measures for one loaded generator."""
    from tqdm import tqdm

    pairs = list(pairs or load_references())
    hypotheses, replaced, samples = [], 0, []
    for pair in tqdm(pairs, desc="generating replies", disable=not progress):
        result = generator.generate([], pair["prompt"])
        rails = guardrails.check_output(result.text, pair["prompt"], generator.settings.system_prompt)
        replaced += bool(rails.decisive)
        hypotheses.append(result.text)
        samples.append({"prompt": pair["prompt"], "reply": result.text,
                        "rail": rails.decisive.rail if rails.decisive else None})
    references = [p["reference"] for p in pairs]
    return {
        "model": generator.settings.model_id,
        "n": len(pairs),
        "perplexity": round(perplexity(generator, pairs), 2),
        "bleu4": round(corpus_bleu(hypotheses, references), 4),
        "rouge_l_f1": round(sum(rouge_l(h, r) for h, r in zip(hypotheses, references)) / len(pairs), 4),
        "avg_reply_words": round(sum(len(h.split()) for h in hypotheses) / len(pairs), 1),
        "replaced_by_output_rails": round(replaced / len(pairs), 4),
        "samples": samples[:5],
    }
