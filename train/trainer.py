"""Training: an FCN on a dataset folder, class-balanced, evaluated and checkpointed every epoch.

A run directory holds everything needed to resume or reuse a run:
  run.json            model and training configuration, labels, class weights
  history.json        one entry per finished epoch (loss, val mIoU, per-class IoU, lr, seconds)
  ckpt/               TensorFlow checkpoints (model, optimizer, epoch) for --resume
  best.weights.h5     weights of the epoch with the best val mIoU (no optimizer state; not
                      written with --keep last, where the last epoch is the model)
  last.weights.h5     weights of the last finished epoch (no optimizer state)
  epochs/             epoch_NNN.weights.h5 every --save-every N epochs (none by default), to
                      score or compare epochs after the run (`fcnedge eval --model` takes one)
  logs/               TensorBoard event files
  init/               run.json and history.json (and its own init/) of the run whose weights
                      --init-weights started this one from, so a warm-started run keeps its
                      whole lineage
Every file is written atomically, and history.json before the checkpoint, so a run killed at any
moment resumes at the right epoch with neither a gap nor a duplicate in its history.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import (atomic_path, check_writable_location, prepare_output_folder,
                                    write_json_atomic)
from fcnedge.runtime.labels import CAMVID, LabelSet
from fcnedge.runtime.validate import COUNT, NON_NEGATIVE, POSITIVE, ZERO_OR_MORE, check_optional
from fcnedge.train.data import label_histogram, load_split, median_frequency_weights
from fcnedge.train.distributed import is_chief_task
from fcnedge.train.evaluate import evaluate_predictor, keras_predictor
from fcnedge.train.losses import LOSSES, segmentation_loss
from fcnedge.train.models import ARCH_STRIDES, ModelConfig, build_fcn
from fcnedge.train.pipeline import AugmentConfig, train_dataset
from fcnedge.train.run_folder import (BEST_WEIGHTS, EPOCHS_DIR, HISTORY_FILE, INIT_FOLDER,
                                      LAST_WEIGHTS, RUN_FILE, epoch_weights_name, read_history,
                                      read_json, remove_leftovers, run_weights)
from fcnedge.train.splits import drives_text, select_train_val
from fcnedge.train.prior import PRIOR_FILE, fold_logit_shift, read_prior_correction
from fcnedge.train.tfcompat import keras, tf

log = logging.getLogger("fcnedge.train")

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "poly", "constant")
CLASS_WEIGHTINGS = ("none", "median-freq")
STRATEGIES = ("default", "mirrored", "multi-worker")
KEEP_CHOICES = ("best", "last")



@dataclass(frozen=True)
class TrainConfig:
    """A training run. `batch_size` is per replica; the global batch scales with replicas."""

    data: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 90
    batch_size: int = 4
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    class_weights: str = "median-freq"
    class_weight_power: float = 0.5
    loss: str = "ce"
    backbone_weights: str = "none"
    init_weights: str | None = None
    strategy: str = "default"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    val_every: int = 1
    save_every: int = 0
    train_splits: tuple[str, ...] = ("train",)
    val_splits: tuple[str, ...] = ("val",)
    val_drives: tuple[str, ...] = ()
    keep: str = "best"
    limit_train: int | None = None
    limit_val: int | None = None
    threads: int | None = None

    def __post_init__(self):
        checks = ((self.optimizer, OPTIMIZERS, "--optimizer"), (self.schedule, SCHEDULES, "--schedule"),
                  (self.class_weights, CLASS_WEIGHTINGS, "--class-weights"),
                  (self.loss, LOSSES, "--loss"),
                  (self.strategy, STRATEGIES, "--strategy"), (self.keep, KEEP_CHOICES, "--keep"))
        for value, allowed, flag in checks:
            if value not in allowed:
                raise InputError(f"{flag}: got {value!r}, expected one of {', '.join(allowed)}")
        for value, flag in ((self.epochs, "--epochs"), (self.batch_size, "--batch-size"),
                            (self.val_every, "--val-every")):
            if value < 1:
                raise InputError(f"{flag}: got {value}, expected a positive integer")
        if self.save_every < 0:
            raise InputError(f"--save-every: got {self.save_every}, expected 0 (off) or a "
                             "positive number of epochs")
        POSITIVE.check(self.learning_rate, "--lr")
        NON_NEGATIVE.check(self.weight_decay, "--weight-decay")
        NON_NEGATIVE.check(self.warmup_epochs, "--warmup-epochs")
        ZERO_OR_MORE.check(self.seed, "--seed")
        for value, flag in ((self.threads, "--threads"), (self.limit_train, "--limit-train"),
                            (self.limit_val, "--limit-val")):
            check_optional(value, COUNT, flag)
        if not 0 < self.class_weight_power <= 1:
            raise InputError(f"--class-weight-power: got {self.class_weight_power}, expected a "
                             "number in (0, 1]")
        if self.class_weight_power != 1.0 and self.class_weights == "none":
            raise InputError("--class-weight-power tempers --class-weights median-freq; it has "
                             "nothing to temper with --class-weights none")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        data["model"] = ModelConfig.from_dict(data["model"])
        data["augment"] = AugmentConfig(**data.get("augment", {}))
        # Runs from before combined splits stored one split name each.
        for old, new in (("train_split", "train_splits"), ("val_split", "val_splits")):
            if old in data and new not in data:
                data[new] = (data.pop(old),)
        for name in ("train_splits", "val_splits", "val_drives"):
            if name in data:
                data[name] = tuple(data[name])
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_miou: float
    history: list


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine or polynomial (power 0.9, as in DeepLab) decay, by step."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int, kind: str,
                 end_fraction: float = 0.01, power: float = 0.9):
        self.base_lr, self.total_steps, self.warmup_steps = base_lr, total_steps, warmup_steps
        self.kind, self.end_fraction, self.power = kind, end_fraction, power

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = tf.constant(self.base_lr, tf.float32)
        end = base * self.end_fraction
        warm = base * (step + 1.0) / float(max(self.warmup_steps, 1))
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "cosine":
            decayed = end + (base - end) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "poly":
            decayed = end + (base - end) * tf.pow(1.0 - progress, self.power)
        else:
            decayed = base
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind,
                "end_fraction": self.end_fraction, "power": self.power}


def make_strategy(name: str):
    """Maps --strategy to a tf.distribute strategy."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise InputError("--strategy multi-worker: TF_CONFIG is not set (it names the cluster "
                         "and this worker's task; see `fcnedge train --help`)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (workers other than the chief do not)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> WarmupDecay:
    return WarmupDecay(config.learning_rate, config.epochs * steps_per_epoch,
                       int(config.warmup_epochs * steps_per_epoch), config.schedule)


def make_optimizer(config: TrainConfig, schedule: WarmupDecay):
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule,
                                           weight_decay=config.weight_decay)
        # Decaying BatchNorm scales and biases only hurts; decay the kernels.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
    return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9,
                                weight_decay=config.weight_decay or None)


