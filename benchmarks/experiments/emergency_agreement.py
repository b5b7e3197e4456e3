"""An EmergencyDetector rule measured out of fold and not shipped: two moderate signals that agree.

The NLU side escalates on any one strong signal (a pattern, the emergency head
at its strict threshold, the NLU's emergency intent at ``intent_threshold``).
A message such as "sudden severe headache like a thunderclap" is below both
strong thresholds (head 0.90 < 0.95, intent 0.39 < 0.6) and is routed to a
structured action, where no check before generation runs. The rule measured
here would escalate when the emergency head reaches its lenient
(before-generation) threshold *and* the NLU ranks the emergency intent at
``agreement_intent`` or more. It is not shipped: the chosen value is the
intent threshold itself, a no-op (benchmarks/experiments/README.md).

Everything here is out of fold, on the project's own data only:

- the emergency head's scores: ``train.project_cv`` (5 folds of the project's
  rows, trained with every other row, as ``make train-guards`` does);
- the NLU's emergency probability: the project's NLU pipeline up to its intent
  classifier, trained on 4/5 of ``data/nlu`` and parsing the other fifth
  (5 folds, stratified by intent).

The threshold: of the ``agreement_intent`` values at which the whole NLU side
(patterns aside) fires on at most ``--budget`` more of the assistant's own
non-emergency examples than without the rule, the one that escalates the most
emergency examples, and of those the highest (recall stops growing below some
value while false alarms keep growing). The held-out paraphrases are never
read here.

Usage:
    python -m benchmarks.experiments.emergency_agreement [--shared ../shared/datasets]
        [--out results/experiments/emergency_agreement.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import yaml

from benchmarks.routing import eval_config

ROOT = Path(__file__).resolve().parents[2]
FOLDS = 5
SEED = 0
GRID = [round(x, 2) for x in np.arange(0.05, 0.61, 0.05)]


def nlu_examples() -> Tuple[List[Tuple[str, str]], object]:
    """(text, intent) of every example in data/nlu, and the training data (lookups, regexes)."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(ROOT / "data" / "nlu"))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples], data


def nlu_oof(extra: Sequence[str] = (), progress: bool = True) -> Dict[str, float]:
    """Out-of-fold probability of the emergency intent for every data/nlu example, and
    for the ``extra`` texts from a model trained on all of data/nlu."""
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from tqdm import tqdm

    examples, data = nlu_examples()
    by_intent: Dict[str, List[int]] = {}
    for i, (_, intent) in enumerate(examples):
        by_intent.setdefault(intent, []).append(i)
    fold_of = [0] * len(examples)
    rng = random.Random(SEED)
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        for k, i in enumerate(items):
            fold_of[i] = k % FOLDS
    config = eval_config(epochs=0)
    messages = data.intent_examples
    out: Dict[str, float] = {}
    for k in tqdm(range(FOLDS + int(bool(extra))), desc="NLU folds", disable=not progress):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "nlu").mkdir()
            fold = TrainingData([m for m, f in zip(messages, fold_of, strict=False) if f != k], data.entity_synonyms,
                                data.regex_features, data.lookup_tables)
            (folder / "nlu" / "nlu.yml").write_text(fold.nlu_as_yaml(), "utf-8")
            (folder / "config.yml").write_text(yaml.safe_dump(config), "utf-8")
            model = train_nlu(str(folder / "config.yml"), str(folder / "nlu"), str(folder / "models"),
                              fixed_model_name=f"fold{k}")
            agent = Agent.load(model)

            async def parse(texts: Sequence[str], agent: Any = agent) -> List[float]:
                probabilities = []
                for text in texts:
                    parsed = await agent.parse_message(text)
                    probabilities.append(max((r["confidence"] for r in parsed.get("intent_ranking") or []
                                              if r["name"] == "emergency"), default=0.0))
                return probabilities

            texts = [t for (t, _), f in zip(examples, fold_of, strict=False) if f == k] if k < FOLDS else list(extra)
            out.update(zip(texts, asyncio.run(parse(texts)), strict=False))
            shutil.rmtree(folder / "models", ignore_errors=True)
    return out


