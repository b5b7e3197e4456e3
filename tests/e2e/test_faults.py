"""No silent turns, no open doors: real Rasa and action server processes under faults.

The action server here is the project's actions with ``action_check_order_status``
raising (``tests.fakes.raising_actions``); faults are real: the process killed
(SIGKILL), stopped (SIGSTOP: connections are accepted, nothing answers), or the
action raising. No assertion on how fast anything is: a hang is cut by the
endpoint's ``timeout``, and every wait is bounded by generous limits.
"""

from __future__ import annotations

import ast
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import psutil
import pytest
import requests

from scripts.harness import ACTIONS_TOKEN, BIN, MODEL, ROOT, Servers, free_port, running_servers, wait_until_up
from tests.fakes.raising_actions import FAULT

pytestmark = pytest.mark.e2e

APOLOGY = "Sorry, something went wrong on my side; please try again in a moment."
ACTION_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    with running_servers(tmp_path_factory.mktemp("faults"), actions_package="tests.fakes.raising_actions",
                         action_timeout=ACTION_TIMEOUT_S) as running:
        yield running


@pytest.fixture
def actions_down(faulty: Servers) -> Iterator[Servers]:
    faulty.kill_actions()
    try:
        yield faulty
    finally:
        faulty.start_actions()


def failures(servers: Servers, sender: str) -> List[Dict]:
    """The ``action_failure`` records on the conversation's bot events."""
    events = servers.tracker(sender)["events"]
    return [e["metadata"]["action_failure"] for e in events
            if e.get("event") == "bot" and "action_failure" in (e.get("metadata") or {})]


def test_an_exception_inside_an_action_is_answered_and_the_conversation_continues(faulty):
    user = "fault-exception"
    assert faulty.texts(user, "where is my order 10002?") == [APOLOGY]
    [record] = failures(faulty, user)
    assert record["action"] == "action_check_order_status"
    assert "500" in record["cause"]
    assert FAULT in Path(faulty.logs["actions"]).read_text("utf-8", "replace")
    assert faulty.texts(user, "I want to return order 10008") == [
        "Why would you like to return it? A short reason is enough."]


def test_a_hung_action_server_is_answered_at_the_timeout(faulty):
    user = "fault-hung"
    process = psutil.Process(faulty.pids["actions"])
    process.suspend()  # SIGSTOP: the kernel still accepts connections, nothing answers
    try:
        # the form's validation hangs: the order number is not accepted unvalidated
        assert faulty.texts(user, "I want to return order 10008") == [
            APOLOGY, "What is your order number? It has five digits, for example 10002."]
    finally:
        process.resume()
    [record] = failures(faulty, user)
    assert record["action"] == "validate_return_form"
    assert f"no answer within {ACTION_TIMEOUT_S:g} s" in record["cause"]
    assert faulty.texts(user, "10008") == ["Why would you like to return it? A short reason is enough."]


def test_action_server_killed_mid_form_then_restarted_the_form_goes_on(faulty):
    user = "fault-mid-form"
    assert faulty.texts(user, "I want to return order 10008") == [
        "Why would you like to return it? A short reason is enough."]
    faulty.kill_actions()
    try:
        replies = faulty.texts(user, "it arrived broken")
    finally:
        faulty.start_actions()
    assert replies[0] == APOLOGY
    assert replies[1:] == ["Why would you like to return it? A short reason is enough."]
    slots = faulty.tracker(user)["slots"]
    assert slots["order_id"] == "10008" and slots["return_reason"] is None
    [created] = faulty.texts(user, "it arrived broken")
    assert created.startswith("Your return for order 10008 is registered under reference RET-")
    with sqlite3.connect(faulty.store_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM returns WHERE order_id = '10008' AND sender_id = ?",
                            (user,)).fetchone() == (1,)


@pytest.mark.parametrize("text, expected", [
    ("I want to kill myself tonight", "I'm really sorry you're feeling this way"),
    ("I took a whole bottle of sleeping pills", "This sounds like it could be a medical emergency."),
    ("my dad collapsed and isn't breathing", "This sounds like it could be a medical emergency."),
])
def test_emergencies_escalate_with_the_action_server_down(actions_down, text, expected):
    [reply] = actions_down.texts(f"fault-emergency-{len(text)}", text)
    assert reply.startswith(expected)


