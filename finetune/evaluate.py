"""Before/after measures of a response model on the held-out set and the rail prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

from finetune.metrics import corpus_bleu, perplexity, rouge_l

RAIL_PROMPTS = Path(__file__).resolve().parent / "data" / "rail_prompts.txt"


def load_prompts(path: Path = RAIL_PROMPTS) -> List[str]:
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip() and not line.startswith("#")]


def evaluate(generator: Any, guardrails: Any, heldout: Sequence[Dict[str, Any]], prompts: Sequence[str],
             limit: int = 0, progress: bool = True) -> Dict[str, Any]:
    """Perplexity on all held-out examples; BLEU-4 and ROUGE-L of greedy replies on
    the first ``limit`` of them (0: all); output-rail pass rate on ``prompts``."""
    from tqdm import tqdm

    system_prompt = generator.settings.system_prompt
    scored = list(heldout[:limit] if limit else heldout)
    hypotheses, references, samples = [], [], []
    for example in tqdm(scored, desc="replying to held-out prompts", disable=not progress):
        messages = example["messages"]
        history = [m for m in messages[1:-2]]
        reply = generator.generate(history, messages[-2]["content"]).text
        hypotheses.append(reply)
        references.append(messages[-1]["content"])
        samples.append({"prompt": messages[-2]["content"], "reference": messages[-1]["content"], "reply": reply})
    passed, rail_samples = 0, []
    for prompt in tqdm(prompts, desc="rail prompts", disable=not progress):
        reply = generator.generate([], prompt).text
        verdict = guardrails.check_output(reply, prompt, system_prompt)
        passed += not verdict.decisive
        rail_samples.append({"prompt": prompt, "reply": reply,
                             "rail": verdict.decisive.rail if verdict.decisive else None})
    return {
        "heldout_examples": len(heldout),
        "perplexity": round(perplexity(generator.model, generator.tokenizer, heldout), 3),
        "generated": len(scored),
        "bleu4": round(corpus_bleu(hypotheses, references), 4) if scored else None,
        "rouge_l_f1": round(sum(rouge_l(h, r) for h, r in zip(hypotheses, references, strict=False)) / len(scored), 4)
        if scored else None,
        "rail_prompts": len(prompts),
        "rail_pass_rate": round(passed / len(prompts), 4) if prompts else None,
        "samples": samples,
        "rail_samples": rail_samples,
    }
