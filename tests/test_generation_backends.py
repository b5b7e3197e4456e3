"""The generation backends' registry: a new backend is one module and one line."""

from __future__ import annotations

import pytest
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.generation import backends, factory
from rasa_safe_hybrid.generation.settings import GenerationSettings

from tests.fakes.echo_backend import EchoGenerator, EchoOptions


@pytest.fixture
def echo(monkeypatch):
    line = backends.Backend("echo", EchoOptions, "tests.fakes.echo_backend", in_process=True)  # the one line
    monkeypatch.setitem(backends.BACKENDS, "echo", line)
    monkeypatch.setattr(factory, "_GENERATORS", {})
    return line


def test_a_registered_backend_is_configured_built_and_cached(echo):
    settings = GenerationSettings.from_config({"backend": "echo", "model": "parrot", "prefix": "echo:"})
    generator = factory.get_generator(settings)
    assert isinstance(generator, EchoGenerator) and generator.generate([], "hello").text == "echo: hello"
    assert factory.get_generator(settings) is generator
    assert settings.model_id == "parrot"


def test_its_options_are_its_own(echo):
    with pytest.raises(InvalidConfigException, match="`prefix` is an option of the echo backend"):
        GenerationSettings.from_config({"backend": "transformers", "prefix": "x"})
    with pytest.raises(InvalidConfigException, match="`prefix` must be a non-empty string"):
        GenerationSettings.from_config({"backend": "echo", "prefix": " "})


def test_an_unregistered_backend_is_refused_with_the_known_ones():
    with pytest.raises(InvalidConfigException, match=r"one of \['transformers', 'llama_cpp', 'openai'\]"):
        GenerationSettings.from_config({"backend": "echo"})


def test_every_built_in_backend_names_a_module_with_its_two_functions():
    import importlib

    for backend in backends.BACKENDS.values():
        module = importlib.import_module(backend.module)
        assert callable(module.cache_key) and callable(module.build), backend.name
    assert [b.name for b in backends.BACKENDS.values() if not b.in_process] == ["openai"]
