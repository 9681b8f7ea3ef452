"""Subcommands `data`, `train` and `eval`; each handler imports TensorFlow only when it runs."""
from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import check_writable_location, safe_file_part
from fcnedge.runtime.labels import CAMVID, add_classes_argument, check_data_labels, dataset_labels
from fcnedge.runtime.preprocess import parse_size
from fcnedge.train.splits import drive_counts, parse_names
from fcnedge.runtime.validate import (COUNT, BELOW_ONE, FRAME_RATE, NON_NEGATIVE, POSITIVE, UNIT,
                                      ZERO_OR_MORE, flag_type)

log = logging.getLogger("fcnedge")
DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
DEFAULT_INPUT_SIZE = {"vgg16": "224x224", "mobilenetv2": "352x480"}


def _progress_printer(what: str):
    """A one-line progress counter on stderr (only redrawn on a terminal)."""
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int):
        if interactive:
            end = "\n" if done >= total else ""
            print(f"\r{what}: {done}/{total or '?'}", end=end, file=sys.stderr, flush=True)
        elif done >= total:
            print(f"{what}: {done}/{total}", file=sys.stderr)

    return progress


def add_parsers(subparsers) -> None:
    from fcnedge.cli import add_common


    data = subparsers.add_parser("data", help="get or make datasets")
    data_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    camvid = data_sub.add_parser("camvid", help="download CamVid (SegNet layout) and verify it")
    camvid.add_argument("--dest", required=True, help="folder to create")
    camvid.add_argument("--url", default=None, help="archive URL (a mirror); default: the "
                        "SegNet tutorial's GitHub archive")
    camvid.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    camvid.add_argument("--timeout", type=flag_type(POSITIVE), default=30.0, help="network timeout, seconds")
    add_common(camvid)
    camvid.set_defaults(handler=run_data_camvid)

    synth = data_sub.add_parser("synth", help="write a synthetic street-scene dataset (SegNet layout)")
    synth.add_argument("--dest", required=True, help="folder to write")
    synth.add_argument("--num", type=flag_type(COUNT), default=64, help="training images")
    synth.add_argument("--num-val", type=flag_type(ZERO_OR_MORE), default=None, help="validation images "
                       "(default: a quarter of --num)")
    synth.add_argument("--size", default="360x480", help="image size HxW")
    synth.add_argument("--seed", type=flag_type(ZERO_OR_MORE), default=0, help="random seed")
    add_common(synth)
    synth.set_defaults(handler=run_data_synth)

    clip = data_sub.add_parser("clip", help="turn an image folder or glob (e.g. CamVid val) into an mp4 "
                               "to stream or benchmark")
    clip.add_argument("--source", required=True, help="image folder, glob or video file")
    clip.add_argument("--out", required=True, help="the .mp4 to write")
    clip.add_argument("--fps", type=flag_type(FRAME_RATE), default=30.0)
    clip.add_argument("--max-frames", type=flag_type(COUNT), default=None)
    add_common(clip)
    clip.set_defaults(handler=run_data_clip)

    train = subparsers.add_parser("train", help="train an FCN; writes a run folder")
    train.add_argument("--data", required=True, help="dataset folder (SegNet layout or "
                       "SPLIT/images + SPLIT/masks)")
    train.add_argument("--out", required=True, help="run folder to write")
    add_classes_argument(train, training=True)
    train.add_argument("--arch", default="fcn8s",
                       choices=["fcn32s", "fcn16s", "fcn8s", "fcn4s", "fcn2s"])
    train.add_argument("--backbone", default="mobilenetv2", choices=["vgg16", "mobilenetv2"])
    train.add_argument("--alpha", type=flag_type(POSITIVE), default=0.75, help="MobileNetV2 width multiplier")
    train.add_argument("--input-size", default=None,
                       help="HxW, multiples of 32 (default 224x224 for vgg16, 352x480 for "
                       "mobilenetv2)")
    train.add_argument("--decoder", default="bilinear", choices=["bilinear", "transpose"],
                       help="upsampling: fixed bilinear resize, or learned transposed "
                       "convolutions as in the paper")
    train.add_argument("--context", default="none", choices=["none", "lraspp"],
                       help="context module on the stride-32 features: none, or lraspp "
                       "(Lite R-ASPP: a 1x1 branch gated by the global average)")
    train.add_argument("--context-units", type=flag_type(COUNT), default=128,
                       help="width of the context module")
    train.add_argument("--fc-units", type=flag_type(ZERO_OR_MORE), default=None,
                       help="width of the fc6/fc7 head (default 4096 for vgg16, 0 for "
                       "mobilenetv2)")
    train.add_argument("--bn-momentum", type=flag_type(BELOW_ONE), default=0.9,
                       help="BatchNorm momentum of MobileNetV2 (Keras' 0.999 breaks short "
                       "from-scratch runs)")
    train.add_argument("--dropout", type=flag_type(BELOW_ONE), default=0.1)
    train.add_argument("--epochs", type=flag_type(COUNT), default=None,
                       help="default 90 (the recipe's first stage); with --resume, the run's "
                            "own count (pass it to extend the run: the schedule stretches)")
    train.add_argument("--batch-size", type=flag_type(COUNT), default=4, help="per replica")
    train.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    train.add_argument("--lr", type=flag_type(POSITIVE), default=2e-3, help="peak learning rate")
    train.add_argument("--weight-decay", type=flag_type(NON_NEGATIVE), default=1e-4)
    train.add_argument("--schedule", default="cosine", choices=["cosine", "poly", "constant"])
    train.add_argument("--warmup-epochs", type=flag_type(NON_NEGATIVE), default=1.0)
    train.add_argument("--class-weights", default="median-freq", choices=["none", "median-freq"])
    train.add_argument("--class-weight-power", type=flag_type(POSITIVE), default=0.5, metavar="P",
                       help="median-freq weights raised to P (0 < P <= 1; 0.5 = square root): "
                       "tempers the balancing")
    train.add_argument("--loss", default="ce", choices=["ce", "ce+lovasz"],
                       help="ce: cross-entropy (class-weighted); ce+lovasz adds the Lovasz-softmax "
                       "IoU surrogate, which also penalises false positives of rare classes")
    train.add_argument("--backbone-weights", default="none",
                       help="'none' (from scratch), 'imagenet' (downloads), or a weights file")
    train.add_argument("--init-weights", default=None, metavar="RUN_OR_FILE",
                       help="start every layer from another run's best weights (its folder) or "
                            "a weights file of the same model; the schedule starts afresh "
                            "(a warm restart; --resume continues the same schedule instead). "
                            "A coarser FCN of the same backbone also works (an fcn8s run into "
                            "--arch fcn2s, the paper's staged training): the finer skips start "
                            "at zero")
    train.add_argument("--strategy", default="default",
                       choices=["default", "mirrored", "multi-worker"],
                       help="tf.distribute strategy; multi-worker reads TF_CONFIG")
    train.add_argument("--local-workers", type=flag_type(COUNT), default=None, metavar="N",
                       help="try multi-worker training here: N worker processes on loopback "
                       "ports, TF_CONFIG written for each (worker 0 writes the run)")
    train.add_argument("--scale-min", type=flag_type(POSITIVE), default=0.75, help="random scale range")
    train.add_argument("--scale-max", type=flag_type(POSITIVE), default=1.5)
    train.add_argument("--paste-classes", default="", metavar="NAMES",
                       help="comma-separated classes whose pixels are copy-pasted from one "
                            "image of a batch into another (e.g. Pole,SignSymbol); default none")
    train.add_argument("--paste-prob", type=flag_type(UNIT), default=0.5,
                       help="chance that an image receives a copy-paste")
    train.add_argument("--camera-jitter", type=flag_type(UNIT), default=0.0, metavar="S",
                       help="strength in [0, 1] of white-balance, exposure, blur and noise "
                            "jitter, for streets filmed by other cameras on other days (0: off)")
    train.add_argument("--no-augment", action="store_true", help="train on unaugmented images")
    train.add_argument("--seed", type=flag_type(ZERO_OR_MORE), default=0)
    train.add_argument("--val-every", type=flag_type(COUNT), default=1, help="score val every N epochs")
    train.add_argument("--save-every", type=flag_type(ZERO_OR_MORE), default=0, metavar="N",
                       help="also keep the weights of every Nth epoch in OUT/epochs/ "
                            "(0: only best and last)")
    train.add_argument("--train-splits", default="train", metavar="SPLITS",
                       help="comma-separated splits pooled for training (train,val: a refit on "
                            "both, with --keep last)")
    train.add_argument("--val-splits", default="val", metavar="SPLITS",
                       help="comma-separated splits scored every --val-every epochs")
    train.add_argument("--val-drives", default="", metavar="DRIVES",
                       help="hold these drives out (comma-separated frame-name prefixes, e.g. "
                            "0006R0): none of their frames trains, and validation is all of "
                            "their frames in the training and val splits; default: the val "
                            "split as it is (CamVid val shares its drive with training)")
    train.add_argument("--keep", default="best", choices=["best", "last"],
                       help="the run's model: the epoch with the best validation mIoU, or the "
                            "last epoch (a fixed schedule, for when validation also trains)")
    train.add_argument("--limit-train", type=flag_type(COUNT), default=None, help="use the first N images")
    train.add_argument("--limit-val", type=flag_type(COUNT), default=None, help="use the first N images")
    train.add_argument("--threads", type=flag_type(COUNT), default=None,
                       help="TensorFlow CPU threads (default: all cores)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    train.add_argument("--quiet", action="store_true",
                       help="no Keras progress bar or per-epoch line: one line per epoch")
    add_common(train)
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser("eval",    help="mIoU, per-class IoU, pixel accuracy, confusion PNG")
    evaluate.add_argument("--model", required=True,
                          help="run folder, .h5 weights in one, or a .tflite model")
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