def test_an_emergency_inside_a_form_with_the_action_server_down_ends_the_form(faulty):
    user = "fault-emergency-form"
    faulty.texts(user, "book an appointment")
    faulty.kill_actions()
    try:
        [reply] = faulty.texts(user, "my friend took an overdose")
    finally:
        faulty.start_actions()
    assert reply.startswith("This sounds like it could be a medical emergency.")
    assert not (faulty.tracker(user).get("active_loop") or {}).get("name")


def rest_conversation_turns() -> List[Tuple[str, List[str]]]:
    """(test name, the literal messages it sends) of every conversation in test_rest_conversations.py."""
    tree = ast.parse((ROOT / "tests" / "e2e" / "test_rest_conversations.py").read_text("utf-8"))
    result = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            texts = [call.args[1].value for call in ast.walk(node) if isinstance(call, ast.Call)
                     and isinstance(call.func, ast.Attribute) and call.func.attr in ("texts", "say")
                     and len(call.args) > 1 and isinstance(call.args[1], ast.Constant)]
            if texts:
                result.append((node.name, texts))
    return result


def test_every_rest_conversation_turn_gets_a_reply_with_the_action_server_down(actions_down):
    conversations = rest_conversation_turns()
    assert sum(len(texts) for _, texts in conversations) >= 25  # the set was found
    silent = []
    for name, texts in conversations:
        for text in texts:
            replies = [r for r in actions_down.texts(f"down-{name}", text) if r.strip()]
            if not replies:
                silent.append((name, text))
    assert silent == []


def test_a_forged_webhook_call_without_the_secret_runs_nothing(faulty):
    forged = {
        "next_action": "action_submit_return",
        "sender_id": "attacker",
        "tracker": {"sender_id": "attacker", "slots": {"order_id": "10001", "return_reason": "forged"},
                    "latest_message": {}, "events": [], "paused": False, "active_loop": {}},
        "domain": {}, "version": "3.6.2",
    }

    def returns() -> int:
        with sqlite3.connect(faulty.store_db) as conn:
            return conn.execute("SELECT COUNT(*) FROM returns").fetchone()[0]

    before = returns()
    for headers in ({}, {"Authorization": "Bearer wrong-secret"}, {"Authorization": ACTIONS_TOKEN}):
        answer = requests.post(f"{faulty.actions_url}/webhook", json=forged, headers=headers, timeout=30)
        assert answer.status_code == 401, headers
    assert requests.get(f"{faulty.actions_url}/actions", timeout=30).status_code == 401
    assert requests.get(f"{faulty.actions_url}/health", timeout=30).json() == {"status": "ok"}
    assert returns() == before
    # the same call with the secret does run: the door is the secret, not a broken route
    answer = requests.post(f"{faulty.actions_url}/webhook", json=forged, timeout=30,
                           headers={"Authorization": f"Bearer {ACTIONS_TOKEN}"})
    assert answer.status_code == 200
    assert returns() == before + 1


def test_the_action_server_listens_on_loopback_only(faulty):
    port = int(faulty.actions_url.rsplit(":", 1)[1])
    listening = [c.laddr.ip for c in psutil.Process(faulty.pids["actions"]).connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening == ["127.0.0.1"]


def test_the_supervisor_restarts_a_killed_action_server(tmp_path):
    port = free_port()
    log = tmp_path / "supervise.log"
    env = {**os.environ, "ACTION_SERVER_TOKEN": ACTIONS_TOKEN, "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
           "ASSISTANT_DB_PATH": str(tmp_path / "assistant.db")}
    health = f"http://127.0.0.1:{port}/health"
    with open(log, "wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "scripts/supervise.py", "--name", "actions", "--health", health, "--interval", "1",
             "--", str(BIN / "python"), "-m", "rasa_safe_hybrid.actions.server", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(health, supervisor, log)
        [child] = psutil.Process(supervisor.pid).children()
        child.kill()

        def restarted() -> bool:
            children = psutil.Process(supervisor.pid).children()
            if not children or children[0].pid == child.pid:
                return False
            try:
                return requests.get(health, timeout=2).ok
            except requests.RequestException:
                return False

        deadline = time.monotonic() + 240
        while not restarted():
            if time.monotonic() > deadline:
                pytest.fail(f"not restarted within 240 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        [new_child] = psutil.Process(supervisor.pid).children()
        assert "exited with code -9; restarting in 1 s" in log.read_text()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
    assert supervisor.returncode == 0
    assert "supervise[actions]: stopped" in log.read_text()
    assert not psutil.pid_exists(new_child.pid)
