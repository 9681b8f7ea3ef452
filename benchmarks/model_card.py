"""The bundled model's card (models/README.md), written from the run's own records.

    python -m fcnedge.benchmarks.model_card RUN_DIR BENCH_JSON OUT.md CONVERT_JSON [...]
    python -m fcnedge.benchmarks.model_card --bundled RUN_DIR BENCH_MD OUT.md

Figures come from history.json (training), the converters' verification tables (one JSON per
`fcnedge convert` call of `benchmarks/recipe.sh`) and the benchmark report, so the card says what
the commands measured and nothing else.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from fcnedge.runtime.fileio import write_text_atomic
from fcnedge.train.config import ARCH_STRIDES, TRAIN_FLAGS, default_fc_units
from fcnedge.train.run_folder import BEST_WEIGHTS, LAST_WEIGHTS

FOCUS = ("Pedestrian", "Bicyclist", "Pole", "SignSymbol")
PER_CLASS_FORMATS = ("float32", "int8-ptq", "int8-qat", "int8-qat per-tensor")


def _per_class_table(rows: dict[str, dict]) -> list[str]:
    names = list(next(iter(rows.values())).keys())
    lines = ["| class | " + " | ".join(rows) + " |", "|---|" + "---:|" * len(rows)]
    for name in names:
        cells = [rows[key].get(name) for key in rows]
        lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.1f}" for v in cells)
                     + " |")
    return lines


def _row_label(row: dict, model_hw: list[int]) -> str:
    """The format, plus "per-tensor" when the file's own card says its weights were, plus the
    input size when it is not the model's (recipe.sh also exports at 224x224: without the size
    those rows would take the place of the full-size float32 and int8-ptq rows)."""
    card = Path(row["path"]).with_suffix(".json")
    try:
        meta = json.loads(card.read_text())
    except (OSError, ValueError):
        meta = {}
    label = f"{row['format']} per-tensor" if meta.get("weight_scales") == "per-tensor" \
        else row["format"]
    size = (meta.get("input") or {}).get("size")
    if size and list(size) != list(model_hw):
        label += f" {size[0]}x{size[1]}"
    return label


# Shown on every card's command, in this order; the rest of train.config.TRAIN_FLAGS only
# where the run did not use its default, and these four in their own words at the end.
_ALWAYS_SHOWN = ("data", "out", "arch", "backbone", "alpha", "input_hw", "epochs", "batch_size",
                 "val_every", "class_weights")
_SHOWN_LAST = ("enabled", "init_weights", "teacher", "threads")


def _train_defaults() -> dict:
    """`fcnedge train`'s own defaults, read from its parser so the card cannot drift from it."""
    from fcnedge.runtime.validate import OneLineParser, add_common
    from fcnedge.train.cli import add_parsers, class_weight_power

    parser = OneLineParser(prog="fcnedge")
    add_parsers(parser.add_subparsers(dest="command"), add_common)
    args = parser.parse_args(["train", "--data", "-", "--out", "-"])
    # --class-weight-power defaults to "the recipe's, for median-freq": the value it stands for.
    return {**vars(args), "class_weight_power": class_weight_power(args)}


def _flag_text(value) -> str:
    return ",".join(value) if isinstance(value, (list, tuple)) else f"{value}"


def _portable(path: str) -> str:
    """A run's folder as the repository names it: run.json keeps the path on the machine that
    trained it (/work/main/runs/x), which means nothing where the card is read."""
    if not Path(path).is_absolute():
        return path
    parts = Path(path).parts
    roots = [i for i, part in enumerate(parts) if part in ("runs", "models")]
    return str(Path(*parts[roots[-1]:])) if roots else path


def _train_command(run: dict, defaults: dict | None = None) -> str:
    """The command that trained `run`, from its run.json."""
    defaults = defaults or _train_defaults()
    model, train = run["model"], run["train"]
    # $CAMVID, not the path on the machine that trained it: the card is read elsewhere.
    command = (f"fcnedge train --data $CAMVID --out {_portable(train['out'])} --arch "
               f"{model['arch']} --backbone {model['backbone']} --alpha {model['alpha']} "
               f"--input-size {model['input_hw'][0]}x{model['input_hw'][1]} --epochs "
               f"{train['epochs']} --batch-size {train['batch_size']} --val-every "
               f"{train['val_every']} --class-weights {train['class_weights']}")
    sections = {"model": model, "train": train, "augment": train.get("augment", {})}
    defaults = {**defaults, "fc_units": default_fc_units(model["backbone"])}
    for section, key, flag in TRAIN_FLAGS:
        if key in _ALWAYS_SHOWN or key in _SHOWN_LAST:
            continue
        default = defaults[flag[2:].replace("-", "_")]
        value = sections[section].get(key, default)
        if _flag_text(value) != _flag_text(default):
            command += f" {flag} {_flag_text(value)}"
    if not sections["augment"].get("enabled", True):
        command += " --no-augment"
    if train.get("init_weights"):
        command += f" --init-weights {_portable(train['init_weights'])}"
    if train.get("teacher"):
        command += f" --teacher {_portable(train['teacher'])}"
    if train.get("threads"):
        command += f" --threads {train['threads']}"
    return command + " --quiet"


