"""`fcnedge bench`: the benchmark's command line."""
from __future__ import annotations

from fcnedge.benchmarks.options import BENCH_FLAGS, DELEGATES, BenchOptions
from fcnedge.runtime.labels import add_classes_argument
from fcnedge.runtime.zoo import resolve_model
from fcnedge.runtime.validate import COUNT, PERCENT, POSITIVE, ZERO_OR_MORE, flag_type


def add_parsers(subparsers, add_common) -> None:
    bench = subparsers.add_parser(
        "bench", help="accuracy vs speed of .tflite models and Keras runs, one process per model")
    bench.add_argument("--models", nargs="+", required=True, metavar="PATH",
                       help=".tflite files, training run folders (the Keras float row) and/or "
                       "bundled models' names (`fcnedge models`)")
    bench.add_argument("--data", required=True, help="dataset folder")
    add_classes_argument(bench)
    bench.add_argument("--split", default=BenchOptions.split)
    bench.add_argument("--out", required=True, help="folder for bench.md/json/csv, pareto.png")
    bench.add_argument("--runs", type=flag_type(COUNT), default=BenchOptions.runs,
                       help="timed model-only invocations")
    bench.add_argument("--warmup", type=flag_type(ZERO_OR_MORE), default=BenchOptions.warmup,
                       help="untimed invocations first")
    bench.add_argument("--threads", type=flag_type(COUNT), default=None,
                       help="CPU threads of every row, Keras included (default: all cores)")
    bench.add_argument("--stream", default=None, metavar="VIDEO",
                       help="also stream this video (or image folder) through each .tflite "
                       "with drawing and mp4 writing on; adds stream FPS, its ratio to "
                       "invoke-only FPS, and the cold start of `fcnedge run`")
    bench.add_argument("--stream-threads", type=flag_type(COUNT), default=None,
                       help="interpreter threads while streaming (default: all cores but one, "
                       "as `fcnedge run`)")
    bench.add_argument("--delegate", default=BenchOptions.delegate, choices=DELEGATES,
                       help="for the .tflite rows (Keras rows use TensorFlow's GPU if any)")
    bench.add_argument("--device", default=None, help="EdgeTPU device, e.g. usb:0")
    bench.add_argument("--gpu-delegate", default=None, metavar="PATH",
                       help="GPU delegate library path")
    bench.add_argument("--limit", type=flag_type(COUNT), default=None, help="score the first N images")
    bench.add_argument("--min-miou", type=flag_type(PERCENT), default=None,
                       help="exit 1 when a row's mIoU is below this floor")
    bench.add_argument("--timeout", type=flag_type(POSITIVE), default=BenchOptions.timeout_s,
                       help="seconds one row may take before it is marked failed")
    bench.add_argument("--overwrite", action="store_true", help="replace files in --out")
    add_common(bench)
    bench.set_defaults(handler=run_bench, param_flags=BENCH_FLAGS)


def run_bench(args) -> dict:
    from fcnedge.benchmarks.bench import bench

    options = BenchOptions(models=tuple(resolve_model(m, "models") for m in args.models),
                           data=args.data, out=args.out,
                           split=args.split, runs=args.runs, warmup=args.warmup,
                           threads=args.threads, delegate=args.delegate, device=args.device,
                           delegate_path=args.gpu_delegate, limit=args.limit,
                           min_miou=args.min_miou, timeout_s=args.timeout,
                           overwrite=args.overwrite, stream=args.stream,
                           stream_threads=args.stream_threads, classes=args.classes)
    result = bench(options)
    print(result["table"])
    raise_for_failed_rows(result, options.min_miou)
    return result


def raise_for_failed_rows(report: dict, min_miou: float | None = None) -> None:
    """Exit 1 (after the report is written) when a row failed or fell below --min-miou."""
    failed = [f"{row['model']} ({row.get('reason', 'failed')})" for row in report["rows"]
              if row["status"] == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(report['rows'])} rows failed: "
                           f"{'; '.join(failed)}")
    below = [row["model"] for row in report["rows"] if row["status"] == "below floor"]
    if below:
        raise RuntimeError(f"--min-miou {min_miou}: below the floor: {', '.join(below)}")
