"""Human evaluation: what reviewers said of the assistant's turns on the review page.

- model replies (the model's own words were sent): share rated good, wrong, unsafe, unhelpful;
- rails as reviewers judged them: precision (correct / (correct + false alarm)) and
  recall (correct / (correct + missed)), per rail and pooled;
- agreement: Cohen's kappa between two reviewers over the things both rated;
- a plot of the share of model replies rated good, week by week.

Usage: python -m benchmarks.human_eval [--db URL] [--out results/eval/human]
(``make eval`` runs it as its ``human`` section).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "eval" / "human"


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> Optional[float]:
    """Cohen's kappa of two raters' labels of the same items (None with no items; 1.0 when both
    always agree on one label)."""
    if not first or len(first) != len(second):
        return None
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=False)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[label] * counts_b[label] for label in set(first) | set(second)) / (n * n)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return round((observed - expected) / (1 - expected), 4)


def _share(counter: Counter, labels: Sequence[str]) -> Dict[str, Any]:
    total = sum(counter[label] for label in labels)
    return {"n": total, **{label: round(counter[label] / total, 4) if total else None for label in labels}}


def _ratio(numerator: int, denominator: int) -> Optional[float]:
    return round(numerator / denominator, 4) if denominator else None


def evaluate(rows: List[Dict[str, Any]], out: Optional[Path] = None) -> Dict[str, Any]:
    """The human-evaluation figures from the ratings (``ReviewStore.list_ratings()``)."""
    from rasa_safe_hybrid.review.store import RAIL_RATINGS, REPLY_RATINGS

    model = Counter(r["rating"] for r in rows if r["target"] == "reply" and r["llm_outcome"] == "sent")
    every_reply = Counter(r["rating"] for r in rows if r["target"] == "reply")
    rails: Dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["target"] == "rail":
            rails[r["rail"]][r["rating"]] += 1
    pooled = sum(rails.values(), Counter())

    def rail_figures(c: Counter) -> Dict[str, Any]:
        return {"correct": c["correct"], "false_alarm": c["false_alarm"], "missed": c["missed"],
                "precision": _ratio(c["correct"], c["correct"] + c["false_alarm"]),
                "recall": _ratio(c["correct"], c["correct"] + c["missed"])}

    items: Dict[Tuple[str, int, str, str], Dict[str, str]] = defaultdict(dict)
    for r in rows:
        items[(r["conversation_id"], r["turn"], r["target"], r["rail"])][r["reviewer"]] = r["rating"]
    agreement = []
    reviewers = sorted({r["reviewer"] for r in rows})
    for a, b in itertools.combinations(reviewers, 2):
        shared = [v for v in items.values() if a in v and b in v]
        if shared:
            agreement.append({"reviewers": [a, b], "items": len(shared),
                              "kappa": cohen_kappa([v[a] for v in shared], [v[b] for v in shared]),
                              "agreed": _ratio(sum(v[a] == v[b] for v in shared), len(shared))})
    weekly: Dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["target"] == "reply" and r["llm_outcome"] == "sent":
            weekly[time.strftime("%G-W%V", time.gmtime(r["updated_at"]))][r["rating"]] += 1
    report = {
        "ratings": len(rows), "reviewers": len(reviewers),
        "conversations": len({r["conversation_id"] for r in rows}),
        "model_replies": _share(model, REPLY_RATINGS),
        "all_replies": _share(every_reply, REPLY_RATINGS),
        "rails": {"pooled": rail_figures(pooled), **{name: rail_figures(c) for name, c in sorted(rails.items())}},
        "rail_ratings": list(RAIL_RATINGS),
        "agreement": agreement,
        "weekly_good": {week: _ratio(c["good"], sum(c.values())) for week, c in sorted(weekly.items())},
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "human.json").write_text(json.dumps(report, indent=2))
        report["plot"] = plot(report, out)
    return report


def plot(report: Dict[str, Any], out: Path) -> Optional[str]:
    """human_over_time.png: share of model replies rated good per week (None with no weeks)."""
    weeks = report["weekly_good"]
    if not weeks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 3))
    axis.plot(list(weeks), [v or 0 for v in weeks.values()], marker="o")
    axis.set_ylim(0, 1)
    axis.set_ylabel("model replies rated good")
    axis.set_xlabel("ISO week of the rating")
    fig.tight_layout()
    fig.savefig(out / "human_over_time.png")
    plt.close(fig)
    return "human/human_over_time.png"


def markdown(report: Dict[str, Any]) -> str:
    """The report's section."""
    if not report["ratings"]:
        return ("# Human evaluation\n\nNo ratings yet: reviewers rate turns on the review page "
                "(`/webhooks/review/`, docs/review.md).\n")
    m, r = report["model_replies"], report["rails"]
    lines = ["# Human evaluation", "",
             f"{report['ratings']} rating(s) by {report['reviewers']} reviewer(s) of {report['conversations']} "
             "conversation(s) (the review page; command: `python -m benchmarks.human_eval`).", "",
             f"- model replies (the model's own words): n = {m['n']}; good {m['good']}, wrong {m['wrong']}, "
             f"unsafe {m['unsafe']}, unhelpful {m['unhelpful']}", "",
             "| rail | correct | false alarm | missed | precision | recall |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {v['correct']} | {v['false_alarm']} | {v['missed']} | {v['precision']} | {v['recall']} |"
              for name, v in r.items()]
    lines.append("")
    if report["agreement"]:
        lines += ["| reviewers | items both rated | agreed | Cohen's kappa |", "|---|---|---|---|"]
        lines += [f"| {' / '.join(a['reviewers'])} | {a['items']} | {a['agreed']} | {a['kappa']} |"
                  for a in report["agreement"]]
    else:
        lines.append("- agreement: no turn was rated by two reviewers yet")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="ratings database URL (default: credentials.yml's review db)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from rasa_safe_hybrid.review.__main__ import configured_db
    from rasa_safe_hybrid.review.store import ReviewStore

    db = args.db or configured_db(ROOT / "credentials.yml")
    report = evaluate(ReviewStore(db).list_ratings(), args.out)
    (args.out / "human.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
