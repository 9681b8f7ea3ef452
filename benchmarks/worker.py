"""One benchmark row, measured in a process of its own: `python -m fcnedge.benchmarks.worker
SPEC.json RESULT.json`.

A process per row keeps rows apart: a model that crashes the interpreter takes only its own
row down, and peak RSS is that model's alone. TFLite rows import no TensorFlow (the runtime's
dependencies only), so their memory is what the device would see.

Measured per row:
  model-only: `--warmup` then `--runs` invocations on one fixed input (the interpreter's invoke,
    or the Keras model's call); no decode, no pre/post-processing.
  end to end: per image of the split, decode the file + preprocess + invoke + postprocess (argmax
    and the resize back to the image's size), the work a deployed loop does for each frame.
  accuracy: the end-to-end label maps scored with the runtime's metric code, as `eval` does.
  stream (TFLite rows, with --stream): the source through `fcnedge run`'s pipeline (reader,
    model and drawer threads; overlay, HUD and mp4 writing on) at the streaming thread count,
    against invoke-only FPS measured in the same process at that same thread count.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from fcnedge.benchmarks.options import BENCH_FLAGS
from fcnedge.runtime.errors import InputError, flag_message
from fcnedge.runtime.fileio import write_json_atomic
from fcnedge.runtime.metrics import confusion_matrix, scores_from_confusion
from fcnedge.runtime.preprocess import read_image, read_mask
from fcnedge.runtime.stats import latency_summary


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _pairs(spec: dict):
    from fcnedge.train.data import find_pairs

    return find_pairs(spec["data"], spec["split"], spec.get("limit"))


def _timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return samples


class TfliteRow:
    """A .tflite model through the runtime's Segmenter (the code that ships)."""

    def __init__(self, spec: dict):
        from fcnedge.runtime.interpreter import Delegate
        from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions

        self.segmenter = Segmenter(spec["model"], SegmenterOptions(
            delegate=Delegate(spec["delegate"]), num_threads=spec["threads"],
            device=spec.get("device"), delegate_path=spec.get("delegate_path")))
        self.labels = self.segmenter.labels
        info = self.segmenter.info_dict
        self.device = f"{info['delegate']} ({info['backend']})"
        card = self.segmenter.card
        self.model_format = self.format = card.get("model_format") or Path(spec["model"]).stem
        self.input_hw = self.segmenter.input_hw
        if card.get("weight_scales") == "per-tensor":
            self.format += " per-tensor"
        if card.get("input", {}).get("size") and spec.get("label_size"):
            self.format += " {}x{}".format(*card["input"]["size"])
        self.size_bytes = os.path.getsize(spec["model"])

    def invoke_once(self, _):
        # The interpreter alone, as LiteRT's benchmark_model times it: no input or output copy.
        self.segmenter.interpreter.invoke()

    def fixed_input(self, image_bgr):
        from fcnedge.runtime.adapters import input_details

        tensor, _ = self.segmenter.prepare(image_bgr)
        interpreter = self.segmenter.interpreter
        interpreter.set_tensor(input_details(interpreter)["index"], tensor)
        return tensor

    def segment(self, image_bgr) -> np.ndarray:
        return self.segmenter.segment(image_bgr).labels


class KerasRow:
    """The float Keras model of a run folder, on the GPU when TensorFlow sees one."""

    def __init__(self, spec: dict):
        from fcnedge.train.tfcompat import tf

        if spec.get("threads"):
            tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
        from fcnedge.runtime.preprocess import labels_to_frame, preprocess
        from fcnedge.train.weights import load_trained_model

        self.tf = tf
        self._preprocess, self._labels_to_frame = preprocess, labels_to_frame
        trained = load_trained_model(spec["model"])
        self.model, self.labels = trained.model, trained.labels
        self.input_hw = trained.config.input_hw
        gpus = tf.config.list_physical_devices("GPU")
        self.device = f"GPU ({gpus[0].name})" if gpus else "CPU (TensorFlow)"
        self.format = self.model_format = "keras float32"
        self.size_bytes = os.path.getsize(trained.weights)
        model = self.model

        @tf.function(reduce_retracing=True)
        def logits(batch):
            return model(batch, training=False)

        @tf.function(reduce_retracing=True)
        def labels(batch):
            return tf.argmax(model(batch, training=False), axis=-1, output_type=tf.int32)

        self._logits, self._labels = logits, labels

    def fixed_input(self, image_bgr):
        rgb, _ = self._preprocess(image_bgr, self.input_hw)
        return self.tf.constant(rgb[np.newaxis], self.tf.float32)

    def invoke_once(self, tensor):
        # .numpy() waits for the device, so GPU timings include the work, not just the launch.
        self._logits(tensor).numpy()

    def segment(self, image_bgr) -> np.ndarray:
        rgb, geometry = self._preprocess(image_bgr, self.input_hw)
        batch = self.tf.constant(rgb[np.newaxis], self.tf.float32)
        label_map = self._labels(batch).numpy()[0].astype(np.uint8)
        return self._labels_to_frame(label_map, geometry)


