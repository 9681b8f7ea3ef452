"""Subcommands `eval` and `correct-prior`: scoring a model on a split, and choosing the prior
correction of a class-weighted run; each handler imports TensorFlow only when it runs."""
from __future__ import annotations

import logging
import math
from pathlib import Path

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import check_writable_location, safe_file_part
from fcnedge.runtime.labels import add_classes_argument, check_data_labels
from fcnedge.runtime.preprocess import parse_size
from fcnedge.runtime.validate import COUNT, flag_type
from fcnedge.runtime.zoo import resolve_model
from fcnedge.train.cli import progress_printer
from fcnedge.train.splits import drive_counts, parse_names

log = logging.getLogger("fcnedge")
DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def add_parsers(subparsers, add_common) -> None:
    evaluate = subparsers.add_parser("eval", help="mIoU, per-class IoU, pixel accuracy, confusion PNG")
    evaluate.add_argument("--model", required=True,
                          help="run folder, .h5 weights in one, a .tflite model, or a bundled "
                          "model's name (`fcnedge models`)")
    evaluate.add_argument("--data", required=True, help="dataset folder")
    add_classes_argument(evaluate)
    evaluate.add_argument("--split", default="val",
                          help="train, val or test; several comma-separated are pooled")
    evaluate.add_argument("--drives", default="", metavar="DRIVES",
                          help="score only these drives' frames (comma-separated frame-name "
                               "prefixes, e.g. 0006R0 with --split train,val: a held-out drive)")
    evaluate.add_argument("--exclude-drives", default="", metavar="DRIVES",
                          help="score every drive but these")
    evaluate.add_argument("--limit", type=flag_type(COUNT), default=None, help="first N images only")
    evaluate.add_argument("--batch-size", type=flag_type(COUNT), default=8)
    evaluate.add_argument("--input-size", default=None, metavar="HxW",
                          help="score a Keras model at another input size (multiples of 32) "
                          "than it was trained at, to pick the size to export (default: its own)")
    evaluate.add_argument("--out", default=None, help="folder for confusion.png and scores "
                          "(default: ./eval-MODEL-SPLIT in the current folder)")
    evaluate.add_argument("--error-class", default=None, metavar="NAME",
                          help="also draw errors-NAME.png: the images with the most errors of "
                          "this class, its pixels painted found / missed / false alarm")
    evaluate.add_argument("--error-images", type=flag_type(COUNT), default=6,
                          help="how many images errors-NAME.png shows")
    evaluate.add_argument("--uncorrected", action="store_true",
                          help="score the weights as trained, without the run's prior "
                          "correction (prior_correction.json from `fcnedge correct-prior`)")
    add_common(evaluate)
    evaluate.set_defaults(handler=run_eval)

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
    correct_prior.add_argument("--split", default="train", help="split to choose tau on")
    correct_prior.add_argument("--taus", default=",".join(f"{t:g}" for t in DEFAULT_TAUS),
                               help="comma-separated tau values to try (0 = as trained)")
    correct_prior.add_argument("--limit", type=flag_type(COUNT), default=None, help="first N images only")
    correct_prior.add_argument("--batch-size", type=flag_type(COUNT), default=8)
    add_common(correct_prior)
    correct_prior.set_defaults(handler=run_correct_prior)