def _read_run_to_resume(run_dir: Path) -> dict:
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise InputError(f"--resume: {run_file} not found; nothing to resume in --out {run_dir}")
    return read_json(run_file, "run file")


def resumed_epochs(run_dir: str | Path) -> int:
    """The epoch count a run was started with, which a resume keeps unless told otherwise."""
    return TrainConfig.from_dict(_read_run_to_resume(Path(run_dir))["train"]).epochs


def _resumed_config(config: TrainConfig, resume: bool) -> tuple[TrainConfig, dict]:
    """The config a run goes on with: a resumed run's own (its stored graph wins; it may point
    at moved data or run more epochs), else the one given."""
    if not resume:
        return config, {}
    stored = _read_run_to_resume(Path(config.out))
    read_history(Path(config.out))         # a corrupt history fails before any work
    stored_config = TrainConfig.from_dict(stored["train"])
    return replace(stored_config, data=config.data, out=config.out, epochs=config.epochs,
                   threads=config.threads), stored


def _prepare_run_dir(config: TrainConfig, resume: bool, overwrite: bool) -> None:
    if resume:
        remove_leftovers(Path(config.out))
        return          # a resume keeps its folder
    if config.strategy == "multi-worker" and not is_chief_task():
        return          # the chief prepares it for the workers
    prepare_output_folder(Path(config.out), overwrite, inputs=(config.data, config.init_weights),
                          owned_marker=RUN_FILE,
                          hint="pass --resume to continue that run or --overwrite to replace it")


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          labels: LabelSet = CAMVID, verbose: int = 1, callbacks=()) -> TrainResult:
    """Trains (or resumes) a run; see the module docstring for what it writes.

    Args:
      labels: the dataset's classes (`runtime.labels.dataset_labels`); they set the model's
        class count. A resumed run keeps the classes in its run.json.
      callbacks: extra Keras callbacks, run after the run's own ones each epoch.

    Raises:
      InputError: bad data, options, or an --out folder that would be overwritten.
    """
    config.augment.paste_ids(labels.class_names)     # a bad name fails before --out is touched
    if not resume:
        check_writable_location(config.out, "--out", folder=True)
    config, stored = _resumed_config(config, resume)
    if stored:
        labels = LabelSet.from_dict(stored.get("labels"), str(Path(config.out) / RUN_FILE))
    if config.model.num_classes != labels.num_classes:
        # The label set is the one source of the class count: a 3-class dataset needs no
        # separate num_classes to be kept in step with it.
        config = replace(config, model=replace(config.model, num_classes=labels.num_classes))
    paste_ids = config.augment.paste_ids(labels.class_names)   # a resumed run's own classes
    if config.threads:
        # Measured on 2 cores: a second intra-op thread barely speeds a step up, while two
        # single-threaded runs side by side each keep their one-thread speed.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(config.threads)
        except RuntimeError:
            # TensorFlow fixes its thread pools when it first runs; a second train() in the
            # same process keeps the first one's.
            log.warning("--threads %d ignored: TensorFlow already started in this process",
                        config.threads)
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    run_dir = Path(config.out) if chief else Path(tempfile.mkdtemp(prefix="fcnedge-worker-"))
    tf.random.set_seed(config.seed)
    np.random.seed(config.seed)

    model_config = config.model
    # Every input is read and checked before --overwrite may clear the run folder.
    train_pairs, val_pairs = select_train_val(config)
    log.info("loading %s: %d training images (drives %s), %d validation images (drives %s) "
             "at %dx%d", config.data, len(train_pairs), drives_text(train_pairs),
             len(val_pairs), drives_text(val_pairs), *model_config.input_hw)
    train_arrays = load_split(train_pairs, model_config.input_hw, labels)
    val_arrays = load_split(val_pairs, model_config.input_hw, labels)
    if config.batch_size * strategy.num_replicas_in_sync > len(train_pairs):
        # A batch larger than the split would be built from repeats, in memory, at once.
        raise InputError(f"--batch-size: got {config.batch_size} (x "
                         f"{strategy.num_replicas_in_sync} replicas), expected at most the "
                         f"{len(train_pairs)} training images")
    _prepare_run_dir(config, resume, overwrite)

    if stored:
        class_weights = np.asarray(stored["class_weights"], np.float32)
    elif config.class_weights == "median-freq":
        class_weights = median_frequency_weights(
            *label_histogram(train_arrays.masks, labels.num_labels), labels.num_classes,
            power=config.class_weight_power)
    else:
        class_weights = np.ones(labels.num_classes, np.float32)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = max(1, len(train_pairs) // global_batch)
    # Every worker restores the chief's checkpoint: the others only ever saved to temp dirs.
    latest = tf.train.latest_checkpoint(str(Path(config.out) / "ckpt")) if resume else None
    with strategy.scope():
        # Seeded right here: setting up a strategy creates ops that would shift the op-seed
        # counter, and one process and N workers must start from the same weights.
        keras.utils.set_random_seed(config.seed)
        model = build_fcn(model_config, config.backbone_weights if not stored else "none")
        # A resumed run that was killed before its first checkpoint has only its init weights
        # to start from; one with a checkpoint restores it below instead.
        if config.init_weights and not latest:
            load_init_weights(model, model_config, config.init_weights)
        schedule = make_schedule(config, steps_per_epoch)
        optimizer = make_optimizer(config, schedule)
        model.compile(optimizer=optimizer,
                      loss=segmentation_loss(config.loss, class_weights, labels.num_classes))
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / "ckpt"), max_to_keep=2)
    # Written once the model is built and its init weights fit, so a bad --init-weights
    # leaves an empty folder to retry into rather than a run that --resume would start afresh.
    if not stored and chief:
        write_json_atomic(run_dir / RUN_FILE, {
            "format": "fcnedge-run/1", "model": model_config.to_dict(),
            "train": config.to_dict(), "labels": labels.to_dict(),
            "class_weights": [round(float(w), 6) for w in class_weights],
            "class_weights_by_name": dict(zip(labels.class_names,
                                              [round(float(w), 4) for w in class_weights])),
        })
        if config.init_weights and Path(config.init_weights).is_dir():
            record_lineage(Path(config.init_weights), run_dir / INIT_FOLDER)

    history: list = []
    if resume:
        if latest:
            # The optimizer's slots are restored when its first step creates them; a run that
            # is already finished takes no step, and without expect_partial TensorFlow would
            # warn once per unrestored slot (hundreds of lines) at exit.
            checkpoint.restore(latest).expect_partial()
        if stored and chief and stored["train"].get("epochs") != config.epochs:
            # --resume --epochs N extends the run: its record (and the cards made from it)
            # must say N, or a later plain --resume would plan the old count.
            write_json_atomic(run_dir / RUN_FILE, {**stored, "train": config.to_dict()})
        history = read_history(Path(config.out))
        # Epochs after the checkpoint were not saved with the model: drop them, redo them.
        history = [entry for entry in history if entry["epoch"] <= int(epoch_var.numpy())]
        log.info("resuming %s after epoch %d of %d", run_dir, int(epoch_var.numpy()),
                 config.epochs)
    initial_epoch = int(epoch_var.numpy())
    if initial_epoch >= config.epochs:
        log.info("run already finished %d epochs", initial_epoch)
        return _result(run_dir, history, config.keep)

    dataset = train_dataset(train_arrays.images, train_arrays.masks, global_batch,
                            config.augment, labels.void_id, seed=config.seed + initial_epoch,
                            paste_ids=paste_ids)
    recorder = _EpochRecorder(config, run_dir, labels, val_arrays, history, manager,
                              epoch_var, optimizer, schedule)
    # Every worker runs the same callbacks: one that only the chief ran could issue a
    # collective the others never join (non-chief logs go to their temporary folder).
    all_callbacks = [recorder, keras.callbacks.TensorBoard(str(run_dir / "logs"),
                                                           write_graph=False, profile_batch=0)]
    model.fit(dataset, epochs=config.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps_per_epoch,
              callbacks=all_callbacks + list(callbacks), verbose=verbose)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir = Path(config.out)
    return _result(run_dir, recorder.history, config.keep)


