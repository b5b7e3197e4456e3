"""The real `rasa run actions` and `rasa run` processes on loopback ports."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.harness import MODEL, Servers, running_servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    with running_servers(tmp_path_factory.mktemp("e2e")) as running:
        yield running