def run_eval(args) -> dict:
    from fcnedge.train.data import load_split
    from fcnedge.train.evaluate import (WorstImages, evaluate_predictor, format_scores_table,
                                        keras_predictor, plot_confusion, tflite_predictor,
                                        write_class_error_sheet)
    from fcnedge.runtime.fileio import write_json_atomic, write_text_atomic
    from fcnedge.train.config import ModelConfig
    from fcnedge.train.weights import load_trained_model

    if args.batch_size < 1:
        raise InputError(f"--batch-size: got {args.batch_size}, expected a positive integer")
    if args.error_images < 1:
        raise InputError(f"--error-images: got {args.error_images}, expected a positive integer")
    pairs, split_label = eval_pairs(args)
    if args.out:
        check_writable_location(args.out, "--out", folder=True)
    model_path = Path(resolve_model(args.model))
    if not model_path.exists():
        raise InputError(f"--model {model_path}: not found")
    if model_path.suffix == ".tflite":
        if args.input_size:
            raise InputError(f"--input-size: {model_path} has its input size fixed at export; "
                             "export it at that size with `fcnedge convert --input-size`")
        if args.uncorrected:
            raise InputError(f"--uncorrected: {model_path} has its run's prior correction, if "
                             "any, baked in at export; score the run folder with --uncorrected "
                             "instead")
        # The runtime's own code path, so the score is the one a device would get.
        predict = tflite_predictor(model_path)
        segmenter = predict.segmenter
        input_hw, labels, name = segmenter.input_hw, segmenter.labels, model_path.stem
        trained_hw = input_hw
        batch_size = 1
        correction = None
    else:
        override_hw = parse_size(args.input_size) if args.input_size else None
        model, config, labels, info = load_trained_model(model_path, override_hw,
                                                         prior_correction=not args.uncorrected)
        predict, input_hw, name = keras_predictor(model), config.input_hw, config.name
        correction = info["prior_correction"]
        trained_hw = ModelConfig.from_dict(info["model"]).input_hw
        batch_size = args.batch_size
    check_data_labels(labels, args.data, args.classes)
    worst = None
    if args.error_class is not None:
        lowered = [name.lower() for name in labels.class_names]
        if args.error_class.lower() not in lowered:
            raise InputError(f"--error-class: got {args.error_class!r}, expected one of "
                             f"{', '.join(labels.class_names)}")
        worst = WorstImages(lowered.index(args.error_class.lower()), labels.void_id,
                            args.error_images)
    arrays = load_split(pairs, input_hw, labels)
    scores = evaluate_predictor(predict, arrays.images, arrays.full_masks, labels,
                                batch_size=batch_size, progress=progress_printer("images"),
                                on_image=worst)
    # In the current folder, never beside the model: that may be a bundled model inside the
    # installed package, or someone else's read-only folder.
    default_out = Path.cwd() / f"eval-{model_label(model_path)}-{split_label}"
    size_label = f"{input_hw[0]}x{input_hw[1]}"
    if tuple(input_hw) != tuple(trained_hw):
        # Its own folder, so the trained-size scores beside the weights are not overwritten.
        default_out = default_out.with_name(f"{default_out.name}-{size_label}")
        name = f"{name} at {size_label}"
    if args.uncorrected:
        default_out = default_out.with_name(f"{default_out.name}-uncorrected")
        name = f"{name}, uncorrected"
    elif correction:
        name = f"{name}, prior correction tau {correction['tau']:g}"
    out = Path(args.out) if args.out else default_out
    title = f"{name} on {split_label} ({len(pairs)} images)"
    table = format_scores_table(scores, title)
    print(table)
    result = {"model": str(model_path), "split": args.split, "images": len(pairs),
              "drives": drive_counts(pairs),
              "input_size": size_label, "prior_correction": correction,
              **scores.to_dict(), "confusion_matrix": scores.confusion.tolist()}
    write_text_atomic(out / "scores.md", table)
    write_json_atomic(out / "scores.json", result)
    plot_confusion(scores, out / "confusion.png", title)
    log.info("wrote %s", out / "confusion.png")
    if worst is not None:
        name = labels.class_names[worst.class_id]
        sheet = write_class_error_sheet(worst, pairs, arrays.full_masks, labels,
                                        out / f"errors-{safe_file_part(name)}.png")
        if sheet:
            log.info("wrote %s", sheet)
        else:
            log.info("no %s errors on %s: no error sheet written", name, args.split)
        result["error_sheet"] = str(sheet) if sheet else None
    return result


