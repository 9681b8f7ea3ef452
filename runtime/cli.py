"""`fcnedge run`: stream a camera, video, URL or image folder through a TFLite model.

This path imports numpy, OpenCV and the LiteRT interpreter only; never TensorFlow.
"""
from __future__ import annotations

import logging
import os
import platform
import signal
import sys
import threading

from fcnedge import INTERRUPTED_EXIT
from fcnedge.runtime.options import (RECONNECT_ATTEMPTS, VIEWS, Delegate, ResizeMode,
                                     SegmenterOptions, StreamOptions)
from fcnedge.runtime.zoo import resolve_model
from fcnedge.runtime.validate import BELOW_ONE, COUNT, UNIT, ZERO_OR_MORE, flag_type


log = logging.getLogger("fcnedge")
# The flags of the parameters not named after them (the rest are: max_frames, --max-frames),
# for error messages (runtime.errors.flag_message).
RUN_FLAGS = {"num_threads": "--threads", "delegate_path": "--gpu-delegate"}


def add_parsers(subparsers, add_common) -> None:
    run = subparsers.add_parser("run", help="stream frames through a TFLite model")
    run.add_argument("--model", required=True,
                     help=".tflite model (card: the .json beside it), or a bundled model's "
                     "name (`fcnedge models` lists them)")
    run.add_argument("--source", required=True,
                     help="camera index (0), video file, rtsp/http URL, image folder or glob")
    run.add_argument("--delegate", default=SegmenterOptions.delegate.value,
                     choices=[delegate.value for delegate in Delegate],
                     help="cpu runs XNNPACK; gpu tries LiteRT's GPU accelerator, then a GPU "
                     "delegate library")
    run.add_argument("--fallback", default=None, choices=["cpu"],
                     help="if the delegate cannot load, warn and run on the CPU")
    run.add_argument("--device", default=None, help="EdgeTPU device, e.g. usb:0 or pci:0")
    run.add_argument("--gpu-delegate", default=None, metavar="PATH",
                     help="GPU delegate library (default: LiteRT's GPU accelerator, then "
                     "the platform's usual library name)")
    run.add_argument("--threads", type=flag_type(COUNT), default=None,
                     help="interpreter CPU threads (default: all cores but one, left to "
                     "capture, drawing and writing, which run beside the model)")
    run.add_argument("--output", default=None, metavar="FILE.mp4", help="write the view here")
    run.add_argument("--view", default=StreamOptions.view, choices=VIEWS)
    run.add_argument("--alpha", type=flag_type(UNIT), default=StreamOptions.alpha,
                     help="overlay opacity")
    run.add_argument("--masks", default=None, metavar="DIR",
                     help="write each frame's label ids as a PNG here")
    run.add_argument("--resize", default=SegmenterOptions.resize.value,
                     choices=[mode.value for mode in ResizeMode])
    run.add_argument("--smooth", type=flag_type(BELOW_ONE), default=SegmenterOptions.smooth,
                     help="EMA weight of previous logits for video (0 = off)")
    run.add_argument("--max-frames", type=flag_type(COUNT), default=None)
    run.add_argument("--no-window", action="store_true", help="do not open a window")
    run.add_argument("--no-hud", action="store_true", help="no FPS text on the view")
    run.add_argument("--reconnect", type=flag_type(ZERO_OR_MORE), default=RECONNECT_ATTEMPTS,
                     help="reconnection attempts for a camera or stream that drops")
    add_common(run)
    run.set_defaults(handler=run_stream, param_flags=RUN_FLAGS)

    models = subparsers.add_parser(
        "models", help="the bundled models by name, for --model NAME: input size, GFLOPs, "
        "size, held-out and val mIoU, int8 latency")
    add_common(models)
    models.set_defaults(handler=run_models)


def run_models(args) -> dict:
    from fcnedge.runtime.zoo import format_zoo, zoo_rows

    rows = zoo_rows()
    print(format_zoo(rows), end="")
    return {"models": rows}


def _display_available() -> bool:
    if platform.system() != "Linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _stop_on_signals(stop, signalled):
    """Ctrl-C and SIGTERM set `stop`, so the stream ends with its outputs finalised, not cut;
    a second Ctrl-C quits at once. Returns what puts the previous handlers back.

    The handlers only set flags and write with os.write: no lock is taken in a handler (see
    StopFlag), so a signal can land anywhere in the main thread.
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


def run_stream(args) -> dict:
    from fcnedge.runtime.interpreter import default_threads
    from fcnedge.runtime.segmenter import Segmenter
    from fcnedge.runtime.stream import StopFlag, stream
    from fcnedge.runtime.video import (check_video_target, open_source, parse_source,
                                       redact_url)

    window = not args.no_window
    if window and not _display_available():
        log.warning("no display found: running without a window")
        window = False
    if args.output:
        check_video_target(args.output, "--output")
    options = StreamOptions(view=args.view, alpha=args.alpha, max_frames=args.max_frames,
                            output=args.output, masks=args.masks, window=window,
                            hud=not args.no_hud)
    args.model = resolve_model(args.model)
    segmenter = Segmenter(args.model, SegmenterOptions(
        delegate=Delegate(args.delegate), num_threads=args.threads or default_threads(reserve=1),
        resize=ResizeMode(args.resize), smooth=args.smooth,
        fallback_cpu=args.fallback == "cpu", device=args.device,
        delegate_path=args.gpu_delegate))
    log.info("model %s: %s input %dx%d, %s on %s", args.model, segmenter.info_dict["input_type"],
             *segmenter.input_hw, segmenter.info.backend, segmenter.info.delegate)
    spec = parse_source(args.source)
    live_options = {"max_retries": args.reconnect} if spec.kind in ("camera", "url") else {}
    source = open_source(spec, **live_options)

    stop, signalled = StopFlag(), StopFlag()
    restore = _stop_on_signals(stop, signalled)
    try:
        stats = stream(segmenter, source, options, stop)
    finally:
        restore()
    summary = {"model": args.model, "source": redact_url(args.source), "output": args.output,
               "masks": args.masks, "interpreter": segmenter.info_dict,
               **stats.summary()}
    summary["interrupted"] = stats.interrupted or signalled.is_set()
    print(f"{stats.frames} frames, {summary['fps']} FPS end to end, "
          f"invoke p50 {summary['stages_ms']['invoke'].get('p50')} ms, "
          f"dropped {stats.dropped}" + (", interrupted" if summary["interrupted"] else ""),
          file=sys.stderr)
    return summary

