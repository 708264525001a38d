"""`edge-perception ingest-server`: the cloud side that receives the cars' batches.

    GET  /healthz                    200 {"status": "ok"}
    PUT  /v1/batches/<batch_id>      Authorization: Bearer <vehicle token>
                                     X-Content-SHA256: <hex of the body>
                                     body: a batch archive (see batch.py)

Answers 200 {"status": "stored"} the first time and 200 {"status": "duplicate"} for a batch id
it already holds. Refusals write nothing: 401 no/malformed token, 403 unknown token or another
vehicle's batch, 411 no length, 413 body or unpacked size over the limit, 400 corrupt archive
or unsafe member names, 422 checksum or manifest mismatch.

A batch is unpacked into `<root>/tmp/`, every file fsync'd, then renamed to
`<root>/batches/<vehicle>/<batch_id>/` in one step; the rename fails if that folder exists,
which is the de-duplication (also under concurrent retries). With `--s3-bucket` each stored
batch is also put to an S3-compatible bucket (boto3 must be installed; credentials and
endpoint from the usual AWS_* environment). The S3 copy is a best-effort mirror: a failure is
counted and logged, the local copy stays the record. (Not exercised by the tests: no S3
server here.)

Tokens file: one `vehicle_id token` pair per line; `#` starts a comment.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge_perception.learn.batch import BATCH_ID_RE, BatchError, parse_batch
from edge_perception.learn.fsutil import fsync_dir

__all__ = ["IngestConfig", "IngestServer", "QuietHTTPServer", "read_tokens", "get_args_parser",
           "main"]

_PATH_RE = re.compile(r"^/v1/batches/([^/?#]+)$")
_VEHICLE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def read_tokens(path: str | os.PathLike[str]) -> dict[str, str]:
    """token → vehicle id, from lines `vehicle_id token`."""
    tokens: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not _VEHICLE_RE.match(parts[0]) or len(parts[1]) < 16:
            raise ValueError(f"{path}:{n}: expected 'vehicle_id token' (token >= 16 chars)")
        tokens[parts[1]] = parts[0]
    if not tokens:
        raise ValueError(f"{path}: no tokens")
    return tokens


@dataclass(frozen=True)
class IngestConfig:
    root: Path
    tokens: dict[str, str]
    max_body_bytes: int = 64 << 20
    max_unpacked_bytes: int = 256 << 20
    s3_bucket: str | None = None
    s3_prefix: str = ""
    verbose: bool = False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.config.verbose:
            super().log_message(format, *args)

    def _reply(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
        body = json.dumps(payload).encode()
        if status >= 400:
            self.server.count("rejected")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="ingest"')
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.do_PUT()

    def do_PUT(self) -> None:
        m = _PATH_RE.match(self.path)
        if not m:
            return self._reply(404, {"error": "not found"}, close=True)
        cfg = self.server.config
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._reply(401, {"error": "bearer token required"}, close=True)
        vehicle = self.server.vehicle_for(auth[7:].strip())
        if vehicle is None:
            return self._reply(403, {"error": "unknown token"}, close=True)
        batch_id = m.group(1)
        if not BATCH_ID_RE.match(batch_id):
            return self._reply(400, {"error": "bad batch id"}, close=True)
        try:
            length = int(self.headers["Content-Length"])
        except (TypeError, ValueError):
            return self._reply(411, {"error": "Content-Length required"}, close=True)
        if length < 0 or length > cfg.max_body_bytes:
            if 0 < length <= 4 * cfg.max_body_bytes:  # drain, so the client sees the answer
                left = length
                while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
                    left -= len(chunk)
            return self._reply(413, {"error": f"body over {cfg.max_body_bytes} B"}, close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            return self._reply(400, {"error": "short body"}, close=True)
        digest = self.headers.get("X-Content-SHA256", "")
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), digest.lower()):
            return self._reply(422, {"error": "X-Content-SHA256 missing or wrong"})
        final = cfg.root / "batches" / vehicle / batch_id
        if final.exists():
            self.server.count("duplicate")
            return self._reply(200, {"status": "duplicate", "batch_id": batch_id})
        try:
            parsed = parse_batch(body, batch_id, max_unpacked=cfg.max_unpacked_bytes)
        except BatchError as exc:
            return self._reply(exc.status, {"error": str(exc)})
        if parsed.manifest.get("vehicle_id") != vehicle:
            return self._reply(403, {"error": "batch belongs to another vehicle"})
        status = self.server.store(vehicle, batch_id, parsed.manifest, parsed.files)
        self._reply(200, {"status": status, "batch_id": batch_id,
                          "samples": len(parsed.manifest["samples"])})


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a peer hangs up."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a peer hanging up is not news


class _Server(QuietHTTPServer):
    def __init__(self, addr: tuple[str, int], config: IngestConfig) -> None:
        self.config = config
        self.counters = {"stored": 0, "duplicate": 0, "rejected": 0, "s3_failed": 0}
        self._lock = threading.Lock()
        self._s3: Any = None
        if config.s3_bucket:
            import boto3  # optional dependency, only when a bucket is configured

            self._s3 = boto3.client("s3")
        tmp = config.root / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # half-written batches of a crashed run
        tmp.mkdir(parents=True, exist_ok=True)
        (config.root / "batches").mkdir(parents=True, exist_ok=True)
        super().__init__(addr, _Handler)

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def vehicle_for(self, token: str) -> str | None:
        found = None
        for known, vehicle in self.config.tokens.items():  # constant time per token
            if hmac.compare_digest(known.encode(), token.encode()):
                found = vehicle
        return found

    def store(self, vehicle: str, batch_id: str, manifest: dict[str, Any],
              files: dict[str, bytes]) -> str:
        root = self.config.root
        tmp = root / "tmp" / uuid.uuid4().hex
        (tmp / "samples").mkdir(parents=True)
        try:
            for name, data in files.items():
                _write_synced(tmp / name, data)
            _write_synced(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
            fsync_dir(tmp / "samples")
            fsync_dir(tmp)
            parent = root / "batches" / vehicle
            parent.mkdir(exist_ok=True)
            try:
                os.rename(tmp, parent / batch_id)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    self.count("duplicate")
                    return "duplicate"
                raise
            fsync_dir(parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if self._s3 is not None:  # a mirror: the local copy is the record of receipt
            try:
                for name, data in list(files.items()) + [
                        ("manifest.json", json.dumps(manifest, indent=1).encode())]:
                    key = f"{self.config.s3_prefix}{vehicle}/{batch_id}/{name}"
                    self._s3.put_object(Bucket=self.config.s3_bucket, Key=key, Body=data)
            except Exception as exc:  # noqa: BLE001 - counted and logged; the batch is stored
                self.count("s3_failed")
                print(f"ingest-server: S3 copy of {batch_id} failed: {exc}", file=sys.stderr)
        self.count("stored")
        return "stored"


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class IngestServer:
    """The server on a background thread (tests, benchmarks); `url` once started."""

    def __init__(self, config: IngestConfig, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.httpd = _Server((host, port), config)
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.httpd.counters)

    def start(self) -> IngestServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.05}, name="ingest-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> IngestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("--root", required=True, help="folder that receives the batches")
    p.add_argument("--tokens", required=True, help="file of 'vehicle_id token' lines")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    p.add_argument("--certfile", help="TLS certificate (PEM); serve HTTPS when given")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--max-body-mb", type=float, default=64.0)
    p.add_argument("--max-unpacked-mb", type=float, default=256.0)
    p.add_argument("--s3-bucket", help="also store each batch in this S3 bucket (boto3)")
    p.add_argument("--s3-prefix", default="ingest/")
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p


def main(args: argparse.Namespace) -> int:
    config = IngestConfig(root=Path(args.root), tokens=read_tokens(args.tokens),
                          max_body_bytes=int(args.max_body_mb * 2**20),
                          max_unpacked_bytes=int(args.max_unpacked_mb * 2**20),
                          s3_bucket=args.s3_bucket, s3_prefix=args.s3_prefix,
                          verbose=args.verbose)
    ctx = None
    if args.certfile:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.certfile, args.keyfile)
    server = IngestServer(config, args.host, args.port, ctx)
    print(f"ingest-server listening on {server.url} root={config.root}", flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
