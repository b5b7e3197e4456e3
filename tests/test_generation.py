"""Generation: settings validation, post-processing, a tiny random model, and
the real default model loaded offline."""

from __future__ import annotations

import time

import pytest
from rasa.shared.exceptions import InvalidConfigException

from components.generation import (
    PROJECT_ROOT,
    GenerationSettings,
    ResponseGenerator,
    load_model,
    postprocess,
)
from tests.tiny_model import build_tiny_model

DEFAULT_GGUF = PROJECT_ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"max_new_tokens": 0}, "`max_new_tokens` must be between 1 and 1024"),
        ({"max_new_tokens": "64"}, "`max_new_tokens` must be a non-negative integer"),
        ({"temperature": 0.7}, "`temperature` or `top_p` is set but `do_sample` is false"),
        ({"do_sample": True, "top_p": 1.5}, "`top_p` must be in (0, 1]"),
        ({"timeout_s": 0}, "`timeout_s` must be in (0, 600]"),
        ({"system_prompt": "  "}, "`system_prompt` must be a non-empty string"),
        ({"model": ""}, "`model` must be a Hugging Face model id or a local folder"),
        ({"max_tokens": 10}, "unknown key(s) ['max_tokens']"),
    ],
)
def test_bad_generation_settings_say_what_to_change(config, fragment):
    with pytest.raises(InvalidConfigException) as error:
        GenerationSettings.from_config(config)
    assert fragment in str(error.value)


def test_sampling_settings_are_accepted_with_do_sample():
    settings = GenerationSettings.from_config({"do_sample": True, "temperature": 0.7, "top_p": 0.9})
    assert settings.temperature == 0.7 and settings.stop_tokens == ("<|im_end|>",)


@pytest.mark.parametrize(
    "raw, complete, expected",
    [
        ("Hello there! How can I help?<|im_end|>", True, "Hello there! How can I help?"),
        ("assistant: Sure. Sure. Here you go.", True, "Sure. Here you go."),
        ("First sentence here. Second one is cut off mid", False, "First sentence here."),
        ("1. Drink water. 2. Sleep well. 3.", False, "Drink water. Sleep well."),
        ("Line one.\n\nLine   two.", True, "Line one. Line two."),
        ("Here are some tips: 1.", False, "Here are some tips."),
        ("<|im_start|>", True, ""),
        ("   ", True, ""),
    ],
)
def test_postprocess(raw, complete, expected):
    assert postprocess(raw, max_chars=400, complete=complete) == expected


def test_postprocess_caps_length_at_a_sentence_boundary():
    raw = " ".join(f"This is sentence number {i}." for i in range(40))
    reply = postprocess(raw, max_chars=100, complete=True)
    assert len(reply) <= 100 and reply.endswith(".")


def test_tiny_model_generates_within_limits(tiny_model_dir):
    settings = GenerationSettings(model=str(tiny_model_dir), gguf_file=None, max_new_tokens=12, timeout_s=10)
    model, tokenizer = load_model(settings)
    generator = ResponseGenerator(settings, model, tokenizer)
    messages = generator.build_messages([{"role": "user", "content": "hello"}] * 10, "why is the sky blue")
    assert messages[0] == {"role": "system", "content": settings.system_prompt}
    assert len(messages) == 2 + settings.history_turns
    result = generator.generate([], "why is the sky blue")
    assert 1 <= result.new_tokens <= 12
    assert "<|im_" not in result.text and "<|im_" in result.raw or result.new_tokens == 12
    assert result.model_id == str(tiny_model_dir)


def test_timeout_stops_generation(tiny_model_dir):
    settings = GenerationSettings(model=str(tiny_model_dir), gguf_file=None, max_new_tokens=1024,
                                  timeout_s=0.05, repetition_penalty=1.0)
    model, tokenizer = load_model(settings)
    # forbid the stop token so only the timeout can end generation
    model.generation_config.suppress_tokens = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    result = ResponseGenerator(settings, model, tokenizer).generate([], "hello")
    assert result.latency_s < 5 and result.new_tokens < 1024


def test_missing_model_gives_advice(tmp_path):
    settings = GenerationSettings(model=str(tmp_path / "nope"), gguf_file="x.gguf")
    with pytest.raises(RuntimeError, match="make setup"):
        load_model(settings)


@pytest.mark.skipif(not DEFAULT_GGUF.exists(), reason="run `make setup` to fetch the default model")
def test_real_default_model_offline_converts_once_and_answers_in_english(tmp_path):
    settings = GenerationSettings(cache_dir=str(tmp_path / "converted"), max_new_tokens=48)
    start = time.perf_counter()
    load_model(settings)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model, tokenizer = load_model(settings)
    cached = time.perf_counter() - start
    print(f"default model: first load {first:.1f} s, cached load {cached:.2f} s")
    assert cached < first / 3
    generator = ResponseGenerator(settings, model, tokenizer)
    for prompt in ("Can you give me some study tips?", "Hello! How are you today?"):
        result = generator.generate([], prompt)
        print(f"{prompt!r} -> {result.text!r} ({result.tokens_per_s:.1f} tok/s)")
        assert result.text, result.raw
        assert "<|" not in result.text and "assistant:" not in result.text.lower()
        words = result.text.lower().split()
        assert sum(w.strip(".,!?") in {"the", "you", "to", "a", "and", "i", "is", "your", "of", "can", "it"} for w in words) >= 2
