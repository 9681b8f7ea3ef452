"""Small pure functions between an interpreter and numpy (in the spirit of pycoral's adapters).

Quantization always uses the tensor's own scale and zero point, never an assumed range:
real = scale * (q - zero_point).
"""
from __future__ import annotations

import cv2
import numpy as np

from fcnedge.runtime.errors import InputError


def input_details(interpreter) -> dict:
    return interpreter.get_input_details()[0]


def output_details(interpreter) -> dict:
    return interpreter.get_output_details()[0]


def quantization(details: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor; (0.0, 0) for a float tensor."""
    scale, zero_point = details.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def check_image_model(interpreter, model: str = "model") -> None:
    """Raises InputError unless the model takes one (1, H, W, 3) image and has one output."""
    details = interpreter.get_input_details()
    shape = tuple(details[0]["shape"]) if details else ()
    if len(details) != 1 or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise InputError.about("model", model, f"input is {shape}, expected one (1, H, W, 3) image")
    if details[0]["dtype"] not in (np.float32, np.uint8, np.int8):
        raise InputError.about("model", model, f"input type {np.dtype(details[0]['dtype']).name}, "
                               "expected float32, uint8 or int8")
    outputs = interpreter.get_output_details()
    if len(outputs) != 1 or len(outputs[0]["shape"]) != 4:
        raise InputError.about("model", model, f"expected one (1, H, W, classes) output, got "
                               f"{[tuple(o['shape']) for o in outputs]}")


def input_size(interpreter) -> tuple[int, int]:
    """(height, width) the model takes."""
    _, height, width, _ = input_details(interpreter)["shape"]
    return int(height), int(width)


def input_type(interpreter) -> np.dtype:
    return np.dtype(input_details(interpreter)["dtype"])


def num_classes(interpreter) -> int:
    return int(output_details(interpreter)["shape"][-1])


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Float -> integer: round(values / scale) + zero_point, saturated to the dtype's range."""
    info = np.iinfo(dtype)
    scaled = np.rint(np.asarray(values, np.float32) / np.float32(scale)) + zero_point
    return np.clip(scaled, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float: scale * (values - zero_point)."""
    return np.float32(scale) * (np.asarray(values).astype(np.int32) - zero_point).astype(
        np.float32)


def pixel_lut(details: dict) -> np.ndarray | None:
    """For an integer input tensor, the quantized value of every pixel value 0..255.

    Quantizing through a 256-entry table is exact (it is the formula, evaluated once per value)
    and turns the per-frame work into one table lookup; None for a float input.
    """
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return None
    scale, zero_point = quantization(details)
    if scale <= 0:
        raise InputError(f"model input is {dtype.name} without quantization parameters")
    return quantize(np.arange(256, dtype=np.float32), scale, zero_point, dtype)


def rgb_to_input(rgb: np.ndarray, details: dict, out: np.ndarray | None = None,
                 lut: np.ndarray | None = None) -> np.ndarray:
    """Converts an RGB uint8 image (pixel values 0..255, as the model card says) to the input
    tensor's type: float32 as is, uint8/int8 quantized with the tensor's own parameters.

    Args:
      out: a buffer of the input's shape and type to write into.
      lut: `pixel_lut(details)`, precomputed by callers that convert many frames.
    """
    dtype = np.dtype(details["dtype"])
    if out is None:
        out = np.empty(rgb.shape, dtype)
    if dtype == np.float32:
        np.copyto(out, rgb, casting="unsafe")
        return out
    if lut is None:
        lut = pixel_lut(details)
    # cv2.LUT maps uint8 to uint8; an int8 table and buffer are the same bytes seen as uint8.
    cv2.LUT(np.ascontiguousarray(rgb), lut.view(np.uint8), dst=out.view(np.uint8))
    return out


def set_input(interpreter, rgb: np.ndarray) -> None:
    """Writes one RGB uint8 image (H, W, 3) into the model's input tensor."""
    details = input_details(interpreter)
    expected = tuple(details["shape"][1:])
    if rgb.shape != expected:
        raise InputError(f"input image is {rgb.shape}, the model expects {expected}")
    interpreter.set_tensor(details["index"], rgb_to_input(rgb, details)[np.newaxis])


def get_output(interpreter) -> np.ndarray:
    """The raw output (H, W, classes), still quantized for an integer model (a copy)."""
    return interpreter.get_tensor(output_details(interpreter)["index"])[0]


# Channel counts OpenCV can split into planes (CV_CN_MAX) and dtypes its compare/max accept.
_CV_MAX_CHANNELS = 128
_CV_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def argmax_labels(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Label map (uint8) from raw logits (H, W, C), quantized or not; the first maximum wins.

    Dequantization is affine with a positive scale, so it preserves order: argmax on int8 equals
    argmax on the dequantized floats, and no float copy of HxWxC is needed.

    np.argmax over a short last axis runs one tiny reduction per pixel (6.7 ms for 352x480x11
    int8 here); OpenCV's plane-wise compare/max/masked copy does the same in about a third of
    that, which matters because this runs on every streamed frame.
    """
    if out is None:
        out = np.empty(raw.shape[:2], np.uint8)
    channels = raw.shape[-1]
    if (raw.ndim != 3 or channels < 2 or channels > _CV_MAX_CHANNELS
            or raw.dtype.type not in _CV_DTYPES):
        np.copyto(out, np.argmax(raw, axis=-1), casting="unsafe")
        return out
    planes = cv2.split(np.ascontiguousarray(raw))
    best = planes[0].copy()
    out.fill(0)
    label = np.empty(raw.shape[:2], np.uint8)
    for index in range(1, channels):
        # Strictly greater: ties keep the lower id, as np.argmax does.
        better = cv2.compare(planes[index], best, cv2.CMP_GT)
        cv2.max(best, planes[index], dst=best)
        label.fill(index)
        cv2.copyTo(label, better, out)
    return out


def output_logits(raw: np.ndarray, details: dict) -> np.ndarray:
    """Raw output as float logits (dequantized for integer models)."""
    if np.dtype(details["dtype"]) == np.float32:
        return raw.astype(np.float32, copy=False)
    return dequantize(raw, *quantization(details))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
