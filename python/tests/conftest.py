"""Shared fixtures: a real quiverd (and redis-server, and etcd for the cluster tests) on free
127.0.0.1 ports, started by the tests themselves and stopped after them.

The quiverd binary is $QUIVERD_BIN, else the workspace's target/debug/quiverd (built by
``cargo build -p quiver-server --bin quiverd``; python/test.sh builds it). A missing program
fails the test run instead of skipping it, so CI cannot pass without running these tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import quiver

REPO = Path(__file__).resolve().parents[2]


def quiverd_binary() -> str:
    path = os.environ.get("QUIVERD_BIN") or str(REPO / "target" / "debug" / "quiverd")
    if not os.access(path, os.X_OK):
        pytest.fail(f"quiverd not found at {path}: run `cargo build -p quiver-server --bin quiverd` or set QUIVERD_BIN")
    return path


class Quiverd:
    """A quiverd process in memory on an ephemeral port."""

    def __init__(self, args: Optional[List[str]] = None, size: str = "256MiB"):
        cmd = [quiverd_binary(), "--listen", "127.0.0.1:0", "--memory", "--size", size, "--workers", "2"]
        env = dict(os.environ, QUIVER_LOG="warn")
        env.pop("QUIVER_AUTH_TOKEN", None)
        self.proc = subprocess.Popen(cmd + (args or []), stdout=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"quiverd printed {line!r} instead of its address")
        self.addr = line[len("listening on ") :]

    def kill(self) -> None:
        """SIGKILL: no goodbye (a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on a free port, nothing saved to disk."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class EtcdServer:
    """Debian's etcd (etcd-server) on two free ports, its data in a temporary directory."""

    def __init__(self):
        exe = shutil.which("etcd")
        if exe is None:
            pytest.fail("etcd is not installed (apt-get install etcd-server; .ci/run does it)")
        self.dir = tempfile.TemporaryDirectory(prefix="quiver-etcd-")
        client, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.proc = subprocess.Popen(
            [exe, "--name", "test", "--data-dir", self.dir.name,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"test={peer_url}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if b"true" in r.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("etcd did not become healthy within 20 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.dir.cleanup()


@pytest.fixture(scope="session")
def quiverd() -> Iterator[Quiverd]:
    server = Quiverd()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture()
def client(quiverd: Quiverd) -> Iterator[quiver.Client]:
    c = quiver.connect(quiverd.addr)
    yield c
    c.close()


@pytest.fixture(params=["remote", "embedded"])
def store(request, quiverd: Quiverd, tmp_path) -> Iterator[quiver.Client]:
    """Each test runs against quiverd and against an embedded store in a file."""
    if request.param == "remote":
        c = quiver.connect(quiverd.addr)
    else:
        c = quiver.open(str(tmp_path / "embedded.db"), size="64MiB")
    yield c
    c.close()


_counter = [0]


@pytest.fixture()
def group_name() -> str:
    """A group name no other test uses (the session's quiverd is shared)."""
    _counter[0] += 1
    return f"t{os.getpid()}_{_counter[0]}"
