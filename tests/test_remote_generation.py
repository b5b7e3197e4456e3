"""The ``openai`` generation backend against a real OpenAI-compatible server
(llama.cpp's server from llama-cpp-python, serving the default GGUF file on
loopback): answers, API keys, bounded retries, the circuit breaker while the
server is killed and after it comes back, and the output rails on its replies."""

from __future__ import annotations

import time
from typing import List

import pytest
import requests
from aiohttp import web
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid import small_talk
from rasa_safe_hybrid.config import ENV_RASA_CONFIG
from rasa_safe_hybrid.generation import GenerationSettings, get_generator
from rasa_safe_hybrid.generation.openai_backend import CircuitBreaker, OpenAIGenerator, RemoteUnavailable
from rasa_sdk.executor import CollectingDispatcher

from actions.llm import ActionLLMResponse
from scripts.harness import MODEL_ALIAS, running_llm_server
from tests.conftest import ROOT
from tests.fakes.http_fake import ThreadedServer
from tests.helpers import config_with_generation, make_tracker


def remote(base_url: str, **overrides) -> GenerationSettings:
    return GenerationSettings.from_config(
        {"backend": "openai", "base_url": base_url, "model": MODEL_ALIAS, "max_new_tokens": 40, **overrides}
    )


class CountingSession(requests.Session):
    """A real session that counts the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def post(self, *args, **kwargs):
        self.posts += 1
        return super().post(*args, **kwargs)


OPENAI = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1"}


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    with running_llm_server(tmp_path_factory.mktemp("llm")) as server:
        yield server


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"backend": "vllm"}, "`backend` must be one of ['transformers', 'llama_cpp', 'openai']"),
        ({"backend": "openai"}, "`backend: openai` needs `base_url`"),
        ({"backend": "openai", "base_url": "localhost:8000"}, "`backend: openai` needs `base_url`"),
        ({"base_url": "http://127.0.0.1:8000/v1"}, "`base_url` is an option of the openai backend"),
        ({**OPENAI, "api_key_env": "sk-abc123"}, "`api_key_env` must be the name of an environment variable"),
        ({**OPENAI, "retries": 11}, "`retries` must be at most 10"),
        ({**OPENAI, "circuit_reset_s": 0}, "`circuit_reset_s` must be a positive number"),
    ],
)
def test_bad_remote_settings_say_what_to_change(config, fragment):
    with pytest.raises(InvalidConfigException) as error:
        GenerationSettings.from_config(config)
    assert fragment in str(error.value)


@pytest.mark.service
def test_the_real_server_answers(llm_server):
    generator = get_generator(remote(llm_server.base_url))
    assert isinstance(generator, OpenAIGenerator)
    generation = generator.generate([], "What is the capital of France?")
    assert "paris" in generation.text.lower()
    assert generation.new_tokens > 0 and generation.latency_s > 0
    assert generation.model_id == f"{llm_server.base_url} {MODEL_ALIAS}"


@pytest.mark.service
def test_greedy_replies_are_deterministic(llm_server):
    generator = OpenAIGenerator(remote(llm_server.base_url))
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]
    first = generator.generate(history, "Give me one tip for studying.")
    assert first.text and first.text == generator.generate(history, "Give me one tip for studying.").text


@pytest.mark.service
def test_the_api_key_comes_from_the_environment(tmp_path, monkeypatch):
    with running_llm_server(tmp_path, api_key="sk-local-test-key") as server:
        monkeypatch.delenv("ASSISTANT_LLM_KEY", raising=False)
        session = CountingSession()
        keyless = OpenAIGenerator(remote(server.base_url, api_key_env="ASSISTANT_LLM_KEY"), session=session)
        with pytest.raises(RemoteUnavailable, match="HTTP 401"):
            keyless.generate([], "hello")
        assert session.posts == 1  # a 4xx is not retried
        monkeypatch.setenv("ASSISTANT_LLM_KEY", "sk-local-test-key")
        assert OpenAIGenerator(remote(server.base_url, api_key_env="ASSISTANT_LLM_KEY")).generate([], "hello").text


@pytest.mark.service
def test_killed_server_opens_the_breaker_and_recovery_closes_it(tmp_path):
    with running_llm_server(tmp_path) as server:
        session = CountingSession()
        generator = OpenAIGenerator(
            remote(server.base_url, retries=2, circuit_failures=2, circuit_reset_s=1.5), session=session
        )
        assert generator.generate([], "Name a colour.").text
        server.kill()
        for _ in range(2):  # each request: 1 try + 2 retries, then it counts as one failure
            with pytest.raises(RemoteUnavailable, match="failed 3 time"):
                generator.generate([], "Name a colour.")
        assert session.posts == 1 + 2 * 3
        assert generator.breaker.state == CircuitBreaker.OPEN
        with pytest.raises(RemoteUnavailable, match="circuit breaker open"):
            generator.generate([], "Name a colour.")
        assert session.posts == 7  # refused without sending a request
        server.start()  # same port
        time.sleep(1.6)
        assert generator.breaker.state == CircuitBreaker.HALF_OPEN
        assert generator.generate([], "Name a colour.").text
        assert generator.breaker.state == CircuitBreaker.CLOSED


def test_breaker_half_open_lets_one_trial_through_and_a_failed_trial_reopens():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == CircuitBreaker.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == CircuitBreaker.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == CircuitBreaker.OPEN
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CircuitBreaker.CLOSED and breaker.allow() and breaker.allow()


class CannedOpenAI(ThreadedServer):
    """An OpenAI-compatible endpoint with canned replies (NeMo's FakeLLM idea over HTTP),
    or a fixed error status; counts the requests."""

    def __init__(self, replies: List[str], status: int = 200) -> None:
        super().__init__()
        self.replies, self.status, self.requests = list(replies), status, []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self._complete)

    async def _complete(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        if self.status != 200:
            return web.json_response({"error": {"message": "overloaded"}}, status=self.status)
        content = self.replies.pop(0)
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "canned",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(content.split()), "total_tokens": 20},
        })


async def _run_action(tmp_path, monkeypatch, domain, base_url, text="tell me something", **generation):
    config = tmp_path / "config.yml"
    config.write_text(config_with_generation(ROOT / "config.yml", backend="openai", base_url=base_url,
                                             model="canned", **generation))
    monkeypatch.setenv(ENV_RASA_CONFIG, str(config))
    dispatcher = CollectingDispatcher()
    events = await ActionLLMResponse().run(dispatcher, make_tracker(text, "nlu_fallback"), domain)
    return dispatcher.messages, events


@pytest.mark.parametrize(
    "reply, response, rail",
    [
        # "tell me something" is small talk: a reply a wording rail stops gets the fitting small-talk reply
        ("Write to me at someone.else@example.com.", None, "pii_leak"),
        # a safety rail always sends its own response
        ("You should take 500 mg twice a day.", "utter_medical_referral", "medical_claims"),
    ],
)
async def test_output_rails_apply_to_remote_replies(tmp_path, monkeypatch, domain, reply, response, rail):
    server = CannedOpenAI([reply]).start()
    try:
        messages, events = await _run_action(tmp_path, monkeypatch, domain, f"{server.url}/v1")
    finally:
        server.stop()
    assert [m.get("response") for m in messages] == [response]
    trace = events[0]["value"]
    if response is None:
        assert messages[0]["text"] == small_talk.reply_of(trace["small_talk"]) and "@" not in messages[0]["text"]
    assert (trace["backend"], trace["outcome"]) == ("openai", f"replaced:{rail}")
    [sent] = server.requests
    assert sent["messages"][0]["role"] == "system" and sent["messages"][-1]["content"] == "tell me something"
    assert sent["temperature"] == 0.0 and sent["stop"] == ["<|im_end|>"]


async def test_server_errors_are_retried_then_answered_safely(tmp_path, monkeypatch, domain):
    server = CannedOpenAI([], status=503).start()
    try:
        messages, events = await _run_action(tmp_path, monkeypatch, domain, f"{server.url}/v1", retries=2)
    finally:
        server.stop()
    assert len(server.requests) == 3
    assert [m["response"] for m in messages] == ["utter_llm_unavailable"]
    assert events[0]["value"]["outcome"] == "error" and "HTTP 503" in events[0]["value"]["error"]
