"""One call from a model and a source to a finished stream: what `fcnedge run` does, as a
library function (`run_stream`), so the command line only turns flags into options.

It resolves a bundled model's name, checks the outputs before any work, loads the model, opens
the source, and lets Ctrl-C or SIGTERM end the stream with its outputs finalised.
"""
from __future__ import annotations

import logging
import os
import platform
import signal
import threading
from dataclasses import dataclass, replace

from fcnedge import INTERRUPTED_EXIT
from fcnedge.runtime.options import RECONNECT_ATTEMPTS, SegmenterOptions, StreamOptions
from fcnedge.runtime.stream import StopFlag, StreamStats, stream
from fcnedge.runtime.zoo import resolve_model

log = logging.getLogger("fcnedge")


def display_available() -> bool:
    """Whether a window can open: on Linux only with an X or Wayland display."""
    if platform.system() != "Linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def stop_on_signals(stop, signalled):
    """Ctrl-C and SIGTERM set `stop`, so the stream ends with its outputs finalised, not cut;
    a second Ctrl-C quits at once. Returns what puts the previous handlers back.

    The handlers only set flags and write with os.write: no lock is taken in a handler (see
    StopFlag), so a signal can land anywhere in the main thread. Off the main thread, where
    Python allows no handler, it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(number, _frame):
        if signalled.is_set() and number == signal.SIGINT:
            # What is at the output paths stays whole: only the .partial files are left.
            os.write(2, b"interrupted again: quitting without finishing the output files\n")
            os._exit(INTERRUPTED_EXIT)
        signalled.set()
        stop.set()
        os.write(2, b"interrupted: finishing the output files (Ctrl-C again to quit now)\n")

    for number in previous:
        signal.signal(number, on_signal)

    def restore():
        for number, handler in previous.items():
            signal.signal(number, handler)
    return restore


@dataclass(frozen=True)
class StreamResult:
    """A finished stream: what ran, on what, and its timings."""

    model: str
    source: str                 # as it may be printed: a URL's password redacted
    output: str | None
    masks: str | None
    interpreter: dict
    stats: StreamStats
    interrupted: bool           # ended by a signal or Ctrl-C, outputs finalised

    def summary(self) -> dict:
        return {"model": self.model, "source": self.source, "output": self.output,
                "masks": self.masks, "interpreter": self.interpreter,
                **self.stats.summary(), "interrupted": self.interrupted}

    def line(self) -> str:
        """The one line a person reads at the end."""
        summary = self.summary()
        return (f"{self.stats.frames} frames, {summary['fps']} FPS end to end, "
                f"invoke p50 {summary['stages_ms']['invoke'].get('p50')} ms, "
                f"dropped {self.stats.dropped}" + (", interrupted" if self.interrupted else ""))


def run_stream(model: str, source: str, segmenter_options: SegmenterOptions = SegmenterOptions(),
               stream_options: StreamOptions = StreamOptions(),
               reconnect: int = RECONNECT_ATTEMPTS, *, handle_signals: bool = True,
               stop=None, on_frame=None) -> StreamResult:
    """Streams `source` (camera index, video, URL, image folder or glob) through `model` (a
    .tflite path or a bundled model's name) until it ends, `max_frames`, the window closes,
    `stop` is set or, with `handle_signals`, Ctrl-C or SIGTERM.

    Threads left unset run on all cores but one (capture, drawing and writing run beside the
    model); a window asked for where there is no display is skipped with a warning. A live
    source (camera, URL) is reopened up to `reconnect` times when it drops.

    Raises:
      InputError: the model, source or an output path is not what was expected; checked
        before the model loads, except what only the loaded model can tell.
    """
    from fcnedge.runtime.interpreter import default_threads
    from fcnedge.runtime.segmenter import Segmenter
    from fcnedge.runtime.video import check_video_target, open_source, parse_source, redact_url

    model = resolve_model(model)
    if stream_options.output:
        check_video_target(stream_options.output, "output")
    spec = parse_source(source)
    if stream_options.window and not display_available():
        log.warning("no display found: running without a window")
        stream_options = replace(stream_options, window=False)
    if segmenter_options.num_threads is None:
        segmenter_options = replace(segmenter_options, num_threads=default_threads(reserve=1))
    segmenter = Segmenter(model, segmenter_options)
    log.info("model %s: %s input %dx%d, %s on %s", model, segmenter.info_dict["input_type"],
             *segmenter.input_hw, segmenter.info.backend, segmenter.info.delegate)
    live_options = {"max_retries": reconnect} if spec.kind in ("camera", "url") else {}
    opened = open_source(spec, **live_options)

    stop = stop or StopFlag()
    signalled = StopFlag()
    restore = stop_on_signals(stop, signalled) if handle_signals else (lambda: None)
    try:
        stats = stream(segmenter, opened, stream_options, stop, on_frame=on_frame)
    finally:
        restore()
    return StreamResult(model=model, source=redact_url(source), output=stream_options.output,
                        masks=stream_options.masks, interpreter=segmenter.info_dict,
                        stats=stats, interrupted=stats.interrupted or signalled.is_set())
