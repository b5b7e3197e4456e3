"""Measures the guardrails (``make eval-rails``): what a rail never saw, it is measured on.

- learned heads on **held-out source groups** of safety_train (leave-group-out:
  trained and thresholded without the group), with ROC curves;
- the configured rails (patterns + classifiers) on redteam_dev (never trained
  on), over-refusal on the project's safe set and on safety_train's benign
  contrast prompts, PII recall on pii_dev;
- prompt extraction, injection and jailbreak attempts written for the project
  (tests/data/attack_paraphrases*.tsv, per batch and kind) and their ordinary
  look-alikes (tests/data/attack_look_alikes*.txt), held out like the emergency
  paraphrases;
- emergencies: the held-out paraphrases (tests/data/emergency_paraphrases*.tsv, per batch)
  escalated by the NLU-side signals (patterns, classifier) and by the check
  before generation;
- latency of all rails per turn (NLU side and LLM side) and the memory the
  encoder adds to a process.

Usage:
    python -m benchmarks.rails_eval [--shared ../shared/datasets] [--out results/rails]

Writes report.json, report.md and roc.png into --out. The public sets are
measured only; nothing here tunes the rails on them.
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
from typing import Dict, Iterable, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "datasets"
SAFE_PROMPTS = ROOT / "tests" / "data" / "safe_prompts.txt"
# Held-out attack attempts and their look-alikes, in batches written before the changes they measure.
ATTACK_BATCHES = sorted((ROOT / "tests" / "data").glob("attack_paraphrases*.tsv"))
LOOK_ALIKE_BATCHES = sorted((ROOT / "tests" / "data").glob("attack_look_alikes*.txt"))
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
    from rasa_safe_hybrid.config import load_plugin_config

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
    return [line.strip() for line in path.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def pii_recall(shared: Path) -> Dict[str, Dict[str, float]]:
    """Span recall per PII type on pii_dev: a span counts as found when a
    detected span of the same type overlaps it."""
    from rasa_safe_hybrid.guardrails import pii

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


def rail_latency(texts: List[str]) -> Dict[str, float]:
    """Median and p99 of every rail of one turn (both sides together), in milliseconds."""
    sides = turn_latency(texts, combined=True)
    return {"turns": sides["turns"], "median_ms": sides["p50_ms"], "p99_ms": sides["p99_ms"]}


def held_out_sources(shared: Path, out: Path) -> Dict[str, object]:
    """Leave-group-out results of the learned heads, and their ROC curves in roc.png."""
    import numpy as np

    from finetune import guards as train

    rows = train.safety_rows(shared) + train.project_rows()
    features = train.embed([r.text for r in rows], train.DEFAULT_ENCODER, progress=True)
    evaluation = train.leave_group_out(features, rows, train.fit, progress=True)
    curves = {}
    for head in train.GROUP_HEADS:
        scores, targets = evaluation["oof"][head], train._targets(rows, head)
        keep = ~np.isnan(scores)
        curves[head] = roc_points(scores[keep], targets[keep])
    plot_roc(curves, out / "roc.png")
    return {"by_group": evaluation["groups"], "pooled": train.summarise(evaluation["groups"]),
            "pooled_v1_groups": train.summarise({g: evaluation["groups"][g] for g in train.V1_GROUPS}),
            "auroc_pooled": {h: c["auroc"] for h, c in curves.items()}}


def roc_points(scores, targets) -> Dict[str, object]:
    """False- and true-positive rates over 50 thresholds, and the AUROC."""
    import numpy as np

    from finetune.guards import auroc

    thresholds = np.linspace(0, 1, 51)
    positives, negatives = scores[targets == 1], scores[targets == 0]
    return {
        "fpr": [round(float((negatives >= t).mean()), 4) for t in thresholds],
        "tpr": [round(float((positives >= t).mean()), 4) for t in thresholds],
        "auroc": auroc(scores, targets),
    }


def plot_roc(curves: Dict[str, Dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for head, curve in curves.items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{head} (AUROC {curve['auroc']})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate (held-out sources)", ylabel="recall (held-out sources)",
           title="Learned rails, leave-source-group-out")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PARAPHRASE_BATCHES = sorted((ROOT / "tests" / "data").glob("emergency_paraphrases*.tsv"))


def paraphrases(paths: Sequence[Path] = tuple(PARAPHRASE_BATCHES)) -> List[str]:
    """The texts of the held-out emergency paraphrase batches (the last column of each line)."""
    return [line.split("\t")[-1] for path in paths for line in path.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def emergencies() -> Dict[str, object]:
    """Held-out paraphrases escalated (strong tier) or triaged (moderate tier: the question carries
    the emergency number, "yes" escalates) by the NLU-side signals and by the check before generation."""
    from rasa_safe_hybrid.nlu.emergency_detector import EmergencyDetector

    detector = EmergencyDetector(EmergencyDetector.get_default_config())
    signal = detector.signal
    texts = paraphrases()
    tiers = {t: signal.assess(t).tier for t in texts}
    missed = [t for t, tier in tiers.items() if tier is None]
    by_batch = {path.name: {"n": len(batch), "nlu_side_missed": sum(tiers[t] is None for t in batch),
                            "strong": sum(tiers[t] == "strong" for t in batch),
                            "moderate": sum(tiers[t] == "moderate" for t in batch)}
                for path in PARAPHRASE_BATCHES for batch in [paraphrases([path])]}
    n = len(texts)
    return {
        "n": n,
        "by_batch": by_batch,
        "nlu_side_escalated": round(1 - len(missed) / n, 4),
        "nlu_side_strong": round(sum(t == "strong" for t in tiers.values()) / n, 4),
        "nlu_side_missed": missed,
        # the LLM action runs the same signal before it generates
        "before_generation_escalated": round(1 - len(missed) / n, 4),
        "note": "patterns + classifier, without the NLU's emergency intent (it needs the trained Rasa model); "
                "benchmarks/severity.py and tests/e2e/test_emergencies.py run the whole path",
    }


def attack_texts(paths: Sequence[Path] = tuple(ATTACK_BATCHES)) -> List[List[str]]:
    """``[kind, text]`` rows of the held-out attack attempts."""
    return [line.split("\t", 1) for path in paths for line in path.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def attacks(guardrails=None, batches: Sequence[Path] = tuple(ATTACK_BATCHES),
            look_alike_batches: Sequence[Path] = tuple(LOOK_ALIKE_BATCHES)) -> Dict[str, object]:
    """Held-out extraction, injection and jailbreak attempts stopped (per batch and kind), and
    ordinary look-alikes wrongly stopped: by the input rails alone (every turn, structured ones
    too) and by the input rails or the check before generation (an open-ended turn)."""
    guardrails = guardrails or _guardrails()

    def stopped(text: str) -> Dict[str, bool]:
        by_input = guardrails.check_input(text).decisive is not None
        return {"input": by_input, "either": by_input or guardrails.check_before_generation(text).decisive is not None}

    def rate(counts: Counter, key: str) -> float:
        return round(counts[key] / max(1, counts["n"]), 4)

    by_kind: Dict[str, Counter] = {}
    by_batch: Dict[str, Dict[str, object]] = {}
    total, looks_total = Counter(), Counter()
    missed: List[str] = []
    for path in batches:
        counts = Counter()
        for kind, text in attack_texts([path]):
            result = stopped(text)
            for bucket in (by_kind.setdefault(kind, Counter()), counts, total):
                bucket.update(n=1, input=result["input"], either=result["either"])
            if not result["either"]:
                missed.append(text)
        by_batch[path.name] = {"n": counts["n"], "input_rails_stopped": rate(counts, "input"),
                               "stopped_before_generation": rate(counts, "either")}
    refused: List[str] = []
    look_alike_batches_report: Dict[str, Dict[str, object]] = {}
    for path in look_alike_batches:
        counts = Counter()
        for text in safe_texts(path):
            result = stopped(text)
            for bucket in (counts, looks_total):
                bucket.update(n=1, input=result["input"], either=result["either"])
            if result["either"]:
                refused.append(text)
        look_alike_batches_report[path.name] = {"n": counts["n"], "refused_input": rate(counts, "input"),
                                                "refused_before_generation": rate(counts, "either")}
    return {
        "n": total["n"],
        "input_rails_stopped": rate(total, "input"),
        "stopped_before_generation": rate(total, "either"),
        "by_kind": {kind: dict(counts) for kind, counts in by_kind.items()},
        "by_batch": by_batch,
        "missed": missed,
        "look_alikes": looks_total["n"],
        "look_alikes_refused_input": rate(looks_total, "input"),
        "look_alikes_refused_before_generation": rate(looks_total, "either"),
        "look_alikes_refused": refused,
        "look_alikes_by_batch": look_alike_batches_report,
    }


def contrast_over_refusal(shared: Path) -> Dict[str, object]:
    """The configured input rails on safety_train's benign contrast prompts (coconot_contrast)."""
    texts = [json.loads(line)["text"] for line in (shared / "safety_train" / "safety_train.jsonl")
             .read_text("utf-8").split("\n") if line.strip() and '"coconot_contrast"' in line]
    return refusal_rate(texts)