def load_init_weights(model, model_config: ModelConfig, source: str) -> Path:
    """Starts a fresh run from another run's weights (a second schedule cycle, a new dataset, or
    the paper's staged training).

    Only the weights carry over: the optimizer, schedule and epoch count start afresh, which is
    what a warm restart wants and what --resume (same run, same schedule) does not do. The
    source may also be a coarser FCN of the same backbone (FCN-32s into FCN-16s, FCN-8s into
    FCN-2s), as Long et al. trained FCN-16s from FCN-32s and FCN-8s from FCN-16s: every layer
    it has is copied and the finer skips keep their zero init, so the new run starts out
    predicting what the coarser net predicts.

    Args:
      model_config: the graph `model` was built from.
      source: a run folder (its best.weights.h5) or a weights file of the same architecture
        (or, beside its run.json, of a coarser one).

    Raises:
      InputError: the source is missing or its weights do not fit this model.
    """
    path = Path(source)
    if path.is_dir():
        path = run_weights(path) or path / BEST_WEIGHTS
    if not path.is_file():
        raise InputError(f"--init-weights {source}: expected a run folder holding {BEST_WEIGHTS} "
                         "or a weights file; found neither")
    source_config = _source_model_config(path)
    if source_config is not None:
        _check_source_fits(path, source_config, model_config)
        if source_config.arch != model_config.arch:
            _load_coarser_fcn(model, model_config, path, source_config)
            return path
    try:
        model.load_weights(str(path))
    except Exception as err:  # h5py and Keras raise a variety of types for a mismatch
        raise InputError(f"--init-weights {path}: does not fit this model (same --backbone, "
                         f"--alpha, --decoder and classes needed, and the same or a coarser "
                         f"--arch): {err}") from err
    log.info("initialised every layer from %s", path)
    return path


