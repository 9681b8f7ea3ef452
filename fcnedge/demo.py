"""`fcnedge demo`: the whole toolkit on the bundled CamVid model, in one command. It sits
with the command line, above every part, because it drives them all (runtime and bench).

1. picks a clip: CamVid's val frames when a CamVid folder is given (--data or FCNEDGE_DATA),
   else a synthetic street clip generated on the spot;
2. streams it through the bundled int8 model (the runtime, XNNPACK on the CPU) into an overlay
   mp4, and writes a contact sheet PNG of a few frames with their segmentation;
3. benchmarks the bundled formats on labelled frames (CamVid val, or synthetic scenes);
4. prints where everything went.
Needs only the runtime install: no TensorFlow on this path.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.fileio import prepare_output_folder, write_image_atomic, write_json_atomic
from fcnedge.runtime.validate import COUNT, flag_type
from fcnedge.runtime.zoo import DEFAULT_MODEL, models_dir, read_zoo

log = logging.getLogger("fcnedge.demo")

DATA_ENV = "FCNEDGE_DATA"


def bundled_formats() -> tuple[str, str]:
    """The default zoo model's int8 file and the float32 file converted beside it."""
    int8 = read_zoo()[DEFAULT_MODEL].file
    return int8, int8.replace("_int8-qat.tflite", "_float32.tflite")


@dataclass(frozen=True)
class DemoOptions:
    out: str = "out/demo"
    model: str | None = None
    data: str | None = None
    max_frames: int | None = 120
    sheet_frames: int = 6
    bench: bool = True
    bench_images: int = 20

    def __post_init__(self):
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"got {self.max_frames}, expected at least 1", "max_frames")


def find_camvid(data: str | None) -> Path | None:
    """The CamVid folder from --data or FCNEDGE_DATA, if it has a val split; None otherwise."""
    candidate = data or os.environ.get(DATA_ENV)
    if not candidate:
        return None
    root = Path(candidate)
    if not (root / "val").is_dir():
        if data:
            raise InputError.about("data", root, "no val/ folder (expected CamVid in the SegNet "
                                   "layout)")
        log.warning("%s=%s has no val/ folder: using a synthetic clip", DATA_ENV, root)
        return None
    return root


def _synthetic_inputs(out: Path, frames: int) -> tuple[Path, Path]:
    """A synthetic clip (image folder) and a small labelled synthetic set for the benchmark."""
    import cv2

    from fcnedge.train.synth import synth_clip, write_synth_dataset

    clip = out / "clip"
    clip.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(synth_clip(frames, 360, 480, seed=7)):
        cv2.imwrite(str(clip / f"frame_{index:04d}.png"), frame)
    labelled = write_synth_dataset(out / "synthetic_data", 4, 12, (360, 480), seed=11)
    return clip, labelled