def ordinary_requests(shared: Path, guardrails=None, every: int = 1) -> Dict[str, object]:
    """The configured rails on ordinary requests to an assistant: the test parts of clinc150
    (150 intents and out-of-scope questions) and banking77 (dev sets for routing; no rail
    trained or chose a threshold on them). Refused by the input rails; escalated or asked about
    by the emergency signal (patterns and classifier, without the NLU intent); refused before
    generation; per dataset. ``every``: only every n-th text (a quicker sample for the tests)."""
    from rasa_safe_hybrid.config import load_plugin_config

    from benchmarks.routing import load_banking, load_clinc

    plugin = load_plugin_config(ROOT / "config.yml")
    guardrails = guardrails or plugin.guardrails
    report: Dict[str, object] = {}
    for name, loader in (("clinc150", load_clinc), ("banking77", load_banking)):
        texts = [text for text, _ in loader(shared)["test"]][::every]
        by_input: Counter = Counter()
        before: Counter = Counter()
        tiers: Counter = Counter()
        examples: List[str] = []
        for text in texts:
            decisive = guardrails.check_input(text).decisive
            tier = plugin.emergency.assess(text).tier if plugin.emergency is not None else None
            if decisive is not None:
                by_input[decisive.rail] += 1
            elif tier is not None:
                tiers[tier] += 1
            else:
                decisive = guardrails.check_before_generation(text).decisive
                if decisive is None:
                    continue
                before[decisive.rail] += 1
            if len(examples) < 10:
                examples.append(text)
        n = len(texts)
        stopped = sum(by_input.values()) + sum(before.values()) + sum(tiers.values())
        report[name] = {"n": n, "refused_input": round(sum(by_input.values()) / n, 4),
                        "escalated": round(tiers["strong"] / n, 4), "asked_about": round(tiers["moderate"] / n, 4),
                        "refused_or_escalated_before_generation": round(stopped / n, 4),
                        "by_rail_input": dict(by_input), "by_rail_before_generation": dict(before),
                        "examples": examples}
    return report


