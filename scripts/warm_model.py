"""Loads the response model configured in config.yml once: the transformers
backend converts GGUF weights and caches them before the first conversation
needs them; the llama_cpp backend checks that llama.cpp reads the file.

Usage: python scripts/warm_model.py [--config config.yml]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rasa.shared.exceptions import InvalidConfigException

    from components.config import load_plugin_config
    from components.generation import get_generator

    try:
        settings = load_plugin_config(args.config).generation
        if settings.backend == "openai":
            print(f"response model served remotely ({settings.model_id}): nothing to load")
            return 0
        start = time.perf_counter()
        get_generator(settings)
    except (InvalidConfigException, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"response model {settings.model_id} ready ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