def _source_model_config(weights: Path) -> ModelConfig | None:
    """The graph a weights file was trained as, from the run.json beside it (None if absent)."""
    run_file = weights.parent / RUN_FILE
    if not run_file.is_file():
        return None
    try:
        return ModelConfig.from_dict(read_json(run_file, "run file")["model"])
    except (KeyError, TypeError, InputError):
        return None


# What shapes the weights; bn_momentum, dropout and the input size do not.
_WEIGHT_SHAPING_FIELDS = ("backbone", "num_classes", "alpha", "fc_units", "decoder")


def _check_source_fits(path: Path, source_config: ModelConfig, model_config: ModelConfig):
    mismatched = [name for name in _WEIGHT_SHAPING_FIELDS
                  if getattr(source_config, name) != getattr(model_config, name)]
    source_strides = ARCH_STRIDES[source_config.arch]
    target_strides = ARCH_STRIDES[model_config.arch]
    if mismatched:
        differences = ", ".join(f"{name} {getattr(source_config, name)} vs "
                                f"{getattr(model_config, name)}" for name in mismatched)
        raise InputError(f"--init-weights {path}: does not fit this model ({differences})")
    if target_strides[:len(source_strides)] != source_strides:
        raise InputError(f"--init-weights {path}: a {source_config.arch} cannot start a "
                         f"{model_config.arch}; a run starts from the same or a coarser FCN "
                         f"(fcn32s -> fcn16s -> fcn8s -> fcn4s -> fcn2s), else the skips the "
                         "source learned would be dropped")


