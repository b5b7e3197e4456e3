"""Starts llama.cpp's OpenAI-compatible server (llama-cpp-python[server], in
its own venv .venv-llm) on a loopback port, serving the default GGUF file.

Used by the remote-backend tests; `make llm-server` runs the same server in
the foreground.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional


from benchmarks.servers import ROOT, free_port, wait_until_up

LLM_PYTHON = ROOT / ".venv-llm" / "bin" / "python"
GGUF = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
START_TIMEOUT_S = 120


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

    def start(self) -> "LLMServer":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        wait_until_up(f"{self.base_url}/models", self.process, self.log, headers, START_TIMEOUT_S)
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
