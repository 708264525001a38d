"""Frame sources, backoff and the capture thread on real files; no ROS."""

from __future__ import annotations

import ast
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_perception.capture import (
    Backoff,
    CaptureWorker,
    ImageFolderSource,
    OpenCVSource,
    SourceError,
    open_source,
    parse_source,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def _folder(tmp_path: Path, n: int = 3, size: tuple[int, int] = (64, 48)) -> Path:
    """n real sample frames, resized, as PNGs."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(sorted((SAMPLE / "images").glob("*.jpg"))[:n]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(cv2.imread(str(f)), size))
    return folder


def _wait(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_library_does_not_import_ros() -> None:
    for path in (REPO / "edge_perception" / "capture").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("rclpy") or n.endswith("_msgs") for n in names), path


@pytest.mark.parametrize("source, kind, target", [
    ("0", "v4l2", 0), ("/dev/video2", "v4l2", "/dev/video2"),
    ("v4l2src device=/dev/video0 ! videoconvert ! appsink", "gstreamer", None),
    ("rtsp://10.0.0.2:554/stream", "url", None), ("http://cam.local/mjpg", "url", None),
    ("clip.mp4", "file", None), ("file:///tmp/clip.avi", "file", "/tmp/clip.avi"),
    ("some/folder", "folder", None),
])
def test_parse_source_auto(source: str, kind: str, target: object) -> None:
    spec = parse_source(source)
    assert spec.kind == kind
    assert spec.target == (source if target is None else target)


def test_parse_source_explicit_and_errors(tmp_path: Path) -> None:
    assert parse_source("3", "file").kind == "file"
    assert parse_source(str(SAMPLE / "images")).kind == "folder"
    assert parse_source(str(SAMPLE / "sample.avi"), "folder").kind == "file"
    with pytest.raises(ValueError, match="source_type"):
        parse_source("x", "webcam")
    with pytest.raises(ValueError, match="empty"):
        parse_source("  ")


def test_backoff_doubles_and_caps() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_video_file_plays_and_loops() -> None:
    src = OpenCVSource(parse_source(str(SAMPLE / "sample.avi")), loop=True)
    src.open()
    try:
        assert src.nominal_fps == pytest.approx(10.0) and not src.live
        frames = [src.read() for _ in range(30)]  # 26 in the file: wraps around
    finally:
        src.close()
    assert all(f is not None and f.shape == (320, 320, 3) and f.dtype == np.uint8
               for f in frames)
    assert np.array_equal(frames[0], frames[26])


def test_video_file_ends_without_loop() -> None:
    src = OpenCVSource(parse_source(str(SAMPLE / "sample.avi")), loop=False)
    src.open()
    n = 0
    while src.read() is not None:
        n += 1
    src.close()
    assert n == 26


def test_missing_or_bad_sources_raise(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        OpenCVSource(parse_source(str(tmp_path / "nope.mp4"))).open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SourceError):
        src = OpenCVSource(parse_source(str(bad)))
        src.open()
        src.read()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path).open()
    with pytest.raises(SourceError):  # no such device on a CI machine
        OpenCVSource(parse_source("/dev/video99")).open()


def test_image_folder_in_name_order(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "notes.txt").write_text("ignored")
    src = open_source(parse_source(str(folder)), loop=False)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert len(frames) == 3 and all(f.shape == (48, 64, 3) for f in frames)
    expected = cv2.imread(str(folder / "001.png"))
    assert np.array_equal(frames[1], expected)


def test_worker_paces_and_stamps(tmp_path: Path) -> None:
    got: list[tuple[np.ndarray, int]] = []
    src = ImageFolderSource(_folder(tmp_path), fps=20.0)
    w = CaptureWorker(src, lambda f, t: got.append((f, t)))
    w.start()
    time.sleep(1.0)
    w.stop()
    s = w.stats()
    assert 8 <= len(got) <= 24, len(got)  # 20 Hz for 1 s (fewer only on a starved CPU)
    assert s.frames == len(got) and s.state == "stopped" and (s.width, s.height) == (64, 48)
    stamps = [t for _, t in got]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time_ns()) < 2e9


def test_worker_rate_overrides_source_rate(tmp_path: Path) -> None:
    got: list[int] = []
    w = CaptureWorker(ImageFolderSource(_folder(tmp_path), fps=50.0),
                      lambda f, t: got.append(t), rate=5.0)
    w.start()
    time.sleep(1.0)
    w.stop()
    assert 2 <= len(got) <= 7, len(got)  # 5 Hz, not the folder's 50


def test_worker_reconnects_after_folder_disappears(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    events: list[str] = []
    count = [0]
    w = CaptureWorker(ImageFolderSource(folder, fps=50.0), lambda f, t: count.__setitem__(
        0, count[0] + 1), backoff=Backoff(0.05, 0.2), on_event=lambda lv, m: events.append(m))
    w.start()
    try:
        assert _wait(lambda: count[0] > 5)
        hidden = tmp_path / "hidden"
        shutil.move(str(folder), str(hidden))
        assert _wait(lambda: w.stats().state in ("reconnecting", "connecting")
                     and w.stats().reconnects >= 2)
        stalled = count[0]
        time.sleep(0.3)
        assert count[0] == stalled  # nothing published while the source is gone
        shutil.move(str(hidden), str(folder))
        assert _wait(lambda: count[0] > stalled + 5 and w.stats().state == "streaming")
    finally:
        w.stop()
    s = w.stats()
    assert s.reconnects >= 2 and "not found" in s.last_error
    assert any("reconnecting in" in e for e in events)


def test_worker_finishes_on_end_without_loop(tmp_path: Path) -> None:
    got: list[int] = []
    w = CaptureWorker(ImageFolderSource(_folder(tmp_path), loop=False, fps=100.0),
                      lambda f, t: got.append(t))
    w.start()
    assert _wait(lambda: w.stats().state == "ended")
    assert len(got) == 3 and not w.alive
    w.stop()


def test_worker_survives_a_failing_callback(tmp_path: Path) -> None:
    calls = [0]

    def boom(frame: np.ndarray, stamp: int) -> None:
        calls[0] += 1
        raise RuntimeError("downstream bug")

    w = CaptureWorker(ImageFolderSource(_folder(tmp_path), fps=50.0), boom)
    w.start()
    assert _wait(lambda: calls[0] >= 5)
    assert w.alive and "downstream bug" in w.stats().last_error
    w.stop()
    assert not any(t.name == "capture" for t in threading.enumerate())


class _Server:
    """A real HTTP server on 127.0.0.1 serving data/sample (stoppable, restartable)."""

    def __init__(self, port: int = 0) -> None:
        import functools
        import http.server

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(SAMPLE))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_url_source_reconnects_when_the_server_comes_back() -> None:
    server = _Server()
    url = f"http://127.0.0.1:{server.port}/sample.avi"
    spec = parse_source(url)
    assert spec.kind == "url"
    count = [0]
    w = CaptureWorker(open_source(spec), lambda f, t: count.__setitem__(0, count[0] + 1),
                      backoff=Backoff(0.05, 0.2))
    w.start()
    try:
        # The stream "ends" after 26 frames: for a live source that is a failure → reopen.
        assert _wait(lambda: count[0] >= 30 and w.stats().reconnects >= 1)
        server.stop()
        assert _wait(lambda: w.stats().state != "streaming" and "cannot open" in
                     w.stats().last_error)
        stalled, reconnects = count[0], w.stats().reconnects
        time.sleep(0.3)
        assert count[0] == stalled and w.stats().reconnects > reconnects
        server = _Server(server.port)
        assert _wait(lambda: count[0] >= stalled + 26)
    finally:
        w.stop()
        server.stop()
    assert w.stats().width == 320


def test_bundled_sample_is_consistent() -> None:
    from edge_perception.train.data import label_path, read_data_yaml, read_labels

    spec = read_data_yaml(SAMPLE / "data.yaml")
    images = spec.images("val")
    assert len(images) == 26 and spec.names == {0: "pothole", 1: "speed_bump"}
    boxes = 0
    for img in images:
        assert cv2.imread(str(img)).shape == (640, 640, 3)
        lab = label_path(img)
        assert lab == SAMPLE / "labels" / f"{img.stem}.txt" and lab.is_file()
        rows = read_labels(lab, 640, 640)
        assert len(rows) >= 1 and set(rows[:, 0].tolist()) == {0.0}
        boxes += len(rows)
    assert boxes > 26
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 3_000_000, total
    attribution = (SAMPLE / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "github.com/Krizhneel/potholes" in attribution
    assert attribution.count("| krizhneel__") == 26 and "| aish47__" not in attribution
