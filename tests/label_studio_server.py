"""A real Label Studio server for the tests (label-studio==1.23.2 in its own virtualenv,
named by ``TSMETRICS_LABEL_STUDIO_VENV``), started as ops would start a test instance
(``label-studio start --username --password --user-token --enable-legacy-api-token``, see
label_studio/server.py ``_create_user`` in 1.23.2); the personal access token is then created
through the API (``POST /api/token/``)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LS_VENV = os.environ.get("TSMETRICS_LABEL_STUDIO_VENV")
USER = "ops@example.com"
PASSWORD = "tsm-Test-Passw0rd"
LEGACY_TOKEN = "tsmlegacy" + uuid.uuid4().hex[:16]


class LabelStudioStartError(RuntimeError):
    """The server did not start (the message has the end of its log)."""


@dataclass(frozen=True)
class Server:
    url: str
    legacy_token: str = field(repr=False)
    personal_access_token: str = field(repr=False)
    startup_s: float = 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_label_studio(data_dir: Path) -> Iterator[Server]:
    """Start label-studio on a free port with ``data_dir``; stop it on exit."""
    assert LS_VENV is not None
    exe = Path(LS_VENV) / "bin" / "label-studio"
    if not exe.exists():
        raise LabelStudioStartError(f"TSMETRICS_LABEL_STUDIO_VENV={LS_VENV}: no {exe}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LATEST_VERSION_CHECK": "false",  # no call to PyPI at start
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
    }
    log_path = data_dir / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(exe),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--user-token",
                LEGACY_TOKEN,
                "--enable-legacy-api-token",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=data_dir,
        )
    try:
        deadline = started + 600  # first start runs every migration on SQLite: minutes
        while True:
            if process.poll() is not None:
                raise LabelStudioStartError(
                    f"label-studio exited ({process.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LabelStudioStartError(
                    f"label-studio not healthy after 600 s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(1)
        startup = time.monotonic() - started
        # the personal access token, created as a user does from Account & Settings
        reply = httpx.post(
            f"{url}/api/token/", headers={"Authorization": f"Token {LEGACY_TOKEN}"}, timeout=30
        )
        assert reply.status_code == 201, reply.text
        yield Server(url, LEGACY_TOKEN, reply.json()["token"], startup)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
