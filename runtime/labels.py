"""Class definitions: one place for names, colours and the void id, used by training and serving."""
from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError, mention


@dataclass(frozen=True)
class LabelSet:
    """Names and RGB colours of the classes a model predicts, and the id that marks void pixels.

    `void_id` is a label id that appears in ground truth only: models predict the other
    classes, metrics and losses ignore it. Either it is the last name (CamVid's "Void", id 11)
    or it lies past the names (255, the common convention: `names` are then the classes alone).
    """

    names: tuple[str, ...]
    colors_rgb: tuple[tuple[int, int, int], ...]
    void_id: int | None

    def __post_init__(self):
        problem = label_set_problem(self.names, self.colors_rgb, self.void_id)
        if problem:
            raise InputError(f"labels: {problem}")

    @property
    def num_labels(self) -> int:
        """Ids 0..num_labels-1 that have a name (void included when it is the last name)."""
        return len(self.names)

    def mask_id_problem(self, mask: np.ndarray) -> str | None:
        """What is wrong with a mask's ids under this label set, or None."""
        ids = np.flatnonzero(np.bincount(np.asarray(mask, np.uint8).ravel(), minlength=256))
        bad = ids[(ids >= self.num_labels) & (ids != (-1 if self.void_id is None
                                                        else self.void_id))]
        if not bad.size:
            return None
        past = self.void_id is not None and self.void_id >= self.num_labels
        void = f" and is not the void id {self.void_id}" if past else ""
        return (f"label id {int(bad[0])} is outside 0..{self.num_labels - 1}{void} (a "
                f"{CLASSES_FILE} beside the data, or {mention('classes')}, names a dataset's "
                "own ids)")

    @property
    def num_classes(self) -> int:
        """Classes the model predicts (void excluded when it is the last id)."""
        return len(self.names) - (1 if self.void_id == len(self.names) - 1 else 0)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the predicted (scored) classes."""
        return self.names[: self.num_classes]

    def palette_bgr(self) -> np.ndarray:
        """A (num_labels, 3) uint8 lookup table in OpenCV's BGR order."""
        return np.asarray(self.colors_rgb, dtype=np.uint8)[:, ::-1].copy()

    def to_dict(self) -> dict:
        """The form stored in model cards and run configs."""
        return {"names": list(self.names), "colors_rgb": [list(c) for c in self.colors_rgb],
                "void_id": self.void_id}

    @classmethod
    def from_dict(cls, data: dict, source: str = "labels") -> "LabelSet":
        """Reads the form `to_dict` writes.

        Raises:
          InputError: the entry is missing or malformed; the message starts with `source`
            (the file it came from).
        """
        if not isinstance(data, dict) or "names" not in data or "colors_rgb" not in data:
            raise InputError(f"{source}: labels need 'names' and 'colors_rgb'")
        names, colors, void_id = data["names"], data["colors_rgb"], data.get("void_id")
        problem = label_set_problem(names, colors, void_id)
        if problem:
            raise InputError(f"{source}: {problem}")
        return cls(names=tuple(names), colors_rgb=tuple(tuple(int(v) for v in c) for c in colors),
                   void_id=None if void_id is None else int(void_id))


# Masks are 8-bit images: label ids (void included) must fit in one byte.
MAX_LABELS = 256


def label_set_problem(names, colors, void_id) -> str | None:
    """What is wrong with a label set's fields, or None."""
    if not isinstance(names, (list, tuple)) or not names or not all(
            isinstance(name, str) and name.strip() for name in names):
        return "'names' must be a list of non-empty strings"
    if len(names) > MAX_LABELS:
        return f"{len(names)} labels, but masks hold at most {MAX_LABELS} ids (0-255)"
    if len(set(names)) != len(names):
        return "'names' has a name twice"
    if not isinstance(colors, (list, tuple)) or len(colors) != len(names):
        count = len(colors) if isinstance(colors, (list, tuple)) else "no"
        return f"{len(names)} class names but {count} colours"
    for index, color in enumerate(colors):
        if not (isinstance(color, (list, tuple)) and len(color) == 3 and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255
                for v in color)):
            return f"colour {index} ({names[index]}) is {color!r}, expected [r, g, b] in 0-255"
    if void_id is not None and (isinstance(void_id, bool)
                                or not isinstance(void_id, numbers.Integral)
                                or not len(names) - 1 <= void_id < MAX_LABELS):
        return (f"void_id is {void_id!r}, expected null, the last name's id ({len(names) - 1}) "
                f"or an id past the names ({len(names)}..{MAX_LABELS - 1}, e.g. 255): models "
                "predict ids 0..N-1 without gaps")
    return None


