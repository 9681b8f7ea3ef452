"""Class definitions: one place for names, colours and the void id, used by training and serving."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        if len(self.names) != len(self.colors_rgb):
            raise ValueError(f"{len(self.names)} class names but {len(self.colors_rgb)} colours")
        if self.void_id is not None and not 0 <= self.void_id < len(self.names):
            raise ValueError(f"void_id={self.void_id} is outside 0..{len(self.names) - 1}")

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
    def from_dict(cls, data: dict) -> "LabelSet":
        """Reads the form `to_dict` writes."""
        return cls(names=tuple(data["names"]),
                   colors_rgb=tuple(tuple(int(v) for v in c) for c in data["colors_rgb"]),
                   void_id=data.get("void_id"))


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
