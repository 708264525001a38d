"""The upload batch format: a gzip'd tar of `manifest.json` plus one JPEG and one JSON per sample.

    manifest.json            {"format": 1, "batch_id", "vehicle_id", "samples": [uid, ...],
                              "files": {name: {"sha256": hex, "size": int}}}
    samples/<uid>.jpg        the blurred frame
    samples/<uid>.json       Sample.meta(): detections, model version, CameraInfo, stamp, ...

Archives are deterministic (zero mtimes, sorted members), so a re-sent batch is byte-identical.
`parse_batch` is the server's strict reader: only regular files with expected names, sizes
bounded before anything is decompressed into memory, every sha256 checked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from typing import Any

from edge_perception.learn.store import StoredSample

__all__ = ["BatchError", "ParsedBatch", "build_batch", "parse_batch", "BATCH_ID_RE",
           "MANIFEST"]

MANIFEST = "manifest.json"
BATCH_ID_RE = re.compile(r"^[0-9a-f]{16,64}$")
_MEMBER_RE = re.compile(r"^samples/[0-9a-f]{8,64}\.(jpg|json)$")


class BatchError(Exception):
    """A batch the server must refuse; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ParsedBatch:
    manifest: dict[str, Any]
    files: dict[str, bytes]


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tf.addfile(info, io.BytesIO(data))


def build_batch(batch_id: str, vehicle_id: str, samples: list[StoredSample]) -> bytes:
    files: dict[str, bytes] = {}
    for s in samples:
        files[f"samples/{s.uid}.jpg"] = s.jpeg
        files[f"samples/{s.uid}.json"] = json.dumps(s.meta, sort_keys=True).encode()
    manifest = {
        "format": 1,
        "batch_id": batch_id,
        "vehicle_id": vehicle_id,
        "samples": [s.uid for s in samples],
        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                  for n, d in sorted(files.items())},
    }
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            _add(tf, MANIFEST, json.dumps(manifest, sort_keys=True, indent=1).encode())
            for name in sorted(files):
                _add(tf, name, files[name])
    return raw.getvalue()


def parse_batch(body: bytes, batch_id: str, max_unpacked: int = 256 << 20,
                max_members: int = 20000) -> ParsedBatch:
    """Check and unpack an uploaded batch entirely in memory; raises BatchError."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tf:
            while (info := tf.next()) is not None:
                name = info.name
                if (name.startswith("/") or "\\" in name or ".." in name.split("/")
                        or not (name == MANIFEST or _MEMBER_RE.match(name))):
                    raise BatchError(400, f"unsafe or unexpected member name {name!r}")
                if not info.isreg():
                    raise BatchError(400, f"member {name!r} is not a regular file")
                if name in files:
                    raise BatchError(400, f"member {name!r} appears twice")
                total += info.size
                if total > max_unpacked or len(files) >= max_members:
                    raise BatchError(413, "batch unpacks to more than the server accepts")
                f = tf.extractfile(info)
                assert f is not None
                files[name] = f.read()
    except BatchError:
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise BatchError(400, f"corrupt archive: {exc}") from None
    if MANIFEST not in files:
        raise BatchError(400, "no manifest.json")
    try:
        manifest = json.loads(files.pop(MANIFEST))
        listed = manifest["files"]
        if not isinstance(listed, dict) or not isinstance(manifest["samples"], list):
            raise TypeError("files/samples have the wrong type")
    except (ValueError, KeyError, TypeError) as exc:
        raise BatchError(400, f"bad manifest: {exc}") from None
    if manifest.get("batch_id") != batch_id:
        raise BatchError(422, "manifest batch_id does not match the request")
    if set(listed) != set(files):
        raise BatchError(422, "manifest and archive list different files")
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != listed[name].get("sha256"):
            raise BatchError(422, f"sha256 mismatch for {name}")
    for uid in manifest["samples"]:
        if f"samples/{uid}.jpg" not in files or f"samples/{uid}.json" not in files:
            raise BatchError(422, f"sample {uid!r} lacks its files")
    return ParsedBatch(manifest=manifest, files=files)
