"""`fcnedge convert`: the converter's command line."""
from __future__ import annotations

import argparse
import logging

log = logging.getLogger("fcnedge")


def add_parsers(subparsers) -> None:
    from fcnedge.cli import add_common

    convert = subparsers.add_parser(
        "convert", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="export TFLite formats, check them, verify them against the float model")
    convert.add_argument("--model", required=True, help="run folder (or .h5 weights in one)")
    convert.add_argument("--data", required=True,
                         help="dataset folder: train split for calibration, val to verify")
    convert.add_argument("--out", required=True, help="folder for the .tflite files and cards")
    convert.add_argument("--formats", default="float32,float16,dynamic,int8-ptq",
                         help="comma-separated: float32, float16, dynamic, int8-ptq")
    convert.add_argument("--calib-samples", type=int, default=64,
                         help="training images for int8 calibration")
    convert.add_argument("--io", default="int8", choices=["int8", "uint8"],
                         help="integer formats' input/output type (uint8 for EdgeTPU)")
    convert.add_argument("--no-verify", action="store_true", help="skip the val evaluation")
    convert.add_argument("--limit-val", type=int, default=None, help="verify on N images")
    convert.add_argument("--max-drop", type=float, default=None,
                         help="exit 1 when a format loses more than this many mIoU points")
    convert.add_argument("--overwrite", action="store_true", help="replace files in --out")
    convert.add_argument("--edgetpu", action="store_true",
                         help="EdgeTPU report for integer models; compile when "
                         "edgetpu_compiler is installed")
    add_common(convert)
    convert.set_defaults(handler=run_convert)


def run_convert(args) -> dict:
    from fcnedge.convert.export import parse_formats
    from fcnedge.convert.pipeline import ConvertOptions, convert

    options = ConvertOptions(model=args.model, data=args.data, out=args.out,
                             formats=tuple(parse_formats(args.formats)),
                             calib_samples=args.calib_samples, io_type=args.io,
                             verify=not args.no_verify, limit_val=args.limit_val,
                             max_drop=args.max_drop, overwrite=args.overwrite,
                             edgetpu=args.edgetpu)
    result = convert(options)
    print(result["table"])
    if options.max_drop is not None:
        failed = [row["format"] for row in result["rows"]
                  if row["delta"] is not None and -row["delta"] > options.max_drop]
        if failed:
            raise RuntimeError(f"--max-drop {options.max_drop}: {', '.join(failed)} lost more "
                               "mIoU than allowed")
    return result
