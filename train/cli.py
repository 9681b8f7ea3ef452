"""Subcommands `data` and `train`; each handler imports TensorFlow only when it runs (`eval`
and `correct-prior` are in eval_cli.py)."""
from __future__ import annotations

import logging
import os
import sys

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import check_writable_location
from fcnedge.runtime.labels import CAMVID, add_classes_argument, dataset_labels
from fcnedge.runtime.options import CLIP_FPS
from fcnedge.runtime.preprocess import parse_size
from fcnedge.train.download import DOWNLOAD_TIMEOUT_S
from fcnedge.train.config import (ARCH_STRIDES, CLASS_WEIGHTINGS, CONTEXTS, DECODERS,
                                  DEFAULT_INPUT_SIZE, KEEP_CHOICES, LOSSES, OPTIMIZERS, SCHEDULES,
                                  SKIP_LAYERS, STRATEGIES, AugmentConfig, ModelConfig,
                                  TRAIN_FLAGS, TrainConfig, default_fc_units, flags_of)
from fcnedge.train.splits import parse_names
from fcnedge.runtime.validate import (COUNT, BELOW_ONE, FRAME_RATE, NON_NEGATIVE, POSITIVE, UNIT,
                                      ZERO_OR_MORE, flag_type)

log = logging.getLogger("fcnedge")
MODEL = ModelConfig()       # the graph defaults (fields with default factories have no class value)


def progress_printer(what: str):
    """A one-line progress counter on stderr (only redrawn on a terminal)."""
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int):
        if interactive:
            end = "\n" if done >= total else ""
            print(f"\r{what}: {done}/{total or '?'}", end=end, file=sys.stderr, flush=True)
        elif done >= total:
            print(f"{what}: {done}/{total}", file=sys.stderr)

    return progress


