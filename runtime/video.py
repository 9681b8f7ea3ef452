"""Frame sources (camera, video file, stream URL, image folder or glob) and sinks (mp4, masks).

Files and folders give every frame in order. Live sources (camera, URL) run a capture thread
that keeps only the newest frame, counting the ones it dropped: a dashcam wants the present, not
a backlog. A live source that stops delivering reconnects with exponential backoff, a bounded
number of times, then ends cleanly.
"""
from __future__ import annotations

import glob as globlib
import logging
from urllib.parse import urlsplit, urlunsplit
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.validate import FRAME_RATE
from fcnedge.runtime.fileio import check_writable_location, write_image_atomic
from fcnedge.runtime.options import CLIP_FPS, RECONNECT_ATTEMPTS
from fcnedge.runtime.preprocess import IMAGE_SUFFIXES, read_image

log = logging.getLogger("fcnedge.runtime")
_URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    index: int
    image: np.ndarray
    captured_at: float          # time.perf_counter() when it was read
    read_ms: float = 0.0        # time spent reading/decoding it


@dataclass(frozen=True)
class SourceSpec:
    kind: str                   # camera, url, file, folder, glob
    value: str | int


def redact_url(text) -> str:
    """A source as it may be printed or stored: a URL's password (and a user name given with
    one) replaced by ***, e.g. rtsp://***@camera.local/stream."""
    text = str(text)
    if not text.lower().startswith(_URL_PREFIXES):
        return text
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_source(text: str) -> SourceSpec:
    """Classifies a --source argument; raises InputError if nothing matches."""
    text = str(text)
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if text.lower().startswith(_URL_PREFIXES):
        return SourceSpec("url", text)
    if os.path.isdir(text):
        return SourceSpec("folder", text)
    if any(char in text for char in "*?["):
        return SourceSpec("glob", text)
    if os.path.isfile(text):
        return SourceSpec("file", text)
    raise InputError.about("source", redact_url(text), "not a camera index, URL, folder, glob or "
                           "existing file")


class ImageSequence:
    """Images from a folder or a glob, in name order."""

    live = False
    dropped = 0

    def __init__(self, paths: list[str], name: str):
        if not paths:
            raise InputError.about("source", name, "no images found")
        self.paths, self.name = paths, name
        self.fps = 10.0

    @classmethod
    def from_folder(cls, folder: str) -> "ImageSequence":
        paths = sorted(str(p) for p in Path(folder).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES)
        return cls(paths, folder)

    @classmethod
    def from_glob(cls, pattern: str) -> "ImageSequence":
        paths = sorted(p for p in globlib.glob(pattern) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        return cls(paths, pattern)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            start = time.perf_counter()
            image = read_image(path)
            now = time.perf_counter()
            yield Frame(index, image, now, 1e3 * (now - start))

    def close(self):
        pass


class VideoFile:
    """Every frame of a video file, in order; the end of the file ends the stream."""

    live = False
    dropped = 0

    def __init__(self, path: str, opener: Callable = cv2.VideoCapture):
        self.capture = opener(path)
        if not self.capture.isOpened():
            raise InputError.about("source", path, "cannot be opened as a video")
        self.name = path
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0) or 25.0

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            start = time.perf_counter()
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            now = time.perf_counter()
            yield Frame(index, image, now, 1e3 * (now - start))
            index += 1

    def close(self):
        self.capture.release()


class LiveSource:
    """A camera or stream read by a capture thread that keeps only the newest frame.

    Args:
      target: camera index or URL.
      opener: makes a cv2.VideoCapture-like object (injectable for tests).
      max_retries: reconnection attempts after the source stops delivering.
      backoff_s: first wait before reconnecting; doubles each attempt (capped at 5 s).
    """

    live = True

    def __init__(self, target, opener: Callable = cv2.VideoCapture,
                 max_retries: int = RECONNECT_ATTEMPTS,
                 backoff_s: float = 0.5):
        self.target, self.opener = target, opener
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.name = redact_url(target)
        self.dropped = 0
        self.reconnects = 0
        self._latest: Frame | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._finished = False
        self.capture = opener(target)
        if not self.capture.isOpened():
            raise InputError.about("source", self.name, "cannot open this camera or stream")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        # A URL to a video file has a length; a camera or live stream reports none. A file that
        # has ended is not reconnected to, or it would replay from the start forever.
        self.length = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _reconnect(self) -> bool:
        delay = self.backoff_s
        for attempt in range(1, self.max_retries + 1):
            log.warning("source %s stopped delivering; reconnecting (%d/%d) in %.1fs",
                        self.name, attempt, self.max_retries, delay)
            if self._stop.wait(delay):
                return False
            self.capture.release()
            self.capture = self.opener(self.target)
            if self.capture.isOpened():
                self.reconnects += 1
                return True
            delay = min(delay * 2, 5.0)
        log.warning("source %s: gave up after %d reconnection attempts", self.name,
                    self.max_retries)
        return False

    def _run(self):
        index = since_open = 0
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                ok, image = self.capture.read()
                if not ok or image is None:
                    if 0 < self.length <= since_open or not self._reconnect():
                        return
                    since_open = 0
                    continue
                since_open += 1
                now = time.perf_counter()
                with self._condition:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = Frame(index, image, now, 1e3 * (now - start))
                    self._condition.notify()
                index += 1
        finally:
            with self._condition:
                self._finished = True
                self._condition.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._condition:
                while self._latest is None and not self._finished:
                    self._condition.wait(0.5)
                if self._latest is None:
                    return
                frame, self._latest = self._latest, None
            yield frame

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.capture.release()


