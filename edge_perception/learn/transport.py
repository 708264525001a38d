"""How a batch leaves the car: a `Transport` protocol and its HTTP(S) implementation.

The HTTP transport PUTs `<base>/v1/batches/<batch_id>` with a per-vehicle bearer token and the
body's sha256, verifies TLS by default (`ca_file` for a private CA), and streams the body
through an optional token bucket so uploads respect a bandwidth cap.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Transport", "TransportError", "SendResult", "HttpTransport", "TokenBucket",
           "PERMANENT_STATUSES"]

# Statuses that mean "this batch will never be accepted": retrying the same bytes is useless.
PERMANENT_STATUSES = frozenset({400, 413, 422})


class TransportError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status not in PERMANENT_STATUSES

    @property
    def connection(self) -> bool:
        """No HTTP answer at all (refused, reset, timed out)."""
        return self.status is None


@dataclass(frozen=True)
class SendResult:
    status: int
    duplicate: bool


class Transport(Protocol):
    def health(self) -> bool:
        """True when the endpoint answers its health check."""
        ...

    def send(self, batch_id: str, body: bytes) -> SendResult:
        """Deliver one batch; idempotent per batch_id; raises TransportError."""
        ...


class TokenBucket:
    """Bandwidth cap: `consume(n)` blocks until n bytes of budget are available."""

    def __init__(self, rate_bytes_s: float, burst_bytes: int | None = None) -> None:
        if rate_bytes_s <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate_bytes_s)
        self.burst = float(burst_bytes if burst_bytes is not None else max(rate_bytes_s, 65536))
        self._tokens = self.burst
        self._t = time.monotonic()
        self._lock = threading.Lock()

    def consume(self, n: int, stop: threading.Event | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
            self._t = now
            self._tokens -= n  # may go negative: the debt is waited off below
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)


class HttpTransport:
    """HTTPS (or plain HTTP for loopback tests) to an `edge-perception ingest-server`."""

    def __init__(self, base_url: str, token: str, *, ca_file: str | None = None,
                 verify: bool = True, timeout_s: float = 30.0,
                 bucket: TokenBucket | None = None, chunk_bytes: int = 16384) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"endpoint must be http(s)://host[:port][/path], got {base_url!r}")
        if not token:
            raise ValueError("a bearer token is required")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port
        self.prefix = url.path.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.bucket = bucket
        self.chunk_bytes = chunk_bytes
        self.stop = threading.Event()  # set to cut a throttled send short
        self._ssl: ssl.SSLContext | None = None
        if self.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=ca_file)
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def health(self) -> bool:
        conn = self._conn(min(self.timeout_s, 5.0))
        try:
            conn.request("GET", f"{self.prefix}/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _chunks(self, body: bytes) -> Iterator[bytes]:
        view = memoryview(body)
        for i in range(0, len(body), self.chunk_bytes):
            chunk = view[i:i + self.chunk_bytes]
            if self.bucket is not None:
                self.bucket.consume(len(chunk), self.stop)
            yield bytes(chunk)

    def send(self, batch_id: str, body: bytes) -> SendResult:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/gzip",
            "Content-Length": str(len(body)),
            "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
        }
        conn = self._conn(self.timeout_s)
        try:
            conn.request("PUT", f"{self.prefix}/v1/batches/{batch_id}", body=self._chunks(body),
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read(65536)
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if resp.status not in (200, 201):
            raise TransportError(f"HTTP {resp.status}: {data[:200]!r}", resp.status)
        try:
            duplicate = json.loads(data).get("status") == "duplicate"
        except ValueError:
            duplicate = False
        return SendResult(status=resp.status, duplicate=duplicate)
