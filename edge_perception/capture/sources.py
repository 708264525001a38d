"""Frame sources: V4L2 devices, GStreamer pipelines, network streams, video files, image folders.

`parse_source` turns the user's `source` string (+ optional explicit type) into a
`SourceSpec`; `open_source` builds the matching `FrameSource`. Sources raise `SourceError`
when they cannot deliver and return `None` from `read()` when a finite source has ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES", "SOURCE_TYPES", "FrameSource", "ImageFolderSource", "OpenCVSource",
    "SourceError", "SourceSpec", "open_source", "parse_source",
]

SOURCE_TYPES = ("auto", "v4l2", "gstreamer", "url", "file", "folder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering frames."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # one of SOURCE_TYPES except "auto"
    target: str | int  # device index, path, URL or pipeline

    @property
    def is_finite(self) -> bool:
        return self.kind in ("file", "folder")


def parse_source(source: str, source_type: str = "auto") -> SourceSpec:
    """Classify `source`; `source_type="auto"` guesses (`!` means a GStreamer pipeline)."""
    source = source.strip()
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}, "
                         f"got {source_type!r}")
    if not source:
        raise ValueError("source is empty")
    kind = source_type
    if kind == "auto":
        if "!" in source:
            kind = "gstreamer"
        elif source.isdigit() or source.startswith("/dev/video"):
            kind = "v4l2"
        elif source.startswith("file://"):
            source, kind = source[len("file://"):], "file"
        elif _URL.match(source):
            kind = "url"
        elif Path(source).is_dir() or not Path(source).suffix:
            kind = "folder"
        else:
            kind = "file"
    if kind == "folder" and Path(source).is_file():
        kind = "file"
    target: str | int = int(source) if kind == "v4l2" and source.isdigit() else source
    return SourceSpec(kind, target)


class FrameSource(Protocol):
    """What the capture worker needs from a source."""

    description: str
    live: bool  # True: read() blocks at the device's pace; False: the caller paces reads
    nominal_fps: float  # 0.0 when unknown

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise SourceError(f"unsupported frame dtype {frame.dtype}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


class OpenCVSource:
    """`cv2.VideoCapture` on a device, pipeline, URL or video file."""

    _APIS = {"v4l2": cv2.CAP_V4L2, "gstreamer": cv2.CAP_GSTREAMER, "url": cv2.CAP_FFMPEG,
             "file": cv2.CAP_ANY}

    def __init__(self, spec: SourceSpec, *, loop: bool = True, width: int = 0,
                 height: int = 0) -> None:
        if spec.kind not in self._APIS:
            raise ValueError(f"OpenCVSource cannot open a {spec.kind}")
        self.spec, self.loop, self.width, self.height = spec, loop, width, height
        self.live = spec.kind != "file"
        self.nominal_fps = 0.0
        self.description = f"{spec.kind} {spec.target}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        if self.spec.kind == "file" and not Path(str(self.spec.target)).is_file():
            raise SourceError(f"video file not found: {self.spec.target}")
        cap = cv2.VideoCapture(self.spec.target, self._APIS[self.spec.kind])
        if not cap.isOpened():
            cap.release()
            hint = ""
            if self.spec.kind == "gstreamer":
                hint = (" (this OpenCV build has no GStreamer support)"
                        if re.search(r"GStreamer:\s+NO", cv2.getBuildInformation())
                        else " (the pipeline must end in appsink)")
            raise SourceError(f"cannot open {self.description}{hint}")
        if self.width > 0 and self.height > 0 and self.spec.kind == "v4l2":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.nominal_fps = fps if np.isfinite(fps) and 0.0 < fps < 1000.0 else 0.0
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        ok, frame = self._cap.read()
        if not ok and self.spec.kind == "file":
            if not self.loop:
                return None
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f"no frame from {self.description}")
        return _as_bgr(frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """The images of a folder in name order, at the caller's pace; re-listed on each loop."""

    def __init__(self, folder: str | Path, *, loop: bool = True, fps: float = 10.0) -> None:
        self.folder, self.loop = Path(folder), loop
        self.live = False
        self.nominal_fps = fps
        self.description = f"folder {self.folder}"
        self._files: list[Path] = []
        self._index = 0

    def _list(self) -> list[Path]:
        if not self.folder.is_dir():
            raise SourceError(f"image folder not found: {self.folder}")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        return files

    def open(self) -> None:
        self._files, self._index = self._list(), 0

    def read(self) -> np.ndarray | None:
        if not self._files:
            raise SourceError(f"{self.description} is not open")
        if self._index >= len(self._files):
            if not self.loop:
                return None
            self._files, self._index = self._list(), 0
        path = self._files[self._index]
        self._index += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise SourceError(f"cannot read image {path}")
        return frame

    def close(self) -> None:
        self._files, self._index = [], 0


def open_source(spec: SourceSpec, *, loop: bool = True, fps: float = 10.0, width: int = 0,
                height: int = 0) -> FrameSource:
    """A closed source for `spec` (call `.open()`); `fps` paces image folders."""
    if spec.kind == "folder":
        return ImageFolderSource(str(spec.target), loop=loop, fps=fps)
    return OpenCVSource(spec, loop=loop, width=width, height=height)