def run_data_camvid(args) -> dict:
    from fcnedge.train.download import DEFAULT_URL, download_camvid

    check_writable_location(args.dest, "--dest", folder=True)
    return download_camvid(args.dest, url=args.url or DEFAULT_URL, sha256=args.sha256,
                           timeout=args.timeout, progress=_progress_printer("download bytes"))


def run_data_synth(args) -> dict:
    from fcnedge.train.synth import write_synth_dataset

    size = parse_size(args.size, name="--size")
    check_writable_location(args.dest, "--dest", folder=True)
    num_val = args.num_val if args.num_val is not None else max(1, args.num // 4)
    dest = write_synth_dataset(args.dest, args.num, num_val, size, args.seed,
                               progress=_progress_printer("scenes"))
    log.info("wrote %d train and %d val scenes to %s", args.num, num_val, dest)
    return {"dest": str(dest), "train": args.num, "val": num_val, "size": list(size)}


def run_data_clip(args) -> dict:
    from fcnedge.runtime.video import parse_source, write_clip

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames: got {args.max_frames}, expected at least 1")
    result = write_clip(parse_source(args.source), args.out, args.fps, args.max_frames)
    log.info("wrote %d frames (%dx%d) to %s", result["frames"], *result["size"], result["path"])
    return result


def _without_flag(argv: list[str], flag: str) -> list[str]:
    """argv minus `flag VALUE` / `flag=VALUE`."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        elif not item.startswith(flag + "="):
            kept.append(item)
    return kept


# What a resumed run still takes from the command line; every other setting is its run.json's.
RESUME_OVERRIDES = frozenset({"--data", "--out", "--epochs", "--threads", "--resume", "--quiet",
                              "--strategy", "--local-workers", "--verbose", "--json"})


def flags_ignored_on_resume(argv: list[str]) -> list[str]:
    given = {item.split("=", 1)[0] for item in argv if item.startswith("--")}
    return sorted(given - RESUME_OVERRIDES)


def run_train(args) -> dict:
    if args.local_workers is not None:
        from fcnedge.train.distributed import launch_local_workers

        if args.local_workers < 1:
            raise InputError(f"--local-workers: got {args.local_workers}, expected at least 1")
        if args.strategy not in ("default", "multi-worker"):
            raise InputError(f"--local-workers runs --strategy multi-worker; got --strategy "
                             f"{args.strategy}")
        argv = _without_flag(_without_flag(args.argv[1:], "--local-workers"), "--strategy")
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.local_workers)
        launch_local_workers(_without_flag(argv, "--threads"), args.local_workers, threads)
        return {"run_dir": args.out, "workers": args.local_workers}
    from fcnedge.train.models import ModelConfig, default_fc_units
    from fcnedge.train.pipeline import AugmentConfig
    from fcnedge.train.trainer import TrainConfig, resumed_epochs, train

    ignored = flags_ignored_on_resume(getattr(args, "argv", [])) if args.resume else []
    if ignored:
        log.warning("--resume continues %s with the settings in its run.json; ignoring %s "
                    "(a new run with --init-weights %s can change them)", args.out,
                    ", ".join(ignored), args.out)
    # A resume without --epochs must not fall back to the default count: that would silently
    # re-plan an 8-epoch run's cosine schedule over 40.
    epochs = args.epochs if args.epochs is not None else (
        resumed_epochs(args.out) if args.resume else TrainConfig.epochs)
    input_hw = parse_size(args.input_size or DEFAULT_INPUT_SIZE[args.backbone])
    labels = dataset_labels(args.data, args.classes) if not args.resume else CAMVID
    model = ModelConfig(arch=args.arch, backbone=args.backbone, input_hw=input_hw,
                        num_classes=labels.num_classes,
                        alpha=args.alpha, decoder=args.decoder,
                        context=args.context, context_units=args.context_units,
                        fc_units=default_fc_units(args.backbone) if args.fc_units is None
                        else args.fc_units, bn_momentum=args.bn_momentum, dropout=args.dropout)
    if args.scale_min <= 0 or args.scale_max < args.scale_min:
        raise InputError(f"--scale-min/--scale-max: got {args.scale_min}..{args.scale_max}, "
                         "expected 0 < min <= max")
    config = TrainConfig(
        data=args.data, out=args.out, model=model, epochs=epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, class_weights=args.class_weights,
        class_weight_power=args.class_weight_power, loss=args.loss,
        backbone_weights=args.backbone_weights, init_weights=args.init_weights,
        strategy=args.strategy,
        augment=AugmentConfig(scale_min=args.scale_min, scale_max=args.scale_max,
                              enabled=not args.no_augment,
                              paste_classes=tuple(name.strip() for name in
                                                  args.paste_classes.split(",") if name.strip()),
                              paste_probability=args.paste_prob,
                              camera_jitter=args.camera_jitter),
        seed=args.seed, val_every=args.val_every, save_every=args.save_every,
        train_splits=parse_names(args.train_splits, "--train-splits"),
        val_splits=parse_names(args.val_splits, "--val-splits"),
        val_drives=parse_names(args.val_drives, "--val-drives"), keep=args.keep,
        limit_train=args.limit_train,
        limit_val=args.limit_val, threads=args.threads)
    result = train(config, resume=args.resume, overwrite=args.overwrite, labels=labels,
                   verbose=0 if args.quiet else 1)
    log.info("best val mIoU %.2f%% at epoch %d; run in %s", result.best_miou, result.best_epoch,
             result.run_dir)
    return {"run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
            "best_val_miou": result.best_miou, "epochs": len(result.history)}


def run_eval(args) -> dict:
    from fcnedge.train.data import load_split
    from fcnedge.train.evaluate import (WorstImages, evaluate_predictor, format_scores_table,
                                        keras_predictor, plot_confusion, tflite_predictor,
                                        write_class_error_sheet)
    from fcnedge.runtime.fileio import write_json_atomic, write_text_atomic
    from fcnedge.train.models import ModelConfig
    from fcnedge.train.trainer import load_trained_model

    if args.batch_size < 1:
        raise InputError(f"--batch-size: got {args.batch_size}, expected a positive integer")
    if args.error_images < 1:
        raise InputError(f"--error-images: got {args.error_images}, expected a positive integer")
    pairs, split_label = eval_pairs(args)
    if args.out:
        check_writable_location(args.out, "--out", folder=True)
    model_path = Path(args.model)
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
                                batch_size=batch_size, progress=_progress_printer("images"),
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
    from fcnedge.train.trainer import RUN_FILE, load_trained_model

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
                                    progress=_progress_printer("images"))
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
