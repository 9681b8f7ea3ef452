"""`fcnedge convert`: the converter's command line."""
from __future__ import annotations

import logging

from fcnedge.convert.options import (CONVERT_FLAGS, IO_TYPES, OUTPUT_SIZES, ConvertOptions, Format,
                                     QatConfig)
from fcnedge.runtime.labels import add_classes_argument
from fcnedge.runtime.validate import COUNT, NON_NEGATIVE, POSITIVE, ZERO_OR_MORE, flag_type

log = logging.getLogger("fcnedge")


def add_parsers(subparsers, add_common) -> None:
    convert = subparsers.add_parser(
        "convert", help="export TFLite formats, check them, verify them against the float model")
    convert.add_argument("--model", required=True, help="run folder (or .h5 weights in one)")
    convert.add_argument("--data", required=True,
                         help="dataset folder: train split for calibration, val to verify")
    add_classes_argument(convert)
    convert.add_argument("--out", required=True, help="folder for the .tflite files and cards")
    convert.add_argument("--formats", default=",".join(fmt.value for fmt in ConvertOptions.formats),
                         help="comma-separated: " + ", ".join(fmt.value for fmt in Format))
    convert.add_argument("--input-size", default=None, metavar="HxW",
                         help="export at another input size (multiples of 32) than the model "
                         "was trained at; the FCN is fully convolutional (default: its own)")
    convert.add_argument("--calib-samples", type=flag_type(COUNT),
                         default=ConvertOptions.calib_samples,
                         help="training images for int8 calibration")
    convert.add_argument("--qat-epochs", type=flag_type(ZERO_OR_MORE), default=QatConfig.epochs,
                         help="int8-qat: fine-tuning epochs on the training split")
    convert.add_argument("--qat-lr", type=flag_type(POSITIVE), default=QatConfig.learning_rate,
                         help="int8-qat: peak learning rate (Adam, cosine decay)")
    convert.add_argument("--qat-train-bn", action="store_true",
                         help="int8-qat: let BatchNorm keep training (default: frozen)")
    convert.add_argument("--limit-train", type=flag_type(COUNT), default=None,
                         help="use the first N training images (calibration and QAT)")
    convert.add_argument("--per-tensor", action="store_true",
                         help="int8-ptq and int8-qat: one weight scale per tensor instead of "
                         "per output channel: a smaller file (no per-channel scale vectors); "
                         "int8-qat folds BatchNorm into the convolutions first; check the "
                         "verification table for its accuracy")
    convert.add_argument("--io", default=ConvertOptions.io_type, choices=IO_TYPES,
                         help="integer formats' input/output type (uint8 for EdgeTPU)")
    convert.add_argument("--output-size", default=ConvertOptions.output_size, choices=OUTPUT_SIZES,
                         help="logits at the input size, or at the head's finest stride (head: "
                         "FCN-2s at half the input size, FCN-8s at an eighth) for the runtime to "
                         "resize the labels instead; see docs/quantization.md for its cost")
    convert.add_argument("--no-verify", action="store_true", help="skip the val evaluation")
    convert.add_argument("--limit-val", type=flag_type(COUNT), default=None, help="verify on N images")
    convert.add_argument("--max-drop", type=flag_type(NON_NEGATIVE), default=None,
                         help="exit 1 when a format loses more than this many mIoU points "
                         "(default: 2 for int8-qat, no limit for the others)")
    convert.add_argument("--overwrite", action="store_true", help="replace files in --out")
    convert.add_argument("--edgetpu", action="store_true",
                         help="EdgeTPU report for integer models; compile when "
                         "edgetpu_compiler is installed")
    add_common(convert)
    convert.set_defaults(handler=run_convert, param_flags=CONVERT_FLAGS)

    metadata = subparsers.add_parser(
        "metadata", help="show a .tflite's metadata and card; --embed puts a card inside one")
    metadata.add_argument("model", help=".tflite model")
    metadata.add_argument("--embed", metavar="CARD.json", default=None,
                          help="write this card (a converted model's .json) into the model as "
                          "TFLite metadata, in place: for models converted before cards went "
                          "inside")
    add_common(metadata)
    metadata.set_defaults(handler=run_metadata)


def run_convert(args) -> dict:
    from fcnedge.convert.converter import convert, drop_failures
    from fcnedge.convert.options import parse_formats
    from fcnedge.runtime.preprocess import check_divisible, parse_size

    input_hw = None
    if args.input_size:
        input_hw = parse_size(args.input_size)
        check_divisible(input_hw)

    options = ConvertOptions(model=args.model, data=args.data, out=args.out,
                             formats=tuple(parse_formats(args.formats)),
                             calib_samples=args.calib_samples, io_type=args.io,
                             verify=not args.no_verify, limit_val=args.limit_val,
                             max_drop=args.max_drop, overwrite=args.overwrite,
                             edgetpu=args.edgetpu,
                             qat=QatConfig(epochs=args.qat_epochs, learning_rate=args.qat_lr,
                                           freeze_bn=not args.qat_train_bn),
                             limit_train=args.limit_train, input_hw=input_hw,
                             per_tensor=args.per_tensor, classes=args.classes,
                             output_size=args.output_size)
    result = convert(options)
    print(result["table"])
    failed = drop_failures(result, options.max_drop)
    if failed:
        raise RuntimeError(f"mIoU drop over the limit (--max-drop): {', '.join(failed)}")
    return result


def run_metadata(args) -> dict:
    from fcnedge.convert.metadata import describe_model, embed_card_file

    if args.embed:
        embed_card_file(args.model, args.embed)
    summary = describe_model(args.model)
    print(summary["text"])
    return summary
