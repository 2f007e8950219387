"""`hygie serve` as it runs: its worker's app factory, and a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'hygie.db'}",
            "HYGIE_VAR_DIR": str(tmp_path / "var"), "HYGIE_CHANNELS_AUTOSTART": "0"}


def test_the_workers_app_is_built_then_frozen_out_of_the_collectors_reach(
        tmp_path: Path) -> None:
    """Its own process: freezing would keep this test process's garbage forever."""
    code = ("import gc; from hygie.app import serve_app; app = serve_app(); "
            "print(gc.get_freeze_count(), type(app).__name__)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    assert int(out[0]) > 10_000 and out[1] == "Starlette"


def test_hygie_serve_answers_over_http(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "hygie", "serve", "--host", "127.0.0.1", "--port",
             str(port)], env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    reply = httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(log.read_text()) from None
                    time.sleep(0.2)
            assert reply.status_code == 200
            assert reply.json()["resourceType"] == "CapabilityStatement"
        finally:
            server.terminate()
            server.wait(timeout=30)
