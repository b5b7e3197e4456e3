"""Scale-out with the real servers on loopback: endpoints.scale.yml with a
PostgreSQL tracker store, a Redis lock store and a RabbitMQ event broker, and
two Rasa server processes continuing one conversation alternately and
concurrently. Each test run uses its own database, Redis key prefix and queue."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List

import psycopg2
import pytest

from scripts.harness import MODEL, PG, Servers, rabbit_connection, running_scale_profile

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    with running_scale_profile(tmp_path_factory.mktemp("scale")) as profile:
        yield profile


def stored_events(db: str, sender: str) -> List[Dict[str, Any]]:
    conn = psycopg2.connect(dbname=db, **PG)
    with conn.cursor() as cursor:
        cursor.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (sender,))
        rows = [json.loads(data) for (data,) in cursor.fetchall()]
    conn.close()
    return rows


async def _drain(queue_name: str) -> List[Dict[str, Any]]:
    connection = await rabbit_connection()
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        messages = []
        while True:
            message = await queue.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                return messages
            messages.append(json.loads(message.body))


def test_two_processes_continue_one_conversation_alternately(scaled):
    servers: Servers = scaled["servers"]
    first, second = servers.rasa_urls
    user = "scale-alternating"
    turns = [
        (first, "hi", "Hello!"),
        (second, "I want to return order 10008", "Why would you like to return it?"),
        (first, "it arrived broken", "Your return for order 10008 is registered under reference RET-"),
        (second, "what are your opening hours", "Our support team is available"),
    ]
    for url, text, expected in turns:
        [reply] = servers.texts(user, text, url=url)
        assert reply.startswith(expected), (url, text, reply)
    events = stored_events(scaled["db"], user)
    assert [e["text"] for e in events if e["event"] == "user"] == [t for _, t, _ in turns]
    assert len(events) == len({(e["event"], e.get("timestamp"), e.get("name"), e.get("text")) for e in events})
    # Both processes see the same, whole conversation.
    assert servers.tracker(user, url=first)["events"] == servers.tracker(user, url=second)["events"]


def test_concurrent_messages_through_both_processes_are_serialised(scaled):
    """The Redis lock store makes the processes take one message of a conversation
    at a time: every message is stored exactly once, each followed by its answer."""
    servers: Servers = scaled["servers"]
    user = "scale-concurrent"
    texts = [f"what are your opening hours {n}" for n in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda n: servers.texts(user, texts[n], url=servers.rasa_urls[n % 2]), range(6)))
    assert all(r and r[0].startswith("Our support team is available") for r in replies)
    events = stored_events(scaled["db"], user)
    users = [e["text"] for e in events if e["event"] == "user"]
    assert sorted(users) == sorted(texts)
    kinds = [e["event"] for e in events if e["event"] in ("user", "bot")]
    assert kinds == ["user", "bot"] * 6  # never two user turns without the answer between them


def test_events_reach_the_rabbitmq_queue_and_pii_stays_out_of_postgresql(scaled):
    servers: Servers = scaled["servers"]
    user = "scale-broker"
    servers.texts(user, "hi, my email is ada@example.com", url=servers.rasa_urls[1])
    published = asyncio.run(_drain(scaled["queue"]))
    mine = [m for m in published if m.get("sender_id") == user]
    assert [m["text"] for m in mine if m["event"] == "user"] == ["hi, my email is ada@example.com"]
    assert any(m["event"] == "bot" for m in mine)
    assert {m["sender_id"] for m in published} >= {"scale-alternating", "scale-concurrent", user}
    [stored] = [e for e in stored_events(scaled["db"], user) if e["event"] == "user"]
    assert stored["text"] == "hi, my email is [EMAIL]"


def test_the_review_page_reads_postgresql_and_both_processes_share_the_ratings(scaled):
    """The review channel on the scaled profile: conversations from the PostgreSQL tracker
    store, ratings in their own tables of the same database, seen by either process."""
    import requests

    from scripts.harness import REVIEW_SECRET

    servers: Servers = scaled["servers"]
    first, second = servers.rasa_urls
    sender = "scale-review"
    requests.post(f"{first}/webhooks/rest/webhook", json={"sender": sender, "message": "hi"},
                  headers=servers.auth, timeout=120).raise_for_status()
    script = {"Authorization": f"Bearer {REVIEW_SECRET}", "X-Reviewer": "pg reviewer"}

    def listed(url: str) -> List[str]:
        with ThreadPoolExecutor(4) as pool:  # both processes index at once: neither may fail
            answers = list(pool.map(lambda u: requests.get(f"{u}/webhooks/review/api/conversations",
                                                           headers=script, timeout=60), [url, url, first, second]))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        return [c["sender_id"] for c in answers[0].json()["conversations"]]

    assert sender in listed(first) and sender in listed(second)
    events_before = len(stored_events(scaled["db"], sender))
    rating = {"conversation_id": sender, "turn": 1, "target": "reply", "rating": "good"}
    assert requests.post(f"{first}/webhooks/review/api/ratings", json=rating, headers=script, timeout=60).ok
    seen = requests.get(f"{second}/webhooks/review/api/conversations/{sender}", headers=script, timeout=60).json()
    assert [(r["reviewer"], r["rating"]) for r in seen["ratings"]] == [("pg reviewer", "good")]
    conn = psycopg2.connect(dbname=scaled["db"], **PG)
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM review_ratings WHERE conversation_id = %s", (sender,))
        assert cursor.fetchone()[0] == 1
    conn.close()
    assert len(stored_events(scaled["db"], sender)) == events_before  # the tracker store is only read
