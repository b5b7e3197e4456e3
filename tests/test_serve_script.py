"""scripts/serve.py: which channels `make run` starts, and the auth token."""

from __future__ import annotations

import importlib.util
import stat

import pytest
import yaml

from tests.conftest import ROOT


@pytest.fixture
def serve(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "VAR", tmp_path)
    monkeypatch.setattr(module, "TOKEN_FILE", tmp_path / "auth_token")
    return module


def credentials():
    return yaml.safe_load((ROOT / "credentials.yml").read_text())


def test_only_channels_whose_variables_are_set_start(serve):
    active, lines = serve.active_channels(credentials(), {"RASA_AUTH_TOKEN": "t" * 20})
    assert list(active) == ["rasa_safe_hybrid.channels.rest.TokenRestInput"]
    assert any("SlackChannel" in line and "off" in line and "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET" in line
               for line in lines)
    assert any("TelegramChannel" in line and "TELEGRAM_SECRET_TOKEN" in line for line in lines)


def test_optional_variables_may_be_missing(serve):
    env = {"RASA_AUTH_TOKEN": "t" * 20, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    active, _ = serve.active_channels(credentials(), env)
    slack = active["rasa_safe_hybrid.channels.slack.SlackChannel"]
    assert "api_url" not in slack  # SLACK_API_URL unset: the channel's default is used
    assert slack["slack_token"] == "${SLACK_BOT_TOKEN}"  # Rasa expands it; no secret is written


def test_a_token_is_created_once_with_private_permissions(serve, tmp_path):
    first = serve.auth_token({})
    assert len(first) >= 16 and serve.auth_token({}) == first
    assert stat.S_IMODE((tmp_path / "auth_token").stat().st_mode) == 0o600
    assert serve.auth_token({"RASA_AUTH_TOKEN": "from-the-environment-123"}) == "from-the-environment-123"


def test_a_local_action_server_url_follows_actions_port(serve):
    moved = serve.endpoints_for(ROOT / "endpoints.yml", "5098")
    assert 'url: "http://127.0.0.1:5098/webhook"' in moved
    assert "Authorization: Bearer ${ACTION_SERVER_TOKEN}" in moved  # the secret stays a variable
    assert "tracker_store:" in moved
    scale = serve.endpoints_for(ROOT / "endpoints.scale.yml", "5098")
    assert "url: ${ACTION_SERVER_URL}" in scale  # not a local URL: left to the variable


def test_action_server_health_line(serve):
    line = serve.action_server_health('action_endpoint:\n  url: "http://127.0.0.1:1/webhook"\n', timeout=2)
    assert line.startswith("Actions:   NOT answering") and "`make actions` starts it" in line
    assert serve.action_server_health("tracker_store:\n  type: x\n") == \
        "Actions:   no action_endpoint in the endpoints file"
