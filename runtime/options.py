"""How the runtime runs a model and streams frames: every option, default and choice list that
`fcnedge run`, `bench` and the Python API share. Imports nothing heavy (no OpenCV, no LiteRT),
so the command line reads its choices and defaults here before any of those load.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from fcnedge.runtime.errors import InputError


class Delegate(str, enum.Enum):
    """Where inference runs."""

    CPU = "cpu"          # XNNPACK
    GPU = "gpu"
    EDGETPU = "edgetpu"


class ResizeMode(str, enum.Enum):
    """How a frame is fitted to the model's input size."""

    STRETCH = "stretch"      # resize both axes independently (what training does)
    LETTERBOX = "letterbox"  # keep aspect ratio, pad the rest with black


VIEWS = ("overlay", "side-by-side")
RECONNECT_ATTEMPTS = 5   # a camera or stream that stops delivering is reopened this often
CLIP_FPS = 30.0          # `fcnedge data clip`: the frame rate an image folder is written at


@dataclass(frozen=True)
class SegmenterOptions:
    """How a model is run.

    smooth: weight of the previous frame's logits in an exponential moving average (0 = off);
      steadies labels on video at the cost of lag.
    """

    delegate: Delegate = Delegate.CPU
    num_threads: int | None = None
    resize: ResizeMode = ResizeMode.STRETCH
    smooth: float = 0.0
    fallback_cpu: bool = False
    device: str | None = None
    delegate_path: str | None = None

    def __post_init__(self):
        if not 0.0 <= self.smooth < 1.0:
            raise InputError(f"got {self.smooth}, expected 0 <= weight < 1", "smooth")


@dataclass(frozen=True)
class StreamOptions:
    """What `fcnedge run` shows and writes while it streams."""

    view: str = "overlay"
    alpha: float = 0.5
    max_frames: int | None = None
    output: str | None = None        # mp4 path
    masks: str | None = None         # folder for label PNGs
    window: bool = False
    hud: bool = True

    def __post_init__(self):
        if self.view not in VIEWS:
            raise InputError(f"got {self.view!r}, expected one of {', '.join(VIEWS)}", "view")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"got {self.max_frames}, expected a positive number", "max_frames")
