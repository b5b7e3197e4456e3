"""Bad input at the edge, property-based (hypothesis, bounded in count and
time) over the REST webhook and the Slack and Telegram endpoints of a real
Rasa server: every request gets a 4xx or a polite reply, never a 5xx or a
hang, the processes stay up, and other conversations are not affected.

The action server's LLM backend points at a closed port here (the breaker
opens at once), so fuzzed open-ended turns are answered by the safe response
in milliseconds instead of seconds of generation: the channels are under
test, not the model."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.harness import MODEL, ROOT, Servers, free_port, running_servers
from tests.fakes import telegram as fake_telegram
from tests.fakes.channels import fake_channel_credentials
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.helpers import config_with_generation

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIMEOUT_S = 30  # a request that takes longer counts as a hang

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300
) | st.sampled_from(["", " ", "\x00\x01\x02", "x" * 10_000, "\u202e\u200b" * 20, "😀" * 200, "/restart",
                     '/inform{"order_id": "1"}', "/nonexistent_intent"])
rest_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"sender": st.one_of(st.text(max_size=300), st.integers(), st.none()),
                           "message": st.one_of(odd_text, st.integers(), st.lists(st.text(max_size=5)))},
                          optional={"metadata": json_values}).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def edge_servers(tmp_path_factory) -> Iterator[tuple]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    work = tmp_path_factory.mktemp("fuzz")
    config = work / "config.yml"
    config.write_text(config_with_generation(
        ROOT / "config.yml", backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1",
        retries=0, circuit_failures=1, circuit_reset_s=600))
    slack, telegram = FakeSlack().start(), FakeTelegram().start()
    channels = fake_channel_credentials(slack, telegram)
    try:
        with running_servers(work, channels=channels, rasa_config=config) as servers:
            yield servers, telegram
    finally:
        slack.stop()
        telegram.stop()


def assert_polite(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, list):
            assert all(isinstance(m.get("text", ""), str) for m in body)


def assert_healthy(servers: Servers) -> None:
    """The server still answers another conversation correctly."""
    [reply] = servers.texts("fuzz-bystander", "what are your opening hours")
    assert reply.startswith("Our support team is available")


@FUZZ
@given(body=rest_bodies)
def test_rest_webhook_never_fails_on_bad_input(edge_servers, body: bytes):
    servers, _ = edge_servers
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", data=body,
                             headers={**servers.auth, "Content-Type": "application/json"}, timeout=TIMEOUT_S)
    assert_polite(response)


@FUZZ
@given(payload=json_values, event=st.dictionaries(
    st.sampled_from(["type", "text", "user", "channel", "channel_type", "bot_id", "subtype", "ts"]),
    json_values, max_size=6))
def test_slack_webhook_never_fails_on_signed_bad_input(edge_servers, payload: Any, event: dict):
    servers, _ = edge_servers
    url = f"{servers.rasa_url}/webhooks/slack/webhook"
    assert_polite(FakeSlack.deliver(url, payload))
    assert_polite(FakeSlack.deliver(url, {"type": "event_callback", "event_id": json.dumps(payload)[:40],
                                          "event": event}))


@FUZZ
@given(update=st.one_of(json_values, st.fixed_dictionaries(
    {"update_id": st.integers()},
    optional={"message": st.dictionaries(st.sampled_from(["text", "chat", "from", "sticker", "photo"]), json_values,
                                         max_size=4),
              "edited_message": json_values, "callback_query": json_values})))
def test_telegram_webhook_never_fails_on_bad_input(edge_servers, update: Any):
    servers, _ = edge_servers
    assert_polite(FakeTelegram.deliver(f"{servers.rasa_url}/webhooks/telegram/webhook", update))


@pytest.mark.parametrize("path", ["rest", "slack", "telegram"])
def test_bodies_over_one_megabyte_are_refused(edge_servers, path):
    servers, _ = edge_servers
    body = b"{" + b" " * (1024 * 1024) + b"}"
    headers = {**servers.auth, **FakeSlack.sign(body), "X-Telegram-Bot-Api-Secret-Token": fake_telegram.SECRET_TOKEN}
    response = requests.post(f"{servers.rasa_url}/webhooks/{path}/webhook", data=body, headers=headers,
                             timeout=TIMEOUT_S)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"\xff\xfe\x00", 400),
        (b'{"sender": "a"}', 400),
        (b'{"sender": 12, "message": "hi"}', 400),
        (b'{"sender": "a", "message": ["hi"]}', 400),
        (b'["a", "hi"]', 400),
        (b"", 400),
    ],
)
def test_rest_bad_requests_say_what_is_wrong(edge_servers, body, status):
    servers, _ = edge_servers
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", data=body, headers=servers.auth,
                             timeout=TIMEOUT_S)
    assert response.status_code == status and response.json()["error"]


def test_after_the_fuzzing_every_process_is_up_and_answers(edge_servers):
    servers, telegram = edge_servers
    assert_healthy(servers)
    [reply] = servers.texts("fuzz-unknown-sender-\u00e9\u4e2d", "hi")  # a sender never seen before
    assert reply.startswith("Hello!")
    # a question the knowledge answers, so the model is asked; it is down: the safe response, at once
    [safe] = servers.texts("fuzz-open", "what is active recall")
    assert safe.startswith("Sorry, I can't answer open questions right now.")
    FakeTelegram.deliver(f"{servers.rasa_url}/webhooks/telegram/webhook", telegram.update(424242, "hi"))
    assert telegram.sent_to(424242)[-1]["text"].startswith("Hello!")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}],
    ids=["none", "wrong", "other-scheme"],
)
def test_rest_webhook_and_http_api_reject_requests_without_the_token(edge_servers, headers):
    servers, _ = edge_servers
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", json={"sender": "x", "message": "hi"},
                             headers=headers, timeout=TIMEOUT_S)
    assert response.status_code == 401
    assert requests.get(f"{servers.rasa_url}/conversations/x/tracker", headers=headers,
                        timeout=TIMEOUT_S).status_code == 401
    assert requests.get(f"{servers.rasa_url}/conversations/x/tracker", params={"token": "wrong"},
                        timeout=TIMEOUT_S).status_code == 401
    assert requests.get(f"{servers.rasa_url}/conversations/x/tracker", params={"token": servers.token},
                        timeout=TIMEOUT_S).status_code == 200