def _load_coarser_fcn(model, model_config: ModelConfig, path: Path,
                      source_config: ModelConfig) -> None:
    # As trained: a prior correction belongs to the source's last score layer, which in the
    # finer FCN is no longer last.
    source_model, *_ = load_trained_model(path, input_hw=model_config.input_hw,
                                          prior_correction=False)
    copied = copy_coarser_fcn_weights(source_model, source_config.arch, model,
                                      model_config.arch)
    log.info("initialised %d layers from the %s in %s; the %s's finer skips start at zero",
             copied, source_config.arch, path, model_config.arch)


def copy_coarser_fcn_weights(source, source_arch: str, target, target_arch: str) -> int:
    """Copies every weighted layer of a coarser FCN into a finer one; returns how many.

    Head layers are named after their arch (`fcn8s_score_pool8`), so they are matched by the
    rest of the name. The final upsampling is skipped: its factor differs between the two, and
    it is a fixed bilinear kernel in both.
    """
    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name == f"{source_arch}_upscore_final":
            continue
        name = layer.name
        if name.startswith(f"{source_arch}_"):
            name = f"{target_arch}_{name[len(source_arch) + 1:]}"
        target.get_layer(name).set_weights(weights)
        copied += 1
    return copied


def record_lineage(source_run: Path, dest: Path) -> None:
    """Copies a source run's records (not its weights) and, recursively, its own lineage."""
    folder = source_run
    while (folder / RUN_FILE).is_file():
        dest.mkdir(parents=True, exist_ok=True)
        for name in (RUN_FILE, HISTORY_FILE):
            if (folder / name).is_file():
                with atomic_path(dest / name) as tmp:
                    shutil.copyfile(folder / name, tmp)
        folder, dest = folder / INIT_FOLDER, dest / INIT_FOLDER


