"""`fcnedge bench`: accuracy versus speed for every model given, in one run, one process per row.

Rows: each .tflite (format from its card), and each run folder as the float Keras model (on the
GPU when TensorFlow sees one, else the CPU; the row says which). Outputs in --out: bench.md (the
table, also printed), bench.json (everything, per-class IoU included), bench.csv, pareto.png
(model-only p50 latency against mIoU, the Pareto front drawn).
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from fcnedge.benchmarks.pareto_plot import pareto_front, plot_pareto
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import prepare_output_folder, write_json_atomic, write_text_atomic
from fcnedge.runtime.interpreter import default_threads
from fcnedge.runtime.labels import LabelSet, check_data_labels
from fcnedge.runtime.quiet import child_stderr
from fcnedge.runtime.segmenter import find_model_card, read_model_card
from fcnedge.train.run_folder import (BEST_WEIGHTS, LAST_WEIGHTS, RUN_FILE, read_json,
                                      run_weights)

log = logging.getLogger("fcnedge.bench")

DELEGATES = ("cpu", "gpu", "edgetpu")
BENCH_RECORD = "bench.json"    # in --out: the report; also marks the folder as the command's own
LIBRARIES = ("numpy", "opencv-python", "ai-edge-litert", "tflite-runtime", "tensorflow",
             "tf-keras", "tensorflow-model-optimization")


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...]
    data: str
    out: str
    split: str = "val"
    runs: int = 50
    warmup: int = 5
    threads: int | None = None
    delegate: str = "cpu"
    device: str | None = None
    delegate_path: str | None = None
    limit: int | None = None
    min_miou: float | None = None
    timeout_s: float = 1800.0
    overwrite: bool = False
    stream: str | None = None            # a video (or image folder) each TFLite row streams
    stream_threads: int | None = None    # None: as `fcnedge run`, all cores but one
    classes: str | None = None           # the data's classes file (default: DATA/classes.json)

    def __post_init__(self):
        if not self.models:
            raise InputError("no models given (expected .tflite files or run folders)", "models")
        if self.runs < 1:
            raise InputError(f"got {self.runs}, expected at least 1", "runs")
        if self.warmup < 0:
            raise InputError(f"got {self.warmup}, expected 0 or more", "warmup")
        if self.delegate not in DELEGATES:
            raise InputError(f"got {self.delegate!r}, expected one of {', '.join(DELEGATES)}",
                             "delegate")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"got {self.threads}, expected at least 1", "threads")
        if self.stream_threads is not None and self.stream_threads < 1:
            raise InputError(f"got {self.stream_threads}, expected at least 1", "stream_threads")


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
            raise InputError(err.detail, "models", separator=err.separator) from err
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


def int8_instructions() -> list[str]:
    """The CPU's int8 dot-product extensions, which decide whether int8 beats float32 here.

    XNNPACK's int8 kernels gain most from VNNI (x86) or dot-product/i8mm (Arm); without them
    an int8 multiply-add costs about what a float32 FMA does.
    """
    wanted = {"avx512_vnni", "avx_vnni", "avx512f", "avx2", "amx_int8", "asimddp", "i8mm"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def machine_header(options: BenchOptions) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu, "cores": os.cpu_count(), "cpu_int8_features": int8_instructions(),
            "threads": options.threads or default_threads(),
            "stream": options.stream,
            "stream_threads": (options.stream_threads or default_threads(reserve=1))
            if options.stream else None,
            "delegate": options.delegate, "python": platform.python_version(),
            "libraries": versions, "split": options.split, "data": options.data,
            "runs": options.runs, "warmup": options.warmup}


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


def add_speedups(rows: list[dict]) -> None:
    """Speed-up of each row's model-only p50 against the float32 TFLite row of the same input
    size and against the Keras row."""
    def p50(row):
        return row.get("model_only_ms", {}).get("p50") if row.get("status") != "failed" else None

    float32 = [r for r in rows if r.get("model_format") == "float32" and p50(r)]
    keras = next((r for r in rows if r.get("model_format") == "keras float32" and p50(r)), None)
    for row in rows:
        same_size = next((r for r in float32 if r.get("input_size") == row.get("input_size")),
                         float32[0] if float32 else None)
        for key, reference in (("vs_float32_tflite", same_size), ("vs_keras", keras)):
            row[key] = (round(p50(reference) / p50(row), 2)
                        if reference is not None and p50(row) else None)


def distinct_labels(rows: list[dict]) -> None:
    """Rows sharing a label (two int8-qat files of two models) get their file's name, or its
    folder and name when the file names repeat too, so every table and plot row is its own."""
    def repeated(key):
        counts: dict = {}
        for row in rows:
            counts[key(row)] = counts.get(key(row), 0) + 1
        return {value for value, count in counts.items() if count > 1}

    clashing = repeated(lambda row: row.get("format"))
    stems = repeated(lambda row: Path(row["model"]).name)
    for row in rows:
        if row.get("format") in clashing:
            path = Path(row["model"])
            name = f"{path.parent.name}/{path.name}" if path.name in stems else path.stem
            row["format"] = f"{row['format']} ({name})"


COLUMNS = (("format", "format"), ("device", "device"), ("status", "status"),
           ("size_mb", "size MB"), ("miou", "mIoU %"), ("pixel_accuracy", "pixel acc %"),
           ("model_p50", "model p50 ms"), ("model_p90", "p90"), ("model_p99", "p99"),
           ("model_fps", "model FPS"), ("e2e_p50", "e2e p50 ms"), ("e2e_fps", "e2e FPS"),
           ("peak_rss_mb", "peak RSS MB"), ("vs_float32_tflite", "x vs f32 tflite"),
           ("vs_keras", "x vs keras"))
# With --stream: the streaming loop's FPS (drawing and mp4 writing on), invoke-only FPS at the
# same threads, their ratio, and a cold start of `fcnedge run` (process start to first mask).
STREAM_COLUMNS = (("stream_fps", "stream FPS"), ("stream_invoke_fps", "invoke-only FPS"),
                  ("stream_ratio", "stream/invoke %"), ("cold_start_s", "cold start s"))


def columns(rows: list[dict]) -> tuple:
    return COLUMNS + (STREAM_COLUMNS if any(r.get("stream") for r in rows) else ())


def flat_row(row: dict) -> dict:
    model, e2e = row.get("model_only_ms", {}), row.get("end_to_end_ms", {})
    streamed = row.get("stream") or {}
    status = row.get("status", "failed")
    if status == "failed":
        status = f"failed: {row.get('reason', '')}"
    return {"format": row.get("format") or Path(row["model"]).name,
            "device": row.get("device", ""), "status": status,
            "size_mb": row.get("size_mb"), "miou": row.get("miou"),
            "pixel_accuracy": row.get("pixel_accuracy"),
            "model_p50": model.get("p50"), "model_p90": model.get("p90"),
            "model_p99": model.get("p99"), "model_fps": model.get("fps_at_p50"),
            "e2e_p50": e2e.get("p50"), "e2e_fps": e2e.get("fps_at_p50"),
            "peak_rss_mb": row.get("peak_rss_mb"),
            "vs_float32_tflite": row.get("vs_float32_tflite"), "vs_keras": row.get("vs_keras"),
            "stream_fps": streamed.get("fps"), "stream_invoke_fps": streamed.get("invoke_only_fps"),
            "stream_ratio": round(100 * streamed["ratio"], 1) if streamed.get("ratio") else None,
            "cold_start_s": row.get("cold_start_s"), "model": row["model"]}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_markdown(header: dict, rows: list[dict]) -> str:
    libs = ", ".join(f"{name} {version}" for name, version in header["libraries"].items())
    table_columns = columns(rows)
    features = ", ".join(header.get("cpu_int8_features") or []) or "none found"
    # A --limit run scores a subset; saying so keeps its mIoU from being read as the split's.
    images = header.get("images")
    noun = "image" if images == 1 else "images"
    scope = ("" if images is None else f" (first {images} {noun} by name)"
             if header.get("limited") else f" ({images} {noun})")
    lines = [f"Benchmark {header['date']}: {header['cpu']} ({features}), {header['cores']} "
             f"cores, {header['threads']} threads, delegate {header['delegate']}; {libs}.",
             f"Accuracy on {header['data']} split '{header['split']}'{scope}; model-only "
             "latency over "
             f"{header['runs']} runs after {header['warmup']} warm-up; end to end = decode + "
             "preprocess + invoke + postprocess per image."]
    if header.get("stream"):
        lines.append(f"Stream: {header['stream']} through `fcnedge run`'s pipeline (overlay, HUD "
                     f"and mp4 writing on) at {header['stream_threads']} interpreter thread(s); "
                     "invoke-only FPS measured at the same threads; cold start = `fcnedge run` "
                     "process start to its first mask written.")
    lines += ["", "| " + " | ".join(title for _, title in table_columns) + " |",
              "|" + "|".join("---" if key in ("format", "device", "status") else "---:"
                             for key, _ in table_columns) + "|"]
    for row in rows:
        flat = flat_row(row)
        lines.append("| " + " | ".join(_cell(flat[key]) for key, _ in table_columns) + " |")
    return "\n".join(lines) + "\n"


def format_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    fields = [key for key, _ in columns(rows)] + ["model"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(flat_row(row))
    return buffer.getvalue()


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
            raise InputError(err.detail, "stream", separator=err.separator) from err
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
