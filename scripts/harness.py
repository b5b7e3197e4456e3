"""Test and benchmark harness: real server processes on free loopback ports.

- ``running_servers``: the real action server (``rasa_safe_hybrid.actions.server``,
  loopback + shared secret) and `rasa run` processes, by
  default with a temporary SQLite tracker store and business store;
- ``running_scale_profile``: the same with endpoints.scale.yml (PostgreSQL,
  Redis, RabbitMQ on loopback) and two Rasa processes;
- ``running_llm_server``: llama.cpp's OpenAI-compatible server
  (llama-cpp-python[server], in its own venv .venv-llm) serving the default GGUF.

Used by the end-to-end tests and the benchmarks. Options cover the channel and
scale-out tests: extra channels in the credentials, another endpoints file
(PostgreSQL + Redis + RabbitMQ), several Rasa processes sharing one store,
another plugin config for the action server (the remote LLM backend), and
restarting a Rasa process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "assistant.tar.gz"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240
HTTP_TIMEOUT_S = 120
# The REST channel's token in tests and benchmarks (never a real secret).
TEST_TOKEN = "test-token-0123456789abcdef"
# The action server's shared secret in tests (ACTION_SERVER_TOKEN for both sides).
ACTIONS_TOKEN = "test-actions-secret-0123456789"
# The review page's secret in tests: its own, never the REST token.
REVIEW_SECRET = "test-review-secret-0123456789"
REVIEW_CHANNEL = "rasa_safe_hybrid.channels.review.ReviewInput"
MAX_BODY_BYTES = 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_endpoints(actions_port: int, tracker_db: Path, action_timeout: float = 30) -> str:
    """The default endpoints: action server (with its secret) + SQLite tracker store (redacting)."""
    return (
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        f'  headers:\n    Authorization: Bearer ${{ACTION_SERVER_TOKEN}}\n  timeout: {action_timeout}\n'
        f'tracker_store:\n  type: rasa_safe_hybrid.stores.redacting_tracker_store.RedactingSQLTrackerStore\n'
        f'  dialect: "sqlite"\n  db: "{tracker_db}"\n'
    )


@dataclass
class Servers:
    """The running servers and the files they write."""

    rasa_url: str
    actions_url: str
    tracker_db: Path
    store_db: Path
    logs: Dict[str, Path]
    pids: Dict[str, int] = field(default_factory=dict)
    rasa_urls: List[str] = field(default_factory=list)
    token: str = TEST_TOKEN
    _restart: Any = None
    _actions: Any = None

    @property
    def auth(self) -> Dict[str, str]:
        """The REST channel's and HTTP API's authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def say(self, sender: str, text: str, url: Optional[str] = None) -> List[Dict]:
        """Sends one message through the REST channel and returns the bot's replies."""
        response = requests.post(
            f"{url or self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            headers=self.auth,
            timeout=HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def texts(self, sender: str, text: str, url: Optional[str] = None) -> List[str]:
        """Like ``say`` but returns only the reply texts."""
        return [m.get("text", "") for m in self.say(sender, text, url)]

    def tracker(self, sender: str, url: Optional[str] = None) -> Dict[str, Any]:
        """The conversation's tracker through the HTTP API (``?token=``, as Rasa's API expects)."""
        response = requests.get(
            f"{url or self.rasa_url}/conversations/{sender}/tracker", params={"token": self.token},
            timeout=HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def restart_rasa(self, index: int = 0) -> None:
        """Stops Rasa process ``index`` and starts it again on the same port."""
        self._restart(index)

    def kill_actions(self) -> None:
        """Kills the action server (SIGKILL, no clean shutdown)."""
        self._actions("kill")

    def start_actions(self) -> None:
        """Starts the action server again on its port and waits until it answers."""
        self._actions("start")


def wait_until_up(url: str, process: subprocess.Popen, log: Path, headers: Optional[Dict[str, str]] = None,
                  timeout_s: float = START_TIMEOUT_S) -> None:
    """Polls ``url`` until it answers 2xx; raises with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, headers=headers, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout_s:g} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_servers(
    work: Path,
    model: Path = MODEL,
    *,
    channels: Optional[Dict[str, Any]] = None,
    endpoints: Optional[str] = None,
    rasa_count: int = 1,
    rasa_config: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    action_timeout: float = 30,
    actions_package: str = "actions",
) -> Iterator[Servers]:
    """Runs the action server and ``rasa_count`` Rasa servers until the block ends.

    Args:
        work: folder for the databases, logs and generated config files.
        model: the trained Rasa model.
        channels: extra credentials entries besides the token REST channel.
        endpoints: endpoints.yml text; ``{actions_url}`` is replaced. Default:
            SQLite tracker store in ``work``.
        rasa_count: Rasa server processes sharing the endpoints.
        rasa_config: the config.yml the action server reads its plugin
            settings from (default: the project's).
        env: extra environment for every process.
        action_timeout: ``action_endpoint.timeout`` of the default endpoints.
        actions_package: the package the action server loads.
    """
    if not model.exists():
        raise FileNotFoundError(f"{model} is missing: run `make train` first.")
    actions_port = free_port()
    rasa_ports = [free_port() for _ in range(rasa_count)]
    tracker_db, store_db = work / "tracker.db", work / "assistant.db"
    endpoints_file = work / "endpoints.yml"
    actions_url = f"http://127.0.0.1:{actions_port}/webhook"
    endpoints_file.write_text(
        endpoints.replace("{actions_url}", actions_url) if endpoints
        else sqlite_endpoints(actions_port, tracker_db, action_timeout)
    )
    credentials = work / "credentials.yml"
    rest = "rasa_safe_hybrid.channels.rest.TokenRestInput"
    notices = (yaml.safe_load((ROOT / "credentials.yml").read_text("utf-8")).get(rest) or {}).get("notices")
    credentials.write_text(yaml.safe_dump(
        {rest: {"token": TEST_TOKEN, "notices": notices or {}}, **(channels or {})}
    ))
    process_env = {
        **os.environ, "ASSISTANT_DB_PATH": str(store_db), "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "SANIC_REQUEST_MAX_SIZE": str(MAX_BODY_BYTES), "ACTION_SERVER_TOKEN": ACTIONS_TOKEN, **(env or {}),
    }
    if rasa_config:
        process_env["ASSISTANT_RASA_CONFIG"] = str(rasa_config)
    logs = {"actions": work / "actions.log"}
    processes: Dict[str, subprocess.Popen] = {}
    pids: Dict[str, int] = {}  # kept current across restarts

    def start(name: str, command: List[str], mode: str = "wb") -> None:
        logs.setdefault(name, work / f"{name}.log")
        with open(logs[name], mode) as log:
            processes[name] = subprocess.Popen(command, cwd=ROOT, env=process_env, stdout=log,
                                               stderr=subprocess.STDOUT)
        pids[name] = processes[name].pid

    def rasa_command(port: int) -> List[str]:
        return [str(BIN / "rasa"), "run", "--enable-api", "--auth-token", TEST_TOKEN, "-i", "127.0.0.1",
                "-p", str(port), "-m", str(model), "--endpoints", str(endpoints_file),
                "--credentials", str(credentials)]

    def restart(index: int) -> None:
        name = "rasa" if index == 0 else f"rasa{index}"
        _stop(processes[name])
        start(name, rasa_command(rasa_ports[index]), mode="ab")
        wait_until_up(f"http://127.0.0.1:{rasa_ports[index]}/status?token={TEST_TOKEN}",
                       processes[name], logs[name])

    actions_command = [str(BIN / "python"), "-m", "rasa_safe_hybrid.actions.server", "--actions", actions_package,
                       "--port", str(actions_port)]

    def actions(what: str) -> None:
        if what == "kill":
            processes["actions"].kill()
            processes["actions"].wait()
            return
        start("actions", actions_command, mode="ab")
        wait_until_up(f"http://127.0.0.1:{actions_port}/health", processes["actions"], logs["actions"])

    try:
        start("actions", actions_command)
        for index, port in enumerate(rasa_ports):
            start("rasa" if index == 0 else f"rasa{index}", rasa_command(port))
        wait_until_up(f"http://127.0.0.1:{actions_port}/health", processes["actions"], logs["actions"])
        for index, port in enumerate(rasa_ports):
            name = "rasa" if index == 0 else f"rasa{index}"
            wait_until_up(f"http://127.0.0.1:{port}/status?token={TEST_TOKEN}", processes[name], logs[name])
        urls = [f"http://127.0.0.1:{port}" for port in rasa_ports]
        yield Servers(
            rasa_url=urls[0],
            actions_url=f"http://127.0.0.1:{actions_port}",
            tracker_db=tracker_db,
            store_db=store_db,
            logs=logs,
            pids=pids,
            rasa_urls=urls,
            _restart=restart,
            _actions=actions,
        )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            _stop(process)


PG = {"host": os.environ.get("DB_HOST", "127.0.0.1"), "port": int(os.environ.get("DB_PORT", 5432)),
      "user": os.environ.get("DB_USER", "postgres"), "password": os.environ.get("DB_PASSWORD", "")}
RABBIT = {"host": os.environ.get("RABBITMQ_HOST", "127.0.0.1"), "user": os.environ.get("RABBITMQ_USER", "guest"),
          "password": os.environ.get("RABBITMQ_PASSWORD", "guest")}


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()


async def rabbit_connection() -> Any:
    """A connection to the loopback RabbitMQ."""
    import aio_pika

    return await aio_pika.connect_robust(
        host=RABBIT["host"], login=RABBIT["user"], password=RABBIT["password"], timeout=10)


async def _delete_queue(queue_name: str) -> None:
    connection = await rabbit_connection()
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue_name)


@contextmanager
def running_scale_profile(work: Path, model: Path = MODEL, rasa_count: int = 2,
                          redis_port: int = 6379) -> Iterator[Dict[str, Any]]:
    """endpoints.scale.yml (PostgreSQL tracker store, Redis lock store, RabbitMQ
    broker) with ``rasa_count`` Rasa processes; its own database, Redis key prefix
    and queue, dropped afterwards. Yields ``{"servers", "db", "queue"}``."""
    run = uuid.uuid4().hex[:8]
    db, queue = f"assistant_test_{run}", f"assistant_events_{run}"
    _pg_admin(f"CREATE DATABASE {db}")
    env = {"DB_HOST": PG["host"], "DB_PORT": str(PG["port"]), "DB_NAME": db, "DB_USER": PG["user"],
           "DB_PASSWORD": PG["password"], "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port), "REDIS_DB": "0",
           "RABBITMQ_HOST": RABBIT["host"], "RABBITMQ_USER": RABBIT["user"],
           "RABBITMQ_PASSWORD": RABBIT["password"], "RABBITMQ_QUEUE": queue}
    endpoints = (ROOT / "endpoints.scale.yml").read_text().replace("${ACTION_SERVER_URL}", "{actions_url}")
    endpoints = endpoints.replace("key_prefix: assistant", f"key_prefix: assistant{run}")
    # The review page's ratings in the same PostgreSQL database, in tables of their own.
    review_db = f"postgresql://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{db}"
    channels = {REVIEW_CHANNEL: {"secret": REVIEW_SECRET, "db": review_db}}
    try:
        with running_servers(work, model, endpoints=endpoints, rasa_count=rasa_count, env=env,
                             channels=channels) as servers:
            yield {"servers": servers, "db": db, "queue": queue}
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        asyncio.run(_delete_queue(queue))


LLM_PYTHON = ROOT / ".venv-llm" / "bin" / "python"
GGUF = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
LLM_START_TIMEOUT_S = 240
WARMUP_TIMEOUT_S = 600


@dataclass
class LLMServer:
    """A llama.cpp server process that can be killed and started again on its port."""

    port: int
    log: Path
    api_key: Optional[str] = None
    process: Optional[subprocess.Popen] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> List[str]:
        command = [str(LLM_PYTHON), "-m", "llama_cpp.server", "--model", str(GGUF),
                   "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
                   "--n_ctx", "2048", "--n_threads", "2", "--seed", "0"]
        return command + (["--api_key", self.api_key] if self.api_key else [])

    def start(self) -> LLMServer:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        wait_until_up(f"{self.base_url}/models", self.process, self.log, headers, LLM_START_TIMEOUT_S)
        # The first completion of a fresh server loads and maps the weights: on a busy
        # machine it can take longer than a generation timeout, so it gets its own.
        requests.post(f"{self.base_url}/chat/completions", headers=headers, timeout=WARMUP_TIMEOUT_S,
                      json={"model": MODEL_ALIAS, "max_tokens": 1,
                            "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
        return self

    def kill(self) -> None:
        """Kills the process at once (SIGKILL), as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def running_llm_server(work: Path, api_key: Optional[str] = None) -> Iterator[LLMServer]:
    """A started server, killed when the block ends."""
    for needed, hint in ((LLM_PYTHON, "make llm-server-env"), (GGUF, "make setup")):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: run `{hint}` (make test does).")
    server = LLMServer(free_port(), work / "llm-server.log", api_key)
    try:
        yield server.start()
    finally:
        server.kill()
