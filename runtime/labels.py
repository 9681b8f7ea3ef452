"""Class definitions: one place for names, colours and the void id, used by training and serving."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from fcnedge.runtime.errors import InputError


@dataclass(frozen=True)
class LabelSet:
    """Names and RGB colours of the classes a model predicts, and the id that marks void pixels.

    `void_id` is a label id that appears in ground truth only: models predict the other
    classes, metrics and losses ignore it.
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
        """Ids that can appear in a mask, void included."""
        return len(self.names)

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
                                or not 0 <= void_id < len(names)):
        return f"void_id is {void_id!r}, expected a label id in 0..{len(names) - 1} or null"
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
