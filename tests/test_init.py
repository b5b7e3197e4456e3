"""`python -m rasa_safe_hybrid init` without training: on a fresh `rasa init` project it copies
nothing and writes the import paths; on a project configured by version 0.1 (the copied
`components/` package) it rewrites the old paths and says what else to do; bad input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rasa_safe_hybrid.__main__ import main

from tests.conftest import ROOT

ENCODER = ROOT / ".cache" / "models" / "all-MiniLM-L6-v2"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from rasa.cli.scaffold import create_initial_project

    folder = tmp_path / "bot"
    create_initial_project(str(folder))
    return folder


def test_init_writes_import_paths_and_copies_nothing(project, capsys):
    assert main(["init", str(project), "--encoder", str(ENCODER)]) == 0
    printed = capsys.readouterr().out
    assert "added rasa_safe_hybrid.nlu.input_rails.InputRails" in printed
    config = yaml.safe_load((project / "config.yml").read_text())
    assert "rasa_safe_hybrid.nlu.input_rails.InputRails" in [p["name"] for p in config["pipeline"]]
    assert "rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy" in [p["name"] for p in config["policies"]]
    assert not (project / "components").exists()
    assert "from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse" in (
        project / "actions" / "llm_response.py").read_text()
    # a second run changes nothing
    assert main(["init", str(project), "--encoder", str(ENCODER)]) == 0
    assert "changed 0 thing(s)" in capsys.readouterr().out


def test_an_older_projects_paths_are_rewritten_on_upgrade(project, capsys):
    """What version 0.1's `python -m components.install` left: a copied package and `components.*` paths."""
    config = yaml.safe_load((project / "config.yml").read_text())
    config["pipeline"] = [{"name": "WhitespaceTokenizer"}, {"name": "components.input_rails.InputRails",
                                                            "rails": {"encoder": str(ENCODER)}}]
    config["policies"] = [{"name": "RulePolicy"}, {"name": "components.llm_response_policy.LLMResponsePolicy"}]
    (project / "config.yml").write_text(yaml.safe_dump(config))
    (project / "endpoints.yml").write_text("action_endpoint:\n  url: http://localhost:5055/webhook\n"
                                           "tracker_store:\n  type: components.redacting_tracker_store."
                                           "RedactingSQLTrackerStore\n  dialect: sqlite\n  db: tracker.db\n")
    (project / "actions" / "llm_response.py").write_text(
        '"""Registers the safe hybrid assistant plugin\'s LLM action (added by components.install)."""\n\n'
        "from components.llm_action import ActionLLMResponse  # noqa: F401\n")
    (project / "components" / "guardrails").mkdir(parents=True)
    (project / "components" / "guardrails" / "registry.py").write_text("# the old copy\n")

    assert main(["init", str(project), "--encoder", str(ENCODER)]) == 0
    printed = capsys.readouterr().out
    assert "config.yml: rewrote 2 line(s) from the copied plugin's `components.*` paths" in printed
    assert "endpoints.yml: rewrote 1 line(s)" in printed and "actions/llm_response.py: rewrote" in printed
    assert "is a copy of an older version of the plugin and nothing uses it now: delete it" in printed
    rewritten = yaml.safe_load((project / "config.yml").read_text())
    assert [p["name"] for p in rewritten["pipeline"]] == [
        "WhitespaceTokenizer",
        "rasa_safe_hybrid.nlu.input_rails.InputRails",
    ]
    assert rewritten["policies"][1]["name"] == "rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy"
    assert "components." not in (project / "endpoints.yml").read_text()
    assert "from rasa_safe_hybrid.actions.llm_action import" in (project / "actions" / "llm_response.py").read_text()


@pytest.mark.parametrize("args, message", [
    (["init", "{tmp}/nowhere", "--encoder", str(ENCODER)], "is not a folder"),
    (["init", "{project}", "--encoder", "{tmp}"], "has no model.safetensors"),
    (["init", str(ROOT), "--encoder", str(ENCODER)], "the plugin's own project"),
])
def test_bad_input_is_refused_with_a_message(project, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, project=project) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_warm_reports_a_bad_config_without_a_traceback(tmp_path, capsys):
    (tmp_path / "config.yml").write_text("policies:\n- name: rasa_safe_hybrid.policies.llm_response_policy."
                                         "LLMResponsePolicy\n  generation: {backend: nope}\n")
    assert main(["warm", "--config", str(tmp_path / "config.yml")]) == 1
    assert "error:" in capsys.readouterr().err
