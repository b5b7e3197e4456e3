"""Intent routing on public data: the project's own NLU pipeline trained on
CLINC150 and Banking77, compared with the published figures.

The pipeline is the classifier part of ``config.yml`` (tokenizer, featurizers,
the intent classifier), without the project-specific components after it
(regex entities, fallback, emergency detector, rails), so that the confidence
of the classifier itself can be swept as an out-of-scope threshold. When the
classifier is DIET (60 epochs on 15,000 examples take about half an hour on
two cores), the evaluation uses fewer epochs (``--epochs``, default 20); the
training set can be subsampled (``--per-intent``); the report states both.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIET = "DIETClassifier"
# The pipeline is cut after the first of these (the intent classifier).
CLASSIFIERS = (DIET, "rasa_safe_hybrid.nlu.intent_classifier.LinearIntentClassifier", "SklearnIntentClassifier")
OOS = "oos"
THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 20)]
PUBLISHED = {
    "clinc150": {"in_scope_accuracy": 0.965, "oos_auroc": 0.942, "overall_accuracy": "0.776-0.795",
                 "source": "BERT-base, google/uncertainty-baselines"},
    "banking77": {"accuracy": 0.93, "source": "Casanueva et al., 2020"},
}

Example = Tuple[str, str]


def load_clinc(shared: Path) -> Dict[str, List[Example]]:
    """CLINC150 train (with its 100 oos examples) and test (with 1,000 oos)."""
    raw = json.loads((shared / "clinc150" / "data_full.json").read_text("utf-8"))
    return {
        "train": [tuple(x) for x in raw["train"] + raw["oos_train"]],
        "test": [tuple(x) for x in raw["test"] + raw["oos_test"]],
    }


def load_banking(shared: Path) -> Dict[str, List[Example]]:
    """Banking77 train and test."""
    out = {}
    for split in ("train", "test"):
        with open(shared / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as f:
            out[split] = [(row["text"], row["category"]) for row in csv.DictReader(f)]
    return out


def subsample(examples: Sequence[Example], per_intent: Optional[int], seed: int = 13) -> List[Example]:
    """At most ``per_intent`` examples per intent (all when None), reproducibly."""
    if not per_intent:
        return list(examples)
    by_intent: Dict[str, List[Example]] = {}
    for example in examples:
        by_intent.setdefault(example[1], []).append(example)
    rng = random.Random(seed)
    out: List[Example] = []
    for intent in sorted(by_intent):
        items = by_intent[intent]
        out += rng.sample(items, min(per_intent, len(items)))
    return out


def eval_config(epochs: int) -> Dict[str, Any]:
    """The classifier part of the project's pipeline, with ``epochs`` when the classifier is DIET."""
    config = yaml.safe_load((ROOT / "config.yml").read_text("utf-8"))
    pipeline = []
    for component in config["pipeline"]:
        component = dict(component)
        if component["name"] in CLASSIFIERS:
            if component["name"] == DIET:
                component["epochs"] = epochs
            pipeline.append(component)
            break
        pipeline.append(component)
    return {"recipe": "default.v1", "language": "en", "assistant_id": "routing-eval",
            "pipeline": pipeline, "policies": []}


