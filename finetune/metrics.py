"""The response-quality measures, in one place: BLEU-4, ROUGE-L F1 and reply perplexity.

Used by ``make eval`` (``benchmarks.quality``) and by ``make finetune``
(``finetune.evaluate``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Dict, List, Sequence

from finetune.train import IGNORE, encode


def tokenize(text: str) -> List[str]:
    """Lower-cased word and punctuation tokens."""
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU with one reference per hypothesis and add-one smoothing for n > 1."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=False):
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


def perplexity(model: Any, tokenizer: Any, examples: Sequence[Dict[str, Any]], max_length: int = 512) -> float:
    """exp(mean NLL) of the reference reply tokens given their chat prompt (history included)."""
    import torch

    total, tokens = 0.0, 0
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for example in examples:
            row = encode(example, tokenizer, max_length)
            if row is None:
                continue
            ids = torch.tensor([row["input_ids"]], device=device)
            labels = torch.tensor([row["labels"]], device=device)
            n = int((labels[:, 1:] != IGNORE).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            tokens += n
    return math.exp(total / max(1, tokens))
