"""`fcnedge run`: stream a camera, video, URL or image folder through a TFLite model.

This path imports numpy, OpenCV and the LiteRT interpreter only; never TensorFlow.
"""
from __future__ import annotations

import sys

from fcnedge.runtime.options import (RECONNECT_ATTEMPTS, VIEWS, Delegate, ResizeMode,
                                     SegmenterOptions, StreamOptions)
from fcnedge.runtime.validate import BELOW_ONE, COUNT, UNIT, ZERO_OR_MORE, flag_type

# The flags of the parameters not named after them (the rest are: max_frames, --max-frames),
# for error messages (runtime.errors.flag_message).
RUN_FLAGS = {"num_threads": "--threads", "delegate_path": "--gpu-delegate",
             "fallback_cpu": "--fallback cpu"}


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


def run_stream(args) -> dict:
    from fcnedge.runtime.live import run_stream as stream_model

    result = stream_model(
        args.model, args.source,
        SegmenterOptions(delegate=Delegate(args.delegate), num_threads=args.threads,
                         resize=ResizeMode(args.resize), smooth=args.smooth,
                         fallback_cpu=args.fallback == "cpu", device=args.device,
                         delegate_path=args.gpu_delegate),
        StreamOptions(view=args.view, alpha=args.alpha, max_frames=args.max_frames,
                      output=args.output, masks=args.masks, window=not args.no_window,
                      hud=not args.no_hud),
        reconnect=args.reconnect)
    print(result.line(), file=sys.stderr)
    return result.summary()
