"""Prior correction: undo, after training, the class prior that class weights put into a model.

Cross-entropy weighted by w_c trains the softmax towards p(c | x) * w_c (renormalised): the
weights buy rare-class features during training, but they also move the decision threshold, so
a weighted model over-predicts its rare classes (on CamVid, half the pixels it calls Pedestrian
are something else). Subtracting tau * log(w_c) from the logits moves the threshold back
(tau = 1 undoes the weighting's prior exactly; this is the post-hoc logit adjustment of Menon
et al., "Long-tail learning via logit adjustment", ICLR 2021) while keeping the features.

tau is one number per run, chosen by mIoU on the training split (not on val, which selects
models), and folded into the bias of the head's last score layer, so every format exported
from the run carries it at no cost per frame.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import write_json_atomic
from fcnedge.runtime.labels import LabelSet
from fcnedge.runtime.metrics import SegmentationScores, scores_from_confusion
from fcnedge.train.evaluate import accumulate_confusion
from fcnedge.train.config import ARCH_STRIDES
from fcnedge.train.run_folder import RUN_FILE, read_json

log = logging.getLogger("fcnedge")

PRIOR_FILE = "prior_correction.json"
PRIOR_FORMAT = "fcnedge-prior-correction/1"

LogitsFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PriorCorrection:
    """A prior correction as stored beside the weights it was computed for."""

    tau: float
    log_class_weights: tuple[float, ...]
    weights_file: str
    weights_sha256: str
    split: str
    images: int

    @property
    def logit_shift(self) -> np.ndarray:
        return prior_correction_shift(np.asarray(self.log_class_weights, np.float32), self.tau)

    def to_dict(self) -> dict:
        return {"format": PRIOR_FORMAT, "tau": self.tau,
                "log_class_weights": list(self.log_class_weights),
                "weights_file": self.weights_file, "weights_sha256": self.weights_sha256,
                "split": self.split, "images": self.images}

    @classmethod
    def from_dict(cls, data: dict) -> "PriorCorrection":
        return cls(tau=float(data["tau"]),
                   log_class_weights=tuple(float(v) for v in data["log_class_weights"]),
                   weights_file=str(data["weights_file"]),
                   weights_sha256=str(data["weights_sha256"]),
                   split=str(data["split"]), images=int(data["images"]))


def prior_correction_shift(log_class_weights: np.ndarray, tau: float) -> np.ndarray:
    """What is added to each class's logit: -tau * log(w_c)."""
    return (-float(tau) * np.asarray(log_class_weights, np.float32)).astype(np.float32)


def loss_logit_offset(correction: dict | None) -> np.ndarray | None:
    """What a fine-tuning loss adds to a corrected model's logits to see them as trained.

    The class-weighted loss is minimised by the uncorrected logits, so fine-tuning a model with
    the correction folded in would move its bias back by the shift; offsetting the loss's input
    by minus the shift keeps the loss's optimum where the deployed logits are corrected.
    `correction` is a load's info["prior_correction"] (None: no correction, no offset).
    """
    if not correction:
        return None
    return -PriorCorrection.from_dict(correction).logit_shift


def log_class_weights(run_info: dict, num_classes: int, source: str = RUN_FILE) -> np.ndarray:
    """log(w_c) of a run's training loss; refuses a run whose loss was not class-weighted."""
    weights = np.asarray(run_info.get("class_weights") or [], np.float32)
    if weights.shape != (num_classes,) or np.any(weights <= 0):
        raise InputError(f"{source}: expected {num_classes} positive class weights under "
                         f"'class_weights', got {weights.tolist()}")
    if np.allclose(weights, weights[0]):
        raise InputError(f"{source}: the run was trained without class weights (all equal), so "
                         "its logits carry no class prior to correct")
    return np.log(weights)


def sweep_prior_correction(logits_fn: LogitsFn, images: np.ndarray,
                           full_masks: Sequence[np.ndarray], labels: LabelSet,
                           log_weights: np.ndarray, taus: Sequence[float], batch_size: int = 8,
                           progress: Callable[[int, int], None] | None = None
                           ) -> dict[float, SegmentationScores]:
    """Scores every tau from one pass of the model: logits are computed once per batch."""
    shifts = {tau: prior_correction_shift(log_weights, tau) for tau in taus}
    confusions = {tau: np.zeros((labels.num_classes,) * 2, np.int64) for tau in taus}
    for start in range(0, len(images), batch_size):
        logits = logits_fn(images[start:start + batch_size])
        truths = full_masks[start:start + batch_size]
        for tau, shift in shifts.items():
            label_maps = np.argmax(logits + shift, axis=-1).astype(np.uint8)
            accumulate_confusion(confusions[tau], label_maps, truths, labels)
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return {tau: scores_from_confusion(confusion, labels.class_names)
            for tau, confusion in confusions.items()}


def choose_tau(scores: dict[float, SegmentationScores]) -> float:
    """The tau of the best mIoU; on a tie the smaller correction, as the less assuming one."""
    return max(scores, key=lambda tau: (round(scores[tau].mean_iou, 6), -abs(tau)))


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def last_score_layer_name(arch: str) -> str:
    """The score layer whose output is summed last: its bias shifts every output pixel alike.

    The final upsampling after it has no bias. With the bilinear decoder it maps a constant to
    the same constant everywhere; with the transposed decoder (a fixed bilinear kernel) it
    does so except in the outermost output rows and columns, where the kernel is cut off.
    """
    strides = ARCH_STRIDES[arch]
    return f"{arch}_score_fr" if len(strides) == 1 else f"{arch}_score_pool{strides[-1]}"