def _weights(train: dict) -> str:
    weights = train["class_weights"]
    if train.get("class_weight_power", 1.0) != 1.0:
        weights += f" to the power {train['class_weight_power']}"
    return weights


def _keeps_last(run: dict) -> bool:
    return run["train"].get("keep", "best") == "last"


def _kept(run: dict, history: list) -> dict:
    """The scored epoch whose weights the run kept: its best on val, or its last."""
    scored = [h for h in history if h.get("val_miou") is not None]
    return scored[-1] if _keeps_last(run) else max(scored, key=lambda h: h["val_miou"])


def _kept_words(run: dict, entry: dict) -> str:
    if _keeps_last(run):
        return f"last epoch kept, val mIoU {entry['val_miou']:.2f}"
    return f"best val mIoU {entry['val_miou']:.2f} at epoch {entry['epoch']}"


def _stage_sentence(index: int, stages: list[tuple[dict, list]]) -> str:
    run, history = stages[index]
    train = run["train"]
    start = ("from scratch" if index == 0
             else f"from stage {index}'s {'last' if _keeps_last(stages[index - 1][0]) else 'best'}"
             " weights (`--init-weights`), a fresh schedule")
    height, width = run["model"]["input_hw"]
    return (f"stage {index + 1}: {start}, {len(history)} epochs at {height}x{width}, "
            f"{train['optimizer']} lr "
            f"{train['learning_rate']} {train['schedule']}, loss {train.get('loss', 'ce')}, "
            f"class weights {_weights(train)}, {_kept_words(run, _kept(run, history))}")


def _prior_correction(run_dir: Path) -> dict | None:
    from fcnedge.train.prior import PRIOR_FILE

    path = run_dir / PRIOR_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _correct_prior_command(name: str, correction: dict) -> str:
    taus = ",".join(f"{entry['tau']:g}" for entry in correction.get("sweep", []))
    return (f"fcnedge correct-prior --model models/{name} --data $CAMVID "
            f"--split {correction['split']}" + (f" --taus {taus}" if taus else ""))


