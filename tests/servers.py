"""Local servers for the tests and the scale benchmarks: a free localhost port, a process that serves until a
block ends, and a private mongod (FiftyOne's bundled binary) with its own data folder, so a user's databases
are never touched."""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(command: list[str], log_path: Path, ready: Callable[[], bool], what: str, start_timeout: float,
            stop_timeout: float, env: dict | None = None):
    """``command`` running, its output in ``log_path``, until the block ends; RuntimeError naming the log when
    it exits or is not ``ready()`` within ``start_timeout`` seconds. Stopping waits ``stop_timeout`` seconds
    for it to finish (a large database takes a while to flush), then kills it."""
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout
            while not ready():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start; see {log_path}")
                time.sleep(0.2)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                server.kill()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def running_mongod(exe: Path, dbpath: Path, port: int, log_path: Path, start_timeout: float = 120.0):
    """``exe`` (a mongod) serving ``dbpath`` on ``port`` until the block ends."""
    command = [str(exe), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket"]
    with serving(command, log_path, lambda: _accepts(port), "mongod", start_timeout, stop_timeout=300):
        yield
