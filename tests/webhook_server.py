"""A real local HTTP server that speaks the Slack incoming-webhook protocol, for tests.

It accepts ``POST`` with a JSON body, answers ``200 ok`` like Slack does, and records every
request. ``fail_next(n, status)`` scripts failures (e.g. 500s) for the next n requests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class WebhookServer:
    host: str
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/services/T000TEST/B000TEST/testsecret"

    def connection_json(self) -> str:
        """An Airflow ``slackwebhook`` connection pointing at this server."""
        return json.dumps({"conn_type": "slackwebhook", "password": self.url})

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def texts(self) -> list[str]:
        return [str(body.get("text", "")) for body in self.received]


def _handler(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with server._lock:
                server.attempts += 1
                status = server._failures.pop(0) if server._failures else 200
                if status == 200:
                    server.received.append(json.loads(raw or b"{}"))
            body = b"ok" if status == 200 else b"internal_error"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running_webhook_server(port: int = 0) -> Iterator[WebhookServer]:
    """Start a webhook server on 127.0.0.1 (``port`` 0 = any free port); stop it on exit."""
    state = WebhookServer("127.0.0.1", port)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
