"""The plugin's commands: ``python -m rasa_safe_hybrid init PATH`` and ``python -m rasa_safe_hybrid warm``.

- ``init PATH --encoder DIR [--model M --gguf-file F --cache-dir D] [--dry-run]``: adds the
  plugin to a Rasa 3.6 project (or, after an upgrade, rewrites an older version's paths);
- ``warm [--config config.yml]``: loads the configured response model once, so the first
  conversation does not wait for a GGUF conversion.

``python -m rasa_safe_hybrid.review export`` and ``python -m rasa_safe_hybrid.retrieval`` are
the review export and the knowledge index builder.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional


def warm(args: argparse.Namespace) -> int:
    """Loads the response model of ``args.config`` once."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rasa.shared.exceptions import InvalidConfigException
    from rasa_safe_hybrid.config import load_plugin_config
    from rasa_safe_hybrid.generation import get_generator

    try:
        settings = load_plugin_config(args.config).generation
        if settings.backend == "openai":
            print(f"response model served remotely ({settings.model_id}): nothing to load")
            return 0
        start = time.perf_counter()
        get_generator(settings)
    except (InvalidConfigException, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"response model {settings.model_id} ready ({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    from rasa_safe_hybrid import init

    parser = argparse.ArgumentParser(prog="python -m rasa_safe_hybrid", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init.add_arguments(commands.add_parser("init", help="add the plugin to a Rasa 3.6 project"))
    warm_parser = commands.add_parser("warm", help="load the configured response model once")
    warm_parser.add_argument("--config", type=Path, default=Path("config.yml"))
    args = parser.parse_args(argv)
    return init.run(args) if args.command == "init" else warm(args)


if __name__ == "__main__":
    sys.exit(main())