def turn_latency(texts: List[str], reply: str = "Sure, here is a short answer about that topic for you.",
                 combined: bool = False) -> Dict:
    """All rails of one turn: NLU side (emergency detector + input rails), LLM side
    (check before generation + output rails), in milliseconds; ``combined``: their sum."""
    from rasa.shared.nlu.training_data.message import Message
    from rasa_safe_hybrid.embeddings import get_encoder
    from rasa_safe_hybrid.nlu.emergency_detector import EmergencyDetector

    detector = EmergencyDetector(EmergencyDetector.get_default_config())
    guardrails = _guardrails()
    encoder = get_encoder()
    nlu, llm = [], []
    for text in texts:
        encoder.clear_cache()  # a new message: nothing embedded yet (the two sides are two processes)
        start = time.perf_counter()
        detector.check(Message(data={"text": text}))
        guardrails.check_input(text)
        nlu.append((time.perf_counter() - start) * 1000)
        encoder.clear_cache()
        start = time.perf_counter()
        guardrails.check_before_generation(text)
        guardrails.check_output(reply, text, "You are a helpful assistant.")
        llm.append((time.perf_counter() - start) * 1000)

    def stats(samples):
        samples = sorted(samples)
        return {"turns": len(samples), "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2)}
    if combined:
        return stats([a + b for a, b in zip(nlu, llm, strict=False)])
    return {"nlu_side": stats(nlu), "llm_side": stats(llm)}


def encoder_throughput(texts: List[str]) -> Dict[str, object]:
    """Texts embedded per second in batches (training, evaluation, the index), on the runtime chosen."""
    from rasa_safe_hybrid.embeddings import get_encoder

    encoder = get_encoder()
    encoder.clear_cache()
    start = time.perf_counter()
    encoder.encode(texts)
    seconds = time.perf_counter() - start
    encoder.clear_cache()
    return {"runtime": encoder.runtime, "texts": len(texts), "texts_per_s": round(len(texts) / seconds, 1)}


def encoder_memory_mb() -> Dict[str, float]:
    """RSS of a fresh Python process before and after loading the encoder and heads."""
    import subprocess

    code = (
        "import resource, sys\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6\n"
        "before = rss()\n"
        "from rasa_safe_hybrid.embeddings import get_encoder\n"
        "from rasa_safe_hybrid.guardrails.learned.heads import load_heads\n"
        "get_encoder().encode(['hello']); load_heads()\n"
        "print(before, rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    before, after = (float(x) for x in out.stdout.split()[-2:])
    return {"rss_before_mb": round(before), "rss_after_mb": round(after), "added_mb": round(after - before)}


def run(shared: Path, out: Path) -> Dict[str, object]:
    """All measurements."""
    red = redteam_texts(shared)
    safe = safe_texts()
    return {
        "command": "make eval-rails",
        "held_out_sources": held_out_sources(shared, out),
        "redteam_refusal": {name: refusal_rate(texts) for name, texts in red.items()},
        "over_refusal_safe": refusal_rate(safe),
        "over_refusal_contrast": contrast_over_refusal(shared),
        "emergencies": emergencies(),
        "attacks": attacks(),
        "ordinary_requests": ordinary_requests(shared),
        "pii_recall": pii_recall(shared),
        "latency": turn_latency(red["advbench"][:100] + safe + paraphrases()[:50]),
        "memory": encoder_memory_mb(),
        "encoder_throughput": encoder_throughput(red["advbench"] + safe + paraphrases()),
        "severity": _severity(shared),
    }


def _severity(shared: Path) -> Dict[str, object]:
    """The whole NLU path of the trained model on look-alikes, emergencies and ordinary requests
    (``benchmarks.severity``); skipped without a trained model."""
    from benchmarks import severity

    model = ROOT / "models" / "assistant.tar.gz"
    if not model.exists():
        return {"skipped": f"no trained model at {model} (make train)"}
    return severity.run(model, shared)


def markdown(report: Dict[str, object]) -> str:
    """The headline numbers as a table (report.md)."""
    held = report["held_out_sources"]
    lines = ["# Rails evaluation (`make eval-rails`)", "",
             "| measure | value |", "|---|---|"]
    for head, value in held["pooled"].items():
        lines.append(f"| {head} classifier, recall on held-out sources | {value['recall']} "
                     f"({value['held_out_positives']} prompts; AUROC {held['auroc_pooled'][head]}) |")
        if value.get("held_out_look_alikes"):
            lines.append(f"| {head} classifier, fired on benign look-alikes of held-out sources | "
                         f"{value['look_alike_false_refusals']} of {value['held_out_look_alikes']} |")
    for head, value in held.get("pooled_v1_groups", {}).items():
        lines.append(f"| {head} classifier, recall on the held-out sources of safety_train version 1 (compare "
                     f"with earlier turns) | {value['recall']} ({value['held_out_positives']} prompts; look-alikes "
                     f"fired {value['look_alike_false_refusals']}) |")
    for name, value in report["redteam_refusal"].items():
        lines.append(f"| configured input rails, refused on redteam_dev/{name} | {value['rate']} of {value['n']} |")
    lines.append(f"| false refusals, project safe set | {report['over_refusal_safe']['rate']} "
                 f"of {report['over_refusal_safe']['n']} |")
    lines.append(f"| false refusals, safety_train benign contrast | {report['over_refusal_contrast']['rate']} "
                 f"of {report['over_refusal_contrast']['n']} |")
    attack = report["attacks"]
    lines.append(f"| held-out attack attempts stopped by the input rails / or before generation | "
                 f"{attack['input_rails_stopped']} / {attack['stopped_before_generation']} of {attack['n']} |")
    for kind, value in attack["by_kind"].items():
        lines.append(f"| attack attempts, {kind}: stopped by the input rails, or before generation | "
                     f"{value['input']}, {value['either']} of {value['n']} |")
    lines.append(f"| held-out attack look-alikes refused by the input rails / or before generation | "
                 f"{attack['look_alikes_refused_input']} / {attack['look_alikes_refused_before_generation']} "
                 f"of {attack['look_alikes']} |")
    for batch, value in attack["by_batch"].items():
        lines.append(f"| {batch}: attempts stopped, input rails / or before generation | "
                     f"{value['input_rails_stopped']} / {value['stopped_before_generation']} of {value['n']} |")
    for batch, value in attack["look_alikes_by_batch"].items():
        lines.append(f"| {batch}: look-alikes refused, input rails / or before generation | "
                     f"{value['refused_input']} / {value['refused_before_generation']} of {value['n']} |")
    for name, value in report["ordinary_requests"].items():
        lines.append(f"| ordinary requests ({name} test), refused by the input rails / escalated / asked about "
                     f"(rails side) / any of these or refused before generation | {value['refused_input']} / "
                     f"{value['escalated']} / {value['asked_about']} / "
                     f"{value['refused_or_escalated_before_generation']} of {value['n']} |")
    emergencies = report["emergencies"]
    lines.append(f"| emergency paraphrases escalated or triaged, NLU side (patterns + classifier) | "
                 f"{emergencies['nlu_side_escalated']} of {emergencies['n']} (strong tier alone "
                 f"{emergencies['nlu_side_strong']}) |")
    lines.append(
        f"| emergency paraphrases escalated before generation | {emergencies['before_generation_escalated']} |"
    )
    for batch, value in emergencies["by_batch"].items():
        lines.append(f"| {batch}: strong / moderate / missed (patterns + classifier) | "
                     f"{value['strong']} / {value['moderate']} / {value['nlu_side_missed']} of {value['n']} |")
    for side, value in report["latency"].items():
        lines.append(f"| rails latency per turn, {side} | p50 {value['p50_ms']} ms, p99 {value['p99_ms']} ms |")
    lines.append(f"| memory the encoder adds to a process | {report['memory']['added_mb']} MB |")
    speed = report["encoder_throughput"]
    lines.append(f"| encoder throughput in batches ({speed['runtime']}) | {speed['texts_per_s']} texts/s "
                 f"({speed['texts']} texts) |")
    if "look_alikes" in report.get("severity", {}):
        from benchmarks import severity

        lines += ["", severity.markdown(report["severity"])]
    lines += ["", "Per held-out group: report.json (`held_out_sources.by_group`); ROC curves: roc.png."]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "rails")
    args = parser.parse_args()
    if not (args.shared / "redteam_dev").exists():
        print(f"error: {args.shared} has no redteam_dev; pass --shared", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = run(args.shared, args.out)
    (args.out / "report.json").write_text(json.dumps(report, indent=2), "utf-8")
    (args.out / "report.md").write_text(markdown(report), "utf-8")
    print(markdown(report))
    print(f"full report: {args.out / 'report.json'}; ROC curves: {args.out / 'roc.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
