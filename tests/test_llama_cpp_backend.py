"""The in-process llama.cpp backend: settings, loading errors, and the packaged GGUF answering offline."""

from __future__ import annotations

import threading

import pytest
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.generation import GenerationSettings, get_generator
from rasa_safe_hybrid.generation.llama_cpp_backend import LlamaCppGenerator, load_llama

from tests.conftest import ROOT

DEFAULT_GGUF = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
llama_cpp = pytest.importorskip("llama_cpp", reason="run `make setup` to install llama-cpp-python")


def _settings(**config):
    return GenerationSettings.from_config({"backend": "llama_cpp", **config})


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({}, "`backend: llama_cpp` needs `gguf_file`"),
        ({"gguf_file": "model.safetensors"}, "`backend: llama_cpp` needs `gguf_file`"),
        ({"gguf_file": "m.gguf", "n_ctx": 64}, "`n_ctx` must be between 256 and 32768"),
        ({"gguf_file": "m.gguf", "n_threads": -1}, "`n_threads` must be a non-negative integer"),
        ({"gguf_file": "m.gguf", "torch_threads": 2},
         "`torch_threads` is an option of the transformers backend, but `backend` is llama_cpp"),
        ({"gguf_file": "m.gguf", "base_url": "http://127.0.0.1:1/v1"},
         "`base_url` is an option of the openai backend, but `backend` is llama_cpp"),
    ],
)
def test_bad_llama_cpp_settings_say_what_to_change(config, fragment):
    with pytest.raises(InvalidConfigException) as error:
        _settings(**config)
    assert fragment in str(error.value)


def test_switching_backend_is_one_key():
    transformers = GenerationSettings.from_config({"model": ".cache/models", "gguf_file": DEFAULT_GGUF.name})
    switched = transformers.with_overrides(backend="llama_cpp")
    assert switched.backend == "llama_cpp" and switched.options.gguf_file == DEFAULT_GGUF.name
    assert switched.model_id == transformers.model_id  # traces name the file; `backend` says which ran it
    assert GenerationSettings.from_config(switched.as_dict()) == switched


def test_missing_file_says_what_to_change(tmp_path):
    with pytest.raises(RuntimeError, match="generation.gguf_file"):
        load_llama(_settings(model=str(tmp_path), gguf_file="nope.gguf"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # llama_cpp's __del__ on a failed load
def test_a_file_that_is_not_gguf_is_refused_with_a_message(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not a model" * 100)
    with pytest.raises(RuntimeError, match="broken.gguf"):
        load_llama(_settings(model=str(tmp_path), gguf_file="broken.gguf"))


@pytest.fixture(scope="module")
def default_generator():
    if not DEFAULT_GGUF.exists():
        pytest.skip("run `make setup` to fetch the default model")
    settings = _settings(model=str(DEFAULT_GGUF.parent), gguf_file=DEFAULT_GGUF.name, max_new_tokens=48,
                         n_threads=2)
    return get_generator(settings)


def test_packaged_model_answers_offline_in_english(default_generator):
    assert isinstance(default_generator, LlamaCppGenerator)
    for prompt in ("Can you give me some study tips?", "Hello! How are you today?"):
        result = default_generator.generate([], prompt)
        print(f"{prompt!r} -> {result.text!r} ({result.tokens_per_s:.1f} tok/s)")
        assert result.text, result.raw
        assert "<|" not in result.text and "assistant:" not in result.text.lower()
        assert 1 <= result.new_tokens <= 48
        words = [w.strip(".,!?").lower() for w in result.text.split()]
        assert sum(w in {"the", "you", "to", "a", "and", "i", "is", "your", "of", "can", "it"} for w in words) >= 2


def test_greedy_decoding_is_deterministic_and_the_model_is_loaded_once(default_generator):
    again = get_generator(default_generator.settings.with_overrides(max_new_tokens=20))
    assert again.llama is default_generator.llama  # other decoding settings reuse the weights
    first = again.generate([], "What is a noun?")
    second = again.generate([], "What is a noun?")
    assert first.raw == second.raw and first.new_tokens <= 20


def test_time_limit_ends_generation(default_generator):
    slow = get_generator(default_generator.settings.with_overrides(max_new_tokens=1024, timeout_s=0.05,
                                                                   stop_tokens=["<never>"]))
    result = slow.generate([], "Write a very long story about a dragon.")
    assert result.timed_out and result.new_tokens < 1024


def test_concurrent_calls_are_serialised(default_generator):
    results = []
    threads = [threading.Thread(target=lambda: results.append(default_generator.generate([], "Say hello.")))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len({r.raw for r in results}) == 1


@pytest.mark.e2e  # a whole pipeline: llama.cpp's converter, then both backends generate (about 25 s)
def test_a_transformers_model_folder_converted_to_gguf_answers_like_transformers(tmp_path):
    """The conversion `make finetune` runs on promotion: a safetensors folder (here the default
    model as transformers holds it, the stand-in for a tuned one) to GGUF with llama.cpp's
    converter, then greedy replies of both backends compared (f32, so only arithmetic order differs)."""
    from rasa_safe_hybrid.generation.transformers_backend import load_model

    from finetune.gguf import convert

    if not DEFAULT_GGUF.exists():
        pytest.skip("run `make setup` to fetch the default model")
    base = GenerationSettings.from_config({"model": str(DEFAULT_GGUF.parent), "gguf_file": DEFAULT_GGUF.name,
                                           "cache_dir": str(ROOT / ".cache" / "converted"), "max_new_tokens": 24})
    model, tokenizer = load_model(base)
    folder = tmp_path / "tuned"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gguf = convert(folder, tmp_path / "tuned.f32.gguf", "f32", vocab_from=DEFAULT_GGUF)
    transformers = get_generator(base.with_overrides(model=str(folder), gguf_file=None))
    llama = get_generator(base.with_overrides(backend="llama_cpp", model=str(tmp_path), gguf_file=gguf.name,
                                              n_threads=2))
    prompts = ("What is a noun?", "Give me one study tip.", "hello", "Why is the sky blue?")
    same = [transformers.generate([], p).text == llama.generate([], p).text for p in prompts]
    assert sum(same) >= 3, same


def test_conversion_errors_say_what_is_wrong(tmp_path):
    from finetune.gguf import ConversionError, convert

    with pytest.raises(ConversionError, match="no config.json"):
        convert(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConversionError, match="vocab_from: no GGUF file"):
        convert(tmp_path, vocab_from=tmp_path / "missing.gguf")
    with pytest.raises(ConversionError, match="outtype must be one of"):
        convert(tmp_path, outtype="q2")
