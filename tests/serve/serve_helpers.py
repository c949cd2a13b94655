"""Helpers of the service tests: the bearer token, free ports and the real server
(``metarec serve`` under uvicorn) in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "test-token"
# The small generated data set the test runs are trained on, and the config.toml naming it.
SMALL = {"num_users": 120, "num_items": 80, "num_ratings": 4000, "seed": 3}
CONFIG_TOML = """[data]
dataset = "synthetic"

[data.options]
num_users = 120
num_items = 80
num_ratings = 4000
seed = 3
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``metarec serve`` in a subprocess on 127.0.0.1."""

    def __init__(self, run_dir: Path, db_url: str | None = None) -> None:
        self.run_dir, self.db_url = run_dir, db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = run_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Server:
        command = [sys.executable, "-m", "metarec", "serve", str(self.run_dir),
                   "--port", str(self.port)]
        if self.db_url:
            command += ["--db", self.db_url]
        env = {**os.environ, "METAREC_TOKEN": TOKEN}
        self.process = subprocess.Popen(command, env=env, stdout=self.log.open("wb"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
