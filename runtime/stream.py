"""The streaming loop: source -> preprocess -> invoke -> postprocess -> draw -> sinks.

Three threads overlap the stages: a reader decodes the next frames (or a live source's own
capture thread keeps the newest one), the caller's thread runs the model, and a drawer blends,
shows and writes. Bounded queues between them keep memory flat. Each stage is timed per frame,
and the summary reports percentiles, FPS and dropped frames.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import cv2
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.options import StreamOptions
from fcnedge.runtime.segmenter import Segmentation
from fcnedge.runtime.stats import RecentRate, latency_summary
from fcnedge.runtime.video import FrameQueue, MaskSink, Mp4Sink
from fcnedge.runtime.visualize import draw_hud, overlay, side_by_side

log = logging.getLogger("fcnedge.runtime")
STAGES = ("capture", "preprocess", "invoke", "postprocess", "draw")


class StopFlag:
    """A stop signal that a signal handler may set.

    threading.Event.set takes a lock, and a handler runs in the main thread between two of its
    bytecodes: if that thread held the lock at the time, it would wait for itself forever. A
    plain attribute needs no lock (the GIL makes the store atomic), so a handler can set it.
    """

    def __init__(self):
        self._stopped = False

    def set(self) -> None:
        self._stopped = True

    def is_set(self) -> bool:
        return self._stopped


@dataclass
class StreamStats:
    frames: int = 0                  # frames segmented, drawn and written
    dropped: int = 0
    interrupted: bool = False
    wall_seconds: float = 0.0
    stages_ms: dict = field(default_factory=lambda: {name: [] for name in STAGES})
    end_to_end_ms: list = field(default_factory=list)

    def summary(self) -> dict:
        invoke = latency_summary(self.stages_ms["invoke"])
        return {
            "frames": self.frames, "dropped": self.dropped, "interrupted": self.interrupted,
            "wall_seconds": round(self.wall_seconds, 3),
            "fps": round(self.frames / self.wall_seconds, 2) if self.wall_seconds else None,
            "invoke_only_fps": round(1000.0 / invoke["mean"], 2) if invoke.get("mean") else None,
            "stages_ms": {name: latency_summary(values)
                          for name, values in self.stages_ms.items()},
            "end_to_end_ms": latency_summary(self.end_to_end_ms),
        }


def _render(frame, segmentation, palette, options: StreamOptions, hud_lines):
    if options.view == "side-by-side":
        image = side_by_side(frame.image, segmentation.labels, palette)
    else:
        image = overlay(frame.image, segmentation.labels, palette, options.alpha)
    if options.hud and hud_lines:
        draw_hud(image, hud_lines)
    return image


def stream(segmenter, source, options: StreamOptions,
           stop: StopFlag | threading.Event | None = None, on_frame=None) -> StreamStats:
    """Runs the loop until the source ends, max_frames, the window closes, or `stop` is set.

    Threads: the reader decodes and prepares (resize + quantize) frames into a small ring of
    buffers; this thread only invokes the model; the drawer takes the argmax, draws and writes.
    So the critical path is the invoke alone, and end-to-end FPS approaches invoke-only FPS.

    `stop` is anything with set() and is_set(); whoever sets it (a signal handler, another
    thread, on_frame) ends the stream with the queued frames drawn and the sinks closed.
    KeyboardInterrupt is caught too, for callers that keep Python's own Ctrl-C: the sinks are
    closed so the mp4 stays playable, and the stats say `interrupted`. A KeyboardInterrupt can
    land while a queue's lock is held, though, and leave a thread waiting on it, so the command
    line sets `stop` from its signal handlers instead. Returns the stats.
    """
    stop = stop or StopFlag()
    stats = StreamStats()
    masks = MaskSink(options.masks) if options.masks else None
    sink_holder: dict = {}
    queue_size = 4
    prepared, results = FrameQueue(queue_size), FrameQueue(queue_size)
    # Queued + one being filled + one being invoked, with room to spare.
    ring = [segmenter.new_workspace() for _ in range(queue_size + 4)]
    errors: list = []
    window_name = "fcnedge"
    delegate = segmenter.info.delegate

    def read():
        try:
            for count, frame in enumerate(source):
                if stop.is_set():
                    break
                start = time.perf_counter()
                try:
                    tensor, geometry = segmenter.prepare(frame.image, ring[count % len(ring)])
                except InputError as err:
                    raise InputError.about("source", f"{source.name}, frame {frame.index}",
                                           str(err)) from err
                prepare_ms = 1e3 * (time.perf_counter() - start)
                if not prepared.put((frame, tensor, geometry, prepare_ms), stop):
                    break
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)
            stop.set()
        finally:
            prepared.put(None, stop)

    def draw():
        try:
            while True:
                item = results.get(stop)
                if item is None:
                    return
                frame, geometry, raw, prepare_ms, invoke_ms = item
                post_start = time.perf_counter()
                labels, input_labels = segmenter.finish(raw, geometry)
                draw_start = time.perf_counter()
                segmentation = Segmentation(labels, input_labels, geometry, {
                    "preprocess": prepare_ms, "invoke": invoke_ms,
                    "postprocess": 1e3 * (draw_start - post_start)})
                recent.add(draw_start, invoke_ms)
                if options.output or options.window:
                    # Text only for a frame that is drawn: a masks-only run formats nothing.
                    hud = [recent.hud_line(), f"delegate {delegate}"] if options.hud else []
                    image = _render(frame, segmentation, segmenter.palette_bgr, options, hud)
                    if options.output:
                        if "mp4" not in sink_holder:
                            sink_holder["mp4"] = Mp4Sink(options.output, source.fps,
                                                         image.shape[:2])
                        sink_holder["mp4"].write(image)
                    if options.window:
                        cv2.imshow(window_name, image)
                        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                            stop.set()
                if masks:
                    masks.write(frame.index, labels)
                done = time.perf_counter()
                for name, value in (("capture", frame.read_ms), ("preprocess", prepare_ms),
                                    ("invoke", invoke_ms),
                                    ("postprocess", segmentation.timings_ms["postprocess"]),
                                    ("draw", 1e3 * (done - draw_start))):
                    stats.stages_ms[name].append(value)
                stats.end_to_end_ms.append(1e3 * (done - frame.captured_at) + frame.read_ms)
                stats.frames += 1
                if on_frame:
                    on_frame(frame, segmentation)
        except BaseException as err:
            errors.append(err)
            stop.set()

    recent = RecentRate()
    t0 = time.perf_counter()
    inferred = 0   # frames through the model; stats.frames counts those fully written
    reader = threading.Thread(target=read, name="reader", daemon=True)
    drawer = threading.Thread(target=draw, name="drawer", daemon=True)
    reader.start()
    drawer.start()
    try:
        while not stop.is_set():
            item = prepared.get(stop)
            if item is None:
                break
            frame, tensor, geometry, prepare_ms = item
            start = time.perf_counter()
            raw = segmenter.infer(tensor)
            invoke_ms = 1e3 * (time.perf_counter() - start)
            inferred += 1
            if not results.put((frame, geometry, raw, prepare_ms, invoke_ms), stop):
                break
            if options.max_frames and inferred >= options.max_frames:
                break
    except KeyboardInterrupt:
        stats.interrupted = True
        log.warning("interrupted: finishing the output files")
    finally:
        if not stop.is_set():
            results.put(None, stop)   # the drawer finishes what is queued, then ends
        drawer.join()
        stop.set()
        reader.join(timeout=5)
        source.close()
        if "mp4" in sink_holder:
            sink_holder["mp4"].close()
        if options.window:
            cv2.destroyAllWindows()
        stats.wall_seconds = time.perf_counter() - t0
        stats.dropped = getattr(source, "dropped", 0)
    if errors:
        raise errors[0]
    return stats
