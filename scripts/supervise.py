"""Keeps a server process running: restarts it with back-off when it exits or stops answering.

`make actions` (and so `make shell` / `make run`) runs the action server under
it, and `make llm-server` the local LLM server. A restart is logged with its
reason; the delay doubles from 1 s up to 30 s and is reset once the process has
stayed up for a minute. With ``--health URL`` the URL is probed every
``--interval`` seconds and the process is restarted after ``--failures``
probes in a row got no answer (a hung server accepts connections but never
answers). SIGTERM / SIGINT stop the child, then the supervisor.

Usage: python scripts/supervise.py --name actions [--health URL] -- COMMAND ...
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import List, Optional

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # seconds up after which the delay starts from FIRST_DELAY again
GRACE = 180.0  # seconds a (re)started process has to answer its first probe (model loading, a busy machine)


def log(name: str, text: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} supervise[{name}]: {text}", flush=True)


def healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback URL from the caller)
            return 200 <= answer.status < 300
    except Exception:
        return False


class Supervisor:
    """Runs ``command``, restarts it, stops it on request."""

    def __init__(self, name: str, command: List[str], health: Optional[str], interval: float,
                 failures: int) -> None:
        self.name, self.command, self.health = name, command, health
        self.interval, self.failures = interval, failures
        self.child: Optional[subprocess.Popen] = None
        self.stopping = threading.Event()

    def stop(self, *_: object) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def _watch(self, child: subprocess.Popen) -> str:
        """Waits until the child exits or stops answering; the reason."""
        started = time.monotonic()
        missed = 0
        answered = False
        while not self.stopping.is_set():
            try:
                code = child.wait(timeout=self.interval)
                return f"exited with code {code}"
            except subprocess.TimeoutExpired:
                pass
            if not self.health:
                continue
            if healthy(self.health, max(self.interval, 2.0)):
                missed, answered = 0, True
                continue
            if not answered and time.monotonic() - started < GRACE:
                continue  # still starting
            missed += 1
            if missed >= self.failures:
                child.kill()
                child.wait()
                return f"stopped answering {self.health} ({missed} probes in a row); killed"
        return "stopping"

    def run(self) -> int:
        delay = FIRST_DELAY
        restarts = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(self.command)
            log(self.name, f"started pid {self.child.pid}" + (f" (restart {restarts})" if restarts else ""))
            reason = self._watch(self.child)
            if self.stopping.is_set():
                break
            if time.monotonic() - started >= STABLE_AFTER:
                delay = FIRST_DELAY
            restarts += 1
            log(self.name, f"{reason}; restarting in {delay:g} s")
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, MAX_DELAY)
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        log(self.name, "stopped")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--health", help="URL that answers 2xx while the process is well")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between health probes")
    parser.add_argument("--failures", type=int, default=3, help="missed probes in a row before a restart")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to supervise after --")
    supervisor = Supervisor(args.name, command, args.health, args.interval, args.failures)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