def demo(options: DemoOptions) -> dict:
    """Runs the steps of the module docstring; returns what was written, and the figures."""
    from fcnedge.runtime.stream import StreamOptions, stream
    from fcnedge.runtime.interpreter import default_threads
    from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions
    from fcnedge.runtime.video import open_source, parse_source
    from fcnedge.runtime.visualize import contact_sheet, side_by_side, with_legend

    folder = models_dir()
    formats = bundled_formats()
    model = Path(options.model) if options.model else folder / formats[0]
    if not model.is_file():
        where = "" if options.model else " (the bundled model; is the checkout complete?)"
        raise InputError.about("model", model, "not found" + where)
    # A previous demo's folder (it has demo.json) is replaced; any other folder with files
    # is refused, so a mistyped --out never deletes someone's work.
    previous_demo = (Path(options.out) / "demo.json").is_file()
    out = prepare_output_folder(options.out, previous_demo,
                                hint=f"it is not a previous demo's output; pick another "
                                f"{mention('out')}")
    write_json_atomic(out / "demo.json", {"status": "running"})   # marks the folder as ours
    camvid = find_camvid(options.data)
    frames = options.max_frames or 120
    if camvid is not None:
        clip, labelled, clip_kind = camvid / "val", camvid, f"CamVid val frames ({camvid})"
    else:
        clip, labelled = _synthetic_inputs(out, frames)
        clip_kind = "a synthetic street clip (pass --data CAMVID_DIR for real frames)"
    log.info("demo: %s through %s", clip_kind, model.name)

    # As `fcnedge run` does: one core stays free for decoding, drawing and writing.
    segmenter = Segmenter(model, SegmenterOptions(num_threads=default_threads(reserve=1)))
    picked: list = []
    spacing = max(1, frames // max(1, options.sheet_frames))

    def keep(frame, segmentation):
        if frame.index % spacing == 0 and len(picked) < options.sheet_frames:
            picked.append(side_by_side(frame.image, segmentation.labels, segmenter.palette_bgr))

    video = out / "demo_overlay.mp4"
    stats = stream(segmenter, open_source(parse_source(str(clip))),
                   StreamOptions(output=str(video), max_frames=frames), on_frame=keep)
    summary = stats.summary()
    sheet = write_image_atomic(out / "contact_sheet.png", with_legend(
        contact_sheet(picked, columns=2, width=640), segmenter.labels.class_names,
        segmenter.palette_bgr))
    result = {"status": "done", "model": str(model), "clip": clip_kind, "frames": stats.frames,
              "video": str(video), "contact_sheet": str(sheet), "stream_fps": summary["fps"],
              "invoke_ms_p50": summary["stages_ms"]["invoke"].get("p50")}
    if options.bench:
        from fcnedge.benchmarks.bench import bench
        from fcnedge.benchmarks.options import BenchOptions

        rows = [model] if options.model else [folder / name for name in formats
                                              if (folder / name).is_file()]
        report = bench(BenchOptions(models=tuple(str(p) for p in rows), data=str(labelled),
                                    out=str(out / "bench"), runs=30, warmup=3,
                                    limit=options.bench_images))
        result["bench"] = report["files"]
        result["bench_table"] = report["table"]
        result["bench_report"] = {"rows": [{key: row.get(key) for key in
                                            ("model", "status", "reason")}
                                           for row in report["rows"]]}
    write_json_atomic(out / "demo.json", result)
    return result


def add_parsers(subparsers, add_common) -> None:
    demo = subparsers.add_parser(
        "demo", help="the bundled int8 model on a clip: overlay mp4, contact sheet, benchmark")
    demo.add_argument("--out", default=DemoOptions.out, help="folder for everything it writes "
                      "(replaced on each run)")
    demo.add_argument("--data", default=None, help="CamVid folder for real frames (default: "
                      "$FCNEDGE_DATA, else a synthetic clip)")
    demo.add_argument("--model", default=None, help="a .tflite model instead of the bundled one")
    demo.add_argument("--max-frames", type=flag_type(COUNT), default=DemoOptions.max_frames)
    demo.add_argument("--no-bench", action="store_true", help="skip the benchmark step")
    add_common(demo)
    demo.set_defaults(handler=run_demo)


def run_demo(args) -> dict:
    from fcnedge.benchmarks.cli import raise_for_failed_rows

    result = demo(DemoOptions(out=args.out, model=args.model, data=args.data,
                              max_frames=args.max_frames, bench=not args.no_bench))
    if "bench_table" in result:
        print(result["bench_table"])
    print(f"{result['frames']} frames of {result['clip']} at {result['stream_fps']} FPS "
          f"(invoke p50 {result['invoke_ms_p50']} ms)")
    for label, key in (("overlay video", "video"), ("contact sheet", "contact_sheet")):
        print(f"{label:>14}: {result[key]}")
    for name, path in result.get("bench", {}).items():
        print(f"{name:>14}: {path}")
    if "bench_report" in result:
        raise_for_failed_rows(result["bench_report"])
    return result
