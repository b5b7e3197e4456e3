"""The action server's secret: where it comes from, how it is compared."""

from __future__ import annotations

import stat

import pytest
from rasa_safe_hybrid.actions.server import SecretError, authorised, main, shared_secret


def test_the_secret_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "var" / "action_token"
    first = shared_secret({}, path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shared_secret({}, path) == first


def test_the_environment_wins_over_the_file(tmp_path):
    assert shared_secret({"ACTION_SERVER_TOKEN": "from-env"}, tmp_path / "never-created") == "from-env"
    assert not (tmp_path / "never-created").exists()


def test_an_empty_secret_file_is_refused_with_advice(tmp_path):
    path = tmp_path / "action_token"
    path.write_text("\n")
    with pytest.raises(SecretError, match="delete it to get a new one or set ACTION_SERVER_TOKEN"):
        shared_secret({}, path)


@pytest.mark.parametrize("header, expected", [
    ("Bearer s3cret", True), ("Bearer s3cre", False), ("s3cret", False), ("bearer s3cret", False),
    ("", False), (None, False), ("Bearer s3cret ", False), ("Bearer s3crét", False),
])
def test_only_the_exact_bearer_header_is_authorised(header, expected):
    assert authorised(header, "s3cret") is expected


def test_an_unreadable_secret_stops_the_server_with_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ACTION_SERVER_TOKEN", raising=False)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    assert main(["--token-file", str(blocked / "action_token")]) == 2
    assert "cannot read or create the action server secret" in capsys.readouterr().err


def test_the_request_limit_is_the_action_servers_own_and_checked():
    from rasa_safe_hybrid.actions.server import DEFAULT_MAX_BODY, max_body_bytes

    assert max_body_bytes({"SANIC_REQUEST_MAX_SIZE": "1048576"}) == DEFAULT_MAX_BODY == 64 * 1024 * 1024
    assert max_body_bytes({"ACTION_SERVER_MAX_BODY_BYTES": "8388608"}) == 8 * 1024 * 1024
    for bad in ("lots", "1000"):
        with pytest.raises(ValueError, match="ACTION_SERVER_MAX_BODY_BYTES must be a whole number of bytes"):
            max_body_bytes({"ACTION_SERVER_MAX_BODY_BYTES": bad})