def run_lineage(run_dir: Path) -> list[tuple[dict, list]]:
    """(run.json, history.json) of a run and of the runs it was warm-started from, oldest first."""
    stages, folder = [], Path(run_dir)
    while (folder / RUN_FILE).is_file():
        history_path = folder / HISTORY_FILE
        history = json.loads(history_path.read_text()) if history_path.is_file() else []
        stages.append((json.loads((folder / RUN_FILE).read_text()), history))
        folder = folder / INIT_FOLDER
    return stages[::-1]


def _result(run_dir: Path, history: list, keep: str = "best") -> TrainResult:
    scored = [h for h in history if h.get("val_miou") is not None]
    if keep == "last":
        best = scored[-1] if scored else None
    else:
        best = max(scored, key=lambda h: h["val_miou"], default=None)
    return TrainResult(run_dir, best["epoch"] if best else 0,
                       best["val_miou"] if best else float("nan"), history)


class _EpochRecorder(keras.callbacks.Callback):
    """Scores val, then writes history, weights and the checkpoint, in that order (see module)."""

    def __init__(self, config: TrainConfig, run_dir: Path, labels: LabelSet,
                 val_arrays, history: list, manager, epoch_var, optimizer, schedule):
        super().__init__()
        self.config, self.run_dir, self.labels = config, run_dir, labels
        self.val_arrays, self.history, self.manager = val_arrays, history, manager
        self.epoch_var, self.optimizer_ref, self.schedule = epoch_var, optimizer, schedule
        scored = [h["val_miou"] for h in history if h.get("val_miou") is not None]
        self.best = max(scored, default=-1.0)
        self.predict = None
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        train_seconds = time.perf_counter() - self.started
        number = epoch + 1
        entry = {"epoch": number, "loss": round(float(logs.get("loss", float("nan"))), 5),
                 # The rate of the epoch's last step, from the restored step count.
                 "lr": float(self.schedule(self.optimizer_ref.iterations - 1)),
                 "train_seconds": round(train_seconds, 2)}
        if number % self.config.val_every == 0 or number == self.config.epochs:
            if self.predict is None:
                self.predict = keras_predictor(self.model)
            scores = evaluate_predictor(self.predict, self.val_arrays.images,
                                        self.val_arrays.full_masks, self.labels)
            logs["val_miou"] = scores.mean_iou
            logs["val_pixel_accuracy"] = scores.pixel_accuracy
            report = scores.to_dict()
            entry.update(val_miou=report["miou"], val_pixel_accuracy=report["pixel_accuracy"],
                         val_per_class_iou=report["per_class_iou"])
            log.info("epoch %d: loss %.4f, val mIoU %.2f%%", number, entry["loss"], report["miou"])
        entry["seconds"] = round(time.perf_counter() - self.started, 2)
        self.history.append(entry)
        # Every worker writes (the non-chief ones into a temporary folder): saving can issue
        # collectives, and a worker that skipped one would leave the others waiting.
        write_json_atomic(self.run_dir / HISTORY_FILE, self.history)
        save_model_weights(self.model, self.run_dir / LAST_WEIGHTS)
        if self.config.save_every and number % self.config.save_every == 0:
            (self.run_dir / EPOCHS_DIR).mkdir(exist_ok=True)
            save_model_weights(self.model, self.run_dir / EPOCHS_DIR / epoch_weights_name(number))
        miou = entry.get("val_miou")
        if miou is not None and miou > self.best and self.config.keep == "best":
            self.best = miou
            save_model_weights(self.model, self.run_dir / BEST_WEIGHTS)
        self.epoch_var.assign(number)
        self.manager.save(checkpoint_number=number)


