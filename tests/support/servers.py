"""Throwaway Redis servers on loopback ports: a private one, or a 3-master cluster.

Each starts from ``redis-server`` with nothing on disk and is stopped when its context ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def _free_port_block(count: int, first: int) -> int:
    """A base port such that base..base+count-1 and their cluster bus ports (+10000) are free."""
    for base in range(first, first + 2000, 10):
        ports = [p for i in range(count) for p in (base + i, base + i + 10000)]
        if all(_is_free(p) for p in ports):
            return base
    raise RuntimeError("no free loopback ports for a Redis server")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True
    ).stdout


def _pong(port: int) -> bool:
    try:
        return _cli(port, "PING").strip() == "PONG"
    except subprocess.CalledProcessError:
        return False


def _wait(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def _servers(ports: list[int], *extra: str) -> Iterator[None]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed to start a Redis server")
    workdir = Path(tempfile.mkdtemp(prefix="kvstore-redis-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(node_dir), *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        _wait(lambda: all(_pong(p) for p in ports), "Redis servers to start")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis server; yields its URL. Nothing else talks to it."""
    port = _free_port_block(1, first=16000)
    with _servers([port]):
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[list[tuple[str, int]]]:
    """A cluster of ``masters`` primaries (no replicas); yields their (host, port) pairs."""
    base = _free_port_block(masters, first=17000)
    ports = [base + i for i in range(masters)]
    cluster_options = (
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000",
    )  # fmt: skip
    with _servers(ports, *cluster_options):
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True,
        )  # fmt: skip
        _wait(
            lambda: all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in ports),
            "the cluster to agree on its slots",
        )
        yield [("127.0.0.1", p) for p in ports]
