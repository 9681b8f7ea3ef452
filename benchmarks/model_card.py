"""The bundled model's card (models/README.md), written from the run's own records.

    python -m fcnedge.benchmarks.model_card RUN_DIR CONVERT_JSON BENCH_JSON OUT.md

Figures come from history.json (training), the converter's verification table and the
benchmark report, so the card says what the commands measured and nothing else.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from fcnedge.runtime.fileio import write_text_atomic

FOCUS = ("Pedestrian", "Bicyclist", "Pole", "SignSymbol")


def _per_class_table(rows: dict[str, dict]) -> list[str]:
    names = list(next(iter(rows.values())).keys())
    lines = ["| class | " + " | ".join(rows) + " |", "|---|" + "---:|" * len(rows)]
    for name in names:
        cells = [rows[key].get(name) for key in rows]
        lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.1f}" for v in cells)
                     + " |")
    return lines


def model_card(run_dir: Path, convert: dict, bench: dict) -> str:
    run = json.loads((run_dir / "run.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    scored = [h for h in history if h.get("val_miou") is not None]
    best = max(scored, key=lambda h: h["val_miou"])
    train_s = sum(h.get("seconds", 0.0) for h in history)
    model, train = run["model"], run["train"]
    rows = {row["format"]: row for row in convert["rows"]}
    lines = [
        f"# Bundled model: CamVid {model['arch'].upper()} on MobileNetV2-{model['alpha']}",
        "",
        f"Trained from scratch (no downloaded weights) on CamVid train ({train['data']}), "
        f"{model['input_hw'][0]}x{model['input_hw'][1]} input, {len(history)} epochs "
        f"(best val mIoU at epoch {best['epoch']}), {train['optimizer']} lr "
        f"{train['learning_rate']} {train['schedule']}, batch {train['batch_size']}, class "
        f"weights {train['class_weights']}, augmentation scale {train['augment']['scale_min']}-"
        f"{train['augment']['scale_max']} + flip + photometric. Training took "
        f"{train_s / 3600:.1f} h on a 2-core x86-64 CPU (other work shared the cores).",
        "",
        "Files: `camvid_fcn4s_mobilenetv2/` (run.json, history.json, best.weights.h5: the float "
        "model), `*_int8-qat.tflite` (what `fcnedge demo` and `fcnedge run` use) and "
        "`*_float32.tflite`, each with its card (`.json`).",
        "",
        "## Accuracy (CamVid val, 101 images, void ignored, scored at 360x480)",
        "",
        "| format | size MB | val mIoU | delta vs float Keras |",
        "|---|---:|---:|---:|",
        f"| Keras float32 | | {convert['keras_miou']:.2f} | |",
    ]
    for fmt, row in rows.items():
        lines.append(f"| {fmt} | {row['size_mb']:.2f} | {row['miou']:.2f} | "
                     f"{row['delta']:+.2f} |")
    lines += ["", "Per-class IoU (%):", ""]
    per_class = {"Keras (best epoch)": best["val_per_class_iou"]}
    for fmt in ("float32", "int8-ptq", "int8-qat"):
        if fmt in rows:
            per_class[fmt] = rows[fmt]["per_class_iou"]
    lines += _per_class_table(per_class)
    lines += ["", "## Speed on this machine (from `fcnedge bench`)", "", bench["table"].strip(),
              "", "## Commands", "", "```bash",
              f"fcnedge train --data {train['data']} --out {train['out']} --arch "
              f"{model['arch']} --backbone {model['backbone']} --alpha {model['alpha']} "
              f"--input-size {model['input_hw'][0]}x{model['input_hw'][1]} --epochs "
              f"{train['epochs']} --val-every {train['val_every']} --class-weights "
              f"{train['class_weights']} --quiet",
              "sh benchmarks/recipe.sh models/camvid_fcn4s_mobilenetv2 "
              "../shared/datasets/camvid out/published   # = make bench",
              "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    run_dir, convert_json, bench_json, out = (argv or sys.argv[1:])[:4]
    text = model_card(Path(run_dir), json.loads(Path(convert_json).read_text()),
                      json.loads(Path(bench_json).read_text()))
    write_text_atomic(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