def save_model_weights(model, path: Path) -> None:
    """Writes the model's weights to a `.weights.h5` file atomically, without optimizer state.

    Keras' `.weights.h5` format also stores the optimizer's slots: with AdamW two per weight,
    11.0 of the 17.2 MB of a MobileNetV2-0.75 FCN-8s's file. The checkpoint in ckpt/ already
    holds them for --resume, and a warm start wants a fresh optimizer, so the weights files keep
    the model alone.
    """
    import h5py

    # Hidden and beside the target: a kill leaves no folder a reader would take for a file.
    with tempfile.TemporaryDirectory(prefix=".save-", dir=path.parent) as folder:
        full = Path(folder) / "full.weights.h5"
        model.save_weights(str(full))
        with atomic_path(path) as tmp, h5py.File(full, "r") as source, \
                h5py.File(tmp, "w") as slim:
            for key, value in source.attrs.items():
                slim.attrs[key] = value
            for key in source:
                if key != "optimizer":
                    source.copy(source[key], slim, name=key)


def load_trained_model(path: str | os.PathLike, input_hw: tuple[int, int] | None = None,
                       prior_correction: bool = True):
    """Loads a trained Keras FCN from a run dir (best weights first) or a weights file in one
    (or in its epochs/ folder).

    Args:
      prior_correction: apply the run's prior correction (`fcnedge correct-prior`,
        prior_correction.json) when it was computed for these weights; False loads the weights
        as trained.

    Returns:
      (model, ModelConfig, LabelSet, run info dict); the info also names the weights file
      loaded ("weights") and the applied correction ("prior_correction", None if none).
    """
    path = Path(path)
    if path.is_dir():
        run_dir = path
        weights = run_weights(run_dir)
        if weights is None:
            raise InputError(f"--model {path}: run folder has no {BEST_WEIGHTS} or {LAST_WEIGHTS}")
    elif path.is_file() and path.suffix == ".h5":
        run_dir, weights = path.parent, path
        if run_dir.name == EPOCHS_DIR and not (run_dir / RUN_FILE).is_file():
            run_dir = run_dir.parent    # an epoch snapshot from --save-every
    else:
        raise InputError(f"--model {path}: expected a run folder or a .h5 weights file in one")
    info = read_json(run_dir / RUN_FILE, "run file (run.json beside the weights)")
    try:
        config = ModelConfig.from_dict(info["model"])
        labels = LabelSet.from_dict(info.get("labels"), str(run_dir / RUN_FILE))
    except (KeyError, TypeError) as err:
        raise InputError(f"{run_dir / RUN_FILE}: not an fcnedge run file ({err})") from err
    if input_hw is not None:
        config = replace(config, input_hw=tuple(input_hw))
    model = build_fcn(config)
    try:
        model.load_weights(str(weights))
    except Exception as err:
        raise InputError(f"{weights}: weights do not fit the model in {RUN_FILE} ({err})") from err
    correction = read_prior_correction(run_dir, weights) if prior_correction else None
    if correction is not None:
        fold_logit_shift(model, config.arch, correction.logit_shift)
        log.info("applied the prior correction of %s (tau %g)", run_dir / PRIOR_FILE,
                 correction.tau)
    info = {**info, "weights": str(weights),
            "prior_correction": correction.to_dict() if correction else None}
    return model, config, labels, info