def _write_nlu(examples: Sequence[Example], path: Path) -> None:
    by_intent: Dict[str, List[str]] = {}
    for text, intent in examples:
        by_intent.setdefault(intent, []).append(text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in sorted(by_intent.items()):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines += [f"    - {' '.join(t.split())}" for t in texts if t.strip()]
    path.write_text("\n".join(lines) + "\n", "utf-8")


def train_and_predict(train: Sequence[Example], test: Sequence[Example], epochs: int,
                      progress: bool = True) -> Tuple[List[Tuple[str, float]], float]:
    """Trains the pipeline on ``train``; returns (top intent, confidence) per test text
    and the training time in seconds."""
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        _write_nlu(train, tmp_path / "nlu.yml")
        (tmp_path / "config.yml").write_text(yaml.safe_dump(eval_config(epochs)), "utf-8")
        start = time.perf_counter()
        model = train_nlu(str(tmp_path / "config.yml"), str(tmp_path / "nlu.yml"),
                          str(tmp_path / "models"), fixed_model_name="routing")
        train_s = time.perf_counter() - start
        agent = Agent.load(model)

        async def parse_all() -> List[Tuple[str, float]]:
            out = []
            for text, _ in tqdm(test, desc="parsing test set", disable=not progress):
                parsed = await agent.parse_message(text)
                out.append((parsed["intent"]["name"], float(parsed["intent"]["confidence"])))
            return out

        return asyncio.run(parse_all()), train_s


def clinc_metrics(test: Sequence[Example], predictions: Sequence[Tuple[str, float]]) -> Dict[str, Any]:
    """In-scope accuracy, OOS recall/precision, overall accuracy, AUROC and a threshold sweep.

    A test example is predicted out of scope when the top intent is ``oos`` or its
    confidence is below the threshold.
    """
    from sklearn.metrics import roc_auc_score

    gold = [g for _, g in test]
    is_oos = [g == OOS for g in gold]
    sweep = []
    for threshold in THRESHOLDS:
        pred = [OOS if (p == OOS or c < threshold) else p for p, c in predictions]
        in_scope = [p == g for p, g, o in zip(pred, gold, is_oos, strict=False) if not o]
        oos_pred = [p == OOS for p in pred]
        tp = sum(1 for p, o in zip(oos_pred, is_oos, strict=False) if p and o)
        sweep.append({
            "threshold": threshold,
            "in_scope_accuracy": round(sum(in_scope) / len(in_scope), 4),
            "oos_recall": round(tp / max(1, sum(is_oos)), 4),
            "oos_precision": round(tp / max(1, sum(oos_pred)), 4),
            "overall_accuracy": round(sum(p == g for p, g in zip(pred, gold, strict=False)) / len(gold), 4),
        })
    # OOS score: 1 - confidence of an in-scope top intent, 1 when oos is predicted.
    scores = [1.0 if p == OOS else 1.0 - c for p, c in predictions]
    best = max(sweep, key=lambda s: s["overall_accuracy"])
    return {"at_threshold_0": sweep[0], "best_threshold": best,
            "oos_auroc": round(roc_auc_score(is_oos, scores), 4), "sweep": sweep}


def accuracy(test: Sequence[Example], predictions: Sequence[Tuple[str, float]]) -> float:
    """Share of exact top-intent matches."""
    return round(sum(p == g for (p, _), (_, g) in zip(predictions, test, strict=False)) / len(test), 4)


def run(shared: Path, epochs: int = 20, per_intent: Optional[int] = None,
        test_limit: Optional[int] = None, progress: bool = True) -> Dict[str, Any]:
    """Both data sets; returns the metrics and the settings used."""
    classifier = eval_config(epochs)["pipeline"][-1]["name"]
    report: Dict[str, Any] = {"settings": {"classifier": classifier, "epochs": epochs, "per_intent": per_intent,
                                           "test_limit": test_limit}}
    for name, loader in (("clinc150", load_clinc), ("banking77", load_banking)):
        data = loader(shared)
        train = subsample(data["train"], per_intent)
        test = data["test"]
        if test_limit:
            test = random.Random(7).sample(test, min(test_limit, len(test)))
        predictions, train_s = train_and_predict(train, test, epochs, progress)
        result: Dict[str, Any] = {"train_examples": len(train), "test_examples": len(test),
                                  "train_s": round(train_s, 1), "published": PUBLISHED[name]}
        if name == "clinc150":
            result.update(clinc_metrics(test, predictions))
        else:
            result["accuracy"] = accuracy(test, predictions)
        report[name] = result
    return report
