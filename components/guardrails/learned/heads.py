"""Classifier heads on sentence embeddings: the trained part of the learned rails.

The artifact is two small files beside this module (``heads.npz`` weights,
``heads.json`` manifest: thresholds, the encoder and its sha256, training data
and measurements), written by ``make train-guards``. Most heads are a dot
product and a logistic function; a head listed in ``mlp`` (the emergency head)
has one hidden layer of ReLUs before it, which tells a person in danger from the
words of danger better than a linear head does
(``python -m benchmarks.experiments.severity_heads``). All of it is numpy; the
encoder does the heavy work once per text.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np

ARTIFACT_DIR = Path(__file__).resolve().parent
WEIGHTS_FILE = "heads.npz"
MANIFEST_FILE = "heads.json"

# Heads and what each detects.
HARMFUL = "harmful"  # a request for harmful help: instructions, plans, content to cause harm
HATEFUL = "hateful"  # hateful, harassing, sexual or violent text itself (what moderation labels)
ATTACK = "attack"  # jailbreak framing, prompt injection or prompt extraction
MEDICAL_ADVICE = "medical_advice"  # a personal diagnosis, dose or treatment choice
EMERGENCY = "emergency"  # a medical emergency or a self-harm crisis stated by the user
SELF_HARM = "self_harm"  # of emergencies: a self-harm crisis (picks the crisis response)
HEADS = (HARMFUL, ATTACK, MEDICAL_ADVICE, EMERGENCY, SELF_HARM, HATEFUL)

# Zero-shot categories of a harmful request: the nearest description wins.
HARM_CATEGORIES: Dict[str, str] = {
    "violence_weapons": "violence, killing, hurting people, weapons, guns, bombs, explosives, terrorism",
    "self_harm": "suicide, self-harm, hurting myself, eating disorders",
    "sexual_minors": "sexual content, pornography, sexual content involving minors, sexual exploitation",
    "hate_harassment": "hate speech, slurs, racism, harassment, bullying, insulting a group of people",
    "crime_fraud": "crime, theft, fraud, scams, money laundering, smuggling, forgery, evading police",
    "cyber": "hacking, malware, viruses, stealing passwords, breaking into computer systems",
    "chemical_biological": "drugs, poisons, chemical weapons, biological weapons, synthesising dangerous substances",
    "privacy": "stalking, doxxing, finding someone's private address, spying on people, personal data",
    "misinformation": "misinformation, fake news, propaganda, conspiracy theories, disinformation campaigns",
    "copyright": "copyright infringement, pirating software, movies or books, reproducing copyrighted text",
}
# The categories hateful text (a statement, not a request) is labelled with.
HATEFUL_CATEGORIES = ("hate_harassment", "sexual_minors", "violence_weapons", "self_harm")


@dataclass(frozen=True)
class LinearHeads:
    """Logistic-regression heads over the same embedding.

    Attributes:
        weights: ``(n_heads, dim)``.
        bias: ``(n_heads,)``.
        names: the head names, in row order.
        thresholds: the score at or above which each head fires (chosen by training).
        manifest: the rest of ``heads.json`` (encoder, data, measurements).
    """

    weights: np.ndarray
    bias: np.ndarray
    names: tuple
    thresholds: Dict[str, float]
    manifest: Dict[str, Any]
    mlp: Dict[str, tuple] = field(default_factory=dict)  # head -> (w1, b1, w2, b2): replaces its linear row

    def scores(self, embeddings: np.ndarray) -> Dict[str, np.ndarray]:
        """Probability per head for each row of ``embeddings``."""
        logits = embeddings @ self.weights.T + self.bias
        for head, (w1, b1, w2, b2) in self.mlp.items():
            logits[:, self.names.index(head)] = np.maximum(embeddings @ w1 + b1, 0.0) @ w2 + b2
        probabilities = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        return {name: probabilities[:, i] for i, name in enumerate(self.names)}

    def save(self, folder: Path = ARTIFACT_DIR) -> None:
        """Writes ``heads.npz`` and ``heads.json``."""
        layers = {
            f"mlp_{head}_{part}": array.astype(np.float32)
            for head, arrays in self.mlp.items()
            for part, array in zip(("w1", "b1", "w2", "b2"), arrays, strict=False)
        }
        np.savez_compressed(folder / WEIGHTS_FILE, weights=self.weights.astype(np.float32),
                            bias=self.bias.astype(np.float32), names=np.array(self.names), **layers)
        manifest = {**self.manifest, "heads": list(self.names), "thresholds": self.thresholds}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")


@functools.lru_cache(maxsize=4)
def load_heads(folder: str = str(ARTIFACT_DIR)) -> LinearHeads:
    """The heads in ``folder`` (loaded once per process).

    Raises:
        FileNotFoundError: with the command that makes them.
    """
    path = Path(folder)
    if not (path / WEIGHTS_FILE).exists() or not (path / MANIFEST_FILE).exists():
        raise FileNotFoundError(
            f"no trained rail heads in {path} ({WEIGHTS_FILE}, {MANIFEST_FILE}): run `make train-guards`, "
            f"or point the rails' `heads` setting at a folder that has them."
        )
    data = np.load(path / WEIGHTS_FILE)
    manifest = json.loads((path / MANIFEST_FILE).read_text("utf-8"))
    names = tuple(str(n) for n in data["names"])
    mlp = {head: tuple(data[f"mlp_{head}_{part}"] for part in ("w1", "b1", "w2", "b2"))
           for head in names if f"mlp_{head}_w1" in data.files}
    return LinearHeads(data["weights"], data["bias"], names, dict(manifest["thresholds"]), manifest, mlp)


def category_matrix(encoder: Any, names: Sequence[str] = tuple(HARM_CATEGORIES)) -> tuple:
    """(names, unit vectors) of the harm categories' descriptions, for zero-shot labelling."""
    names = list(names)
    return names, encoder.encode([HARM_CATEGORIES[n] for n in names])


def nearest(names: Sequence[str], matrix: np.ndarray, vector: np.ndarray) -> str:
    """The name whose vector is most similar to ``vector``."""
    return names[int(np.argmax(matrix @ vector))]
