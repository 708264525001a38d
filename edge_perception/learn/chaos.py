"""A fault-injecting HTTP proxy for exercising the uploader against a real ingest server.

Each upload request (PUT/POST) takes the next action from `plan` (then `default`):

    "pass"          forward, relay the answer
    "503"           answer 503 without forwarding (any 3-digit status works)
    "drop_before"   close the connection without forwarding (server never saw it)
    "drop_after"    forward, then close without answering (the server stored it, the car
                    never hears so: the lost-response case that idempotent batch ids exist for)
    "delay:<s>"     wait <s> seconds, then forward and answer (slow server / client timeout)

Health checks are forwarded unless `down` is set, in which case every connection is closed.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from .ingest_server import QuietHTTPServer

__all__ = ["FaultProxy"]


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.close()  # nothing is written: the client sees a closed connection

    def do_GET(self) -> None:
        if self.server.down:
            return self._drop()
        try:
            self._relay(*self._forward(None))
        except OSError:
            self._drop()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.down:
            return self._drop()
        action = self.server.next_action()
        self.server.log.append(action)
        try:
            if action == "drop_before":
                return self._drop()
            if action.isdigit():
                return self._relay(int(action), [], b'{"error": "injected"}')
            if action.startswith("delay:"):
                time.sleep(float(action[6:]))
            answer = self._forward(body)
            if action == "drop_after":
                return self._drop()
            self._relay(*answer)
        except OSError:
            self._drop()

    do_POST = do_PUT


class _ProxyServer(QuietHTTPServer):
    def __init__(self, upstream: str, plan: list[str], default: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.plan: deque[str] = deque(plan)
        self.default = default
        self.down = False
        self.log: list[str] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def next_action(self) -> str:
        with self._lock:
            return self.plan.popleft() if self.plan else self.default


class FaultProxy:
    def __init__(self, upstream: str, plan: list[str] | None = None,
                 default: str = "pass") -> None:
        self.httpd = _ProxyServer(upstream, list(plan or []), default)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def log(self) -> list[str]:
        return self.httpd.log

    def set_down(self, down: bool) -> None:
        self.httpd.down = down

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
