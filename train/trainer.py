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
  teacher/            the same records of the run a --teacher run distilled from
Every file is written atomically, and history.json before the checkpoint, so a run killed at any
moment resumes at the right epoch with neither a gap nor a duplicate in its history.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.fileio import check_writable_location, prepare_output_folder, write_json_atomic
from fcnedge.runtime.labels import CAMVID, LabelSet
from fcnedge.train.data import label_histogram, load_split, median_frequency_weights
from fcnedge.train.distributed import is_chief, is_chief_task, make_strategy
from fcnedge.train.evaluate import evaluate_predictor, keras_predictor
from fcnedge.train.config import TrainConfig
from fcnedge.train.distill import (TEACHER_FOLDER, DistilledFCN, check_teacher,
                                   load_teacher)
from fcnedge.train.losses import segmentation_loss
from fcnedge.train.models import build_fcn
from fcnedge.train.optimizer import make_optimizer, make_schedule
from fcnedge.train.input_pipeline import train_dataset
from fcnedge.train.run_folder import (BEST_WEIGHTS, EPOCHS_DIR, HISTORY_FILE, INIT_FOLDER,
                                      LAST_WEIGHTS, RUN_FILE, epoch_weights_name, read_history,
                                      read_json, remove_leftovers)
from fcnedge.train.splits import drives_text, select_train_val
from fcnedge.train.warm_start import load_init_weights, record_lineage
from fcnedge.train.weights import save_model_weights
from fcnedge.train.tfcompat import keras, tf

log = logging.getLogger("fcnedge.train")

@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_miou: float
    history: list


def _read_run_to_resume(run_dir: Path) -> dict:
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise InputError(f"{run_file} not found; nothing to resume in {run_dir}", "resume")
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
    prepare_output_folder(Path(config.out), overwrite,
                          inputs=(config.data, config.init_weights, config.teacher),
                          owned_marker=RUN_FILE,
                          hint=f"pass {mention('resume')} to continue that run or "
                               f"{mention('overwrite')} to replace it")


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          labels: LabelSet = CAMVID, verbose: int = 1, callbacks=()) -> TrainResult:
    """Trains (or resumes) a run; see the module docstring for what it writes.

    Args:
      labels: the dataset's classes (`runtime.labels.dataset_labels`); they set the model's
        class count. A resumed run keeps the classes in its run.json.
      callbacks: extra Keras callbacks, run after the run's own ones each epoch.

    Raises:
      InputError: bad data, options, or an `out` folder that would be overwritten.
    """
    config.augment.paste_ids(labels.class_names)     # a bad name fails before --out is touched
    if not resume:
        check_writable_location(config.out, "out", folder=True)
    config, stored = _resumed_config(config, resume)
    if config.teacher:
        check_teacher(config.teacher)
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
        raise InputError(f"got {config.batch_size} (x {strategy.num_replicas_in_sync} "
                         f"replicas), expected at most the {len(train_pairs)} training images",
                         "batch_size")
    teacher = load_teacher(config.teacher, model_config, labels) if config.teacher else None
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
        if teacher is not None:
            model = DistilledFCN(model, teacher.model)
        schedule = make_schedule(config, steps_per_epoch)
        optimizer = make_optimizer(config, schedule)
        model.compile(optimizer=optimizer,
                      loss=segmentation_loss(
                          config.loss, class_weights, labels.num_classes,
                          distill=(config.distill_weight, config.distill_temperature)
                          if teacher else None))
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
        if teacher is not None:
            record_lineage(teacher.run_dir, run_dir / TEACHER_FOLDER)

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