def head_oof(shared: Path, progress: bool = True) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Out-of-fold emergency-head scores of the project's rows, and the trained thresholds."""
    from rasa_safe_hybrid.guardrails.learned.heads import EMERGENCY, load_heads

    from finetune import guards as train

    rows = train.safety_rows(shared) + train.project_rows()
    features = train.embed([r.text for r in rows], train.DEFAULT_ENCODER, progress)
    scores = train.project_cv(features, rows, EMERGENCY)
    by_text = {r.text: float(s) for r, s in zip(rows, scores, strict=False) if not np.isnan(s)}
    look_alikes = {r.text: by_text[r.text] for r in rows if r.source == "project:benign_health"}
    thresholds = load_heads().thresholds
    return {"nlu": by_text, "benign_health": look_alikes}, thresholds


def run(shared: Path, budget: float, progress: bool = True) -> Dict[str, object]:
    """The rule's trade-off over ``GRID`` and the chosen threshold."""
    from rasa_safe_hybrid.guardrails.learned.heads import EMERGENCY

    heads, thresholds = head_oof(shared, progress)
    intents = nlu_oof(sorted(heads["benign_health"]), progress)
    examples, _ = nlu_examples()
    lenient, strict = thresholds[EMERGENCY], thresholds["emergency_strict"]
    intent_threshold = float(next(c for c in yaml.safe_load((ROOT / "config.yml").read_text("utf-8"))["pipeline"]
                                  if c["name"].endswith("EmergencyDetector"))["intent_threshold"])
    rows = [(heads["nlu"].get(text), intents[text], intent == "emergency") for text, intent in examples
            if text in heads["nlu"]]
    head = np.array([r[0] for r in rows])
    intent = np.array([r[1] for r in rows])
    positive = np.array([r[2] for r in rows])
    base = (head >= strict) | (intent >= intent_threshold)

    def rates(fired: np.ndarray) -> Dict[str, float]:
        return {"emergency_examples_escalated": round(float(fired[positive].mean()), 4),
                "other_examples_escalated": round(float(fired[~positive].mean()), 4)}

    look_head = np.array(list(heads["benign_health"].values()))
    look_intent = np.array([intents[t] for t in heads["benign_health"]])
    look_base = (look_head >= strict) | (look_intent >= intent_threshold)
    table = {"without the rule": {**rates(base), "benign_health_escalated": round(float(look_base.mean()), 4)}}
    best = -1.0
    chosen = None
    for a in sorted(GRID, reverse=True):
        fired = base | ((head >= lenient) & (intent >= a))
        look = look_base | ((look_head >= lenient) & (look_intent >= a))
        table[str(a)] = {**rates(fired), "benign_health_escalated": round(float(look.mean()), 4)}
        within = table[str(a)]["other_examples_escalated"] - table["without the rule"]["other_examples_escalated"]
        if within <= budget and table[str(a)]["emergency_examples_escalated"] > best:
            best, chosen = table[str(a)]["emergency_examples_escalated"], a
    return {
        "examples": {"emergency": int(positive.sum()), "other": int((~positive).sum())},
        "head_thresholds": {"lenient": lenient, "strict": strict}, "intent_threshold": intent_threshold,
        "budget_added_false_alarms": budget, "chosen_agreement_intent": chosen, "by_agreement_intent": table,
        "benign_health_look_alikes": len(look_head),
        "command": "python -m benchmarks.experiments.emergency_agreement",
    }


def main(argv: Sequence[str] = ()) -> int:
    """Runs the measurement and writes the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "experiments" / "emergency_agreement.json")
    parser.add_argument("--budget", type=float, default=0.01,
                        help="most the rule may add to false alarms on the assistant's own examples")
    args = parser.parse_args(list(argv) or None)
    if not (args.shared / "safety_train").exists():
        parser.error(f"no safety_train in {args.shared}: pass --shared")
    report = run(args.shared, args.budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "by_agreement_intent"}, indent=2))
    for a, value in report["by_agreement_intent"].items():
        print(f"{a:>18}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
