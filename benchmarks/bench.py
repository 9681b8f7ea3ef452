"""`fcnedge bench`: accuracy versus speed for every model given, in one run, one process per row.

Rows: each .tflite (format from its card), and each run folder as the float Keras model (on the
GPU when TensorFlow sees one, else the CPU; the row says which). Outputs in --out: bench.md (the
table, also printed), bench.json (everything, per-class IoU included), bench.csv, pareto.png
(model-only p50 latency against mIoU, the Pareto front drawn).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from fcnedge.benchmarks.machine import machine_header
from fcnedge.benchmarks.options import BenchOptions
from fcnedge.benchmarks.pareto_plot import pareto_front, plot_pareto
from fcnedge.benchmarks.report import add_speedups, distinct_labels, format_csv, format_markdown
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import prepare_output_folder, write_json_atomic, write_text_atomic
from fcnedge.runtime.labels import LabelSet, check_data_labels
from fcnedge.runtime.quiet import child_stderr
from fcnedge.runtime.segmenter import find_model_card, read_model_card
from fcnedge.train.run_folder import (BEST_WEIGHTS, LAST_WEIGHTS, RUN_FILE, read_json,
                                      run_weights)

log = logging.getLogger("fcnedge.bench")

BENCH_RECORD = "bench.json"    # in --out: the report; also marks the folder as the command's own


def model_kind(path: str) -> str:
    """'tflite' for a .tflite file, 'keras' for a run folder or weights file; InputError else."""
    candidate = Path(path)
    if not candidate.exists():
        raise InputError.about("models", path, "not found")
    if candidate.is_file() and candidate.suffix == ".tflite":
        # Opened once here (one thread, on the CPU), so a file no row could run is bad input
        # now rather than a failed row after the others have been measured.
        from fcnedge.runtime.adapters import check_image_model
        from fcnedge.runtime.interpreter import make_interpreter

        try:
            interpreter, _ = make_interpreter(candidate, num_threads=1)
            check_image_model(interpreter, str(candidate))
        except InputError as err:
            if err.param != "model":
                raise
            raise err.renamed("models") from err
        return "tflite"
    if candidate.is_dir() and (candidate / RUN_FILE).is_file():
        if run_weights(candidate) is None:
            raise InputError.about("models", path, f"the run folder has no weights "
                                   f"({BEST_WEIGHTS} or {LAST_WEIGHTS}); has it finished an "
                                   "epoch?")
        return "keras"
    if candidate.is_file() and candidate.suffix == ".h5" and (candidate.parent / RUN_FILE).is_file():
        return "keras"
    raise InputError.about("models", path, "expected a .tflite file or a training run folder "
                           "(with run.json)")


def _run_row(spec: dict, timeout_s: float) -> dict:
    """Measures one row in a child process; a crash or timeout becomes a failed row."""
    with tempfile.TemporaryDirectory(prefix="fcnedge-bench-") as folder:
        spec_path, result_path = Path(folder) / "spec.json", Path(folder) / "result.json"
        stderr = child_stderr()
        # A silenced command line keeps its workers' library chatter off the terminal too.
        spec_path.write_text(json.dumps({**spec, "silence_native": stderr is not None}))
        command = [sys.executable, "-m", "fcnedge.benchmarks.worker", str(spec_path),
                   str(result_path)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        try:
            completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, env=env,
                                       timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"model": spec["model"], "status": "failed",
                    "reason": f"timed out after {timeout_s:.0f} s"}
        if result_path.is_file():
            return json.loads(result_path.read_text())
        code = completed.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return {"model": spec["model"], "status": "failed",
                "reason": f"the interpreter process crashed ({why})"}


def cold_start_seconds(spec: dict, timeout_s: float) -> float | None:
    """Wall time of a fresh `fcnedge run` process from start until it has written its first
    mask and exited: imports, model load, first frame; None when it fails."""
    import time

    with tempfile.TemporaryDirectory(prefix="fcnedge-cold-") as folder:
        command = [sys.executable, "-m", "fcnedge", "run", "--model", spec["model"],
                   "--source", spec["stream"], "--max-frames", "1", "--no-window",
                   "--masks", folder, "--delegate", spec["delegate"],
                   "--threads", str(spec["stream_threads"])]
        start = time.perf_counter()
        try:
            completed = subprocess.run(command, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        seconds = time.perf_counter() - start
        if completed.returncode != 0 or not any(Path(folder).iterdir()):
            log.warning("cold start run failed: %s",
                        completed.stderr.decode(errors="replace").strip()[-300:])
            return None
    return round(seconds, 3)


def model_labels(path: str, kind: str) -> LabelSet | None:
    """The classes a model predicts, from its card or run.json; None when it names none."""
    candidate = Path(path)
    if kind == "tflite":
        card, source = find_model_card(candidate)
        stored = card.get("labels")
    else:
        run_file = (candidate if candidate.is_dir() else candidate.parent) / RUN_FILE
        stored, source = read_json(run_file, "run file").get("labels"), str(run_file)
    return None if stored is None else LabelSet.from_dict(stored, source)


def bench(options: BenchOptions) -> dict:
    """Runs every row (see the module docstring) and writes the reports; returns bench.json."""
    from fcnedge.train.data import find_pairs

    kinds = [model_kind(model) for model in options.models]
    pairs = find_pairs(options.data, options.split, options.limit)
    for model, kind in zip(options.models, kinds):
        labels = model_labels(model, kind)
        if labels is not None:
            check_data_labels(labels, options.data, options.classes)
    if options.stream:
        from fcnedge.runtime.video import open_source, parse_source

        try:
            source = parse_source(options.stream)
            if source.kind in ("camera", "url"):
                raise InputError.about("stream", options.stream,
                                       "expected a video file or image folder (a live source "
                                       "has no fixed length to compare rows on)")
            open_source(source).close()     # a clear error now rather than one per row
        except InputError as err:
            if err.param != "source":
                raise
            raise err.renamed("stream") from err
    out = prepare_output_folder(options.out, options.overwrite,
                                inputs=(options.data, options.stream, *options.models),
                                owned_marker=BENCH_RECORD)
    write_json_atomic(out / BENCH_RECORD, {"status": "running"})    # marks the folder as ours
    header = machine_header(options)
    header["images"], header["limited"] = len(pairs), options.limit is not None
    # Rows of several input sizes get the size in their format label.
    sizes = {tuple(read_model_card(model).get("input", {}).get("size") or ())
             for model, kind in zip(options.models, kinds) if kind == "tflite"} - {()}
    rows = []
    for number, (model, kind) in enumerate(zip(options.models, kinds), start=1):
        log.info("bench %d/%d: %s (%s, %d images)", number, len(kinds), model, kind, len(pairs))
        spec = {"model": str(model), "kind": kind, "data": str(options.data),
                "split": options.split, "limit": options.limit, "runs": options.runs,
                "warmup": options.warmup, "threads": header["threads"],
                "stream": options.stream, "stream_threads": header["stream_threads"],
                "label_size": len(sizes) > 1,
                "delegate": options.delegate, "device": options.device,
                "delegate_path": options.delegate_path, "progress": True}
        row = _run_row(spec, options.timeout_s)
        if options.stream and kind == "tflite" and row["status"] == "ok":
            row["cold_start_s"] = cold_start_seconds(spec, options.timeout_s)
        if row["status"] == "ok" and options.min_miou is not None and row["miou"] < options.min_miou:
            row["status"] = "below floor"
        rows.append(row)
        if row["status"] == "failed":
            log.warning("  failed: %s", row["reason"])
        else:
            log.info("  mIoU %.2f, model-only p50 %.2f ms, end-to-end p50 %.2f ms", row["miou"],
                     row["model_only_ms"]["p50"], row["end_to_end_ms"]["p50"])
            if row.get("stream"):
                log.info("  stream %.1f FPS = %.0f%% of invoke-only %.1f FPS at %d thread(s); "
                         "cold start %s s", row["stream"]["fps"], 100 * row["stream"]["ratio"],
                         row["stream"]["invoke_only_fps"], row["stream"]["threads"],
                         row.get("cold_start_s"))
    add_speedups(rows)
    distinct_labels(rows)
    table = format_markdown(header, rows)
    result = {"header": header, "rows": rows, "min_miou": options.min_miou,
              "pareto_front": [r["model"] for r in pareto_front(rows)], "table": table,
              "options": asdict(options)}
    write_text_atomic(out / "bench.md", table)
    write_text_atomic(out / "bench.csv", format_csv(rows))
    plot = plot_pareto(rows, out / "pareto.png",
                       f"{header['cpu']}, {header['threads']} threads, {options.split} split")
    result["files"] = {name: str(out / name) for name in ("bench.md", "bench.csv", BENCH_RECORD)}
    if plot:
        result["files"]["pareto.png"] = str(plot)
    write_json_atomic(out / BENCH_RECORD, result)
    return result
