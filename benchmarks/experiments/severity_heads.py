"""Which head tells an emergency from its words: compared on the development sets only.

The same training rows as ``make train-guards`` (safety_train + the project's files, one
embedding each from the shared encoder, cached), three heads for the emergency target:
the shipped logistic regression, a one-hidden-layer MLP and k nearest neighbours. Each is
scored on the development sets of ``benchmarks.severity`` (emergency batches 1-4 against
mild complaints, safe prompts and attack look-alikes), each text as the highest score over
the message and its clauses (``rasa_safe_hybrid.emergency.clauses``). Printed: AUROC, and the
share of emergencies found where 2, 4 and 8 % of the benign texts fire.

Usage: python -m benchmarks.experiments.severity_heads [--shared ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from rasa_safe_hybrid.emergency import clauses

from benchmarks.severity import DEV_BENIGN, DEV_EMERGENCIES, emergencies
from benchmarks.severity import rows as file_rows
from finetune import guards as guards

SEED = 0


def _max_over_clauses(score: Callable[[np.ndarray], np.ndarray], texts: List[str], encoder) -> np.ndarray:
    parts, owner = [], []
    for i, text in enumerate(texts):
        for part in [text, *clauses(text)]:
            parts.append(part)
            owner.append(i)
    scores = score(encoder.encode(parts, batch_size=64))
    best = np.full(len(texts), -np.inf)
    for i, s in zip(owner, scores, strict=False):
        best[i] = max(best[i], s)
    return best


def report(pos: np.ndarray, neg: np.ndarray) -> Dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {"auroc": round(float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])), 4)}
    for fpr in (0.02, 0.04, 0.08):
        threshold = np.sort(neg)[::-1][int(fpr * len(neg))]
        out[f"recall_at_{int(fpr * 100)}pct_benign"] = round(float((pos > threshold).mean()), 4)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, get_encoder
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=guards.DEFAULT_SHARED)
    args = parser.parse_args(argv)
    data = guards.safety_rows(args.shared) + guards.project_rows()
    features = guards.embed([r.text for r in data], DEFAULT_MODEL, progress=False)
    usable = guards._usable(data, guards.EMERGENCY)
    x, y = features[usable], guards._targets(data, guards.EMERGENCY)[usable]
    weights = guards._weights(data)[usable]
    # the MLP and kNN take no sample weights: the project's rows are repeated instead
    repeat = np.repeat(np.arange(len(x)), weights.astype(int))
    encoder = get_encoder(DEFAULT_MODEL)
    positives = [t for _, _, t in emergencies(DEV_EMERGENCIES)]
    benign = [row[-1] for file in DEV_BENIGN.values() for row in file_rows(file)]
    models = {
        "logistic_regression": lambda: LogisticRegression(C=guards.C, class_weight="balanced", max_iter=2000,
                                                          random_state=SEED).fit(x, y, sample_weight=weights),
        "mlp_256": lambda: MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=60, random_state=SEED,
                                         early_stopping=True).fit(x[repeat], y[repeat]),
        "mlp_512": lambda: MLPClassifier(hidden_layer_sizes=(512,), alpha=1e-3, max_iter=60, random_state=SEED,
                                         early_stopping=True).fit(x[repeat], y[repeat]),
        "mlp_256_alpha_1e-2": lambda: MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-2, max_iter=60,
                                                    random_state=SEED, early_stopping=True).fit(x[repeat], y[repeat]),
        "knn_15": lambda: KNeighborsClassifier(n_neighbors=15, weights="distance", metric="cosine").fit(
            x[repeat], y[repeat]),
    }
    results = {}
    for name, build in models.items():
        model = build()
        score = lambda v, m=model: m.predict_proba(v)[:, 1]  # noqa: E731
        results[name] = {
            "whole_message": report(score(encoder.encode(positives)), score(encoder.encode(benign))),
            "max_over_clauses": report(_max_over_clauses(score, positives, encoder),
                                       _max_over_clauses(score, benign, encoder)),
        }
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"dev_emergencies": len(positives), "dev_benign": len(benign), "heads": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