def model_card(run_dir: Path, converts: list[dict], bench: dict) -> str:
    from fcnedge.train.warm_start import run_lineage

    stages = run_lineage(run_dir)
    run, history = stages[-1]
    kept = _kept(run, history)
    train_s = sum(h.get("seconds", 0.0) for _, stage_history in stages for h in stage_history)
    model, train = run["model"], run["train"]
    name = run_dir.name
    correction = _prior_correction(run_dir)
    rows = {_row_label(row, model["input_hw"]): row
            for convert in converts for row in convert["rows"]}
    threads = f" at {train['threads']} thread(s)" if train.get("threads") else ""
    if len(stages) == 1:
        schedule = (f"{len(history)} epochs ("
                    + ("last epoch kept" if _keeps_last(run)
                       else f"best val mIoU at epoch {kept['epoch']}") + "), "
                    f"{train['optimizer']} lr {train['learning_rate']} {train['schedule']}, "
                    f"class weights {_weights(train)}")
    else:
        schedule = (f"{sum(len(h) for _, h in stages)} epochs in {len(stages)} stages ("
                    + "; ".join(_stage_sentence(i, stages) for i in range(len(stages)))
                    + ")")
    defaults = _train_defaults()
    pasted = train["augment"].get("paste_classes") or ()
    pasting = (f" + copy-paste of {', '.join(pasted)} (chance "
               f"{train['augment'].get('paste_probability')})" if pasted else "")
    held_out = _held_out(run_dir)
    splits = run["train"].get("train_splits", ["train"])
    frames = _training_frames(splits)
    drives = ", ".join(f"{drive} ({count})" for drive, count in frames.items())
    weights_file = LAST_WEIGHTS if _keeps_last(run) else BEST_WEIGHTS
    refit = "val" in splits   # val trained too: its figures are on seen frames
    epoch = "last epoch" if _keeps_last(run) else "best epoch"
    lines = [
        f"# Model card: CamVid {model['arch'].upper()} on MobileNetV2-{model['alpha']}",
        "",
        "Written by `python -m fcnedge.benchmarks.model_card` from the run's own records, the "
        "bundled files' cards and the published benchmark; not edited by hand.",
        "",
        "## Model",
        "",
        f"A Fully Convolutional Network (Long et al.), {model['arch'].upper()}: MobileNetV2 "
        f"(width {model['alpha']}) with skips from strides "
        f"{', '.join(str(s) for s in ARCH_STRIDES[model['arch']])}, "
        f"{model['input_hw'][0]}x{model['input_hw'][1]} RGB input (0-255; normalised in the "
        f"graph), {model['num_classes']} classes' logits out {_output_words(rows)}. Trained from "
        f"scratch (no downloaded weights) on CamVid {'+'.join(splits)}, {schedule}, batch "
        f"{train['batch_size']}, augmentation scale "
        f"{train['augment']['scale_min']}-{train['augment']['scale_max']} + flip + "
        f"photometric{pasting}. Training took {train_s / 3600:.1f} h on 2-core x86-64 "
        f"CPUs{threads}.",
        "",
        f"Files: `{name}/` (run.json, history.json, {weights_file}: the float model"
        + ("; init/: the earlier stages' run.json and history.json" if len(stages) > 1 else "")
        + ("; prior_correction.json" if correction else "")
        + f"), `{name}_int8-qat.tflite` (what `fcnedge demo` and `fcnedge run` use) and "
        f"`{name}_float32.tflite`, each with its card (`.json`).",
        "",
        "## Intended use",
        "",
        "Semantic segmentation of forward-facing road-vehicle camera frames in daylight into "
        "CamVid's 11 classes, on CPUs and edge accelerators: prototyping a dashcam pipeline, "
        "benchmarking devices, a starting point for fine-tuning on more CamVid-labelled "
        "streets. Not for safety decisions: nothing here has been validated for driving.",
        "",
        "## Data",
        "",
        "CamVid (Brostow et al.) in the SegNet version: 360x480 frames of daytime drives in "
        f"Cambridge, UK, by one camera. Training: the {' and '.join(splits)} "
        + ("splits'" if len(splits) > 1 else "split's") + f" {sum(frames.values())} "
        f"frames of {drives}. "
        + ("Validation: SegNet's val split, 101 frames of drive 0016E5, is training data here, "
           "so its figures below say only that those frames were learned; each stage kept its "
           "last epoch, a schedule fixed beforehand, not one picked on a split."
           if refit else "Validation: SegNet's val split, 101 frames of drive 0016E5, which "
           "also picked each stage's best epoch."),
        "",
        "## Accuracy (void ignored, scored at the masks' 360x480)",
        "",
        "| format | size MB | val mIoU | delta vs float Keras |"
        + (" held-out mIoU |" if held_out else ""),
        "|---|---:|---:|---:|" + ("---:|" if held_out else ""),
        f"| Keras float32 | | {converts[0]['keras_miou']:.2f} | |"
        + (f" {_fmt(held_out['miou'].get('keras float32'))} |" if held_out else ""),
    ]
    for label, row in rows.items():
        lines.append(f"| {label} | {row['size_mb']:.2f} | {row['miou']:.2f} | "
                     f"{row['delta']:+.2f} |"
                     + (f" {_fmt(held_out['miou'].get(label))} |" if held_out else ""))
    if held_out:
        lines += ["", f"Held-out: {held_out['description']}"]
    if correction:
        lines += ["", "Prior correction (`fcnedge correct-prior`, prior_correction.json): tau "
                  f"{correction['tau']:g}, chosen by mIoU on the {correction['split']} split "
                  f"({correction['images']} images), folded into the last score layer's bias. "
                  "Every row above includes it; the per-class row \"as trained\" below is the "
                  f"{epoch} without it, as training scored it."]
    lines += ["", "Per-class IoU (%):", ""]
    trained_label = f"Keras as trained ({epoch})" if correction else f"Keras ({epoch})"
    per_class = {trained_label: kept["val_per_class_iou"]}
    for label in PER_CLASS_FORMATS:
        if label in rows:
            per_class[label] = rows[label]["per_class_iou"]
    if held_out and held_out.get("per_class_iou"):
        per_class[f"held-out, {held_out['per_class_format']}"] = held_out["per_class_iou"]
    lines += _per_class_table(per_class)
    weakest = sorted(kept["val_per_class_iou"].items(), key=lambda item: item[1])[:3]
    lines += [
        "", "## Limitations", "",
        ("- Val is training data here: its figures are no accuracy on unseen streets"
         + _unseen_words(run_dir) if refit else
         "- Val shares its drive with 204 training frames, so val figures are optimistic")
        + (f": on the held-out split the int8 model reads {_fmt(held_out['miou'].get('int8-qat per-tensor'))}"
           " against its val figure above." if held_out else "."),
        "- One city, one camera, daytime only: other cameras, night, rain and other countries' "
        "road furniture are unseen.",
        f"- Thin and small classes are its weakest (val, as trained: "
        f"{', '.join(f'{name} {value:.1f}' for name, value in weakest)}).",
        "- int8 beats float32 clearly only on CPUs with int8 dot-product instructions (the "
        "benchmark header names them); see the speed table.",
    ]
    # $CAMVID for whatever path the bench was given (the run may record another spelling).
    table = re.sub(r"Accuracy on \S+ split", "Accuracy on $CAMVID split", bench["table"].strip())
    lines += ["", "## Speed (from `fcnedge bench`)", "", table,
              "", "## Commands", "", "```bash", *(_train_command(r, defaults) for r, _ in stages),
              *([_correct_prior_command(name, correction)] if correction else []),
              f"sh benchmarks/recipe.sh models/{name} $CAMVID out/published   # = make bench",
              "```", ""]
    return "\n".join(lines)


