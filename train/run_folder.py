"""A run folder's file names and the TensorFlow-free reads of it (see train/trainer.py for
what each file holds): what bench, cards and resume need without loading a model."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fcnedge.runtime.errors import InputError, mention

RUN_FILE, HISTORY_FILE = "run.json", "history.json"
BEST_WEIGHTS, LAST_WEIGHTS = "best.weights.h5", "last.weights.h5"
EPOCHS_DIR = "epochs"
INIT_FOLDER = "init"


def read_json(path: str | os.PathLike, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"{path}: {what} not found") from err
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable {what} ({err})") from err


def epoch_weights_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.weights.h5"


def read_history(run_dir: Path) -> list:
    """A run's history.json ([] before its first epoch).

    Raises:
      InputError: the file is not a list of epoch entries (named, so it can be mended).
    """
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return []
    history = read_json(path, "training history")
    if not isinstance(history, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("epoch"), int) for entry in history):
        raise InputError(f"{path}: not a training history (expected a list of epoch entries); "
                         f"restore it or start the run afresh with {mention('overwrite')}")
    return history


def remove_leftovers(run_dir: Path) -> None:
    """Removes what a killed save left: `.save-*` folders and `.*.tmp*` files (see atomic_path)."""
    for leftover in list(run_dir.glob(".save-*")) + list(run_dir.glob(".*.tmp*")):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def locate_run(path: str | os.PathLike) -> tuple[Path, Path]:
    """(run folder, weights file) of a run folder (its best weights, else its last) or of a
    .h5 weights file in one (or in its epochs/ folder).

    Raises:
      InputError: about `model`: neither, or a run folder without weights.
    """
    path = Path(path)
    if path.is_dir():
        weights = run_weights(path)
        if weights is None:
            raise InputError.about("model", path,
                                   f"run folder has no {BEST_WEIGHTS} or {LAST_WEIGHTS}")
        return path, weights
    if path.is_file() and path.suffix == ".h5":
        run_dir = path.parent
        if run_dir.name == EPOCHS_DIR and not (run_dir / RUN_FILE).is_file():
            run_dir = run_dir.parent    # an epoch snapshot from --save-every
        return run_dir, path
    raise InputError.about("model", path, "expected a run folder or a .h5 weights file in one")


def read_run(run_dir: Path) -> dict:
    """A run's run.json."""
    return read_json(run_dir / RUN_FILE, "run file (run.json beside the weights)")


def run_weights(run_dir: Path) -> Path | None:
    """A run's model: its best epoch's weights, or its last epoch's where it kept no best
    (`--keep last`, or a run killed before its first scored epoch)."""
    return next((run_dir / name for name in (BEST_WEIGHTS, LAST_WEIGHTS)
                 if (run_dir / name).is_file()), None)
