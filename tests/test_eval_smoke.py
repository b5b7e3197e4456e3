"""The smoke version of `make eval`: every section runs end to end on tiny settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.mark.e2e  # trains Rasa models for cross-validation: minutes
@pytest.mark.skipif(not (SHARED / "clinc150").exists(), reason="../shared/datasets missing")
def test_make_eval_smoke_writes_a_complete_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.evaluate", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) >= {"assistant", "routing", "guardrails", "quality", "took_s"}
    assert report["assistant"]["story_success_rate"] == 1.0
    assert 0 <= report["routing"]["clinc150"]["oos_auroc"] <= 1
    assert len(report["routing"]["clinc150"]["sweep"]) == 20
    assert report["guardrails"]["medical_set"]["n"] == 30
    quality = report["quality"][0]
    assert quality["perplexity"] > 1 and 0 <= quality["bleu4"] <= 1 and quality["n"] == 4
    assert quality["backend"] == "llama_cpp"  # replies from the configured backend, perplexity from the same weights
    markdown = (tmp_path / "report.md").read_text()
    assert "## Routing on public data" in markdown and "smoke run" in markdown
    knowledge = report["knowledge"]  # retrieval only in a smoke run (no generation, no REST)
    assert knowledge["questions"]["general"] == 201 and knowledge["retrieval"]["latency_ms"]["n"] == 416
    assert "## Knowledge" in markdown and "answers" not in knowledge
    assert (tmp_path / "clinc_threshold.png").stat().st_size > 1000
    assert (tmp_path / "intent_f1.png").stat().st_size > 1000
