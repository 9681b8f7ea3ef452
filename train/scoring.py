"""Scoring one model on a dataset split: `fcnedge eval` as a library call.

A run folder, a weights file in one, or a .tflite (through the runtime's own code path, so the
score is the one a device gets) is scored on the split(s) and drives asked for; the report
(scores.md, scores.json, confusion.png, and errors-NAME.png for one class) goes to `out`, by
default a folder in the current one, never beside the model.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.fileio import check_writable_location, safe_file_part
from fcnedge.runtime.labels import check_data_labels
from fcnedge.runtime.validate import COUNT, check_optional
from fcnedge.train.splits import drive_counts

log = logging.getLogger("fcnedge")


@dataclass(frozen=True)
class EvalOptions:
    model: str
    data: str
    split: tuple[str, ...] = ("val",)
    drives: tuple[str, ...] = ()            # only these drives' frames
    exclude_drives: tuple[str, ...] = ()    # every drive but these
    limit: int | None = None
    batch_size: int = 8
    input_hw: tuple[int, int] | None = None  # a Keras model at another size than it trained at
    out: str | None = None
    error_class: str | None = None          # also draw errors-NAME.png for this class
    error_images: int = 6
    uncorrected: bool = False               # the weights as trained, without the prior correction
    classes: str | None = None

    def __post_init__(self):
        COUNT.check(self.batch_size, "batch_size")
        COUNT.check(self.error_images, "error_images")
        check_optional(self.limit, COUNT, "limit")


# The `fcnedge eval` flag of the one parameter not named after it, for error messages.
EVAL_FLAGS = {"input_hw": "--input-size"}


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


def eval_pairs(options: EvalOptions) -> tuple[list, str]:
    """The frames eval scores, and a label for them (file names, titles): the split(s), then
    the drives kept or left out."""
    from fcnedge.train.data import limit_pairs
    from fcnedge.train.splits import filter_drives, find_split_pairs

    pairs = find_split_pairs(options.data, options.split)
    if options.drives:
        pairs = filter_drives(pairs, keep=options.drives, param="drives")
    if options.exclude_drives:
        pairs = filter_drives(pairs, drop=options.exclude_drives, param="exclude_drives")
    label = ("+".join(options.split) + "".join(f"-{d}" for d in options.drives)
             + "".join(f"-no{d}" for d in options.exclude_drives))
    return limit_pairs(pairs, options.limit), label


def _load_predictor(model_path: Path, options: EvalOptions):
    """(predict, input size, trained size, labels, name, batch size, prior correction)."""
    from fcnedge.train.evaluate import keras_predictor, tflite_predictor
    from fcnedge.train.weights import load_trained_model

    if model_path.suffix == ".tflite":
        if options.input_hw:
            raise InputError(f"{model_path} has its input size fixed at export; export it at "
                             "that size with `fcnedge convert --input-size`", "input_hw")
        if options.uncorrected:
            raise InputError(f"{model_path} has its run's prior correction, if any, baked in "
                             "at export; score the run folder with "
                             f"{mention('uncorrected')} instead",
                             "uncorrected")
        predict = tflite_predictor(model_path)
        segmenter = predict.segmenter
        return (predict, segmenter.input_hw, segmenter.input_hw, segmenter.labels,
                model_path.stem, 1, None)
    trained = load_trained_model(model_path, options.input_hw,
                                 prior_correction=not options.uncorrected)
    return (keras_predictor(trained.model), trained.config.input_hw, trained.trained_hw,
            trained.labels, trained.config.name, options.batch_size, trained.prior_correction)


def evaluate_model(options: EvalOptions, progress=None) -> dict:
    """Scores the model on the frames of `options`; writes the report; returns it as a dict
    (with the table as "table")."""
    from fcnedge.runtime.fileio import write_json_atomic, write_text_atomic
    from fcnedge.train.data import load_split
    from fcnedge.train.evaluate import (WorstImages, evaluate_predictor, format_scores_table,
                                        plot_confusion, write_class_error_sheet)

    pairs, split_label = eval_pairs(options)
    if options.out:
        check_writable_location(options.out, "out", folder=True)
    model_path = Path(options.model)
    if not model_path.exists():
        raise InputError.about("model", model_path, "not found")
    predict, input_hw, trained_hw, labels, name, batch_size, correction = _load_predictor(
        model_path, options)
    check_data_labels(labels, options.data, options.classes)
    worst = None
    if options.error_class is not None:
        lowered = [name.lower() for name in labels.class_names]
        if options.error_class.lower() not in lowered:
            raise InputError(f"got {options.error_class!r}, expected one of "
                             f"{', '.join(labels.class_names)}", "error_class")
        worst = WorstImages(lowered.index(options.error_class.lower()), labels.void_id,
                            options.error_images)
    arrays = load_split(pairs, input_hw, labels)
    scores = evaluate_predictor(predict, arrays.images, arrays.full_masks, labels,
                                batch_size=batch_size, progress=progress, on_image=worst)
    # In the current folder, never beside the model: that may be a bundled model inside the
    # installed package, or someone else's read-only folder.
    default_out = Path.cwd() / f"eval-{model_label(model_path)}-{split_label}"
    size_label = f"{input_hw[0]}x{input_hw[1]}"
    if tuple(input_hw) != tuple(trained_hw):
        # Its own folder, so the trained-size scores beside the weights are not overwritten.
        default_out = default_out.with_name(f"{default_out.name}-{size_label}")
        name = f"{name} at {size_label}"
    if options.uncorrected:
        default_out = default_out.with_name(f"{default_out.name}-uncorrected")
        name = f"{name}, uncorrected"
    elif correction:
        name = f"{name}, prior correction tau {correction['tau']:g}"
    out = Path(options.out) if options.out else default_out
    title = f"{name} on {split_label} ({len(pairs)} images)"
    table = format_scores_table(scores, title)
    result = {"model": str(model_path), "split": ",".join(options.split), "images": len(pairs),
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
            log.info("no %s errors on %s: no error sheet written", name, split_label)
        result["error_sheet"] = str(sheet) if sheet else None
    return {**result, "table": table}
