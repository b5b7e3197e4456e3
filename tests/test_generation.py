"""Generation: settings validation, post-processing, a tiny random model, and
the real default model loaded offline."""

from __future__ import annotations

import pytest
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.generation import GenerationSettings, build_messages, postprocess
from rasa_safe_hybrid.generation.transformers_backend import TransformersGenerator, load_model

from tests.conftest import ROOT
from tests.tiny_model import build_tiny_model

DEFAULT_GGUF = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


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
        ({"max_tokens": 10}, "unknown key `max_tokens`"),
        ({"base_url": "http://127.0.0.1:8000/v1"},
         "`base_url` is an option of the openai backend, but `backend` is transformers"),
        ({"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "gguf_file": "x.gguf"},
         "`gguf_file` is an option of the transformers backend, but `backend` is openai"),
        ({"backend": "vllm"}, "`backend` must be one of ['transformers', 'llama_cpp', 'openai']"),
        ({"nice": 20}, "`nice` must be between 0 and 19, got 20"),
        ({"nice": -5}, "`nice` must be a non-negative integer"),
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


def _settings(**config):
    return GenerationSettings.from_config(config)


def test_settings_round_trip_and_overrides():
    settings = _settings(model="m", gguf_file="m.gguf", max_new_tokens=12)
    assert GenerationSettings.from_config(settings.as_dict()) == settings
    switched = settings.with_overrides(backend="openai", base_url="http://127.0.0.1:1/v1")
    assert switched.backend == "openai" and switched.max_new_tokens == 12
    assert switched.model_id == "http://127.0.0.1:1/v1 m"


def test_tiny_model_generates_within_limits(tiny_model_dir):
    settings = _settings(model=str(tiny_model_dir), max_new_tokens=12, timeout_s=10)
    model, tokenizer = load_model(settings)
    generator = TransformersGenerator(settings, model, tokenizer)
    messages = build_messages(settings, [{"role": "user", "content": "hello"}] * 10, "why is the sky blue")
    assert messages[0] == {"role": "system", "content": settings.system_prompt}
    assert len(messages) == 2 + settings.history_turns
    result = generator.generate([], "why is the sky blue")
    assert 1 <= result.new_tokens <= 12
    assert "<|im_" not in result.text
    stopped_by_token = result.new_tokens < 12
    if stopped_by_token:  # the raw output ends with the stop token the reply no longer has
        assert result.raw.rstrip().endswith("<|im_end|>")
    assert result.model_id == str(tiny_model_dir)


def test_timeout_stops_generation(tiny_model_dir):
    settings = _settings(model=str(tiny_model_dir), max_new_tokens=1024, timeout_s=0.05, repetition_penalty=1.0)
    model, tokenizer = load_model(settings)
    # forbid the stop token so only the timeout can end generation
    model.generation_config.suppress_tokens = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    result = TransformersGenerator(settings, model, tokenizer).generate([], "hello")
    assert result.timed_out and result.new_tokens < 1024


def test_missing_model_gives_advice(tmp_path):
    settings = _settings(model=str(tmp_path / "nope"), gguf_file="x.gguf")
    with pytest.raises(RuntimeError, match="generation.model"):
        load_model(settings)


@pytest.mark.e2e  # a whole pipeline: the GGUF converted and loaded by transformers (about 45 s)
@pytest.mark.skipif(not DEFAULT_GGUF.exists(), reason="run `make setup` to fetch the default model")
def test_real_default_model_loads_offline_from_the_converted_cache_and_answers_in_english(caplog):
    """Uses the cache `make setup` filled (no second conversion per test run)."""
    settings = GenerationSettings.from_config(
        {"model": str(DEFAULT_GGUF.parent), "gguf_file": DEFAULT_GGUF.name,
         "cache_dir": str(ROOT / ".cache" / "converted"), "max_new_tokens": 48}
    )
    load_model(settings)  # converts only when `make setup` has not yet
    with caplog.at_level("INFO", logger="rasa_safe_hybrid.generation.transformers_backend"):
        model, tokenizer = load_model(settings)
    assert "Loaded" in caplog.text and "Converting" not in caplog.text
    generator = TransformersGenerator(settings, model, tokenizer)
    for prompt in ("Can you give me some study tips?", "Hello! How are you today?"):
        result = generator.generate([], prompt)
        print(f"{prompt!r} -> {result.text!r} ({result.tokens_per_s:.1f} tok/s)")
        assert result.text, result.raw
        assert "<|" not in result.text and "assistant:" not in result.text.lower()
        words = result.text.lower().split()
        assert (
            sum(
                w.strip(".,!?") in {"the", "you", "to", "a", "and", "i", "is", "your", "of", "can", "it"} for w in words
            )
            >= 2
        )