# The SegNet order of CamVid's 11 classes plus void (see the dataset's README).
CAMVID = LabelSet(
    names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist", "Void"),
    colors_rgb=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                (0, 128, 192), (0, 0, 0)),
    void_id=11,
)

CAMVID_VOID_ID = CAMVID.void_id


# The file a dataset root may hold to name its own classes (else CamVid's apply).
CLASSES_FILE = "classes.json"


def fixed_palette(count: int) -> tuple[tuple[int, int, int], ...]:
    """Deterministic colours for classes that come without any (a classes file that names
    none, a model without a card)."""
    rng = np.random.default_rng(count)
    return tuple(tuple(int(v) for v in rng.integers(32, 256, 3)) for _ in range(count))


def read_label_file(path: str | os.PathLike, param: str = "classes") -> LabelSet:
    """A label set from a classes file: {"names": [...], "colors_rgb": [[r, g, b], ...],
    "void_id": 255}; colours are optional (a fixed palette), void_id defaults to null.

    Raises:
      InputError: the file is missing, not JSON, or not a valid label set (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError.about(param, path, "classes file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: classes file is not readable JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'names' (and optionally "
                         "'colors_rgb', 'void_id')")
    if "colors_rgb" not in data:
        names = data.get("names")
        data = {**data, "colors_rgb": [list(c) for c in fixed_palette(
            len(names) if isinstance(names, list) else 0)]}
    return LabelSet.from_dict(data, str(path))


def dataset_labels(root: str | os.PathLike, classes_file: str | os.PathLike | None = None
                   ) -> LabelSet:
    """The label set of a dataset: `classes_file`, else ROOT/classes.json, else CamVid's."""
    if classes_file is not None:
        return read_label_file(classes_file)
    own = Path(root) / CLASSES_FILE
    return read_label_file(own, "data") if own.is_file() else CAMVID


def labels_mismatch(model: LabelSet, data: LabelSet) -> str | None:
    """Why a model's classes cannot be scored on a dataset's, or None when they agree."""
    if model.class_names == data.class_names and model.void_id == data.void_id:
        return None
    return (f"the model predicts {', '.join(model.class_names)} (void {model.void_id}) but the "
            f"data names {', '.join(data.class_names)} (void {data.void_id})")


def check_data_labels(model: LabelSet, root: str | os.PathLike,
                      classes_file: str | os.PathLike | None = None) -> None:
    """Refuses data whose own classes file names other classes than the model predicts.

    Data without a classes file is read with the model's own label set (its masks are still
    checked id by id).

    Raises:
      InputError: the names or void id differ; the message names the classes file.
    """
    source = classes_file if classes_file is not None else Path(root) / CLASSES_FILE
    if classes_file is None and not Path(source).is_file():
        return
    problem = labels_mismatch(model, dataset_labels(root, classes_file))
    if problem:
        raise InputError(f"{source}: {problem}")


def add_classes_argument(parser, training: bool = False) -> None:
    """The one definition of --classes, shared by every command that reads masks."""
    parser.add_argument(
        "--classes", default=None, metavar="FILE",
        help=("classes file ({\"names\": [...], \"colors_rgb\": [[r, g, b], ...], "
              "\"void_id\": 255}); default: DATA/" + CLASSES_FILE + " if present, else "
              "CamVid's 11 classes + void 11" if training else
              "the data's classes file, checked against the model's classes (default: "
              "DATA/" + CLASSES_FILE + " if present)"))
