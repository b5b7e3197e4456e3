"""Chooses the emergency tiers on the development sets: every text's signals once, then a grid.

Runs the trained model's NLU on the development sets of ``benchmarks.severity`` (emergency
batches 1-4; mild complaints, safe prompts, attack look-alikes, development small talk, clinc150's
validation split), records each text's
signals from its ``emergency_check`` (strong pattern, classifier score over the message and
its clauses, danger word, the NLU emergency intent's confidence) and prints, for a grid of
tier thresholds, the share of emergencies escalated or triaged, escalated at once, and the
share of benign texts escalated or triaged. The held-out sets are never read here.

Usage: python -m benchmarks.experiments.tiers [--model models/assistant.tar.gz]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks.severity import DEV_EMERGENCIES, ROOT, Path_, dev_benign, emergencies

# The emergency head's scores are those of an MLP that was not class-balanced: its trained
# thresholds are far below 0.5, so the grid spans several orders of magnitude.
STRONG_GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.45, 0.6, 0.75, 0.9)
MODERATE_GRID = (0.005, 0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.12, 0.2, 0.3)


def signals(parse: Dict[str, Any]) -> Dict[str, Any]:
    check = parse.get("emergency_check") or {}
    verdicts = {v["rail"]: v for v in check.get("verdicts") or []}
    return {"pattern": bool((verdicts.get("emergency") or {}).get("triggered")),
            "score": (verdicts.get("emergency_classifier") or {}).get("score") or 0.0,
            "word": bool((verdicts.get("emergency_words") or {}).get("category")),
            "intent": (verdicts.get("emergency_intent") or {}).get("score")}


def tier(s: Dict[str, Any], strong: float, moderate: float, intent_strong: Optional[float],
         intent_moderate: Optional[float]) -> Optional[str]:
    """The tier ``rasa_safe_hybrid.emergency.EmergencySignal.assess`` gives these signals."""
    level = "strong" if s["score"] >= strong else "moderate" if s["score"] >= moderate else None
    result = "strong" if s["pattern"] or (s["word"] and level) else level
    if s["intent"] is not None and intent_strong is not None:
        by_intent = ("strong" if s["intent"] >= intent_strong else
                     "moderate" if intent_moderate is not None and s["intent"] >= intent_moderate else None)
        if by_intent == "strong" or (by_intent == "moderate" and result is None):
            result = by_intent
    return result


def configured_tiers() -> Dict[str, Any]:
    """The tiers config.yml sets for the EmergencyDetector."""
    import yaml

    config = yaml.safe_load((ROOT / "config.yml").read_text("utf-8"))
    detector = next(c for c in config["pipeline"] if c["name"].endswith("EmergencyDetector"))
    return dict(detector.get("tiers") or {})


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "assistant.tar.gz")
    parser.add_argument("--dump", type=Path, help="also write every text's signals to this JSON file")
    args = parser.parse_args(argv)
    path = Path_(args.model)
    parse = lambda text: path.loop.run_until_complete(path.agent.parse_message(text))  # noqa: E731
    em = [signals(parse(t)) for _, _, t in emergencies(DEV_EMERGENCIES)]
    dev = dev_benign()
    groups = [name for name, _ in dev]
    benign = [signals(parse(text)) for _, text in dev]
    if args.dump:
        args.dump.write_text(json.dumps({"emergencies": em, "benign": benign, "groups": groups}), "utf-8")
    results = []
    for strong, moderate, i_strong, i_moderate in itertools.product(
            STRONG_GRID, MODERATE_GRID, (0.8, 0.9, 0.95, 1.01), (0.5, 0.6, 0.7, 0.8, 0.9, None)):
        if moderate > strong or (i_moderate is not None and i_moderate > i_strong):
            continue
        t_em = [tier(s, strong, moderate, i_strong, i_moderate) for s in em]
        t_be = [tier(s, strong, moderate, i_strong, i_moderate) for s in benign]
        results.append({"strong": strong, "moderate": moderate, "intent_strong": i_strong,
                        "intent_moderate": i_moderate,
                        "emergencies_caught": round(sum(t is not None for t in t_em) / len(em), 4),
                        "emergencies_strong": round(sum(t == "strong" for t in t_em) / len(em), 4),
                        "benign_stopped": round(sum(t is not None for t in t_be) / len(benign), 4),
                        "benign_escalated": round(sum(t == "strong" for t in t_be) / len(benign), 4)})
    # the frontier: for each share of emergencies caught, the settings that stop the fewest benign texts
    frontier = {}
    for r in sorted(results, key=lambda r: (r["benign_stopped"], r["benign_escalated"], -r["emergencies_strong"])):
        frontier.setdefault(r["emergencies_caught"], r)
    best = sorted(frontier.values(), key=lambda r: -r["emergencies_caught"])
    configured = configured_tiers()
    per_group: Dict[str, List[int]] = {}
    for group, s in zip(groups, benign, strict=False):
        # intent_strong null (the intent never escalates alone) is the grid's 1.01
        stopped = tier(s, configured["strong"], configured["moderate"], configured.get("intent_strong") or 1.01,
                       configured.get("intent_moderate")) is not None
        per_group.setdefault(group, []).append(int(stopped))
    at = (configured["strong"], configured["moderate"], configured.get("intent_strong") or 1.01,
          configured.get("intent_moderate"))
    t_configured = [tier(s, *at) for s in em]
    print(json.dumps({"emergencies": len(em), "benign": len(benign), "frontier": best,
                      "configured": configured,
                      "configured_emergencies_caught": round(sum(t is not None for t in t_configured) / len(em), 4),
                      "configured_emergencies_strong": round(sum(t == "strong" for t in t_configured) / len(em), 4),
                      "configured_benign_stopped_per_group": {
                          g: round(sum(v) / len(v), 4) for g, v in per_group.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
