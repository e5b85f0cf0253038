"""``kvstore studio``, run for real in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KVSTORE = Path(sys.executable).with_name("kvstore")


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KVSTORE_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kvstore_studio_serves_the_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    demo = subprocess.run(
        [str(KVSTORE), "demo"], cwd=tmp_path, env=env(), capture_output=True, check=False
    )
    assert demo.returncode == 0, demo.stderr
    assert b"kvstore studio" in demo.stderr  # the demo points at it
    port = free_port()
    process = subprocess.Popen(
        [str(KVSTORE), "studio", "--port", str(port)],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        page = None
        for _ in range(200):
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/thread?id=alice-weather")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert page is not None, "the studio did not start"
        assert page.status_code == 200
        assert "get_weather" in page.text
        # The same URL default as the other commands: the local file the demo wrote.
        assert ".kvstore/kvstore.aof" in page.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"open http://127.0.0.1:{port}/" in out.decode()
    assert b"Traceback" not in err


def test_beyond_loopback_a_token_is_required(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(KVSTORE), "studio", "--url", "memory://", "--host", "0.0.0.0"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "error: serving on 0.0.0.0 makes the studio reachable from other machines: "
        "give it a --token"
    ]


def test_an_unknown_url_scheme_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvstore.studio", "--url", "mongodb://:pw@host/db"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == b"error: not a store URL: 'mongodb'\n"


def test_a_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "from kvstore.cli import main\n"
        "sys.exit(main(['studio', '--url', 'memory://']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env(), capture_output=True, check=False
    )
    assert result.returncode == 1
    assert 'pip install "kvstore[studio]"' in result.stderr.decode()
