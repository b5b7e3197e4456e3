"""The generation thread yields the CPU to the dialogue: its own nice value, nobody else's."""

from __future__ import annotations

import os
import threading

import pytest
import rasa_safe_hybrid.actions.llm_action as llm_action
from rasa_safe_hybrid.config import ENV_RASA_CONFIG
from rasa_safe_hybrid.generation import Generation
from rasa_safe_hybrid.generation.priority import MAX_NICE, yield_cpu
from rasa_sdk.executor import CollectingDispatcher

from actions.llm import ActionLLMResponse
from tests.conftest import ROOT
from tests.helpers import NO_RETRIEVAL, config_with_generation, make_tracker

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="threads are reniced on Linux only")


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_new_thread(function):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=function()))
    thread.start()
    thread.join(30)
    return result["value"]


def test_only_the_calling_thread_is_reniced_and_never_lowered_again():
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())

    def renice_twice():
        first = yield_cpu(5)
        seen = _nice_of_this_thread()
        second = yield_cpu(2)  # a smaller value leaves the higher one (lowering needs privilege)
        return first, seen, second, _nice_of_this_thread()

    expected = min(MAX_NICE, base + 5)
    assert _in_new_thread(renice_twice) == (expected, expected, expected, expected)
    assert _nice_of_this_thread() == base  # the test's own thread (and the process) unchanged
    assert _in_new_thread(lambda: yield_cpu(100)) == MAX_NICE


async def test_the_action_generates_in_a_thread_at_the_configured_nice(monkeypatch, tmp_path, domain):
    (tmp_path / "config.yml").write_text(config_with_generation(ROOT / "config.yml", NO_RETRIEVAL, nice=7))
    monkeypatch.setenv(ENV_RASA_CONFIG, str(tmp_path / "config.yml"))
    seen = []

    class RecordingGenerator:
        def generate(self, history, user_text):
            seen.append(_nice_of_this_thread())
            return Generation("A short answer.", "A short answer.", 3, 0.01, False, "fake-model")

    monkeypatch.setattr(llm_action, "get_generator", lambda settings: RecordingGenerator())
    dispatcher = CollectingDispatcher()
    await ActionLLMResponse().run(dispatcher, make_tracker("tell me something nice", "nlu_fallback"), domain)
    assert [m["text"] for m in dispatcher.messages] == ["A short answer."]
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    # at least 7 above the process (the one executor thread may already sit higher: never lowered)
    assert len(seen) == 1 and seen[0] >= min(MAX_NICE, base + 7)
    assert _nice_of_this_thread() == base  # the event loop's thread keeps its priority
