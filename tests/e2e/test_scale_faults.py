"""The scale-out profile while its stores restart under flowing messages.

Two Rasa processes with the PostgreSQL tracker store, a Redis lock store and
RabbitMQ (endpoints.scale.yml). Conversations run concurrently; in the middle,
Redis (a private server on its own port, killed with SIGKILL and started again
on the same port) or PostgreSQL (the loopback cluster, restarted with
pg_ctlcluster) goes away and comes back. A turn during the outage may fail
with an HTTP error or the REST channel's service notice ("something went
wrong, try again": nothing was processed); the client then sends it again, as
a user would. Once the
store is back, every conversation's stored tracker must hold each accepted
message exactly once and each reply received: nothing lost, nothing doubled.
No assertion on time; every wait is bounded.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
import redis
import requests

from scripts.harness import MODEL, Servers, free_port, running_scale_profile

pytestmark = pytest.mark.e2e

TURNS = ["hi", "what are your opening hours", "where is my order 10002?", "thanks", "what is photosynthesis",
         "find a cardiology clinic in berlin", "hi", "what are your opening hours"]
CONVERSATIONS = 6
RESENDS = 20  # a turn that failed is sent again, up to this many times, 1 s apart


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.process: subprocess.Popen = None  # type: ignore[assignment]

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.work)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.2)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does).")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing (make services)")
    work = tmp_path_factory.mktemp("scale-faults")
    private = PrivateRedis(work)
    private.start()
    try:
        with running_scale_profile(work, redis_port=private.port) as running:
            yield {**running, "redis": private}
    finally:
        private.kill()


def converse(servers: Servers, sender: str, results: Dict[str, Dict[str, int]]) -> None:
    """Sends ``TURNS`` alternating between the Rasa processes; a failed turn is sent again."""
    counts = {"accepted": 0, "replies": 0, "failed_attempts": 0}
    for index, text in enumerate(TURNS):
        url = servers.rasa_urls[index % len(servers.rasa_urls)]
        for _ in range(RESENDS):
            try:
                replies = servers.say(sender, text, url=url)
            except requests.RequestException:
                replies = None
            if replies is None or any((r.get("notice") or {}).get("kind") == "service" for r in replies):
                # an HTTP error, or the REST channel's "could not handle this message" reply: send it again
                counts["failed_attempts"] += 1
                time.sleep(1)
                continue
            counts["accepted"] += 1
            counts["replies"] += len(replies)
            break
        time.sleep(0.3)
    results[sender] = counts


def run_with_outage(servers: Servers, prefix: str, outage: Callable[[], None]) -> Dict[str, Dict[str, int]]:
    results: Dict[str, Dict[str, int]] = {}
    senders = [f"{prefix}-{i}" for i in range(CONVERSATIONS)]
    with ThreadPoolExecutor(max_workers=CONVERSATIONS) as pool:
        futures = [pool.submit(converse, servers, sender, results) for sender in senders]
        time.sleep(2)  # messages are flowing
        outage()
        for future in futures:
            future.result()
    return results


def assert_nothing_lost_or_doubled(servers: Servers, results: Dict[str, Dict[str, int]]) -> None:
    problems: List[str] = []
    for sender, counts in results.items():
        events = servers.tracker(sender)["events"]
        users = [e for e in events if e.get("event") == "user"]
        bots = [e for e in events if e.get("event") == "bot"]
        if counts["accepted"] != len(TURNS):
            problems.append(f"{sender}: only {counts['accepted']} of {len(TURNS)} turns accepted")
        if len(users) != counts["accepted"]:
            problems.append(f"{sender}: {len(users)} user events stored, {counts['accepted']} accepted")
        if len(bots) != counts["replies"]:
            problems.append(f"{sender}: {len(bots)} bot events stored, {counts['replies']} received")
    assert problems == []


def test_redis_killed_and_restarted_while_messages_flow(profile):
    servers: Servers = profile["servers"]
    private: PrivateRedis = profile["redis"]

    def outage() -> None:
        private.kill()
        time.sleep(3)
        private.start()

    results = run_with_outage(servers, "redis-outage", outage)
    print("redis outage:", results)
    assert_nothing_lost_or_doubled(servers, results)


def test_postgresql_restarted_while_messages_flow(profile):
    servers: Servers = profile["servers"]
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]

    def outage() -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                       check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    results = run_with_outage(servers, "pg-outage", outage)
    print("postgresql restart:", results)
    assert_nothing_lost_or_doubled(servers, results)
