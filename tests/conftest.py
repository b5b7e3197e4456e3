"""Shared fixtures: an isolated business store, the domain, and tracker builders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
# The reference corpora a developer may have indexed (make corpora) would change what the tests'
# assistants know: tests use the curated knowledge, or the tiny copy in tests/data/corpora by name.
os.environ["ASSISTANT_CORPORA"] = ""

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh SQLite store under tmp_path, used by the actions through the env."""
    from actions.config import ENV_DB_PATH
    from actions.store import get_store

    monkeypatch.setenv(ENV_DB_PATH, str(tmp_path / "assistant.db"))
    return get_store()


@pytest.fixture(scope="session")
def domain() -> Dict[str, Any]:
    """The project's domain as the action server receives it."""
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain.yml")).as_dict()