def fold_logit_shift(model, arch: str, shift: np.ndarray) -> None:
    """Adds `shift` (one value per class) to the model's logits by way of a bias: no new op."""
    layer = model.get_layer(last_score_layer_name(arch))
    kernel, bias = layer.get_weights()
    if bias.shape != shift.shape:
        raise InputError(f"the prior correction has {shift.shape[0]} classes, the model "
                         f"{bias.shape[0]}")
    layer.set_weights([kernel, bias + shift.astype(bias.dtype)])


def read_prior_correction(run_dir: Path, weights: Path) -> PriorCorrection | None:
    """The run's correction if it was computed for exactly these weights, else None.

    A correction of other weights (a resumed run rewrote best.weights.h5, or last.weights.h5
    was loaded) would shift the wrong logits, so it is ignored with a warning, not applied.
    """
    path = run_dir / PRIOR_FILE
    if not path.is_file():
        return None
    try:
        correction = PriorCorrection.from_dict(read_json(path, "prior-correction file"))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: not an fcnedge prior-correction file ({err})") from err
    if (correction.weights_file != weights.name
            or correction.weights_sha256 != file_sha256(weights)):
        log.warning("%s was computed for other weights than %s; ignored (run `fcnedge "
                    "correct-prior` again)", path, weights)
        return None
    return correction


def write_prior_correction(run_dir: Path, correction: PriorCorrection,
                           scores: dict[float, SegmentationScores]) -> Path:
    """prior_correction.json: the chosen tau and, for the record, every tau's scores."""
    return write_json_atomic(run_dir / PRIOR_FILE, {
        **correction.to_dict(),
        "sweep": [{"tau": tau, **scores[tau].to_dict()} for tau in sorted(scores)],
    })


def format_sweep_table(scores: dict[float, SegmentationScores], chosen: float,
                       classes: Sequence[str]) -> str:
    """A markdown table: mIoU and the chosen classes' IoU for every tau."""
    header = "| tau | mIoU | pixel acc | " + " | ".join(classes) + " |"
    lines = [header, "|" + "---:|" * (3 + len(classes))]
    for tau in sorted(scores):
        data = scores[tau].to_dict()
        mark = " (chosen)" if tau == chosen else ""
        cells = [f"{tau:g}{mark}", f"{data['miou']:.2f}", f"{data['pixel_accuracy']:.2f}"]
        cells += [f"{data['per_class_iou'][name]:.1f}"
                  if data["per_class_iou"][name] is not None else "" for name in classes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
PRIOR_SPLIT = "train"    # tau is chosen on the training split: val selects models
PRIOR_BATCH_SIZE = 8


def correct_prior(run: str | os.PathLike, data: str, split: str = PRIOR_SPLIT,
                  taus: Sequence[float] = DEFAULT_TAUS, limit: int | None = None,
                  batch_size: int = PRIOR_BATCH_SIZE, classes: str | None = None,
                  progress=None) -> dict:
    """`fcnedge correct-prior`: sweeps tau on a split, stores the best in the run (PRIOR_FILE
    and a table, prior_correction.md); returns the sweep, with its text as "table"."""
    from fcnedge.runtime.fileio import write_text_atomic
    from fcnedge.runtime.labels import check_data_labels
    from fcnedge.runtime.validate import COUNT
    from fcnedge.train.data import find_pairs, load_split
    from fcnedge.train.evaluate import keras_logits
    from fcnedge.train.run_folder import RUN_FILE
    from fcnedge.train.weights import load_trained_model

    COUNT.check(batch_size, "batch_size")
    if not taus or not all(np.isfinite(tau) for tau in taus):
        raise InputError(f"got {list(taus)}, expected finite numbers such as 0,0.5,1", "taus")
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise InputError.about("model", run_dir, "expected a run folder (the prior correction is "
                               "stored in it, beside the weights it corrects)")
    trained = load_trained_model(run_dir, prior_correction=False)
    labels, config = trained.labels, trained.config
    check_data_labels(labels, data, classes)
    log_weights = log_class_weights(trained.run, labels.num_classes, str(run_dir / RUN_FILE))
    pairs = find_pairs(data, split, limit)
    arrays = load_split(pairs, config.input_hw, labels)
    scores = sweep_prior_correction(keras_logits(trained.model), arrays.images,
                                    arrays.full_masks, labels, log_weights, tuple(taus),
                                    batch_size, progress=progress)
    tau = choose_tau(scores)
    correction = PriorCorrection(
        tau=tau, log_class_weights=tuple(round(float(v), 6) for v in log_weights),
        weights_file=trained.weights.name, weights_sha256=file_sha256(trained.weights),
        split=split, images=len(pairs))
    # The classes the weights favour most are the ones the correction moves most.
    rare = [labels.class_names[i] for i in sorted(np.argsort(log_weights)[-4:])]
    title = (f"{config.name}: prior correction on {split} ({len(pairs)} images); "
             f"tau {tau:g} chosen by mIoU")
    text = f"{title}\n\n{format_sweep_table(scores, tau, rare)}"
    write_prior_correction(run_dir, correction, scores)
    write_text_atomic(run_dir / "prior_correction.md", f"{text}\n")
    log.info("wrote %s; eval, convert and bench now apply it", run_dir / PRIOR_FILE)
    return {"model": str(run_dir), "split": split, "images": len(pairs), "tau": tau,
            "miou_uncorrected": scores[0.0].to_dict()["miou"] if 0.0 in scores else None,
            "miou": scores[tau].to_dict()["miou"],
            "sweep": [{"tau": t, **scores[t].to_dict()} for t in taus], "table": text}
