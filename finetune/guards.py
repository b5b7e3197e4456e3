"""Trains the learned rails' heads and measures them on sources they never saw.

``make train-guards`` = ``python -m finetune.guards``:

1. data: ``safety_train`` (``../shared/datasets``; 21 public sources in version 2, see its
   README for licences) plus the project's own examples in ``data/*.tsv``
   (emergencies, benign health look-alikes, medical-advice requests, prompt
   extraction);
2. every text is embedded once by the shared sentence encoder (cached in
   ``.cache/guards``);
3. **leave-source-group-out**: for each group of sources, the heads are
   trained on the other groups, the threshold is chosen by the rule on
   out-of-fold scores of those other groups only, and recall and false
   refusals are measured on the held-out group;
4. the shipped heads are trained on everything, each threshold picked by the
   same rule on row-level out-of-fold scores of all the data. Heads and
   manifest (with the measurements) are written beside this module:
   ``heads.npz`` (about 8 KB), ``heads.json``.

Fixed seed, progress bars, and ``--compare`` adds word+character TF-IDF and
the two combined as baselines (the comparison the README reports).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasa_safe_hybrid.embeddings import DEFAULT_MODEL as DEFAULT_ENCODER
from rasa_safe_hybrid.guardrails.learned.heads import (
    ARTIFACT_DIR,
    ATTACK,
    EMERGENCY,
    HARMFUL,
    HATEFUL,
    HEADS,
    MEDICAL_ADVICE,
    SELF_HARM,
    LinearHeads,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "finetune" / "data" / "guards"  # the project's own rows (written for this project)
DEFAULT_SHARED = ROOT.parent / "shared" / "datasets"
CACHE_DIR = ROOT / ".cache" / "guards"
SEED = 0
# Draws of the project's folds for the emergency thresholds (the median is kept): one
# draw moved the strict threshold by 0.017 and the lenient one by 0.05 between seeds.
CV_DRAWS = 5
C = 0.5  # inverse regularisation strength of the logistic regressions
# The project's own rows (its NLU examples, the written look-alikes) are few next to
# 18,000 public rows, and they are the traffic this assistant gets: they weigh more.
PROJECT_WEIGHT = 10.0

# Sources that are held out together (pairs the safety_train README recommends).
GROUPS: Dict[str, Tuple[str, ...]] = {
    "coconot": ("coconot_eval", "coconot_contrast", "coconot_pref"),
    "cyberseceval": ("cyberseceval_pi", "cyberseceval_frr"),
    "hatecheck": ("hatecheck",),
    "harmfulqa": ("harmfulqa",),
    "catqa": ("catqa",),
    "openai_moderation": ("openai_moderation",),
    "jailbreak_prompts": ("jailbreak_llms_prompts", "gptfuzz_templates"),
    "jailbreak_forbidden": ("jailbreak_llms_forbidden",),
    "intent_sets": ("clinc150", "banking77"),
    # safety_train version 2 (the README's pairings: personas with and without a jailbreak,
    # injections with trigger-word hard negatives, implicit against explicit hate)
    "ailuminate": ("ailuminate_demo",),
    "aart": ("aart",),
    "xsafety": ("xsafety_en",),
    "toxigen": ("toxigen_seeds",),
    "personas": ("awesome_chatgpt_prompts",),
    "notinject": ("notinject",),
    "bipia": ("bipia_email",),
}
# The groups of safety_train version 1: the recall figures of earlier turns are pooled over
# these, so "no lower than before" is compared on the same held-out prompts.
V1_GROUPS = ("coconot", "cyberseceval", "hatecheck", "harmfulqa", "catqa", "openai_moderation",
             "jailbreak_prompts", "jailbreak_forbidden", "intent_sets")
V2_GROUPS = ("ailuminate", "aart", "xsafety", "toxigen", "personas", "notinject", "bipia")
PROJECT = "project"
NLU_SKIP = {"out_of_scope"}  # examples of topics the assistant declines: not used
# Heads measured by holding out source groups; the others have positives only in
# the project's own data and are measured on tests/data/emergency_paraphrases*.tsv.
GROUP_HEADS = (HARMFUL, HATEFUL, ATTACK, MEDICAL_ADVICE)
# Threshold rule: the lowest score at which at most this share of benign
# look-alikes (hard negatives) fires, estimated on scores of unseen sources.
TARGET_FPR = {HARMFUL: 0.04, HATEFUL: 0.04, ATTACK: 0.04, MEDICAL_ADVICE: 0.04}
# "harmful" in safety_train covers two kinds of text: requests for harmful help
# (questions and instructions) and harmful text itself (hate statements and flagged
# comments from moderation sources). One head for both learned mostly the second
# (HateCheck has 2,560 of the 6,171 positives) and needed a threshold that let at most
# 4 % of counter-speech and unflagged comments through: it found 21 % of held-out
# harmful requests. Two heads, each with the look-alikes of its own kind of text:
# harmful requests (41 % held out; catqa 82 %, harmfulqa 26 %), hateful text.
STATEMENT_SOURCES = frozenset({"hatecheck", "openai_moderation", "toxigen_seeds"})
# Emergencies: the classifier is one of three signals (patterns, the NLU's
# emergency intent, the classifier), scored out of fold on the project's examples.
# The lenient threshold (before generation, on the output side, and on turns the
# NLU routes to a health intent) is chosen for recall: the highest that finds 90 %
# of the project's emergency examples. A false-alarm budget instead (5 % of the
# health look-alikes and own NLU examples, until 2026-11-30) moved it with every
# hard negative added: 34 mild complaints raised it from 0.76 to 0.88 and its
# recall fell to 85 %. The strict threshold, in the NLU, where it overrides every
# intent, keeps a budget: at most 2 % of the assistant's own NLU examples.
LENIENT_RECALL = 0.90
NLU_FALSE_ALARMS = 0.02
EMERGENCY_STRICT = "emergency_strict"
# The project's look-alikes of an emergency: health questions, and words of danger with nobody in danger.
LOOK_ALIKE_SOURCES = frozenset({"project:benign_health", "project:danger_words_benign"})
SELF_HARM_THRESHOLD = 0.5  # of emergencies, which response: crisis support above it


@dataclass
class Row:
    """One training text and its target per head (None: not used for that head)."""

    text: str
    source: str
    group: str
    targets: Dict[str, Optional[int]]
    hard_negative: bool = False
    label: str = ""


def _self_harm_category(category: Optional[str]) -> bool:
    text = (category or "").lower()
    return "sh" in text.split(",") or "self" in text or "suicid" in text


def safety_rows(shared: Path) -> List[Row]:
    """safety_train rows with their targets per head."""
    group_of = {source: group for group, sources in GROUPS.items() for source in sources}
    rows = []
    for line in (shared / "safety_train" / "safety_train.jsonl").read_text("utf-8").split("\n"):
        if not line.strip():
            continue
        item = json.loads(line)
        label = item["label"]
        attack = label in ("jailbreak", "injection")
        harmful = label == "harmful"
        statement = item["source"] in STATEMENT_SOURCES
        targets: Dict[str, Optional[int]] = {
            HARMFUL: None if attack or (harmful and statement) else int(harmful),
            HATEFUL: None if attack or (harmful and not statement) else int(harmful),
            ATTACK: 1 if attack else 0,
            MEDICAL_ADVICE: 1 if label == "medical_advice" else (None if attack else 0),
            # self-harm statements may be crises: neither positive nor negative
            EMERGENCY: None if label == "harmful" and _self_harm_category(item.get("category")) else 0,
            SELF_HARM: None,
        }
        rows.append(Row(item["text"], item["source"], group_of[item["source"]], targets,
                        bool(item.get("hard_negative")), label))
    return rows


def read_tsv(name: str) -> List[List[str]]:
    """Rows of a project data file (``#`` comments, tab-separated columns)."""
    lines = (DATA_DIR / name).read_text("utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


def nlu_rows(nlu_dir: Path = ROOT / "data" / "nlu") -> List[Row]:
    """The assistant's own NLU examples: its emergency intent as positives of the
    emergency head, every other intent (symptom and medicine questions included) as
    negatives. The guardrail intents and out-of-scope examples are left out."""
    import re

    import yaml

    rows = []
    for path in sorted(nlu_dir.glob("*.yml")):
        for block in (yaml.safe_load(path.read_text("utf-8")) or {}).get("nlu") or []:
            intent = block.get("intent")
            if not intent or intent.startswith("guardrail_") or intent in NLU_SKIP:
                continue
            for line in str(block.get("examples") or "").splitlines():
                text = re.sub(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}", lambda m: m.group(1) or m.group(2),
                              line.strip()[2:]) if line.strip().startswith("- ") else ""
                if not text:
                    continue
                emergency = int(intent == "emergency")
                # The assistant's own traffic: greetings, orders, courses, symptom and
                # medicine questions. They count as look-alikes in the threshold rule, so a
                # head may refuse at most its target share of what the assistant is for.
                rows.append(Row(text, f"project:nlu:{intent}", PROJECT, {
                    HARMFUL: None if emergency else 0, HATEFUL: None if emergency else 0, ATTACK: 0,
                    MEDICAL_ADVICE: None if emergency else 0, EMERGENCY: emergency, SELF_HARM: None},
                    hard_negative=not emergency))
    return rows


def open_qa_rows(path: Path = ROOT / "knowledge" / "open_qa.yml") -> List[Row]:
    """The assistant's curated open questions: benign traffic of the LLM turn (negatives)."""
    import yaml

    if not path.exists():
        return []
    items = yaml.safe_load(path.read_text("utf-8")) or {}
    entries = items.get("questions") or items.get("qa") or [] if isinstance(items, dict) else items
    return [Row(str(e["question"]), "project:open_qa", PROJECT,
                {HARMFUL: 0, HATEFUL: 0, ATTACK: 0, MEDICAL_ADVICE: 0, EMERGENCY: 0, SELF_HARM: None},
                hard_negative=True)
            for e in entries if isinstance(e, dict) and e.get("question")]


def reviewed_rows(path: Optional[Path] = None) -> List[Row]:
    """Reviewers' verdicts on the rails (``make review-export``): a miss is a positive of the
    rail's head, a false alarm a negative (a look-alike). The project's own rows: always
    trained on, in no held-out split."""
    path = path or DATA_DIR / "reviewed.tsv"
    if not path.exists():
        return []
    rows = []
    for head, target, reviewer, text in (line.split("\t", 3) for line in path.read_text("utf-8").splitlines()
                                         if line.strip() and not line.startswith("#")):
        if head not in HEADS:
            continue
        targets: Dict[str, Optional[int]] = {h: None for h in HEADS}
        targets[head] = int(target)
        rows.append(Row(text, f"project:reviewed:{reviewer}", PROJECT, targets, hard_negative=target == "0"))
    return rows


def project_rows() -> List[Row]:
    """The project's own examples (always trained on; measured separately)."""
    rows = nlu_rows() + open_qa_rows() + reviewed_rows()
    for name in ("emergency.tsv", "emergency_contexts.tsv"):
        for kind, text in read_tsv(name):
            rows.append(Row(text, f"project:{name[:-4]}", PROJECT, {
                HARMFUL: None, HATEFUL: None, ATTACK: 0, MEDICAL_ADVICE: None, EMERGENCY: 1,
                SELF_HARM: int(kind == "self_harm")}))
    # Words of danger with nobody in danger (pests, games, sport, cooking, computing, figures
    # of speech, thanks): look-alikes of every head.
    for _category, text in read_tsv("danger_words_benign.tsv"):
        rows.append(Row(text, "project:danger_words_benign", PROJECT,
                        {HARMFUL: 0, HATEFUL: 0, ATTACK: 0, MEDICAL_ADVICE: 0, EMERGENCY: 0, SELF_HARM: None},
                        hard_negative=True))
    negatives = {"benign_health.tsv": {MEDICAL_ADVICE: 0}, "general_health.tsv": {MEDICAL_ADVICE: 0},
                 "benign_tech.tsv": {}, "benign_requests.tsv": {}, "benign_instructions.tsv": {},
                 "medical_advice.tsv": {MEDICAL_ADVICE: 1},
                 "attacks.tsv": {ATTACK: 1, MEDICAL_ADVICE: None},
                 # some ask for self-harm methods or to drop the rules: neither emergency nor attack examples
                 "harmful_requests.tsv": {HARMFUL: 1, HATEFUL: None, ATTACK: None, MEDICAL_ADVICE: None,
                                          EMERGENCY: None}}
    for name, special in negatives.items():
        for (text,) in read_tsv(name):
            targets = {HARMFUL: 0, HATEFUL: 0, ATTACK: 0, MEDICAL_ADVICE: 0, EMERGENCY: 0, SELF_HARM: None,
                       **special}
            look_alike = name.startswith(("benign_", "general_"))
            rows.append(Row(text, f"project:{name[:-4]}", PROJECT, targets, hard_negative=look_alike))
    return rows


def embed(texts: Sequence[str], encoder_model: str, progress: bool = True) -> np.ndarray:
    """Embeddings of ``texts``, cached on disk by content and encoder."""
    from rasa_safe_hybrid.embeddings import get_encoder
    from tqdm import tqdm

    encoder = get_encoder(encoder_model)
    digest = hashlib.sha256("\n\x00".join(texts).encode()).hexdigest()[:16]
    weights = hashlib.sha256(str(encoder.model_dir).encode()).hexdigest()[:8]
    cache = CACHE_DIR / f"embeddings-{weights}-{encoder.max_tokens}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    batch = 64
    for start in tqdm(range(0, len(order), batch), desc="embedding", unit="batch", disable=not progress):
        idx = order[start : start + batch]
        out[idx] = encoder.encode([texts[i] for i in idx], batch_size=batch)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def fit(features: np.ndarray, targets: np.ndarray, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
    """A balanced logistic regression; returns (weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=SEED)
    model.fit(features, targets, sample_weight=weights)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def predict(features: np.ndarray, weights: Any, bias: Any = None) -> np.ndarray:
    """Scores of a fitted head: ``(weights, bias)`` of ``fit`` or the layers of ``fit_mlp``."""
    if isinstance(weights, tuple):
        w1, b1, w2, b2 = weights
        logits = np.maximum(features @ w1 + b1, 0.0) @ w2 + b2
    else:
        logits = features @ weights + bias
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))


MLP_HIDDEN = 256  # ReLUs of the emergency head's hidden layer
MLP_ALPHA = 1e-3  # its L2 penalty


def fit_mlp(features: np.ndarray, targets: np.ndarray, weights: Optional[np.ndarray] = None) -> Tuple[tuple, None]:
    """A one-hidden-layer MLP (fixed seed, early stopping); rows are repeated by their integer
    weight, since the MLP takes no sample weights. Returns ``((w1, b1, w2, b2), None)``."""
    from sklearn.neural_network import MLPClassifier

    repeat = np.repeat(np.arange(len(features)), (weights if weights is not None
                                                   else np.ones(len(features))).astype(int))
    model = MLPClassifier(hidden_layer_sizes=(MLP_HIDDEN,), alpha=MLP_ALPHA, max_iter=60, random_state=SEED,
                          early_stopping=True).fit(features[repeat], targets[repeat])
    (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
    return (w1.astype(np.float32), b1.astype(np.float32), w2[:, 0].astype(np.float32),
            np.float32(b2[0])), None


# Heads that are an MLP (one hidden layer) instead of a logistic regression. The emergency head
# must tell a person in danger from words of danger; on the development sets an MLP found
# 92.4 % of emergencies where 4 % of the benign texts fire, the logistic regression 85.4 %
# (python -m benchmarks.experiments.severity_heads).
MLP_HEADS = (EMERGENCY,)


def threshold_for_fpr(negative_scores: np.ndarray, target: float) -> float:
    """The lowest threshold whose false-positive rate on ``negative_scores`` is at most ``target``."""
    if len(negative_scores) == 0:
        return 0.5
    ordered = np.sort(negative_scores)[::-1]
    allowed = int(np.floor(target * len(ordered)))
    return float(min(0.99, ordered[allowed] + 1e-6))


def threshold_for_recall(positive_scores: np.ndarray, target: float) -> float:
    """The highest threshold that still finds at least ``target`` of ``positive_scores``."""
    if len(positive_scores) == 0:
        return 0.5
    ordered = np.sort(positive_scores)[::-1]
    needed = int(np.ceil(target * len(ordered)))
    return float(min(0.99, ordered[max(needed, 1) - 1]))


def auroc(scores: np.ndarray, targets: np.ndarray) -> Optional[float]:
    if len(set(targets.tolist())) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(targets, scores)), 4)


def _usable(rows: Sequence[Row], head: str) -> np.ndarray:
    return np.array([r.targets[head] is not None for r in rows])


def _targets(rows: Sequence[Row], head: str) -> np.ndarray:
    return np.array([r.targets[head] or 0 for r in rows])


def _hard(rows: Sequence[Row], head: Optional[str] = None) -> np.ndarray:
    """The benign look-alikes of ``head``'s threshold rule.

    The two harm heads count the hard negatives of their own kind of text (and
    the project's look-alikes): the hateful head the moderation sources'
    counter-speech and unflagged comments, the harmful-request head the other
    sources' look-alike requests. Every other head (and ``head=None``): every
    hard negative.
    """
    def counts(row: Row) -> bool:
        if not row.hard_negative or row.group == PROJECT or head not in (HARMFUL, HATEFUL):
            return row.hard_negative
        return (row.source in STATEMENT_SOURCES) == (head == HATEFUL)
    return np.array([counts(r) for r in rows])


def _threshold_pool(rows: Sequence[Row], head: Optional[str] = None) -> np.ndarray:
    """The look-alikes the threshold rule counts: ``_hard`` without safety_train version 2's.

    Version 2's hard negatives (NotInject's trigger words, awesome-chatgpt personas, XSafety,
    BIPIA's clean emails) are trained on and measured held out, but counted in the rule they
    raised the attack threshold from 0.61 to 0.84 and cut held-out attack recall on the
    version-1 groups from 69.5 to 50.4 % (harmful 42.9 to 35.8 %): the rule keeps the pool it
    had, so recall stays comparable with earlier turns.
    """
    return _hard(rows, head) & np.array([r.group not in V2_GROUPS for r in rows])


def _weights(rows: Sequence[Row]) -> np.ndarray:
    return np.array([PROJECT_WEIGHT if r.group == PROJECT else 1.0 for r in rows])


INNER_FOLDS = 5  # row-level folds of the training data that choose a threshold


def choose_threshold(features: np.ndarray, rows: Sequence[Row], head: str, fitter: Callable) -> float:
    """The threshold rule on out-of-fold scores of ``rows`` only (row-level folds, fixed seed).

    The rule: the lowest score at which at most ``TARGET_FPR[head]`` of the benign
    look-alikes (hard negatives) among ``rows`` fire, each scored by a model that
    did not train on it. Callers pass only training data: a held-out source never
    influences its own threshold.
    """
    usable = _usable(rows, head)
    y = _targets(rows, head)
    weights = _weights(rows)
    fold = np.random.default_rng(SEED).permutation(len(rows)) % INNER_FOLDS
    scores = np.full(len(rows), np.nan)
    for held in range(INNER_FOLDS):
        test = (fold == held) & usable
        train = (fold != held) & usable
        if not test.any() or len(set(y[train])) < 2:
            continue
        w, b = fitter(features[train], y[train], weights[train])
        scores[test] = predict(features[test], w, b)
    negatives = _threshold_pool(rows, head) & (y == 0) & usable & ~np.isnan(scores)
    return threshold_for_fpr(scores[negatives], TARGET_FPR[head])


def leave_group_out(features: np.ndarray, rows: Sequence[Row], fitter: Callable = fit,
                    progress: bool = True) -> Dict[str, Any]:
    """Per held-out group and head: recall, false refusals, AUROC; plus the out-of-fold scores."""
    from tqdm import tqdm

    groups = list(GROUPS)
    oof = {head: np.full(len(rows), np.nan) for head in GROUP_HEADS}
    report: Dict[str, Any] = {}
    membership = {g: np.array([r.group == g for r in rows]) for g in groups}
    weights = _weights(rows)
    for held in tqdm(groups, desc="leave-group-out", disable=not progress):
        test = membership[held]
        train_rows = [r for r, t in zip(rows, test, strict=False) if not t]
        entry: Dict[str, Any] = {"n": int(test.sum())}
        for head in GROUP_HEADS:
            usable = _usable(rows, head)
            y = _targets(rows, head)
            train = ~test & usable
            w, b = fitter(features[train], y[train], weights[train])
            threshold = choose_threshold(features[~test], train_rows, head, fitter)
            held_idx = test & usable
            scores = predict(features[held_idx], w, b)
            oof[head][held_idx] = scores
            y_held = y[held_idx]
            fired = scores >= threshold
            hard = _hard(rows)[held_idx]
            result: Dict[str, Any] = {"threshold": round(threshold, 4)}
            if y_held.sum():
                result["positives"] = int(y_held.sum())
                result["recall"] = round(float(fired[y_held == 1].mean()), 4)
            if (y_held == 0).any():
                result["false_refusals"] = round(float(fired[y_held == 0].mean()), 4)
            if (hard & (y_held == 0)).any():
                result["false_refusals_hard"] = round(float(fired[hard & (y_held == 0)].mean()), 4)
                result["look_alikes"] = int((hard & (y_held == 0)).sum())
            result["auroc"] = auroc(scores, y_held)
            if len(result) > 2:
                entry[head] = result
        report[held] = entry
    return {"groups": report, "oof": oof}


def _fold(text: str, draw: int, folds: int) -> int:
    """A row's fold in one draw, from a hash of its text: adding rows moves no other row,
    and copies of a text share a fold."""
    return int(hashlib.sha256(f"{draw}:{text}".encode()).hexdigest()[:8], 16) % folds


def project_folds(rows: Sequence[Row], in_cv: np.ndarray, draw: int, folds: int) -> np.ndarray:
    """Each row's fold in one draw (-1 for rows outside ``in_cv``)."""
    return np.array([_fold(r.text, draw, folds) if inside else -1 for r, inside in zip(rows, in_cv, strict=False)])


def project_cv(features: np.ndarray, rows: Sequence[Row], head: str, folds: int = 5, draw: int = 0,
               fitter: Callable = fit) -> np.ndarray:
    """Out-of-fold scores of the project's rows for a head trained on everything else too
    (one ``draw`` of the folds; the other rows are NaN)."""
    usable = _usable(rows, head)
    y = _targets(rows, head)
    project = np.array([r.group == PROJECT for r in rows]) & usable
    fold_of = project_folds(rows, project, draw, folds)
    scores = np.full(len(rows), np.nan)
    weights = _weights(rows)
    for k in range(folds):
        test = fold_of == k
        w, b = fitter(features[usable & ~test], y[usable & ~test], weights[usable & ~test])
        scores[test] = predict(features[test], w, b)
    return scores


def emergency_thresholds(features: np.ndarray, rows: Sequence[Row]) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """The emergency head's two thresholds, each the median over ``CV_DRAWS`` draws of the
    project's folds, and what they cost and find out of fold (mean over the draws)."""
    fitter = fit_mlp if EMERGENCY in MLP_HEADS else fit
    draws = [project_cv(features, rows, EMERGENCY, draw=d, fitter=fitter) for d in range(CV_DRAWS)]
    y = _targets(rows, EMERGENCY)
    positives = (y == 1) & ~np.isnan(draws[0])
    look_alikes = np.array([r.source in LOOK_ALIKE_SOURCES for r in rows])
    own_intents = np.array([r.source.startswith("project:nlu:") for r in rows]) & (y == 0)
    rules = {EMERGENCY: lambda scores: threshold_for_recall(scores[positives], LENIENT_RECALL),
             EMERGENCY_STRICT: lambda scores: threshold_for_fpr(scores[own_intents], NLU_FALSE_ALARMS)}
    thresholds, report = {}, {}
    for name, rule in rules.items():
        per_draw = [rule(scores) for scores in draws]
        threshold = thresholds[name] = round(float(np.median(per_draw)), 4)

        def mean_rate(mask: np.ndarray, threshold: float = threshold) -> float:
            return round(float(np.mean([(scores[mask] >= threshold).mean() for scores in draws])), 4)

        report[name] = {
            "threshold": threshold, "threshold_per_draw": [round(t, 4) for t in per_draw],
            "project_oof_recall": mean_rate(positives),
            "benign_look_alike_oof_false_alarms": mean_rate(look_alikes),
            "own_nlu_examples_oof_false_alarms": mean_rate(own_intents),
        }
    return thresholds, report


def train(shared: Path, encoder_model: str, out: Path, compare: bool = False, progress: bool = True) -> Dict[str, Any]:
    """The whole procedure; writes the artifact to ``out`` and returns the report."""
    started = time.perf_counter()
    rows = safety_rows(shared) + project_rows()
    logger.info(f"{len(rows)} rows: {dict(Counter(r.group for r in rows))}")
    features = embed([r.text for r in rows], encoder_model, progress)
    evaluation = leave_group_out(features, rows, fit, progress)
    thresholds: Dict[str, float] = {
        head: round(choose_threshold(features, rows, head, fit), 4) for head in GROUP_HEADS
    }
    # emergencies: out-of-fold scores of the project's examples, thresholds for recall
    emergency, emergency_report = emergency_thresholds(features, rows)
    thresholds.update(emergency)
    thresholds[SELF_HARM] = SELF_HARM_THRESHOLD
    weights, biases, mlp = [], [], {}
    for head in HEADS:
        usable = _usable(rows, head)
        w, b = fit(features[usable], _targets(rows, head)[usable], _weights(rows)[usable])
        weights.append(w)
        biases.append(b)
        if head in MLP_HEADS:
            mlp[head], _ = fit_mlp(features[usable], _targets(rows, head)[usable], _weights(rows)[usable])
    report: Dict[str, Any] = {
        "leave_group_out": evaluation["groups"],
        "summary": summarise(evaluation["groups"]),
        "summary_v1_groups": summarise({g: evaluation["groups"][g] for g in V1_GROUPS}),
        "emergency_project_cv": emergency_report,
        "thresholds": thresholds,
        "rows": dict(Counter(r.group for r in rows)),
        "took_s": round(time.perf_counter() - started, 1),
    }
    if compare:
        report["comparison"] = comparison(rows, features, evaluation["groups"], progress)
    from rasa_safe_hybrid.embeddings import file_sha256, get_encoder

    encoder = get_encoder(encoder_model)
    manifest = {
        "encoder": {"folder": encoder.model_dir.name, "max_tokens": encoder.max_tokens,
                    "sha256": file_sha256(encoder.model_dir / "model.safetensors")},
        "training": {
            "data": "safety_train (../shared/datasets/safety_train v2, 21 public sources; licences in "
                    "docs/guardrails.md) + finetune/data/guards/*.tsv (written for this project)",
            "seed": SEED, "C": C, "mlp_heads": {h: {"hidden": MLP_HIDDEN, "alpha": MLP_ALPHA} for h in MLP_HEADS},
            "target_false_refusals": TARGET_FPR, "emergency_lenient_recall": LENIENT_RECALL,
            "emergency_strict_nlu_false_alarms": NLU_FALSE_ALARMS,
            "rows": report["rows"],
        },
        "measured": {"summary": report["summary"], "summary_v1_groups": report["summary_v1_groups"],
                     "emergency_project_cv": emergency_report},
        "command": "make train-guards",
    }
    out.mkdir(parents=True, exist_ok=True)
    LinearHeads(np.stack(weights), np.array(biases, dtype=np.float32), HEADS, thresholds, manifest, mlp).save(out)
    return report


def summarise(groups: Dict[str, Any]) -> Dict[str, Any]:
    """Pooled recall over held-out positives and false refusals over held-out hard negatives, per head."""
    summary = {}
    for head in GROUP_HEADS:
        pos = sum(g[head].get("positives", 0) for g in groups.values() if head in g)
        hit = sum(g[head].get("recall", 0) * g[head].get("positives", 0) for g in groups.values() if head in g)
        looks = sum(g[head].get("look_alikes", 0) for g in groups.values() if head in g)
        fired = sum(g[head].get("false_refusals_hard", 0) * g[head].get("look_alikes", 0)
                    for g in groups.values() if head in g)
        summary[head] = {"held_out_positives": pos, "recall": round(hit / pos, 4) if pos else None,
                         "held_out_look_alikes": looks,
                         "look_alike_false_refusals": round(fired / looks, 4) if looks else None}
    return summary


def comparison(rows: Sequence[Row], embeddings: np.ndarray, minilm_groups: Dict[str, Any],
               progress: bool) -> Dict[str, Any]:
    """Leave-group-out recall, false refusals and AUROC of three feature sets, same procedure."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [r.text for r in rows]
    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=30_000, sublinear_tf=True).fit(texts)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, max_features=30_000,
                           sublinear_tf=True).fit(texts)
    tfidf = sparse.hstack([word.transform(texts), char.transform(texts)]).tocsr()
    combined = sparse.hstack([tfidf, sparse.csr_matrix(embeddings * 3.0)]).tocsr()
    result = {}
    for name, features in (("minilm_lr", None), ("tfidf_lr", tfidf), ("tfidf_plus_minilm_lr", combined)):
        groups = minilm_groups if features is None else leave_group_out(features, rows, fit, progress)["groups"]
        result[name] = {
            "summary": summarise(groups),
            "auroc_by_group": {g: {h: v[h]["auroc"] for h in GROUP_HEADS if h in v} for g, v in groups.items()},
            "hard_negative_false_refusals": {g: {h: v[h].get("false_refusals_hard") for h in GROUP_HEADS if h in v}
                                             for g, v in groups.items()},
        }
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m finetune.guards",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="folder with safety_train/")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="sentence encoder folder")
    parser.add_argument("--out", type=Path, default=ARTIFACT_DIR, help="where heads.npz/heads.json go")
    parser.add_argument("--report", type=Path, default=ROOT / "results" / "guards" / "train_report.json")
    parser.add_argument("--compare", action="store_true", help="also measure TF-IDF baselines")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.shared / "safety_train" / "safety_train.jsonl").exists():
        print(f"error: {args.shared}/safety_train/safety_train.jsonl not found; pass --shared "
              f"(the trained heads in {ARTIFACT_DIR} are used as they are without it)", file=sys.stderr)
        return 2
    report = train(args.shared, args.encoder, args.out, args.compare, not args.no_progress)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print(json.dumps({"summary": report["summary"], "summary_v1_groups": report["summary_v1_groups"],
                      "emergency": report["emergency_project_cv"],
                      "thresholds": report["thresholds"], "took_s": report["took_s"]}, indent=2))
    print(f"heads written to {args.out}; full report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
