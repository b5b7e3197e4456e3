"""Replays conversations through the REST channel, so the review page has something to review.

Reads test stories (default: the project's ``tests/test_stories.yml``) or a
plain text file (one message a line, a blank line between conversations), and
sends each conversation's user messages in order to ``POST
/webhooks/rest/webhook`` with a sender id of its own. Prints one line per
conversation and how many replies came back.

Usage: python scripts/replay.py [FILE] [--url http://127.0.0.1:5005] [--token TOKEN]
                                [--prefix replay] [--limit N]
The token defaults to RASA_AUTH_TOKEN, else var/auth_token (what `make run` created).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent


def conversations(path: Path) -> List[Tuple[str, List[str]]]:
    """(name, user messages) per conversation of a stories YAML or a plain text file."""
    text = path.read_text("utf-8")
    if path.suffix in (".yml", ".yaml"):
        content = yaml.safe_load(text) or {}
        found = []
        for story in content.get("stories") or []:
            messages = [str(step["user"]).strip() for step in story.get("steps") or []
                        if isinstance(step, dict) and step.get("user")]
            if messages:
                found.append((str(story.get("story") or f"story {len(found) + 1}"), messages))
        return found
    blocks = [b for b in text.split("\n\n") if b.strip()]
    return [(f"conversation {i}", [line.strip() for line in block.splitlines()
                                    if line.strip() and not line.startswith("#")])
            for i, block in enumerate(blocks, 1)]


def send(url: str, token: str, sender: str, text: str, timeout: float = 120.0) -> list:
    """One message over REST; the replies."""
    request = urllib.request.Request(
        f"{url}/webhooks/rest/webhook", data=json.dumps({"sender": sender, "message": text}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - the configured server
        return json.loads(answer.read())


def strip_annotations(text: str) -> str:
    """``[Paris](city)`` -> ``Paris`` (test stories annotate entities; Rasa's own parser)."""
    from rasa.shared.nlu.training_data.entities_parser import replace_entities

    return replace_entities(text)


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?", default=ROOT / "tests" / "test_stories.yml")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('RASA_PORT', '5005')}")
    parser.add_argument("--token", default=os.environ.get("RASA_AUTH_TOKEN"))
    parser.add_argument("--prefix", default="replay", help="sender ids are PREFIX-<n>")
    parser.add_argument("--limit", type=int, default=0, help="at most N conversations (0: all)")
    args = parser.parse_args()
    token = args.token
    if not token and (ROOT / "var" / "auth_token").exists():
        token = (ROOT / "var" / "auth_token").read_text().strip()
    if not token:
        print("error: no REST token: set RASA_AUTH_TOKEN or pass --token (make run writes var/auth_token)",
              file=sys.stderr)
        return 2
    try:
        found = conversations(args.file)
    except (OSError, yaml.YAMLError) as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    if args.limit:
        found = found[:args.limit]
    from tqdm import tqdm

    sent = 0
    for number, (name, messages) in enumerate(tqdm(found, desc="replay", unit="conversation"), 1):
        sender = f"{args.prefix}-{number}"
        replies = 0
        for message in messages:
            try:
                replies += len(send(args.url, token, sender, strip_annotations(message)))
            except (urllib.error.URLError, OSError, ValueError) as error:
                print(f"error: {args.url} did not answer ({error}); is `make run` up?", file=sys.stderr)
                return 1
            sent += 1
        tqdm.write(f"{sender}: {name}: {len(messages)} message(s), {replies} reply(ies)")
    print(f"replayed {len(found)} conversation(s), {sent} message(s), to {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