def add_parsers(subparsers, add_common) -> None:

    data = subparsers.add_parser("data", help="get or make datasets")
    data_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    camvid = data_sub.add_parser("camvid", help="download CamVid (SegNet layout) and verify it")
    camvid.add_argument("--dest", required=True, help="folder to create")
    camvid.add_argument("--url", default=None, help="archive URL (a mirror); default: the "
                        "SegNet tutorial's GitHub archive")
    camvid.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    camvid.add_argument("--timeout", type=flag_type(POSITIVE), default=DOWNLOAD_TIMEOUT_S,
                        help="network timeout, seconds")
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
    clip.add_argument("--fps", type=flag_type(FRAME_RATE), default=CLIP_FPS)
    clip.add_argument("--max-frames", type=flag_type(COUNT), default=None)
    add_common(clip)
    clip.set_defaults(handler=run_data_clip)

    train = subparsers.add_parser("train", help="train an FCN; writes a run folder")
    train.add_argument("--data", required=True, help="dataset folder (SegNet layout or "
                       "SPLIT/images + SPLIT/masks)")
    train.add_argument("--out", required=True, help="run folder to write")
    add_classes_argument(train, training=True)
    train.add_argument("--arch", default=MODEL.arch, choices=list(ARCH_STRIDES))
    train.add_argument("--backbone", default=MODEL.backbone, choices=list(SKIP_LAYERS))
    train.add_argument("--alpha", type=flag_type(POSITIVE), default=MODEL.alpha,
                       help="MobileNetV2 width multiplier")
    train.add_argument("--input-size", default=None,
                       help="HxW, multiples of 32 (default: " + ", ".join(
                           f"{size} for {name}" for name, size in DEFAULT_INPUT_SIZE.items())
                       + ")")
    train.add_argument("--decoder", default=MODEL.decoder, choices=list(DECODERS),
                       help="upsampling: fixed bilinear resize, or learned transposed "
                       "convolutions as in the paper")
    train.add_argument("--context", default=MODEL.context, choices=list(CONTEXTS),
                       help="context module on the stride-32 features: none, or lraspp "
                       "(Lite R-ASPP: a 1x1 branch gated by the global average)")
    train.add_argument("--context-units", type=flag_type(COUNT), default=MODEL.context_units,
                       help="width of the context module")
    train.add_argument("--fc-units", type=flag_type(ZERO_OR_MORE), default=None,
                       help="width of the fc6/fc7 head (default 4096 for vgg16, 0 for "
                       "mobilenetv2)")
    train.add_argument("--bn-momentum", type=flag_type(BELOW_ONE), default=MODEL.bn_momentum,
                       help="BatchNorm momentum of MobileNetV2 (Keras' 0.999 breaks short "
                       "from-scratch runs)")
    train.add_argument("--dropout", type=flag_type(BELOW_ONE), default=MODEL.dropout)
    train.add_argument("--epochs", type=flag_type(COUNT), default=None,
                       help=f"default {TrainConfig.epochs} (the recipe's first stage); with "
                            "--resume, the run's own count (pass it to extend the run: the "
                            "schedule stretches)")
    train.add_argument("--batch-size", type=flag_type(COUNT), default=TrainConfig.batch_size,
                       help="per replica")
    train.add_argument("--optimizer", default=TrainConfig.optimizer, choices=list(OPTIMIZERS))
    train.add_argument("--lr", type=flag_type(POSITIVE), default=TrainConfig.learning_rate,
                       help="peak learning rate")
    train.add_argument("--weight-decay", type=flag_type(NON_NEGATIVE),
                       default=TrainConfig.weight_decay)
    train.add_argument("--schedule", default=TrainConfig.schedule, choices=list(SCHEDULES))
    train.add_argument("--warmup-epochs", type=flag_type(NON_NEGATIVE),
                       default=TrainConfig.warmup_epochs)
    train.add_argument("--class-weights", default=TrainConfig.class_weights,
                       choices=list(CLASS_WEIGHTINGS))
    train.add_argument("--class-weight-power", type=flag_type(POSITIVE),
                       default=None, metavar="P",
                       help="median-freq weights raised to P (0 < P <= 1; 0.5 = square root): "
                       f"tempers the balancing (default: {TrainConfig.class_weight_power} with "
                       "median-freq)")
    train.add_argument("--loss", default=TrainConfig.loss, choices=list(LOSSES),
                       help="ce: cross-entropy (class-weighted); ce+lovasz adds the Lovasz-softmax "
                       "IoU surrogate, which also penalises false positives of rare classes")
    train.add_argument("--backbone-weights", default=TrainConfig.backbone_weights,
                       help="'none' (from scratch), 'imagenet' (downloads), or a weights file")
    train.add_argument("--init-weights", default=None, metavar="RUN_OR_FILE",
                       help="start every layer from another run's best weights (its folder) or "
                            "a weights file of the same model; the schedule starts afresh "
                            "(a warm restart; --resume continues the same schedule instead). "
                            "A coarser FCN of the same backbone also works (an fcn8s run into "
                            "--arch fcn2s, the paper's staged training): the finer skips start "
                            "at zero")
    train.add_argument("--teacher", default=None, metavar="RUN_OR_FILE",
                       help="distil from this trained run (its folder) or weights file of the "
                            "same classes: its softened scores of each augmented batch become a "
                            "second target beside the labels")
    train.add_argument("--distill-weight", type=flag_type(UNIT),
                       default=TrainConfig.distill_weight,
                       help="the distillation term's share of the loss (with --teacher)")
    train.add_argument("--distill-temperature", type=flag_type(POSITIVE),
                       default=TrainConfig.distill_temperature,
                       help="softens both models' scores before they are compared")
    train.add_argument("--strategy", default=TrainConfig.strategy, choices=list(STRATEGIES),
                       help="tf.distribute strategy; multi-worker reads TF_CONFIG")
    train.add_argument("--local-workers", type=flag_type(COUNT), default=None, metavar="N",
                       help="try multi-worker training here: N worker processes on loopback "
                       "ports, TF_CONFIG written for each (worker 0 writes the run)")
    train.add_argument("--scale-min", type=flag_type(POSITIVE), default=AugmentConfig.scale_min,
                       help="random scale range")
    train.add_argument("--scale-max", type=flag_type(POSITIVE), default=AugmentConfig.scale_max)
    train.add_argument("--paste-classes", default="", metavar="NAMES",
                       help="comma-separated classes whose pixels are copy-pasted from one "
                            "image of a batch into another (e.g. Pole,SignSymbol); default none")
    train.add_argument("--paste-prob", type=flag_type(UNIT),
                       default=AugmentConfig.paste_probability,
                       help="chance that an image receives a copy-paste")
    train.add_argument("--camera-jitter", type=flag_type(UNIT), default=AugmentConfig.camera_jitter,
                       metavar="S",
                       help="strength in [0, 1] of white-balance, exposure, blur and noise "
                            "jitter, for streets filmed by other cameras on other days (0: off)")
    train.add_argument("--no-augment", action="store_true", help="train on unaugmented images")
    train.add_argument("--seed", type=flag_type(ZERO_OR_MORE), default=TrainConfig.seed)
    train.add_argument("--val-every", type=flag_type(COUNT), default=TrainConfig.val_every,
                       help="score val every N epochs")
    train.add_argument("--save-every", type=flag_type(ZERO_OR_MORE), default=TrainConfig.save_every,
                       metavar="N",
                       help="also keep the weights of every Nth epoch in OUT/epochs/ "
                            "(0: only best and last)")
    train.add_argument("--train-splits", default=",".join(TrainConfig.train_splits),
                       metavar="SPLITS",
                       help="comma-separated splits pooled for training (train,val: a refit on "
                            "both, with --keep last)")
    train.add_argument("--val-splits", default=",".join(TrainConfig.val_splits), metavar="SPLITS",
                       help="comma-separated splits scored every --val-every epochs")
    train.add_argument("--val-drives", default="", metavar="DRIVES",
                       help="hold these drives out (comma-separated frame-name prefixes, e.g. "
                            "0006R0): none of their frames trains, and validation is all of "
                            "their frames in the training and val splits; default: the val "
                            "split as it is (CamVid val shares its drive with training)")
    train.add_argument("--keep", default=TrainConfig.keep, choices=list(KEEP_CHOICES),
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
    train.set_defaults(handler=run_train, param_flags=flags_of(TRAIN_FLAGS))


def run_data_camvid(args) -> dict:
    from fcnedge.train.download import DEFAULT_URL, download_camvid

    check_writable_location(args.dest, "dest", folder=True)
    return download_camvid(args.dest, url=args.url or DEFAULT_URL, sha256=args.sha256,
                           timeout=args.timeout, progress=progress_printer("download bytes"))


def run_data_synth(args) -> dict:
    from fcnedge.train.synth import write_synth_dataset

    size = parse_size(args.size, name="size")
    check_writable_location(args.dest, "dest", folder=True)
    num_val = args.num_val if args.num_val is not None else max(1, args.num // 4)
    dest = write_synth_dataset(args.dest, args.num, num_val, size, args.seed,
                               progress=progress_printer("scenes"))
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


def class_weight_power(args) -> float:
    """--class-weight-power as given, else the recipe's for median-freq (1.0 means untempered)."""
    if args.class_weight_power is None:
        return TrainConfig.class_weight_power if args.class_weights == "median-freq" else 1.0
    if args.class_weights == "none" and args.class_weight_power != 1.0:
        raise InputError("--class-weight-power tempers --class-weights median-freq; it has "
                         "nothing to temper with --class-weights none")
    return args.class_weight_power


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
    from fcnedge.train.trainer import resumed_epochs, train

    ignored = flags_ignored_on_resume(getattr(args, "argv", [])) if args.resume else []
    if ignored:
        log.warning("--resume continues %s with the settings in its run.json; ignoring %s "
                    "(a new run with --init-weights %s can change them)", args.out,
                    ", ".join(ignored), args.out)
    # A resume without --epochs must not fall back to the default count: that would silently
    # re-plan an 8-epoch run's cosine schedule over 40.
    epochs = args.epochs if args.epochs is not None else (
        resumed_epochs(args.out) if args.resume else TrainConfig.epochs)
    labels = dataset_labels(args.data, args.classes) if not args.resume else CAMVID
    config = config_from_args(args, epochs, labels.num_classes)
    result = train(config, resume=args.resume, overwrite=args.overwrite, labels=labels,
                   verbose=0 if args.quiet else 1)
    log.info("best val mIoU %.2f%% at epoch %d; run in %s", result.best_miou, result.best_epoch,
             result.run_dir)
    return {"run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
            "best_val_miou": result.best_miou, "epochs": len(result.history)}


def config_from_args(args, epochs: int, num_classes: int) -> TrainConfig:
    """The TrainConfig that `fcnedge train`'s flags stand for (see config.TRAIN_FLAGS)."""
    input_hw = parse_size(args.input_size or DEFAULT_INPUT_SIZE[args.backbone])
    model = ModelConfig(arch=args.arch, backbone=args.backbone, input_hw=input_hw,
                        num_classes=num_classes,
                        alpha=args.alpha, decoder=args.decoder,
                        context=args.context, context_units=args.context_units,
                        fc_units=default_fc_units(args.backbone) if args.fc_units is None
                        else args.fc_units, bn_momentum=args.bn_momentum, dropout=args.dropout)
    if args.teacher is None and (args.distill_weight, args.distill_temperature) != (
            TrainConfig.distill_weight, TrainConfig.distill_temperature):
        raise InputError("--distill-weight/--distill-temperature: set how --teacher teaches; "
                         "expected them with --teacher")
    if args.scale_min <= 0 or args.scale_max < args.scale_min:
        raise InputError(f"--scale-min/--scale-max: got {args.scale_min}..{args.scale_max}, "
                         "expected 0 < min <= max")
    return TrainConfig(
        data=args.data, out=args.out, model=model, epochs=epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, class_weights=args.class_weights,
        class_weight_power=class_weight_power(args), loss=args.loss,
        backbone_weights=args.backbone_weights, init_weights=args.init_weights,
        teacher=args.teacher, distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature, strategy=args.strategy,
        augment=AugmentConfig(scale_min=args.scale_min, scale_max=args.scale_max,
                              enabled=not args.no_augment,
                              paste_classes=tuple(name.strip() for name in
                                                  args.paste_classes.split(",") if name.strip()),
                              paste_probability=args.paste_prob,
                              camera_jitter=args.camera_jitter),
        seed=args.seed, val_every=args.val_every, save_every=args.save_every,
        train_splits=parse_names(args.train_splits, "train_splits"),
        val_splits=parse_names(args.val_splits, "val_splits"),
        val_drives=parse_names(args.val_drives, "val_drives"), keep=args.keep,
        limit_train=args.limit_train,
        limit_val=args.limit_val, threads=args.threads)
