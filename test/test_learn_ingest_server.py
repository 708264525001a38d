"""The ingest server, for real on 127.0.0.1: storage, de-duplication and every refusal."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from edge_perception.learn.batch import build_batch
from edge_perception.learn.ingest_server import IngestConfig, IngestServer, read_tokens
from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport, TransportError

TOKEN = "vehicle-7-token-abcdefghijklmnop"
OTHER = "vehicle-8-token-abcdefghijklmnop"
BATCH = "ab" * 32


def _samples(tmp_path: Path, n: int = 3):
    with SampleStore(tmp_path / "car") as store:
        for i in range(n):
            store.put(Sample(jpeg=b"\xff\xd8" + bytes(range(256)) * 4,
                             detections=(SampleDetection(0, "pothole", 0.3, (1, 2, 3, 4)),),
                             model_version="m@1", camera_info={"width": 448}, stamp=float(i),
                             reason=Reason.LOST_TRACK, uid=f"{i:032x}"))
        return store.lease(n)


@pytest.fixture
def server(tmp_path):
    cfg = IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car7", OTHER: "car8"},
                       max_body_bytes=200_000, max_unpacked_bytes=400_000)
    with IngestServer(cfg) as srv:
        yield srv


def _put(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("PUT", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"{}")


def _headers(body: bytes, token: str | None = TOKEN) -> dict[str, str]:
    h = {"X-Content-SHA256": hashlib.sha256(body).hexdigest(), "Content-Length": str(len(body))}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return h


def _nothing_written(root: Path) -> bool:
    return not any((root / "batches").rglob("*")) and not any((root / "tmp").iterdir())


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_store_then_duplicate(tmp_path, server):
    batch = _samples(tmp_path)
    bid = batch[0].batch_id
    body = build_batch(bid, "car7", batch)
    assert build_batch(bid, "car7", batch) == body  # deterministic bytes
    t = HttpTransport(server.url, TOKEN)
    assert t.health()
    first = t.send(bid, body)
    assert first.status == 200 and not first.duplicate
    again = t.send(bid, body)
    assert again.duplicate
    stored = tmp_path / "cloud" / "batches" / "car7" / bid
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["samples"] == [s.uid for s in batch]
    for s in batch:
        assert (stored / "samples" / f"{s.uid}.jpg").read_bytes() == s.jpeg
        meta = json.loads((stored / "samples" / f"{s.uid}.json").read_text())
        assert meta["reason"] == "lost_track" and meta["detections"][0]["score"] == 0.3
    assert server.counters["stored"] == 1 and server.counters["duplicate"] == 1
    assert not any((tmp_path / "cloud" / "tmp").iterdir())


def test_auth_refusals(tmp_path, server):
    batch = _samples(tmp_path)
    bid = batch[0].batch_id
    body = build_batch(bid, "car7", batch)
    path = f"/v1/batches/{bid}"
    assert _put(server.url, path, body, _headers(body, None))[0] == 401
    assert _put(server.url, path, body, _headers(body, "wrong-token-0000000000000"))[0] == 403
    assert _put(server.url, path, body, _headers(body, OTHER))[0] == 403  # car7's batch
    with pytest.raises(TransportError) as err:
        HttpTransport(server.url, "nope-nope-nope-nope").send(bid, body)
    assert err.value.status == 403 and err.value.retryable
    assert _nothing_written(tmp_path / "cloud")


def test_oversized_body_413(tmp_path, server):
    body = b"\0" * 300_000
    status, _ = _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))
    assert status == 413
    assert _nothing_written(tmp_path / "cloud")


def test_unpacked_size_limit_413(tmp_path, server):
    body = _tar([_member("manifest.json", b"{}"), _member(f"samples/{0:032x}.jpg",
                                                          b"\0" * 500_000)])
    assert len(body) < 200_000  # compresses well: only the unpacked size is over the limit
    assert _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))[0] == 413
    assert _nothing_written(tmp_path / "cloud")


@pytest.mark.parametrize("body", [b"not a gzip at all", gzip.compress(b"gzip but not tar" * 40)])
def test_corrupt_archive_400(tmp_path, server, body):
    assert _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))[0] == 400
    assert _nothing_written(tmp_path / "cloud")


def test_truncated_archive_400(tmp_path, server):
    batch = _samples(tmp_path)
    body = build_batch(batch[0].batch_id, "car7", batch)[:-40]
    status, _ = _put(server.url, f"/v1/batches/{batch[0].batch_id}", body, _headers(body))
    assert status == 400
    assert _nothing_written(tmp_path / "cloud")


def test_checksum_mismatches_422(tmp_path, server):
    batch = _samples(tmp_path)
    bid = batch[0].batch_id
    body = build_batch(bid, "car7", batch)
    bad_header = dict(_headers(body), **{"X-Content-SHA256": "0" * 64})
    assert _put(server.url, f"/v1/batches/{bid}", body, bad_header)[0] == 422
    # A member whose bytes do not match the manifest's sha256.
    files = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tf:
        for m in tf.getmembers():
            files[m.name] = tf.extractfile(m).read()
    name = f"samples/{batch[0].uid}.jpg"
    files[name] = files[name][:-1] + b"X"
    tampered = _tar([_member(n, d) for n, d in files.items()])
    assert _put(server.url, f"/v1/batches/{bid}", tampered, _headers(tampered))[0] == 422
    # A manifest for another batch id.
    assert _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))[0] == 422
    assert _nothing_written(tmp_path / "cloud")


@pytest.mark.parametrize("name", ["../evil.jpg", "/etc/evil", "samples/../../evil",
                                  f"samples/{0:032x}.sh", "samples\\..\\evil"])
def test_path_tricks_400(tmp_path, server, name):
    body = _tar([_member("manifest.json", b"{}"), _member(name, b"payload")])
    assert _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))[0] == 400
    assert _nothing_written(tmp_path / "cloud")
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "cloud" / "evil").exists()


def test_links_and_bad_ids_400(tmp_path, server):
    link = tarfile.TarInfo(f"samples/{0:032x}.jpg")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    body = _tar([_member("manifest.json", b"{}"), (link, None)])
    assert _put(server.url, f"/v1/batches/{BATCH}", body, _headers(body))[0] == 400
    assert _put(server.url, "/v1/batches/..%2F..%2Fx", body, _headers(body))[0] == 400
    assert _nothing_written(tmp_path / "cloud")


def test_cli_subprocess_health_and_upload(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# vehicle token\ncar7 {TOKEN}\n")
    assert read_tokens(tokens) == {TOKEN: "car7"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_perception.cli", "ingest-server",
                             "--root", str(tmp_path / "cloud"), "--tokens", str(tokens),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split()[3]
        t = HttpTransport(url, TOKEN)
        assert t.health()
        batch = _samples(tmp_path)
        assert not t.send(batch[0].batch_id, build_batch(batch[0].batch_id, "car7",
                                                         batch)).duplicate
    finally:
        proc.terminate()
        proc.wait(10)
    assert (tmp_path / "cloud" / "batches" / "car7" / batch[0].batch_id).is_dir()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_verifies_certificates(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    cfg = IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car7"})
    with IngestServer(cfg, ssl_context=ctx) as srv:
        assert srv.url.startswith("https://")
        batch = _samples(tmp_path)
        body = build_batch(batch[0].batch_id, "car7", batch)
        untrusted = HttpTransport(srv.url, TOKEN, timeout_s=5)  # verify on by default
        assert not untrusted.health()
        with pytest.raises(TransportError) as err:
            untrusted.send(batch[0].batch_id, body)
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
        trusted = HttpTransport(srv.url, TOKEN, ca_file=str(cert), timeout_s=5)
        assert trusted.health()
        assert trusted.send(batch[0].batch_id, body).status == 200
        time.sleep(0.05)
    assert (tmp_path / "cloud" / "batches" / "car7" / batch[0].batch_id).is_dir()