def _unseen_words(run_dir: Path) -> str:
    """What the zoo (models/zoo.json) says of the bundled file on frames it never trained on."""
    from fcnedge.runtime.errors import InputError
    from fcnedge.runtime.zoo import read_zoo

    file = f"{run_dir.name}_int8-qat.tflite"
    try:
        entry = next((m for m in read_zoo(run_dir.parent).values() if m.file == file), None)
    except InputError:   # no zoo beside the run (a test's or a user's own folder)
        entry = None
    if entry is None or entry.unseen_val_miou is None:
        return " (see models/zoo.json for the recipe trained on train alone)"
    return f" (unseen val: {entry.unseen_val_miou:.2f}, {entry.unseen_val_on})"


def _output_words(rows: dict[str, dict]) -> str:
    """Where the bundled int8 file's graph ends, from its own card: at the input size, or at
    the head's stride (`fcnedge convert --output-size head`)."""
    row = rows.get("int8-qat per-tensor") or next(iter(rows.values()), None)
    try:
        output = json.loads(Path(row["path"]).with_suffix(".json").read_text())["output"]
    except (TypeError, OSError, ValueError, KeyError):
        return "at the input size"
    if output.get("size") != "head":
        return "at the input size"
    height, width = output["shape"][1:3]
    return (f"at the head's stride ({height}x{width} in the .tflite files: the runtime takes the "
            "argmax there and resizes the labels to the frame)")


# SegNet's CamVid splits by drive: the card says what a run trained on without the dataset.
CAMVID_DRIVES = {"train": {"0001TP": 62, "0006R0": 101, "0016E5": 204}, "val": {"0016E5": 101}}


def _training_frames(splits: list[str]) -> dict[str, int]:
    """Frames per drive of the splits a run trained on, in the order the splits list them."""
    frames: dict[str, int] = {}
    for split in splits:
        for drive, count in CAMVID_DRIVES[split].items():
            frames[drive] = frames.get(drive, 0) + count
    return frames


HELD_OUT_FILE = "held_out.json"     # in the run folder: figures measured where the split is


def _held_out(run_dir: Path) -> dict | None:
    path = run_dir / HELD_OUT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value) -> str:
    return "" if value is None else f"{value:.1f}"


def bundled_records(run_dir: Path, bench_md: Path) -> tuple[list[dict], dict]:
    """The inputs `model_card` takes, from committed files: the cards of the bundled .tflite
    files beside the run folder (their verification figures) and the published bench table."""
    rows, keras = [], None
    for path in sorted(run_dir.parent.glob(f"{run_dir.name}_*.tflite")):
        card = json.loads(path.with_suffix(".json").read_text())
        check = card["verification"]
        keras = check["keras_miou"]
        rows.append({"format": card["model_format"], "path": str(path),
                     "size_mb": round(card["size_bytes"] / 2**20, 2), "miou": check["miou"],
                     "delta": check["delta"], "per_class_iou": check["per_class_iou"]})
    return [{"keras_miou": keras, "rows": rows}], {"table": bench_md.read_text()}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) == 4 and args[0] == "--bundled":
        run_dir, bench_md, out = Path(args[1]), Path(args[2]), args[3]
        converts, bench = bundled_records(run_dir, bench_md)
        write_text_atomic(out, model_card(run_dir, converts, bench))
        return 0
    if len(args) < 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    run_dir, bench_json, out, *convert_jsons = args
    text = model_card(Path(run_dir), [json.loads(Path(p).read_text()) for p in convert_jsons],
                      json.loads(Path(bench_json).read_text()))
    write_text_atomic(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
