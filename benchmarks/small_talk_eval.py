"""Small talk: does the assistant's reply fit what the user said?

``python -m benchmarks.small_talk_eval --out results/small_talk`` (``make eval``
runs it as its ``small_talk`` section).

Every conversation of ``benchmarks/data/small_talk.yml`` (held out: written
before the small-talk changes, never tuned on) goes over REST through the
trained assistant. Each reply is checked by ``rasa_safe_hybrid.small_talk``'s
``misread`` (condolences without a loss, personal facts the assistant cannot
have, a reply about something else); because the ``small_talk`` output rail
uses the same check, the report also prints a seeded sample of every reply for
a person to read, and ``docs/grounding.md`` records how often that reading
agreed with the checker. Replies the model wrote and the fitting replies that
replaced a misread one are counted apart.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from rasa_safe_hybrid.small_talk import SmallTalk

ROOT = Path(__file__).resolve().parent.parent
CONVERSATIONS = ROOT / "benchmarks" / "data" / "small_talk.yml"


def evaluate(out: Path, path: Path = CONVERSATIONS, sample: int = 40, seed: int = 7,
             command: str = "make eval") -> Dict[str, Any]:
    from benchmarks.rest_turns import replay

    conversations = (yaml.safe_load(path.read_text("utf-8")) or {}).get("conversations") or []
    rows = replay(conversations, tag="small-talk")
    checker = SmallTalk()
    for row in rows:
        reason = checker.misread(row["reply"], row["history"] + [row["text"]]) if row["reply"] else "no reply"
        row["misread"] = reason
        row["by"] = ("model" if row["outcome"] == "sent" else
                     "fitting reply" if (row["trace"] or {}).get("small_talk") else
                     "llm action: " + row["outcome"] if row["trace"] else "rule or form: " + str(row["intent"]))
    n = len(rows)
    by: Dict[str, int] = {}
    for row in rows:
        key = row["by"].split(":")[0]
        by[key] = by.get(key, 0) + 1
    report = {
        "command": command, "conversations": len(conversations), "turns": n,
        "misread": round(sum(bool(r["misread"]) for r in rows) / n, 3) if n else None,
        "misread_by_model": sum(bool(r["misread"]) and r["by"] == "model" for r in rows),
        "replied_by": by,
        "model_share": round(by.get("model", 0) / n, 3) if n else None,
        "misreads": [{k: r[k] for k in ("text", "reply", "misread", "by")} for r in rows if r["misread"]][:40],
        "sample": [{k: r[k] for k in ("history", "text", "reply", "misread", "by")}
                   for r in random.Random(seed).sample(rows, min(sample, n))],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({**report, "rows": rows}, indent=2, default=str), "utf-8")
    (out / "report.md").write_text(markdown(report), "utf-8")
    return report


def markdown(report: Dict[str, Any]) -> str:
    lines = ["# Small talk", "", f"Command: `{report['command']}`; {report['conversations']} conversations, "
             f"{report['turns']} turns (held out: never tuned on)", "",
             f"- replies that misread the turn (the checker): {report['misread']} "
             f"({report['misread_by_model']} written by the model)",
             f"- replied by: {report['replied_by']} (the model's own words: {report['model_share']})", "",
             "## Misreads", ""]
    lines += [f"- {m['text']!r} -> {m['reply'][:200]!r} ({m['by']}; {m['misread']})" for m in report["misreads"]]
    lines += ["", "## Seeded sample, for a person to read (checker verdict in brackets)", ""]
    for s in report["sample"]:
        before = f"{' / '.join(s['history'])} / " if s["history"] else ""
        lines.append(f"- {before}{s['text']!r} -> {s['reply'][:200]!r} [{s['misread'] or 'fits'}; {s['by']}]")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=Path, default=CONVERSATIONS)
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("results/small_talk"))
    args = parser.parse_args(argv)
    command = "python -m benchmarks.small_talk_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    report = evaluate(args.out, args.conversations, args.sample, command=command)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
