"""An OpenAI endpoint in front of the stand-in whose answers wait for a gate: a request is
provably in flight between `arrived` and `open()`, so tests can pause, kill or delete around it."""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.standin.server import StandinServer


class _GatedHandler(BaseHTTPRequestHandler):
    """Holds every request until the gate opens, then forwards it to the stand-in."""

    server: "GatedUpstream"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.holds(body):
            self.server.arrived.set()
            self.server.gate.wait(timeout=60)
        upstream = httpx.post(
            self.server.target + self.path,
            content=body,
            headers={"content-type": self.headers.get("content-type", "application/json")},
            timeout=30,
        )
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GatedUpstream(ThreadingHTTPServer):
    """An OpenAI endpoint in front of the stand-in whose answers wait for `open()`: a request
    is provably in flight between `arrived` and `open()`."""

    daemon_threads = True

    def __init__(self, standin: StandinServer, holds: Callable[[bytes], bool] = bool) -> None:
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        # Which requests wait at the gate (by body); the others pass straight through.
        self.holds = holds
        self.target = standin.base_url.removesuffix("/v1")
        self.arrived = threading.Event()
        self.gate = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> "GatedUpstream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
