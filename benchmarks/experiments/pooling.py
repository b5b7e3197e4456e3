"""Mean and max pooling of the encoder's last hidden states as the heads' features, through
the shipped leave-source-group-out rule (benchmarks/experiments/README.md: not shipped).

Usage: python -m benchmarks.experiments.pooling [--shared ../shared/datasets]
Prints the pooled held-out summary for mean pooling (the shipped features) and for mean and
max pooling side by side (768 features). Needs the ONNX runtime of the encoder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from rasa_safe_hybrid.embeddings import ONNX, get_encoder
from tqdm import tqdm

from finetune import guards as training


def max_pooled(texts: Sequence[str], batch: int = 64) -> np.ndarray:
    """The unit-length, attention-masked maximum over tokens of the last hidden states."""
    encoder = get_encoder()
    if encoder.runtime != ONNX:
        raise SystemExit(f"this experiment reads the ONNX session's hidden states; the encoder runs on "
                         f"{encoder.runtime} (EMBEDDINGS_RUNTIME=onnx, make setup)")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch), desc="max pooling", unit="batch"):
        idx = order[start : start + batch]
        hidden, mask = encoder.hidden_states([encoder._ids(texts[i]) for i in idx])
        pooled = np.where(mask[..., None] == 1, hidden, -np.inf).max(axis=1)
        out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=training.DEFAULT_SHARED)
    args = parser.parse_args(argv)
    rows = training.safety_rows(args.shared) + training.project_rows()
    texts = [r.text for r in rows]
    mean = training.embed(texts, str(get_encoder().model_dir))
    for name, features in (("mean (shipped)", mean), ("mean + max", np.hstack([mean, max_pooled(texts)]))):
        evaluation = training.leave_group_out(features, rows, training.fit)
        print(name, json.dumps(training.summarise(evaluation["groups"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
