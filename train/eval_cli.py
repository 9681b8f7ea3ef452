"""Subcommands `eval` and `correct-prior`: scoring a model on a split, and choosing the prior
correction of a class-weighted run; each handler imports TensorFlow only when it runs."""
from __future__ import annotations

import math

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import add_classes_argument
from fcnedge.runtime.preprocess import parse_size
from fcnedge.runtime.validate import COUNT, flag_type
from fcnedge.runtime.zoo import resolve_model
from fcnedge.train.cli import progress_printer
from fcnedge.train.prior import DEFAULT_TAUS, PRIOR_BATCH_SIZE, PRIOR_SPLIT
from fcnedge.train.scoring import EVAL_FLAGS, EvalOptions
from fcnedge.train.splits import parse_names

EVAL = EvalOptions(model="", data="")     # the defaults


def add_parsers(subparsers, add_common) -> None:
    evaluate = subparsers.add_parser("eval", help="mIoU, per-class IoU, pixel accuracy, confusion PNG")
    evaluate.add_argument("--model", required=True,
                          help="run folder, .h5 weights in one, a .tflite model, or a bundled "
                          "model's name (`fcnedge models`)")
    evaluate.add_argument("--data", required=True, help="dataset folder")
    add_classes_argument(evaluate)
    evaluate.add_argument("--split", default=",".join(EVAL.split),
                          help="train, val or test; several comma-separated are pooled")
    evaluate.add_argument("--drives", default="", metavar="DRIVES",
                          help="score only these drives' frames (comma-separated frame-name "
                               "prefixes, e.g. 0006R0 with --split train,val: a held-out drive)")
    evaluate.add_argument("--exclude-drives", default="", metavar="DRIVES",
                          help="score every drive but these")
    evaluate.add_argument("--limit", type=flag_type(COUNT), default=None, help="first N images only")
    evaluate.add_argument("--batch-size", type=flag_type(COUNT), default=EVAL.batch_size)
    evaluate.add_argument("--input-size", default=None, metavar="HxW",
                          help="score a Keras model at another input size (multiples of 32) "
                          "than it was trained at, to pick the size to export (default: its own)")
    evaluate.add_argument("--out", default=None, help="folder for confusion.png and scores "
                          "(default: ./eval-MODEL-SPLIT in the current folder)")
    evaluate.add_argument("--error-class", default=None, metavar="NAME",
                          help="also draw errors-NAME.png: the images with the most errors of "
                          "this class, its pixels painted found / missed / false alarm")
    evaluate.add_argument("--error-images", type=flag_type(COUNT), default=EVAL.error_images,
                          help="how many images errors-NAME.png shows")
    evaluate.add_argument("--uncorrected", action="store_true",
                          help="score the weights as trained, without the run's prior "
                          "correction (prior_correction.json from `fcnedge correct-prior`)")
    add_common(evaluate)
    evaluate.set_defaults(handler=run_eval, param_flags=EVAL_FLAGS)

    correct_prior = subparsers.add_parser(
        "correct-prior", help="choose the prior correction of a class-weighted run (tau, by mIoU on a split)",
        description="Class weights make a model over-predict its rare classes. This scores "
        "argmax(logits - tau * log(class weight)) for each tau on a split (the training split "
        "by default: val selects models) and stores the best tau in prior_correction.json in the "
        "run; eval, convert and bench then use the corrected model (folded into a bias: no "
        "cost per frame).")
    correct_prior.add_argument("--model", required=True, help="run folder (class-weighted)")
    correct_prior.add_argument("--data", required=True, help="dataset folder")
    add_classes_argument(correct_prior)
    correct_prior.add_argument("--split", default=PRIOR_SPLIT, help="split to choose tau on")
    correct_prior.add_argument("--taus", default=",".join(f"{t:g}" for t in DEFAULT_TAUS),
                               help="comma-separated tau values to try (0 = as trained)")
    correct_prior.add_argument("--limit", type=flag_type(COUNT), default=None, help="first N images only")
    correct_prior.add_argument("--batch-size", type=flag_type(COUNT), default=PRIOR_BATCH_SIZE)
    add_common(correct_prior)
    correct_prior.set_defaults(handler=run_correct_prior)


def run_eval(args) -> dict:
    from fcnedge.train.scoring import evaluate_model

    options = EvalOptions(
        model=resolve_model(args.model), data=args.data, classes=args.classes,
        split=parse_names(args.split, "split"), drives=parse_names(args.drives, "drives"),
        exclude_drives=parse_names(args.exclude_drives, "exclude_drives"), limit=args.limit,
        batch_size=args.batch_size,
        input_hw=parse_size(args.input_size) if args.input_size else None, out=args.out,
        error_class=args.error_class, error_images=args.error_images,
        uncorrected=args.uncorrected)
    result = evaluate_model(options, progress=progress_printer("images"))
    print(result.pop("table"))
    return result


def _parse_taus(text: str) -> tuple[float, ...]:
    try:
        taus = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        taus = ()
    if not taus or not all(math.isfinite(tau) for tau in taus):
        raise InputError(f"--taus: got {text!r}, expected comma-separated numbers such as "
                         "0,0.5,1")
    return taus


def run_correct_prior(args) -> dict:
    from fcnedge.train.prior import correct_prior

    result = correct_prior(args.model, args.data, args.split, _parse_taus(args.taus),
                           args.limit, args.batch_size, args.classes,
                           progress=progress_printer("images"))
    print(result.pop("table"))
    return result
