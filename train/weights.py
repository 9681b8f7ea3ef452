"""Run weights on disk: slim .weights.h5 files, and loading a trained run as a Keras model."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import atomic_path
from fcnedge.runtime.labels import LabelSet
from fcnedge.train.config import ModelConfig
from fcnedge.train.models import build_fcn
from fcnedge.train.prior import PRIOR_FILE, fold_logit_shift, read_prior_correction
from fcnedge.train.run_folder import RUN_FILE, locate_run, read_run

log = logging.getLogger("fcnedge.train")


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


@dataclass(frozen=True)
class TrainedModel:
    """A trained run loaded as a Keras model, with what its run folder says about it."""

    model: object                  # the Keras model, built at `config.input_hw`
    config: ModelConfig            # the graph as built (another input size when asked for)
    labels: LabelSet
    run: dict                      # the run's run.json
    weights: Path                  # the weights file loaded
    prior_correction: dict | None  # the correction folded into the logits, if any

    @property
    def trained_hw(self) -> tuple[int, int]:
        """The input size the run trained at (config.input_hw may be an export size)."""
        return ModelConfig.from_dict(self.run["model"]).input_hw


def load_trained_model(path: str | os.PathLike, input_hw: tuple[int, int] | None = None,
                       prior_correction: bool = True) -> TrainedModel:
    """Loads a trained Keras FCN from a run dir (best weights first) or a weights file in one
    (or in its epochs/ folder).

    Args:
      prior_correction: apply the run's prior correction (`fcnedge correct-prior`,
        prior_correction.json) when it was computed for these weights; False loads the weights
        as trained.

    Returns:
      a TrainedModel.
    """
    run_dir, weights = locate_run(path)
    info = read_run(run_dir)
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
    return TrainedModel(model=model, config=config, labels=labels, run=info, weights=Path(weights),
                        prior_correction=correction.to_dict() if correction else None)
