"""`fcnedge convert`: export formats, check the export rules, write cards, verify on val.

Steps, in order: (1) check every input before any work; (2) load the trained model and the
calibration images, and for int8-qat fine-tune a fake-quantized copy (convert.qat); (3) per format: convert, inspect the ops, write the .tflite and its card
atomically; (4) score the float model and every file on the val split with the one metric
code, and report the drop per format.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fcnedge.convert.export import to_tflite, with_head_output
from fcnedge.convert.metadata import with_metadata
from fcnedge.convert.options import INTEGER_FORMATS, ConvertOptions, Format
from fcnedge.convert.tflite_graph import export_rule_violations, read_graph
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import (atomic_path, prepare_output_folder, write_bytes_atomic,
                                    write_json_atomic)
from fcnedge.runtime.labels import check_data_labels
from fcnedge.runtime.segmenter import card_path

CONVERT_RECORD = "convert.json"   # in --out: what the command converted; marks the folder as its own
SCRATCH_FOLDER = ".scratch"       # in --out, while converting

log = logging.getLogger("fcnedge.convert")


@dataclass
class FormatRow:
    format: str
    path: str
    size_mb: float
    miou: float | None = None
    delta: float | None = None
    worst_classes: list = field(default_factory=list)
    per_class_iou: dict = field(default_factory=dict)


def tflite_card(fmt: Format, graph, trained, options: ConvertOptions, size: int) -> dict:
    """One .tflite's card (its JSON, inside and beside the file): what `run`, `eval` and `bench`
    need to use a model from its path alone. (benchmarks/model_card.py writes the other kind,
    the bundled model's Model Card document.)"""
    config, labels, correction = trained.config, trained.labels, trained.prior_correction
    inp, outp = graph.inputs[0], graph.outputs[0]
    normalisation = ("x / 127.5 - 1 (in the graph)" if config.backbone == "mobilenetv2"
                     else "x - ImageNet RGB mean (in the graph)")
    return {
        "format": "fcnedge-model/1",
        "model_format": fmt.value,
        "labels": labels.to_dict(),
        "input": {"size": list(config.input_hw), "channels": "RGB", "pixel_range": [0, 255],
                  "normalisation": normalisation, "resize": "stretch, bilinear",
                  "dtype": inp.dtype, "scale": inp.scale, "zero_point": inp.zero_point},
        "output": {"kind": "logits", "dtype": outp.dtype, "shape": list(outp.shape),
                   "scale": outp.scale, "zero_point": outp.zero_point,
                   "size": options.output_size},
        "architecture": config.to_dict(),
        "source_model": str(options.model),
        "data": str(options.data),
        "calibration_samples": options.calib_samples if fmt in INTEGER_FORMATS else None,
        "weight_scales": ("per-tensor" if options.per_tensor else "per-channel")
        if fmt in INTEGER_FORMATS else None,
        "size_bytes": size,
        "ops": graph.op_counts,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # With the frames it trained on, which also calibrated and fine-tuned this file.
        "training": {k: trained.run.get("train", {}).get(k)
                     for k in ("epochs", "class_weights", "train_splits", "val_drives", "keep")},
        # The prior correction folded into the logits' bias, if the run had one (or None).
        "prior_correction": ({k: correction[k] for k in ("tau", "split", "images")}
                             if correction else None),
    }


def convert(options: ConvertOptions) -> dict:
    """Runs the steps in the module docstring; returns the verification table as a dict."""
    from fcnedge.train.data import find_pairs, limit_pairs, load_split
    from fcnedge.train.evaluate import evaluate_predictor, keras_predictor, tflite_predictor
    from fcnedge.train.run_folder import locate_run, read_run
    from fcnedge.train.splits import run_training_pairs
    from fcnedge.train.weights import load_trained_model

    # 1. Inputs first.
    out = Path(options.out)
    model_path = Path(options.model)
    if not model_path.exists():
        raise InputError.about("model", model_path, "not found")
    # Calibration and QAT draw on the frames the run trained on (its run.json says which).
    run_train = read_run(locate_run(model_path)[0]).get("train", {})
    calib_pairs = limit_pairs(run_training_pairs(options.data, run_train), options.limit_train,
                              "limit_train")
    qat = Format.INT8_QAT in options.formats
    val_pairs = limit_pairs(find_pairs(options.data, options.val_split), options.limit_val,
                            "limit_val") if options.verify or qat else []

    # 2. Model and calibration images (a seeded sample of those frames), then the output
    # folder: `overwrite` clears it only once every input has loaded.
    trained = load_trained_model(model_path, options.input_hw)
    config, labels = trained.config, trained.labels
    if qat and run_train.get("keep") == "last" and options.qat.keep_best:
        # A run with a fixed schedule (a refit whose val also trains) is not picked on val;
        # nor is its QAT epoch.
        options = replace(options, qat=replace(options.qat, keep_best=False))
    check_data_labels(labels, options.data, options.classes)
    prepare_output_folder(out, options.overwrite, inputs=(options.model, options.data),
                          owned_marker=CONVERT_RECORD)
    write_json_atomic(out / CONVERT_RECORD, {"status": "running", "model": str(model_path)})
    rng = np.random.default_rng(options.seed)
    chosen = rng.choice(len(calib_pairs), size=min(options.calib_samples, len(calib_pairs)),
                        replace=False)
    calibration = load_split([calib_pairs[i] for i in sorted(chosen)], config.input_hw,
                             labels).images
    val_arrays = load_split(val_pairs, config.input_hw, labels) if val_pairs else None
    with scratch_tempdir(out / SCRATCH_FOLDER):
        rows, written, qat_history = _write_formats(trained, calib_pairs, val_arrays,
                                                    calibration, options, out)

    result = {"model": str(model_path), "out": str(out), "rows": []}
    if options.edgetpu:
        result["edgetpu"] = _edgetpu_step(written, out)
    if options.verify:
        # 4. Verification with the trainer's metric code.
        arrays = val_arrays
        reference = evaluate_predictor(keras_predictor(trained.model), arrays.images,
                                       arrays.full_masks, labels)
        result["keras_miou"] = round(100 * reference.mean_iou, 2)
        for row in rows:
            fmt = Format(row.format)
            scores = evaluate_predictor(tflite_predictor(row.path), arrays.images,
                                        arrays.full_masks, labels, batch_size=1)
            report = scores.to_dict()
            row.miou = report["miou"]
            row.delta = round(row.miou - result["keras_miou"], 2)
            row.per_class_iou = report["per_class_iou"]
            reference_iou = reference.to_dict()["per_class_iou"]
            deltas = {name: round(value - reference_iou[name], 2)
                      for name, value in report["per_class_iou"].items()
                      if value is not None and reference_iou[name] is not None}
            row.worst_classes = sorted(deltas.items(), key=lambda item: item[1])[:3]
            path, card = written[fmt]
            card["verification"] = {"split": options.val_split, "images": len(val_pairs),
                                    "miou": row.miou, "keras_miou": result["keras_miou"],
                                    "delta": row.delta, "per_class_iou": row.per_class_iou}
            model_file = with_metadata(path.read_bytes(), card)
            write_json_atomic(card_path(path), card)
            write_bytes_atomic(path, model_file)
    if qat_history is not None:
        result["qat_history"] = qat_history
    result["rows"] = [row.__dict__ for row in rows]
    result["table"] = format_table(result)
    write_json_atomic(out / CONVERT_RECORD, {"status": "done", **result})
    return result


def _write_formats(trained, calib_pairs, val_arrays, calibration, options: ConvertOptions,
                   out: Path):
    """QAT if asked, then one .tflite and its card per format; returns (rows, written, QAT
    history). The card lands first: a kill between the two leaves a card without a model,
    never a model without its card."""
    config, qat = trained.config, options.qat
    sources = {fmt: trained.model for fmt in options.formats}
    qat_history = None
    if Format.INT8_QAT in options.formats:
        sources[Format.INT8_QAT], qat_history = _quantization_aware_training(
            trained, calib_pairs, val_arrays, calibration, options)

    # 3. One file and one card per format.
    rows, written = [], {}
    head = "_head" if options.output_size == "head" else ""
    for fmt in options.formats:
        log.info("converting %s", fmt.value)
        source = with_head_output(sources[fmt], config.arch) if head else sources[fmt]
        data = to_tflite(source, fmt, calibration, options.io_type, options.per_tensor)
        path = out / (f"{config.name}_{config.input_hw[0]}x{config.input_hw[1]}{head}_"
                      f"{fmt.value}.tflite")
        with atomic_path(path) as staged:
            staged.write_bytes(data)
            graph = read_graph(staged)
            problems = export_rule_violations(graph, integer_io=fmt in INTEGER_FORMATS)
            if problems:
                raise RuntimeError(f"{path}: breaks the export rules: {'; '.join(problems)}")
            card = tflite_card(fmt, graph, trained, options, len(data))
            if fmt is Format.INT8_QAT:
                card["qat"] = {"epochs": qat.epochs, "learning_rate": qat.learning_rate,
                               "freeze_batchnorm": qat.freeze_bn,
                               "batchnorm": ("folded before QAT" if qat.per_tensor
                                             else "frozen" if qat.freeze_bn else "training"),
                               "history": qat_history,
                               "kept_epoch": next(entry["epoch"] for entry in qat_history
                                                  if entry.get("kept"))}
            model_file = with_metadata(data, card)
            write_json_atomic(card_path(path), card)
            staged.write_bytes(model_file)
        written[fmt] = (path, card)
        rows.append(FormatRow(fmt.value, str(path), round(len(model_file) / 2**20, 3)))
    return rows, written, qat_history


@contextlib.contextmanager
def scratch_tempdir(folder: Path):
    """Points Python's temporary files (the TFLite converter's SavedModel folders) into
    `folder` while the block runs, and removes it after: a killed convert leaves its scratch
    inside --out, where the next convert clears it, rather than in /tmp."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    previous, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


def _quantization_aware_training(trained, train_pairs, val_arrays, calibration,
                                 options: ConvertOptions):
    """Fine-tunes a fake-quantized copy with the run's own loss, weights and augmentation."""
    from fcnedge.convert.qat import fine_tune
    from fcnedge.train.config import AugmentConfig
    from fcnedge.train.data import load_split
    from fcnedge.train.prior import loss_logit_offset

    labels, train_info = trained.labels, trained.run.get("train", {})
    class_weights = np.asarray(trained.run.get("class_weights") or np.ones(labels.num_classes),
                               np.float32)
    augment = AugmentConfig(**train_info.get("augment", {}))
    train_arrays = load_split(train_pairs, trained.config.input_hw, labels)
    qat_config = options.qat
    log.info("int8-qat: fine-tuning %d epochs at lr %g on %d images (BatchNorm %s)",
             qat_config.epochs, qat_config.learning_rate, len(train_pairs),
             "folded" if qat_config.per_tensor
             else "frozen" if qat_config.freeze_bn else "training")
    return fine_tune(trained.model, train_arrays, val_arrays, class_weights, labels, augment,
                     qat_config, calibration=calibration, loss=train_info.get("loss", "ce"),
                     logit_offset=loss_logit_offset(trained.prior_correction))


def _edgetpu_step(written: dict, out: Path) -> dict:
    """Static report for each integer model; the compiler's output when it is installed."""
    from fcnedge.convert.edgetpu import compile_for_edgetpu, edgetpu_report, format_report

    reports = {}
    for fmt, (path, _) in written.items():
        if fmt not in INTEGER_FORMATS:
            continue
        report = edgetpu_report(read_graph(path))
        write_json_atomic(path.with_name(f"{path.stem}.edgetpu-report.json"), report)
        log.info("%s", format_report(report, path.name))
        compiled = compile_for_edgetpu(path, out)
        if compiled is None:
            log.info("edgetpu_compiler not found (Coral's Debian package edgetpu-compiler, "
                     "x86-64 Linux): wrote the static report only")
        reports[fmt.value] = {"fully_mapped": report["fully_mapped"],
                              "counts": report["counts"],
                              "compiled": str(compiled) if compiled else None}
    if not reports:
        log.info("--edgetpu: no integer format was exported (add int8-ptq to --formats)")
    return reports


DEFAULT_MAX_DROP = {Format.INT8_QAT.value: 2.0}


def drop_failures(result: dict, max_drop: float | None) -> list[str]:
    """Formats that lost more val mIoU than allowed: --max-drop for every format when given,
    else 2 points for int8-qat (QAT exists to keep accuracy) and no limit for the rest."""
    failed = []
    for row in result["rows"]:
        limit = max_drop if max_drop is not None else DEFAULT_MAX_DROP.get(row["format"])
        if limit is not None and row["delta"] is not None and -row["delta"] > limit:
            failed.append(f"{row['format']} ({row['delta']:+.2f} > -{limit:g})")
    return failed


def format_table(result: dict) -> str:
    lines = ["| format | size MB | mIoU % | delta vs Keras | worst classes (delta) |",
             "|---|---:|---:|---:|---|"]
    if "keras_miou" in result:
        lines.append(f"| keras float32 | | {result['keras_miou']:.2f} | | |")
    for row in result["rows"]:
        worst = ", ".join(f"{name} {delta:+.1f}" for name, delta in row["worst_classes"])
        miou = "" if row["miou"] is None else f"{row['miou']:.2f}"
        delta = "" if row["delta"] is None else f"{row['delta']:+.2f}"
        lines.append(f"| {row['format']} | {row['size_mb']:.2f} | {miou} | {delta} | {worst} |")
    return "\n".join(lines) + "\n"
