"""``python -m kvstore.upstash_server`` and the package's public names."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

import kvstore.upstash_server
from kvstore.upstash_server import UpstashServer, main


def test_public_names() -> None:
    assert set(kvstore.upstash_server.__all__) == {
        "DEFAULT_MAX_REQUEST_SIZE",
        "DEFAULT_PORT",
        "STATS_PATH",
        "Fault",
        "FaultPlan",
        "ServerStats",
        "UpstashServer",
        "Usage",
        "create_app",
        "main",
    }
    for name in kvstore.upstash_server.__all__:
        assert getattr(kvstore.upstash_server, name) is not None


def test_the_command_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kvstore.upstash_server", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = [process.stdout.readline() for _ in range(3)]
        url = re.search(r"UPSTASH_REDIS_REST_URL=(\S+)", printed[1])
        token = re.search(r"UPSTASH_REDIS_REST_TOKEN=(\S+)", printed[2])
        assert url, printed
        assert token, printed
        headers = {"Authorization": f"Bearer {token[1]}"}
        reply = httpx.post(
            url[1] + "/pipeline", json=[["SET", "k", "v"], ["GET", "k"]], headers=headers
        )
        assert reply.json() == [{"result": "OK"}, {"result": "v"}]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_given_token_is_not_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original_run = UpstashServer.run

    def run_and_stop_once_started(
        self: UpstashServer, on_started: Callable[[], None] | None = None
    ) -> None:
        def started() -> None:
            assert on_started is not None
            on_started()
            assert self._server is not None
            self._server.should_exit = True

        original_run(self, started)

    monkeypatch.setattr(UpstashServer, "run", run_and_stop_once_started)
    assert main(["--port", "0", "--token", "s3cret-token", "--log-level", "warning"]) == 0
    out = capsys.readouterr().out
    assert "UPSTASH_REDIS_REST_URL=http://127.0.0.1:" in out
    assert "s3cret-token" not in out


def test_a_backing_store_that_is_down_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--backing", "redis://127.0.0.1:9/0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the server failed to start: ")
    assert "Traceback" not in err
