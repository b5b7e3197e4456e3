"""Danger told from its words, through the whole NLU path of the trained model (``make eval-rails``).

Every held-out text goes through the trained Rasa model's NLU (classifiers, input
rails, emergency detection) and, where the turn would reach the language model,
through the check the LLM action runs before it generates. Each ends as one of:

- ``escalated``: the emergency or crisis response at once;
- ``triaged``: the triage question (it carries the emergency number; "yes" escalates);
- ``refused``: an input rail's refusal (harmful, attack, medical advice, out of scope);
- ``passed``: none of these (the request is answered).

Measured on the benign look-alikes with danger vocabulary
(``tests/data/danger_look_alikes.tsv``, per category), the emergency batches
(``tests/data/emergency_paraphrases*.tsv``, per batch and per context), the
ordinary requests of clinc150 and banking77 (test parts) and safety_train's
benign hard negatives of the sources the rails hold out. None of these sets is
trained on or sets a threshold.

Usage:
    python -m benchmarks.severity [--model models/assistant.tar.gz] [--shared ../shared/datasets]
        [--every N] [--out results/rails] [--dev]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "datasets"
DATA = ROOT / "tests" / "data"
LOOK_ALIKE_BATCHES = sorted(DATA.glob("danger_look_alikes*.tsv"))
EMERGENCY_BATCHES = sorted(DATA.glob("emergency_paraphrases*.tsv"))
OUTCOMES = ("escalated", "triaged", "refused", "passed")
# Intents whose turns go to the LLM action (config.yml, LLMResponsePolicy.trigger_intents);
# read from the config when it is there.
LLM_INTENTS = ("nlu_fallback", "out_of_scope", "chitchat", "open_question")


def rows(path: Path) -> List[List[str]]:
    """Tab-separated rows of a data file (``#`` comments skipped)."""
    return [line.split("\t") for line in path.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def look_alikes(paths: Sequence[Path] = tuple(LOOK_ALIKE_BATCHES)) -> List[Tuple[str, str]]:
    """``(category, text)`` of the held-out look-alikes (every batch)."""
    return [(row[0], row[-1]) for path in paths for row in rows(path)]


def emergencies(paths: Sequence[Path] = tuple(EMERGENCY_BATCHES)) -> List[Tuple[str, str, str]]:
    """``(batch, context, text)`` of every emergency batch (batches 1-4 have no context column)."""
    return [(path.stem, row[1].split(":")[0] if len(row) > 2 else "plain", row[-1])
            for path in paths for row in rows(path)]


class Path_:
    """The trained model's NLU and the LLM action's check before generation, on single turns."""

    def __init__(self, model: Path) -> None:
        from rasa.core.agent import Agent
        from rasa_safe_hybrid.config import load_plugin_config

        self.loop = asyncio.new_event_loop()
        self.agent = Agent.load(str(model))
        self.plugin = load_plugin_config(ROOT / "config.yml")
        self.llm_intents = tuple(getattr(self.plugin.policy, "trigger_intents", None) or LLM_INTENTS)

    def outcome(self, text: str) -> Tuple[str, str]:
        """``(outcome, why)`` of one message."""
        parse = self.loop.run_until_complete(self.agent.parse_message(text))
        intent = (parse.get("intent") or {}).get("name") or ""
        if intent == "emergency":
            return "escalated", _why(parse)
        if intent == "emergency_triage":
            return "triaged", _why(parse)
        if intent.startswith("guardrail_"):
            return "refused", intent
        if intent in self.llm_intents:
            return self.before_generation(parse)
        return "passed", intent

    def before_generation(self, parse: Dict[str, Any]) -> Tuple[str, str]:
        """What the LLM action's check before generation does with the turn."""
        from rasa_safe_hybrid.actions.llm_action import check_before_generation

        assessment, record = check_before_generation(self.plugin, parse)
        if assessment is not None and assessment.tier is not None:
            outcome = "escalated" if assessment.tier == "strong" else "triaged"
            return outcome, f"before generation: {assessment.record.decisive.rail} ({assessment.tier})"
        if record.decisive is None:
            return "passed", "llm"
        if record.decisive.rail.startswith("emergency"):
            return "escalated", f"before generation: {record.decisive.rail}"
        return "refused", f"before generation: {record.decisive.rail}"


def _why(parse: Dict[str, Any]) -> str:
    check = parse.get("emergency_check") or {}
    return f"{check.get('decisive')} ({check.get('tier', 'strong')})"


def measure(path: Path_, items: Iterable[Tuple[str, str]], progress: str = "") -> Dict[str, Any]:
    """Outcome shares per group and overall; ``items`` are ``(group, text)``."""
    from tqdm import tqdm

    counts: Dict[str, Counter] = defaultdict(Counter)
    examples: Dict[str, List[str]] = defaultdict(list)
    items = list(items)
    for group, text in tqdm(items, desc=progress or "severity", unit="text", disable=not progress):
        outcome, why = path.outcome(text)
        counts[group][outcome] += 1
        counts["all"][outcome] += 1
        if outcome != "passed" and len(examples[f"{group}:{outcome}"]) < 5:
            examples[f"{group}:{outcome}"].append(f"{text} [{why}]")
    return {group: _shares(counter) for group, counter in counts.items()} | {"examples": dict(examples)}


def _shares(counter: Counter) -> Dict[str, Any]:
    n = sum(counter.values())
    return {"n": n, **{o: round(counter[o] / n, 4) for o in OUTCOMES},
            "stopped_or_triaged": round((n - counter["passed"]) / n, 4)}


def hard_negatives(
    shared: Path, sources: Sequence[str] = ("notinject", "awesome_chatgpt_prompts", "coconot_contrast", "xsafety_en")
) -> List[Tuple[str, str]]:
    """safety_train's benign hard negatives of ``sources``."""
    path = shared / "safety_train" / "safety_train.jsonl"
    out = []
    for line in path.read_text("utf-8").split("\n"):  # not splitlines: texts hold U+2028
        if not line.strip():
            continue
        item = json.loads(line)
        if item["source"] in sources and item["label"] == "benign" and item.get("hard_negative"):
            out.append((item["source"], item["text"]))
    return out


def ordinary(shared: Path, every: int) -> List[Tuple[str, str]]:
    """The clinc150 and banking77 test parts (every ``every``-th text)."""
    from benchmarks.routing import load_banking, load_clinc

    return [(name, text) for name, loader in (("clinc150", load_clinc), ("banking77", load_banking))
            for text, _ in loader(shared)["test"][::every]]


# Development sets: the tiers are chosen on these, never on the held-out ones above. Emergency
# batches 1-4 and the mild complaints were read while earlier changes were made.
DEV_EMERGENCIES = [p for p in EMERGENCY_BATCHES if not p.stem.endswith("_5")]
DEV_BENIGN = {"mild_symptoms": DATA / "mild_symptoms.tsv", "safe_prompts": DATA / "safe_prompts.txt",
              **{p.stem: p for p in sorted(DATA.glob("attack_look_alikes*.txt"))},
              "small_talk_dev": ROOT / "benchmarks" / "data" / "small_talk_dev.txt"}


def dev_benign(shared: Optional[Path] = DEFAULT_SHARED) -> List[Tuple[str, str]]:
    """``(group, text)`` of the benign development sets; with ``shared``, also clinc150's
    validation split (small talk, thanks and 150 other intents; its test split is the
    measurement of ordinary requests and is never read here)."""
    benign = [(name, row[-1]) for name, file in DEV_BENIGN.items() for row in rows(file)]
    if shared is not None and (shared / "clinc150" / "data_full.json").exists():
        raw = json.loads((shared / "clinc150" / "data_full.json").read_text("utf-8"))
        benign += [("clinc150_val", text) for text, _ in raw["val"] + raw["oos_val"]]
    return benign


def run_dev(model: Path, progress: bool = True) -> Dict[str, Any]:
    """The development sets: emergency batches 1-4 against mild complaints, safe prompts, attack
    look-alikes and clinc150's validation split."""
    path = Path_(model)
    benign = dev_benign()
    return {"command": "python -m benchmarks.severity --dev", "model": str(model),
            "dev_benign": measure(path, benign, "dev benign" if progress else ""),
            "dev_emergencies": measure(path, [(b, t) for b, _, t in emergencies(DEV_EMERGENCIES)],
                                       "dev emergencies" if progress else "")}


def run(model: Path, shared: Optional[Path], every: int = 1, progress: bool = True) -> Dict[str, Any]:
    """Every measurement of this module."""
    path = Path_(model)
    report: Dict[str, Any] = {"command": "python -m benchmarks.severity", "model": str(model)}
    report["look_alikes"] = measure(path, look_alikes(), "look-alikes" if progress else "")
    report["look_alikes_by_batch"] = measure(
        path,
        [(p.stem, t) for p in LOOK_ALIKE_BATCHES for _, t in look_alikes([p])],
        "look-alike batches" if progress else "",
    )
    batch_items = emergencies()
    report["emergencies_by_batch"] = measure(path, [(b, t) for b, _, t in batch_items],
                                             "emergencies" if progress else "")
    report["emergencies_by_context"] = measure(
        path, [(c, t) for b, c, t in batch_items if b.endswith("_5")], "batch 5" if progress else "")
    if shared is not None and (shared / "clinc150").exists():
        report["ordinary_requests"] = measure(path, ordinary(shared, every), "ordinary" if progress else "")
        report["hard_negatives"] = measure(path, hard_negatives(shared)[::every], "hard negatives" if progress else "")
    return report


def markdown(report: Dict[str, Any]) -> str:
    """The tables of report.md's severity section."""
    lines = ["## Danger told from its words (whole NLU path + the check before generation)", "",
             f"`{report['command']}` on `{report['model']}`.", ""]
    for key, title in (("look_alikes", "benign look-alikes with danger vocabulary"),
                       ("look_alikes_by_batch", "benign look-alikes by batch"),
                       ("emergencies_by_batch", "emergency batches"),
                       ("emergencies_by_context", "emergency batch 5 by context"),
                       ("ordinary_requests", "ordinary requests"), ("hard_negatives", "safety_train hard negatives"),
                       ("dev_benign", "development: benign sets"), ("dev_emergencies", "development: emergencies")):
        if key not in report:
            continue
        lines += [f"### {title}", "", "| group | n | escalated | triaged | refused | stopped or triaged |",
                  "|---|---|---|---|---|---|"]
        for group, value in sorted(report[key].items(), key=lambda kv: (kv[0] == "all", kv[0])):
            if group == "examples":
                continue
            lines.append(f"| {group} | {value['n']} | {value['escalated']} | {value['triaged']} | "
                         f"{value['refused']} | {value['stopped_or_triaged']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "assistant.tar.gz")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--every", type=int, default=1, help="only every n-th ordinary request / hard negative")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "rails")
    parser.add_argument("--dev", action="store_true", help="the development sets only (to choose tiers on)")
    args = parser.parse_args(argv)
    if not args.model.exists():
        print(f"error: no trained model at {args.model}; train one first (`rasa train`)", file=sys.stderr)
        return 2
    if args.dev:
        report = run_dev(args.model)
    else:
        report = run(args.model, args.shared if args.shared.exists() else None, args.every)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "severity_dev" if args.dev else "severity"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2), "utf-8")
    (args.out / f"{name}.md").write_text(markdown(report), "utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
