"""Starting a run from another run's weights (`--init-weights`), and the lineage it records.

A warm start copies weights only (a fresh optimizer and schedule); the source may be a coarser
FCN of the same backbone, as the paper trained FCN-16s from FCN-32s. The new run keeps its
source's run.json and history.json in init/, so a model card can tell every stage.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.fileio import atomic_path
from fcnedge.train.config import ARCH_STRIDES, ModelConfig
from fcnedge.train.run_folder import (BEST_WEIGHTS, HISTORY_FILE, INIT_FOLDER, RUN_FILE,
                                      read_json, run_weights)
from fcnedge.train.weights import load_trained_model

log = logging.getLogger("fcnedge.train")


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
        raise InputError.about("init_weights", source,
                               f"expected a run folder holding {BEST_WEIGHTS} "
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
        same = ", ".join(mention(param) for param in ("backbone", "alpha", "decoder"))
        raise InputError.about("init_weights", path, f"does not fit this model (same {same} "
                               f"and classes needed, and the same or a coarser "
                               f"{mention('arch')}): {err}") from err
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
        raise InputError.about("init_weights", path, f"does not fit this model ({differences})")
    if target_strides[:len(source_strides)] != source_strides:
        raise InputError.about("init_weights", path, f"a {source_config.arch} cannot start a "
                               f"{model_config.arch}; a run starts from the same or a coarser FCN "
                               f"(fcn32s -> fcn16s -> fcn8s -> fcn4s -> fcn2s), else the skips the "
                               "source learned would be dropped")


def _load_coarser_fcn(model, model_config: ModelConfig, path: Path,
                      source_config: ModelConfig) -> None:
    # As trained: a prior correction belongs to the source's last score layer, which in the
    # finer FCN is no longer last.
    source_model = load_trained_model(path, input_hw=model_config.input_hw,
                                      prior_correction=False).model
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
