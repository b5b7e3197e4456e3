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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rasa_safe_hybrid.generation import build_messages

from finetune.metrics import corpus_bleu, rouge_l, tokenize
from finetune.metrics import perplexity as reply_perplexity

__all__ = ["corpus_bleu", "evaluate", "load_references", "perplexity", "rouge_l", "tokenize"]

REFERENCES = Path(__file__).resolve().parent / "data" / "reference_replies.jsonl"


def load_references(path: Path = REFERENCES) -> List[Dict[str, str]]:
    """Prompt/reference pairs."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def perplexity(generator: Any, pairs: Sequence[Dict[str, str]]) -> float:
    """exp(mean negative log-likelihood) of the reference reply tokens, each
    conditioned on the system prompt and its user prompt (the fine-tuning
    pipeline's measure, on prompt/reference pairs)."""
    examples = [{"messages": build_messages(generator.settings, [], pair["prompt"])
                 + [{"role": "assistant", "content": pair["reference"]}]} for pair in pairs]
    return reply_perplexity(generator.model, generator.tokenizer, examples)


def evaluate(generator: Any, guardrails: Any, pairs: Optional[Sequence[Dict[str, str]]] = None,
             progress: bool = True, scorer: Any = ...) -> Dict[str, Any]:
    """All quality measures for one loaded generator.

    ``scorer`` is the transformers generator whose logits give the perplexity
    (by default ``generator`` itself; ``None`` leaves perplexity out).
    """
    scorer = generator if scorer is ... else scorer
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
        "backend": generator.settings.backend,
        "n": len(pairs),
        "perplexity": None if scorer is None else round(perplexity(scorer, pairs), 2),
        "bleu4": round(corpus_bleu(hypotheses, references), 4),
        "rouge_l_f1": round(sum(rouge_l(h, r) for h, r in zip(hypotheses, references, strict=False)) / len(pairs), 4),
        "avg_reply_words": round(sum(len(h.split()) for h in hypotheses) / len(pairs), 1),
        "replaced_by_output_rails": round(replaced / len(pairs), 4),
        "samples": samples[:5],
    }
