"""The one preprocessing path (decode, resize, colour order) that training and serving share.

Models take RGB pixels in 0..255 at a fixed input size; the normalisation each backbone wants is
a layer inside the model, so no caller can feed the wrong range. Training resizes its validation
and evaluation images with `preprocess` below, exactly as the runtime does for camera frames.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import LabelSet
from fcnedge.runtime.options import ResizeMode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Geometry:
    """Where the frame's pixels sit inside the model input, to map predictions back."""

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    content_hw: tuple[int, int]  # size of the resized frame inside the input
    offset_yx: tuple[int, int]   # top-left of the content inside the input


# Below 32 pixels a stride-32 backbone has no feature map left; above 8192 an image no longer
# fits the memory of the devices this is for.
MIN_SIDE, MAX_SIDE = 32, 8192


def parse_size(text: str, *, name: str = "input_size") -> tuple[int, int]:
    """Parses 'HxW' (or a single number for a square) into (H, W)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError as err:
        raise InputError(f"got {text!r}, expected HxW such as 352x480", name) from err
    if len(values) == 1:
        values = (values[0], values[0])
    if len(values) != 2 or min(values) < MIN_SIDE or max(values) > MAX_SIDE:
        raise InputError(f"got {text!r}, expected HxW with two integers from "
                         f"{MIN_SIDE} to {MAX_SIDE}", name)
    return values  # type: ignore[return-value]


def check_divisible(size_hw: tuple[int, int], divisor: int = 32, *, name: str = "input_size"):
    """Raises InputError unless both sides are multiples of `divisor` (the backbone's stride)."""
    if size_hw[0] % divisor or size_hw[1] % divisor:
        raise InputError(f"got {size_hw[0]}x{size_hw[1]}, expected both sides to be "
                         f"multiples of {divisor}", name)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads a colour image as BGR uint8; raises InputError naming the file if it cannot."""
    return _decode(path, cv2.IMREAD_COLOR, "image")


def read_mask(path: str | os.PathLike, labels: LabelSet | None = None) -> np.ndarray:
    """Reads a single-channel label mask (uint8 ids); raises InputError naming the file if not.

    Args:
      path: a lossless image whose pixel values are label ids.
      labels: when given, every id must be one of its labels or its void id.
    """
    mask = _decode(path, cv2.IMREAD_UNCHANGED, "mask")
    if mask.ndim == 3:
        # Some tools save label maps as 3 equal channels; anything else is a colour image.
        if not (np.array_equal(mask[..., 0], mask[..., 1])
                and np.array_equal(mask[..., 0], mask[..., 2])):
            raise InputError(f"{path}: mask has {mask.shape[2]} differing channels, expected a "
                             "single-channel image of label ids")
        mask = mask[..., 0]
    if mask.dtype != np.uint8:
        raise InputError(f"{path}: mask is {mask.dtype}, expected 8-bit label ids")
    if labels is not None:
        problem = labels.mask_id_problem(mask)
        if problem:
            raise InputError(f"{path}: {problem}")
    return mask


def _decode(path: str | os.PathLike, flags: int, what: str) -> np.ndarray:
    """Reads and decodes an image file, with errors that name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} file not found")
    data = np.fromfile(path, dtype=np.uint8)
    decoded = cv2.imdecode(data, flags) if data.size else None
    if decoded is None:
        raise InputError(f"{path}: not a readable {what} (empty, truncated or not an image)")
    _check_complete_png(path, data)
    return decoded


def _check_complete_png(path: str, data: np.ndarray) -> None:
    # libpng may decode a truncated file into a partly black image without an error; a PNG
    # always ends with its IEND chunk, so a missing one means the file was cut short.
    if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-12:].tobytes():
        raise InputError(f"{path}: PNG is truncated (no IEND chunk at its end)")


