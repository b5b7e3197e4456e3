"""``python -m rasa_safe_hybrid.review export``: reviewers' ratings -> NLU, test stories, fine-tuning and guard rows.

Usage: python -m rasa_safe_hybrid.review export [--db URL] [--endpoints endpoints.yml] [--domain domain.yml]
                                          [--project .] [--dry-run]

The ratings database is the review channel's ``db`` in credentials.yml (default
``sqlite:///var/review.db``); ``--db`` overrides it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

REVIEW_CHANNEL = "rasa_safe_hybrid.channels.review.ReviewInput"


def configured_db(credentials: Path) -> str:
    """The review channel's ``db`` from credentials.yml (``${VAR}`` expanded; unset: the default)."""
    import yaml
    from rasa_safe_hybrid.review.store import DEFAULT_DB

    if not credentials.exists():
        return DEFAULT_DB
    entry = (yaml.safe_load(credentials.read_text("utf-8")) or {}).get(REVIEW_CHANNEL) or {}
    value = str(entry.get("db") or "")
    expanded = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ.get(m.group(1), ""), value).strip()
    return expanded or DEFAULT_DB


async def _trackers(conversations: List[str], endpoints: Path, domain: Any) -> Dict[str, List[Any]]:
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    store = TrackerStore.create(read_endpoint_config(str(endpoints), "tracker_store"), domain)
    found = {}
    for conversation in conversations:
        tracker = await store.retrieve_full_tracker(conversation)
        if tracker is not None and tracker.events:
            found[conversation] = list(tracker.events)
    return found


def export(args: argparse.Namespace) -> int:
    """Writes every kind of exported file and prints what it wrote and skipped."""
    from rasa.shared.core.domain import Domain
    from rasa_safe_hybrid.review import export as out
    from rasa_safe_hybrid.review.store import ReviewStore

    project = args.project.resolve()
    os.chdir(project)  # relative paths of endpoints.yml and credentials.yml (var/...) are the project's
    os.environ.setdefault("ACTION_SERVER_TOKEN", "not-used-by-export")
    db = args.db or configured_db(project / "credentials.yml")
    rows = ReviewStore(db).list_ratings()
    print(f"{len(rows)} rating(s) in {db}")
    domain = Domain.load(str(args.domain))
    outcome = out.Outcome()
    nlu_file = project / "data" / "nlu" / "reviewed.yml"
    examples = out.nlu_examples(rows, out.existing_examples(project / "data", nlu_file), domain.intents,
                                outcome)
    tuning = out.finetune_rows(rows, outcome)
    guards = out.guard_rows(rows, outcome)
    conversations = sorted({r["conversation_id"] for r in rows})
    trackers = asyncio.run(_trackers(conversations, args.endpoints, domain)) if conversations else {}
    tests = out.stories(rows, trackers, domain, outcome)
    files = {
        nlu_file: (out.nlu_yaml(examples), sum(len(v) for v in examples.values())),
        project / "tests" / "reviewed_stories.yml": (out.story_yaml(tests), len(tests)),
        project / "finetune" / "data" / "reviewed.jsonl": (
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tuning),
            len(tuning),
        ),
        project / "finetune" / "data" / "guards" / "reviewed.tsv": (
            "# head\ttarget (1: should fire, 0: false alarm)\treviewer\ttext\n"
            "# Written by `python -m rasa_safe_hybrid.review export` from reviewers' rail ratings; trained on, "
            "never held out.\n"
            + "".join(f"{h}\t{t}\t{r}\t{x}\n" for h, t, r, x in guards),
            len(guards),
        ),
    }
    for path, (text, count) in files.items():
        if count == 0 and not path.exists():
            outcome.written[f"{path.relative_to(project)} (nothing to write, not created)"] = 0
            continue
        if not args.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
        outcome.written[str(path.relative_to(project)) + (" (dry run)" if args.dry_run else "")] = count
    print("\n".join(outcome.lines()))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m rasa_safe_hybrid.review", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("export", help="ratings -> data/nlu/reviewed.yml, tests/reviewed_stories.yml, "
                                  "finetune/data/reviewed.jsonl, learned rails' reviewed.tsv")
    command.add_argument("--project", type=Path, default=Path.cwd())
    command.add_argument("--db", help="SQLAlchemy URL of the ratings (default: credentials.yml's review db)")
    command.add_argument("--endpoints", type=Path, default=Path("endpoints.yml"))
    command.add_argument("--domain", type=Path, default=Path("domain.yml"))
    command.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    args = parser.parse_args(argv)
    try:
        return export(args)
    except Exception as error:  # noqa: BLE001 - a clear line, not a traceback
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(error, (OSError, SQLAlchemyError, ValueError)):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
