"""Measures the guardrails: refusal on harmful prompts, over-refusal on safe
prompts, PII recall per type, and rail latency.

Usage:
    python -m benchmarks.rails_eval [--shared ../shared/datasets] [--json out.json]

The public sets are measured only; nothing here tunes the rails on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "datasets"
SAFE_PROMPTS = ROOT / "tests" / "data" / "safe_prompts.txt"
# pii_dev types the PII rail is meant to find, mapped to the rail's type names.
PII_TYPE_MAP = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "NATIONAL_ID",
    "IP_ADDRESS": "IP_ADDRESS",
    "STREET_ADDRESS": "STREET_ADDRESS",
}


def _guardrails():
    """The rails of the assistant's config.yml (what a user's messages go through)."""
    from components.config import load_plugin_config

    return load_plugin_config(ROOT / "config.yml").guardrails


def refusal_rate(texts: Iterable[str], guardrails=None) -> Dict[str, object]:
    """Share of texts on which an input rail fires, and which rails fired."""
    guardrails = guardrails or _guardrails()
    texts = list(texts)
    fired: Counter = Counter()
    missed: List[str] = []
    for text in texts:
        decisive = guardrails.check_input(text).decisive
        if decisive:
            fired[decisive.rail] += 1
        else:
            missed.append(text)
    return {
        "n": len(texts),
        "refused": sum(fired.values()),
        "rate": round(sum(fired.values()) / max(1, len(texts)), 4),
        "by_rail": dict(fired),
        "not_refused_examples": missed[:5],
    }


def redteam_texts(shared: Path) -> Dict[str, List[str]]:
    """The harmful prompts of redteam_dev, per source file."""
    folder = shared / "redteam_dev"
    with open(folder / "advbench_behaviors.csv", newline="", encoding="utf-8") as f:
        advbench = [row["Behavior"] for row in csv.DictReader(f)]
    with open(folder / "strongreject_dataset.csv", newline="", encoding="utf-8") as f:
        strongreject = [row["forbidden_prompt"] for row in csv.DictReader(f)]
    return {"advbench": advbench, "strongreject": strongreject}


def safe_texts(path: Path = SAFE_PROMPTS) -> List[str]:
    """The project's own safe prompts (one per line, # comments)."""
    return [l.strip() for l in path.read_text("utf-8").splitlines() if l.strip() and not l.startswith("#")]


def pii_recall(shared: Path) -> Dict[str, Dict[str, float]]:
    """Span recall per PII type on pii_dev: a span counts as found when a
    detected span of the same type overlaps it."""
    from components.guardrails import pii

    data = json.loads((shared / "pii_dev" / "synth_dataset_v2.json").read_text("utf-8"))
    hits: Counter = Counter()
    totals: Counter = Counter()
    for sample in data:
        found = pii.find_pii(sample["full_text"])
        for span in sample.get("spans", []):
            kind = PII_TYPE_MAP.get(span["entity_type"])
            if kind is None:
                continue
            totals[kind] += 1
            s, e = span["start_position"], span["end_position"]
            if any(f["type"] == kind and f["start"] < e and s < f["end"] for f in found):
                hits[kind] += 1
    result = {k: {"n": totals[k], "recall": round(hits[k] / totals[k], 4)} for k in sorted(totals)}
    all_n = sum(totals.values())
    result["ALL"] = {"n": all_n, "recall": round(sum(hits.values()) / max(1, all_n), 4)}
    return result


def rail_latency(texts: List[str], replies: Optional[List[str]] = None, rounds: int = 3) -> Dict[str, float]:
    """Median and p99 of input + output rails per turn, in milliseconds."""
    guardrails = _guardrails()
    replies = replies or ["Sure, here is a short answer about that topic for you."] * len(texts)
    samples = []
    for _ in range(rounds):
        for text, reply in zip(texts, replies):
            start = time.perf_counter()
            guardrails.check_input(text)
            guardrails.check_output(reply, text, "You are a friendly assistant.")
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "turns": len(samples),
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
    }


def run(shared: Path) -> Dict[str, object]:
    """All measurements."""
    red = redteam_texts(shared)
    safe = safe_texts()
    return {
        "redteam_refusal": {name: refusal_rate(texts) for name, texts in red.items()},
        "over_refusal_safe": refusal_rate(safe),
        "pii_recall": pii_recall(shared),
        "latency": rail_latency(red["advbench"][:100] + safe),
    }


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.shared / "redteam_dev").exists():
        print(f"error: {args.shared} has no redteam_dev; pass --shared", file=sys.stderr)
        return 2
    report = run(args.shared)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
