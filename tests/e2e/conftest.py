"""The real `rasa run actions` and `rasa run` processes on loopback ports."""

from __future__ import annotations

from typing import Iterator

import pytest

from scripts.harness import MODEL, REVIEW_CHANNEL, REVIEW_SECRET, Servers, running_servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    work = tmp_path_factory.mktemp("e2e")
    review = {REVIEW_CHANNEL: {"secret": REVIEW_SECRET, "db": f"sqlite:///{work / 'review.db'}"}}
    with running_servers(work, channels=review) as running:
        yield running