def measure_stream(spec: dict) -> dict:
    """Streaming FPS with drawing and mp4 writing, and invoke-only FPS at the same threads."""
    import tempfile

    from fcnedge.runtime.interpreter import Delegate
    from fcnedge.runtime.stream import StreamOptions, stream
    from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions
    from fcnedge.runtime.video import open_source, parse_source

    segmenter = Segmenter(spec["model"], SegmenterOptions(
        delegate=Delegate(spec["delegate"]), num_threads=spec["stream_threads"],
        device=spec.get("device"), delegate_path=spec.get("delegate_path")))
    tensor, _ = segmenter.prepare(np.zeros((*segmenter.input_hw, 3), np.uint8))
    segmenter.infer(tensor)
    before = _timed(segmenter.interpreter.invoke, spec["runs"], spec["warmup"])
    with tempfile.TemporaryDirectory(prefix="fcnedge-stream-") as folder:
        stats = stream(segmenter, open_source(parse_source(spec["stream"])),
                       StreamOptions(output=str(Path(folder) / "stream.mp4"), window=False))
    after = _timed(segmenter.interpreter.invoke, spec["runs"], 0)
    # Invoke-only timed before and after the stream, the faster median kept: on a shared
    # machine the ratio then errs against the stream, never for it.
    invoke_fps = 1000.0 / min(float(np.median(before)), float(np.median(after)))
    summary = stats.summary()
    return {"source": spec["stream"], "threads": segmenter.info.num_threads,
            "frames": summary["frames"], "fps": summary["fps"],
            "invoke_only_fps": round(invoke_fps, 2),
            "ratio": round(summary["fps"] / invoke_fps, 3) if summary["fps"] else None,
            "stages_p50_ms": {name: values.get("p50")
                              for name, values in summary["stages_ms"].items()}}


def measure(spec: dict) -> dict:
    """The row for one model; see the module docstring."""
    pairs = _pairs(spec)
    row_type = KerasRow if spec["kind"] == "keras" else TfliteRow
    row = row_type(spec)
    first = read_image(pairs[0].image)
    tensor = row.fixed_input(first)
    model_only = _timed(lambda: row.invoke_once(tensor), spec["runs"], spec["warmup"])

    labels = row.labels
    confusion = np.zeros((labels.num_classes, labels.num_classes), np.int64)
    end_to_end = []
    for index, pair in enumerate(pairs):
        start = time.perf_counter()
        image = read_image(pair.image)
        predicted = row.segment(image)
        end_to_end.append(1e3 * (time.perf_counter() - start))
        truth = read_mask(pair.mask, labels)
        confusion += confusion_matrix(truth, predicted, labels.num_classes, labels.void_id)
        if spec.get("progress"):
            print(f"\r  {index + 1}/{len(pairs)} images", end="", file=sys.stderr, flush=True)
    if spec.get("progress"):
        print(file=sys.stderr)
    scores = scores_from_confusion(confusion, labels.class_names).to_dict()
    peak_rss_mb = _peak_rss_mb()   # before the stream opens a second interpreter
    streamed = measure_stream(spec) if spec.get("stream") and spec["kind"] == "tflite" else None
    return {"model": spec["model"], "format": row.format, "model_format": row.model_format,
            "input_size": list(row.input_hw), "device": row.device,
            "status": "ok", "size_mb": round(row.size_bytes / 2**20, 3),
            "miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"],
            "per_class_iou": scores["per_class_iou"], "images": len(pairs),
            "model_only_ms": latency_summary(model_only),
            "end_to_end_ms": latency_summary(end_to_end[1:] or end_to_end),
            "peak_rss_mb": peak_rss_mb, "stream": streamed,
            "tensorflow_imported": "tensorflow" in sys.modules}


def main(argv: list[str] | None = None) -> int:
    spec_path, result_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("silence_native"):
        from fcnedge.runtime.quiet import silence_native_stderr

        silence_native_stderr()
    try:
        result = measure(spec)
    except Exception as err:  # reported as this row's failure; the parent goes on
        text = flag_message(err, BENCH_FLAGS) if isinstance(err, InputError) else str(err)
        message = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        result = {"model": spec["model"], "status": "failed", "reason": message}
    write_json_atomic(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
