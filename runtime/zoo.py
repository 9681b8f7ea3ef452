"""The bundled models by name: `--model accurate` instead of a path, and `fcnedge models`.

models/zoo.json names each bundled int8 file and holds the figures that cannot be read from the
file itself, each with where it was measured: GFLOPs (TensorFlow's profiler at export), the
int8 model-only latency (`fcnedge bench`) and the held-out-drive mIoU. Input size, file size
and val mIoU are read from the model and its card when listed, so they cannot drift.

A model refit on train+val scores its val on frames it trained on, so the zoo ranks it by
its recipe trained on train alone (`unseen_val_miou`): the front is judged on unseen frames.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fcnedge.runtime.errors import InputError

ZOO_FILE = "zoo.json"
DEFAULT_MODEL = "accurate"     # what `fcnedge demo` and the README's first command run
REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


def models_dir() -> Path:
    """The bundled models: the installed package's copy, else the repository's folder."""
    from importlib import resources

    try:
        installed = Path(str(resources.files("fcnedge.models")))
        if (installed / ZOO_FILE).is_file():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return REPO_MODELS


@dataclass(frozen=True)
class ZooModel:
    name: str
    file: str                   # the int8 .tflite, in the models folder
    summary: str
    gflops: float
    int8_ms: float              # model-only p50, as measured where `int8_ms_on` says
    int8_ms_on: str
    held_out_miou: float | None
    held_out_on: str | None
    # A refit's: SegNet val mIoU of the same recipe trained without val (its own int8 file).
    unseen_val_miou: float | None = None
    unseen_val_on: str | None = None

    def path(self, folder: Path | None = None) -> Path:
        return (folder or models_dir()) / self.file


def read_zoo(folder: str | os.PathLike | None = None) -> dict[str, ZooModel]:
    """The zoo's models by name, in the order zoo.json lists them (fastest first)."""
    path = Path(folder or models_dir()) / ZOO_FILE
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["models"]
        return {entry["name"]: ZooModel(**entry) for entry in entries}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a readable model zoo ({err})") from err


def resolve_model(value: str, param: str = "model") -> str:
    """A path as given, or the bundled file a zoo name stands for. An existing path wins over
    a name, so a folder called `fast` is still yours; a missing path is left for the caller's
    own "not found", and a bare word that is neither is refused with the names there are."""
    if os.path.exists(value):
        return value
    looks_like_a_path = os.sep in value or "/" in value or "." in value
    if looks_like_a_path:
        return value
    zoo = read_zoo()
    if value in zoo:
        path = zoo[value].path()
        if not path.is_file():
            raise InputError.about(param, value, f"the bundled file {path} is missing")
        return str(path)
    raise InputError.about(param, value, "not found (neither a file nor a bundled model: "
                           f"{', '.join(zoo)})")


def zoo_rows(folder: Path | None = None) -> list[dict]:
    """One row per zoo model, its stored figures beside the ones read from the file and card."""
    from fcnedge.runtime.segmenter import read_model_card

    folder = folder or models_dir()
    rows = []
    for model in read_zoo(folder).values():
        path = model.path(folder)
        card = read_model_card(path)
        size = (card.get("input") or {}).get("size")
        # A card from before the splits were recorded is of a run that trained on train.
        splits = (card.get("training") or {}).get("train_splits") or ["train"]
        val_miou = (card.get("verification") or {}).get("miou")
        seen_val = "val" in splits
        rows.append({
            "name": model.name, "file": str(path), "summary": model.summary,
            "input_size": f"{size[0]}x{size[1]}" if size else None, "gflops": model.gflops,
            "size_mb": round(path.stat().st_size / 2**20, 2) if path.is_file() else None,
            "val_miou": val_miou, "trained_on": "+".join(splits),
            # A refit's val also trained: its val figure is no score on unseen frames.
            "unseen_val_miou": model.unseen_val_miou if seen_val else val_miou,
            "unseen_val_on": model.unseen_val_on if seen_val else None,
            "held_out_miou": model.held_out_miou, "int8_ms": model.int8_ms,
            "int8_ms_on": model.int8_ms_on, "held_out_on": model.held_out_on})
    return rows


def format_zoo(rows: list[dict]) -> str:
    head = ("| name | input | GFLOPs | size MB | trained on | held-out mIoU | unseen val mIoU "
            "| int8 ms |", "|---|---|---:|---:|---|---:|---:|---:|")
    cell = lambda value: "" if value is None else f"{value}"  # noqa: E731
    lines = [*head, *(f"| {r['name']} | {cell(r['input_size'])} | {cell(r['gflops'])} | "
                      f"{cell(r['size_mb'])} | {r['trained_on']} | {cell(r['held_out_miou'])} | "
                      f"{cell(r['unseen_val_miou'])} | {cell(r['int8_ms'])} |" for r in rows)]
    notes = sorted({f"int8 ms: {r['int8_ms_on']}" for r in rows}
                   | {f"held-out: {r['held_out_on']}" for r in rows if r["held_out_on"]}
                   | {f"unseen val of {r['name']} (trained on val; its own val reads "
                      f"{r['val_miou']}): {r['unseen_val_on']}" for r in rows if r["unseen_val_on"]})
    return "\n".join(lines + [""] + notes) + "\n"
