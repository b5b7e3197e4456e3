"""Starts the real `rasa run actions` and `rasa run` processes on free loopback
ports, with a temporary SQLite tracker store and business store.

Used by the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import requests

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "assistant.tar.gz"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240
HTTP_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Servers:
    """The running servers and the files they write."""

    rasa_url: str
    actions_url: str
    tracker_db: Path
    store_db: Path
    logs: Dict[str, Path]
    pids: Dict[str, int] = None

    def say(self, sender: str, text: str) -> List[Dict]:
        """Sends one message through the REST channel and returns the bot's replies."""
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            timeout=HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def texts(self, sender: str, text: str) -> List[str]:
        """Like ``say`` but returns only the reply texts."""
        return [m.get("text", "") for m in self.say(sender, text)]


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_servers(work: Path, model: Path = MODEL) -> Iterator[Servers]:
    """Runs both servers until the block ends, then stops them."""
    if not model.exists():
        raise FileNotFoundError(f"{model} is missing: run `make train` first.")
    rasa_port, actions_port = free_port(), free_port()
    tracker_db, store_db = work / "tracker.db", work / "assistant.db"
    endpoints = work / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        f'tracker_store:\n  type: components.redacting_tracker_store.RedactingSQLTrackerStore\n'
        f'  dialect: "sqlite"\n  db: "{tracker_db}"\n'
    )
    env = {**os.environ, "ASSISTANT_DB_PATH": str(store_db), "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    logs = {"actions": work / "actions.log", "rasa": work / "rasa.log"}
    commands = {
        "actions": [str(BIN / "rasa"), "run", "actions", "--actions", "actions",
                    "--port", str(actions_port)],
        "rasa": [str(BIN / "rasa"), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(rasa_port),
                 "-m", str(model), "--endpoints", str(endpoints),
                 "--credentials", str(ROOT / "credentials.yml")],
    }
    processes = {}
    try:
        for name, command in commands.items():
            with open(logs[name], "wb") as log:
                processes[name] = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
        _wait_until_up(f"http://127.0.0.1:{actions_port}/health", processes["actions"], logs["actions"])
        _wait_until_up(f"http://127.0.0.1:{rasa_port}/status", processes["rasa"], logs["rasa"])
        yield Servers(
            rasa_url=f"http://127.0.0.1:{rasa_port}",
            actions_url=f"http://127.0.0.1:{actions_port}",
            tracker_db=tracker_db,
            store_db=store_db,
            logs=logs,
            pids={name: p.pid for name, p in processes.items()},
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
