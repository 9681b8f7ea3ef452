"""A benchmark's rows as a report: speed-ups, distinct labels, the markdown table and CSV."""
from __future__ import annotations

import csv
import io
from pathlib import Path


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