def check_frame(frame: np.ndarray, *, source: str = "frame") -> None:
    """Raises InputError unless `frame` is an HxWx3 uint8 BGR image."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        kind = getattr(frame, "dtype", type(frame).__name__)
        raise InputError(f"{source}: got {kind}, expected a uint8 image")
    if frame.ndim != 3 or frame.shape[2] != 3:
        channels = 1 if frame.ndim == 2 else frame.shape[-1]
        raise InputError(f"{source}: got {channels} channel(s) (shape {frame.shape}), expected a "
                         "3-channel BGR image; convert grey or BGRA frames with cv2.cvtColor first")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise InputError(f"{source}: got a {frame.shape[0]}x{frame.shape[1]} frame, too small")


def letterbox_geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int],
                       mode: ResizeMode) -> Geometry:
    """Computes where a frame of `frame_hw` lands inside an input of `input_hw`."""
    if ResizeMode(mode) is ResizeMode.STRETCH:
        return Geometry(tuple(frame_hw), tuple(input_hw), tuple(input_hw), (0, 0))
    scale = min(input_hw[0] / frame_hw[0], input_hw[1] / frame_hw[1])
    content = (max(1, round(frame_hw[0] * scale)), max(1, round(frame_hw[1] * scale)))
    offset = ((input_hw[0] - content[0]) // 2, (input_hw[1] - content[1]) // 2)
    return Geometry(tuple(frame_hw), tuple(input_hw), content, offset)


def preprocess(frame_bgr: np.ndarray, input_hw: tuple[int, int],
               mode: ResizeMode = ResizeMode.STRETCH,
               out: np.ndarray | None = None) -> tuple[np.ndarray, Geometry]:
    """Fits a BGR frame to the model input: resize (bilinear) and convert to RGB uint8.

    Args:
      frame_bgr: HxWx3 uint8, as OpenCV decodes and captures it.
      input_hw: the model's input (height, width).
      mode: stretch (as in training) or letterbox.
      out: an (H, W, 3) uint8 buffer to write into, so a video loop allocates nothing per frame.

    Returns:
      The RGB input image and the geometry to map predictions back to the frame.
    """
    check_frame(frame_bgr)
    geometry = letterbox_geometry(frame_bgr.shape[:2], input_hw, mode)
    if out is None:
        out = np.empty((input_hw[0], input_hw[1], 3), dtype=np.uint8)
    elif out.shape != (input_hw[0], input_hw[1], 3) or out.dtype != np.uint8:
        raise ValueError(f"out buffer is {out.shape} {out.dtype}, expected "
                         f"{(input_hw[0], input_hw[1], 3)} uint8")
    (top, left), (height, width) = geometry.offset_yx, geometry.content_hw
    if (height, width) != tuple(input_hw):
        out[...] = 0
    if (height, width) == tuple(input_hw):
        # Whole-input content: resize and swap channels in the caller's buffer, no temporaries.
        if frame_bgr.shape[:2] == tuple(input_hw):
            np.copyto(out, frame_bgr)
        else:
            cv2.resize(frame_bgr, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)
    else:
        resized = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
        out[top:top + height, left:left + width] = resized[..., ::-1]
    return out, geometry


def labels_to_frame(label_map: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Maps a label map back onto the frame (drop padding, nearest resize). The map is at the
    input size, or coarser for a model exported with its logits at the head's stride
    (`fcnedge convert --output-size head`): the padding is then cut at that scale."""
    (top, left), (height, width) = geometry.offset_yx, geometry.content_hw
    map_h, map_w = label_map.shape[:2]
    input_h, input_w = geometry.input_hw
    if (map_h, map_w) != (input_h, input_w):
        top, height = round(top * map_h / input_h), max(1, round(height * map_h / input_h))
        left, width = round(left * map_w / input_w), max(1, round(width * map_w / input_w))
    content = label_map[top:top + height, left:left + width]
    return resize_labels(content, geometry.frame_hw)


def resize_labels(label_map: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (ids must never be blended)."""
    if label_map.shape[:2] == tuple(size_hw):
        return label_map
    return cv2.resize(label_map, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST)
