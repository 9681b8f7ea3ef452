"""Dataset readers: CamVid in the SegNet layout and generic images/masks folders.

A split is a list of (image, mask) file pairs matched by file stem. Reading decodes every pair in
a thread pool (OpenCV releases the GIL), validates it, and resizes images with the runtime's own
`preprocess`, so training, evaluation and serving see identical pixels.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import LabelSet
from fcnedge.runtime.preprocess import (IMAGE_SUFFIXES, preprocess, read_image, read_mask,
                                        resize_labels)

MASK_SUFFIXES = (".png", ".bmp")  # lossless only: a JPEG mask would blend label ids


@dataclass(frozen=True)
class Pair:
    """One training example on disk."""

    image: Path
    mask: Path


@dataclass(frozen=True)
class SplitArrays:
    """A decoded split.

    images: (N, H, W, 3) uint8 RGB at the model's input size, made by `preprocess`.
    masks: (N, H, W) uint8 label ids at the input size (for training).
    full_masks: the masks at their own resolution (for scoring, as the papers do).
    """

    pairs: tuple[Pair, ...]
    images: np.ndarray
    masks: np.ndarray
    full_masks: tuple[np.ndarray, ...]


def split_dirs(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """Finds a split's image and mask folders.

    Two layouts are understood: SegNet's (`ROOT/val`, `ROOT/valannot`) and a generic one
    (`ROOT/val/images`, `ROOT/val/masks`).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError.about("data", root, "dataset folder not found")
    segnet = (root / split, root / f"{split}annot")
    generic = (root / split / "images", root / split / "masks")
    for images, masks in (generic, segnet):
        if images.is_dir() and masks.is_dir():
            return images, masks
    raise InputError.about("data", root, f"no '{split}' split: expected {split}/ and {split}annot/ "
                           f"(SegNet layout) or {split}/images/ and {split}/masks/")


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            files[path.stem] = path
    return files


def find_pairs(root: str | os.PathLike, split: str, limit: int | None = None) -> list[Pair]:
    """Lists a split's (image, mask) pairs, matched by file stem and sorted by name.

    Raises:
      InputError: the folder is missing, the split is empty, or an image has no mask (or the
        reverse); the message names the file.
    """
    image_dir, mask_dir = split_dirs(root, split)
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    masks = _files_by_stem(mask_dir, MASK_SUFFIXES)
    for stem, path in images.items():
        if stem not in masks:
            raise InputError(f"{path}: image has no mask (expected {mask_dir}/{stem}.png)")
    for stem, path in masks.items():
        if stem not in images:
            raise InputError(f"{path}: mask has no image in {image_dir}")
    if not images:
        raise InputError.about("data", root,
                               f"split '{split}' is empty ({image_dir} has no images)")
    return limit_pairs([Pair(images[stem], masks[stem]) for stem in sorted(images)], limit)


def limit_pairs(pairs: list[Pair], limit: int | None, param: str = "limit") -> list[Pair]:
    """The first `limit` pairs (all of them for None)."""
    if limit is None:
        return pairs
    if limit <= 0:
        raise InputError(f"got {limit}, expected a positive number of images", param)
    return pairs[:limit]


def read_pair(pair: Pair, labels: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """Decodes and validates one pair: BGR image and label mask of the same size."""
    image = read_image(pair.image)
    mask = read_mask(pair.mask, labels)
    if image.shape[:2] != mask.shape[:2]:
        raise InputError(f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                         f"{image.shape[1]}x{image.shape[0]} (WxH)")
    return image, mask


def load_split(pairs: list[Pair], input_hw: tuple[int, int], labels: LabelSet,
               workers: int | None = None) -> SplitArrays:
    """Decodes, validates and resizes a split in parallel (see module docstring)."""
    def load(pair: Pair):
        image, mask = read_pair(pair, labels)
        rgb, _ = preprocess(image, input_hw)
        return rgb, resize_labels(mask, input_hw), mask

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        loaded = list(pool.map(load, pairs))
    images = np.stack([item[0] for item in loaded])
    masks = np.stack([item[1] for item in loaded])
    return SplitArrays(tuple(pairs), images, masks, tuple(item[2] for item in loaded))


def label_histogram(masks, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count per label, and per label the pixels of the images that contain it.

    The second count is the denominator of median frequency balancing (Eigen and Fergus).
    """
    pixels = np.zeros(num_labels, dtype=np.int64)
    pixels_of_images_with = np.zeros(num_labels, dtype=np.int64)
    for mask in masks:
        counts = np.bincount(np.asarray(mask).ravel(), minlength=num_labels)[:num_labels]
        pixels += counts
        pixels_of_images_with += np.where(counts > 0, mask.size, 0)
    return pixels, pixels_of_images_with


def median_frequency_weights(pixels: np.ndarray, pixels_of_images_with: np.ndarray,
                             num_classes: int, power: float = 1.0) -> np.ndarray:
    """Median frequency balancing: weight(c) = (median(freq) / freq(c)) ** power, freq over
    images with c.

    `power` < 1 tempers the balancing (0.5: square root): on CamVid the plain weights put 32x
    more weight on a Pedestrian pixel than on a Building pixel, and a small network answers
    with Pedestrian false positives inside buildings (measured: docs/experiments.md, "First runs").
    Only the first `num_classes` ids are scored (void comes after them). A class that never
    occurs gets weight 1: it contributes no pixels to the loss either way.
    """
    pixels = np.asarray(pixels[:num_classes], dtype=np.float64)
    denominators = np.asarray(pixels_of_images_with[:num_classes], dtype=np.float64)
    present = denominators > 0
    if not present.any():
        raise InputError("class weights: the training masks contain no scored class at all")
    freq = np.zeros(num_classes)
    freq[present] = pixels[present] / denominators[present]
    median = np.median(freq[present])
    weights = np.ones(num_classes)
    nonzero = present & (freq > 0)
    weights[nonzero] = (median / freq[nonzero]) ** power
    return weights