def open_source(spec: SourceSpec | str, opener: Callable = cv2.VideoCapture, **live_options):
    """Opens a source from its spec (or the --source text)."""
    if isinstance(spec, str):
        spec = parse_source(spec)
    if spec.kind == "folder":
        return ImageSequence.from_folder(spec.value)
    if spec.kind == "glob":
        return ImageSequence.from_glob(spec.value)
    if spec.kind == "file":
        return VideoFile(spec.value, opener)
    return LiveSource(spec.value, opener, **live_options)


def check_writable_folder(folder: str | os.PathLike, param: str) -> Path:
    """Creates a folder if needed once it is known to be writable; raises InputError about
    `param` if not."""
    folder = check_writable_location(folder, param, folder=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError.about(param, folder,
                               f"cannot create this folder ({err.strerror})") from err
    return folder


def check_video_target(path: str | os.PathLike, param: str) -> Path:
    """Checks, before any work, that an mp4 can be written at `path`; raises InputError about
    `param` if not."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError.about(param, path, "expected an .mp4 file name")
    if path.is_dir():
        raise InputError.about(param, path, "is a folder; expected an .mp4 file name")
    check_writable_folder(path.parent, param)
    return path


class Mp4Sink:
    """An mp4 written to a temporary name and renamed into place when closed.

    The container's index is written on release, so the pipeline closes the sink on Ctrl-C or
    SIGTERM as well; what lies at the target path is always a complete, playable file.
    """

    def __init__(self, path: str | os.PathLike, fps: float, frame_hw: tuple[int, int],
                 param: str = "output"):
        self.path = Path(path)
        check_video_target(self.path, param)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                      _container_fps(fps), (frame_hw[1], frame_hw[0]))
        if not self.writer.isOpened():
            raise InputError.about(param, self.path, "OpenCV cannot write an mp4 here")
        self.frame_hw = tuple(frame_hw)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if image.shape[:2] != self.frame_hw:
            image = cv2.resize(image, (self.frame_hw[1], self.frame_hw[0]))
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return
        # OpenCV only warns when FFmpeg cannot write a frame (a full disk): the file is read
        # back, and renamed into place only when every frame reached it.
        stored = frames_in_video(self.tmp)
        if stored != self.frames:
            self.tmp.unlink(missing_ok=True)
            raise OSError(f"{self.path}: {stored} of {self.frames} frames reached the disk "
                          "(is it full?); nothing was written")
        os.replace(self.tmp, self.path)


def _container_fps(fps: float) -> float:
    """A frame rate the mp4 muxer accepts: a source's own may be 0, NaN or infinite (OpenCV
    spins on an infinite one)."""
    return min(max(1.0, fps), 1000.0) if FRAME_RATE.contains(fps) else 30.0


def frames_in_video(path: str | os.PathLike) -> int:
    """The frame count a video file's index records (0 if it cannot be opened)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


def write_clip(source: SourceSpec | str, path: str | os.PathLike, fps: float = CLIP_FPS,
               max_frames: int | None = None) -> dict:
    """Writes a source's frames (an image folder, a glob, a video) into an mp4, unchanged.

    Frames of another size than the first are resized to it. Returns frames, size and path.
    """
    FRAME_RATE.check(fps, "fps")
    check_video_target(path, "out")
    frames = open_source(source)
    if getattr(frames, "live", False):
        frames.close()
        raise InputError.about("source", frames.name, "a live source has no end; give a file, "
                               "folder or glob")
    sink, count = None, 0
    try:
        for frame in frames:
            if sink is None:
                sink = Mp4Sink(path, fps, frame.image.shape[:2], param="out")
            sink.write(frame.image)
            count += 1
            if max_frames and count >= max_frames:
                break
    finally:
        frames.close()
        if sink is not None:
            sink.close()
    if sink is None:
        raise InputError.about("source", frames.name, "no frames")
    return {"path": str(path), "frames": count, "size": list(sink.frame_hw), "fps": fps}


class MaskSink:
    """One lossless PNG of label ids per frame: DIR/000000.png, ..."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = check_writable_folder(folder, "masks")

    def write(self, index: int, labels: np.ndarray) -> None:
        write_image_atomic(self.folder / f"{index:06d}.png", labels)


class FrameQueue:
    """A bounded hand-off between pipeline threads; None marks the end."""

    def __init__(self, size: int = 4):
        self.queue: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, stop: threading.Event):
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return None