def model_label(model_path: Path) -> str:
    """A file-name part naming a model: the .tflite's stem, the run folder's name, or the run
    folder and weights file (`run-last` for last.weights.h5)."""
    if model_path.suffix == ".tflite":
        return safe_file_part(model_path.stem)
    if model_path.is_dir():
        return safe_file_part(model_path.name)
    weights = model_path.name.removesuffix(".weights.h5").removesuffix(".h5")
    run_dir = model_path.parent.parent if model_path.parent.name == "epochs" else model_path.parent
    return safe_file_part(f"{run_dir.name}-{weights}")


def eval_pairs(args) -> tuple[list, str]:
    """The frames eval scores, and a label for them (file names, titles): the split(s), then
    the drives kept or left out."""
    from fcnedge.train.data import limit_pairs
    from fcnedge.train.splits import filter_drives, find_split_pairs

    splits = parse_names(args.split, "--split")
    keep = parse_names(args.drives, "--drives")
    drop = parse_names(args.exclude_drives, "--exclude-drives")
    pairs = find_split_pairs(args.data, splits)
    if keep:
        pairs = filter_drives(pairs, keep=keep, flag="--drives")
    if drop:
        pairs = filter_drives(pairs, drop=drop, flag="--exclude-drives")
    label = "+".join(splits) + "".join(f"-{d}" for d in keep) + "".join(f"-no{d}" for d in drop)
    return limit_pairs(pairs, args.limit), label


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
    taus = _parse_taus(args.taus)     # before TensorFlow loads: bad input fails at once
    import numpy as np

    from fcnedge.runtime.fileio import write_text_atomic
    from fcnedge.train.prior import (PRIOR_FILE, PriorCorrection, choose_tau, file_sha256,
                                     format_sweep_table, log_class_weights,
                                     sweep_prior_correction, write_prior_correction)
    from fcnedge.train.data import find_pairs, load_split
    from fcnedge.train.evaluate import keras_logits
    from fcnedge.train.run_folder import RUN_FILE
    from fcnedge.train.weights import load_trained_model

    if args.batch_size < 1:
        raise InputError(f"--batch-size: got {args.batch_size}, expected a positive integer")
    run_dir = Path(args.model)
    if not run_dir.is_dir():
        raise InputError(f"--model {run_dir}: expected a run folder (the prior correction is "
                         "stored in it, beside the weights it corrects)")
    model, config, labels, info = load_trained_model(run_dir, prior_correction=False)
    check_data_labels(labels, args.data, args.classes)
    log_weights = log_class_weights(info, labels.num_classes, str(run_dir / RUN_FILE))
    pairs = find_pairs(args.data, args.split, args.limit)
    arrays = load_split(pairs, config.input_hw, labels)
    scores = sweep_prior_correction(keras_logits(model), arrays.images, arrays.full_masks,
                                    labels, log_weights, taus, args.batch_size,
                                    progress=progress_printer("images"))
    tau = choose_tau(scores)
    weights = Path(info["weights"])
    correction = PriorCorrection(
        tau=tau, log_class_weights=tuple(round(float(v), 6) for v in log_weights),
        weights_file=weights.name, weights_sha256=file_sha256(weights), split=args.split,
        images=len(pairs))
    # The classes the weights favour most are the ones the correction moves most.
    rare = [labels.class_names[i] for i in sorted(np.argsort(log_weights)[-4:])]
    table = format_sweep_table(scores, tau, rare)
    title = (f"{config.name}: prior correction on {args.split} ({len(pairs)} images); "
             f"tau {tau:g} chosen by mIoU")
    print(f"{title}\n\n{table}")
    write_prior_correction(run_dir, correction, scores)
    write_text_atomic(run_dir / "prior_correction.md", f"{title}\n\n{table}\n")
    log.info("wrote %s; eval, convert and bench now apply it", run_dir / PRIOR_FILE)
    return {"model": str(run_dir), "split": args.split, "images": len(pairs), "tau": tau,
            "miou_uncorrected": scores[0.0].to_dict()["miou"] if 0.0 in scores else None,
            "miou": scores[tau].to_dict()["miou"],
            "sweep": [{"tau": t, **scores[t].to_dict()} for t in taus]}
