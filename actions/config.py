"""Every environment variable the action server reads, read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_DB_PATH = "ASSISTANT_DB_PATH"
ENV_KNOWLEDGE_DIR = "ASSISTANT_KNOWLEDGE_DIR"

DEFAULT_DB_PATH = PROJECT_ROOT / "var" / "assistant.db"
DEFAULT_KNOWLEDGE_DIR = PROJECT_ROOT / "knowledge"

# Longest free text (return reason, names, dates) the actions store.
MAX_FREE_TEXT_CHARS = 500


@dataclass(frozen=True)
class Settings:
    """Settings of the action server.

    Attributes:
        db_path: SQLite file of the business store (orders, tickets, ...).
        knowledge_dir: folder with the curated knowledge files and seed data.
    """

    db_path: Path
    knowledge_dir: Path


def get_settings() -> Settings:
    """Reads the settings from the environment, with the project defaults."""
    return Settings(
        db_path=Path(os.environ.get(ENV_DB_PATH, DEFAULT_DB_PATH)),
        knowledge_dir=Path(os.environ.get(ENV_KNOWLEDGE_DIR, DEFAULT_KNOWLEDGE_DIR)),
    )
