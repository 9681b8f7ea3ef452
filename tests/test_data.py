"""Dataset readers: pairing, validation errors (each naming the file), class weights, synth."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import CAMVID
from fcnedge.train.data import (find_pairs, label_histogram, load_split,
                                median_frequency_weights, read_pair)
from fcnedge.train.synth import synth_clip, synth_scene, write_synth_dataset


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_synth_dataset(tmp_path / "tiny", 3, 2, (64, 96), seed=3)


def test_synth_masks_cover_the_street_classes():
    seen = np.zeros(12, bool)
    for seed in range(6):
        image, mask = synth_scene(120, 160, seed)
        assert image.shape == (120, 160, 3) and mask.shape == (120, 160)
        seen[np.unique(mask)] = True
    for name in ("Sky", "Building", "Road", "Pavement", "Car", "Pedestrian", "Pole"):
        assert seen[CAMVID.names.index(name)], name


def test_synth_is_reproducible_and_clip_moves():
    a, b = synth_scene(64, 96, 5), synth_scene(64, 96, 5)
    assert np.array_equal(a[1], b[1])
    frames = list(synth_clip(3, 64, 96, seed=2))
    assert len(frames) == 3 and not np.array_equal(frames[0], frames[2])


def test_pairs_and_split_arrays(tiny):
    pairs = find_pairs(tiny, "train")
    assert [p.image.name for p in pairs] == [p.mask.name for p in pairs]
    arrays = load_split(pairs, (32, 64), CAMVID)
    assert arrays.images.shape == (3, 32, 64, 3) and arrays.masks.shape == (3, 32, 64)
    assert arrays.full_masks[0].shape == (64, 96)


def test_generic_images_masks_layout(tmp_path, tiny):
    root = tmp_path / "generic"
    shutil.copytree(tiny / "val", root / "val" / "images")
    shutil.copytree(tiny / "valannot", root / "val" / "masks")
    assert len(find_pairs(root, "val")) == 2


def test_missing_dataset_folder():
    with pytest.raises(InputError, match="nowhere.*not found"):
        find_pairs("/nowhere", "train")


def test_missing_split(tiny):
    with pytest.raises(InputError, match="no 'test' split"):
        find_pairs(tiny, "test")


def test_image_without_mask(tiny):
    victim = sorted((tiny / "trainannot").iterdir())[1]
    victim.unlink()
    with pytest.raises(InputError, match=f"{victim.stem}.png: image has no mask"):
        find_pairs(tiny, "train")


def test_mask_without_image(tiny):
    victim = sorted((tiny / "train").iterdir())[0]
    victim.unlink()
    with pytest.raises(InputError, match=f"{victim.name}: mask has no image"):
        find_pairs(tiny, "train")


def test_empty_split(tiny):
    for folder in ("val", "valannot"):
        for item in (tiny / folder).iterdir():
            item.unlink()
    with pytest.raises(InputError, match="'val' is empty"):
        find_pairs(tiny, "val")


def test_truncated_png_is_named(tiny):
    pair = find_pairs(tiny, "train")[0]
    data = pair.image.read_bytes()
    pair.image.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"{pair.image.name}.*truncated"):
        read_pair(pair, CAMVID)


def test_not_an_image(tiny):
    pair = find_pairs(tiny, "train")[0]
    pair.mask.write_bytes(b"this is not a png")
    with pytest.raises(InputError, match=f"{pair.mask.name}: not a readable mask"):
        read_pair(pair, CAMVID)


def test_mask_size_differs_from_image(tiny):
    pair = find_pairs(tiny, "train")[0]
    cv2.imwrite(str(pair.mask), np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match=f"{pair.mask.name}: mask is 10x10 but its image is 96x64"):
        read_pair(pair, CAMVID)


def test_label_out_of_range(tiny):
    pair = find_pairs(tiny, "train")[0]
    mask = cv2.imread(str(pair.mask), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 12
    cv2.imwrite(str(pair.mask), mask)
    with pytest.raises(InputError, match=f"{pair.mask.name}: label id 12 is outside 0..11"):
        read_pair(pair, CAMVID)


def test_median_frequency_weights_on_a_known_histogram():
    # Two 4-pixel masks, 3 classes + void (3).
    masks = [np.array([0, 0, 0, 1]), np.array([0, 2, 2, 3])]
    pixels, denominators = label_histogram(masks, 4)
    assert pixels.tolist() == [4, 1, 2, 1] and denominators.tolist() == [8, 4, 4, 4]
    weights = median_frequency_weights(pixels, denominators, 3)
    # freq = [0.5, 0.25, 0.5]; median 0.5 -> weights [1, 2, 1]
    assert weights.tolist() == pytest.approx([1.0, 2.0, 1.0])
    # --class-weight-power tempers them: the square root of 2 for the rare class.
    assert median_frequency_weights(pixels, denominators, 3, power=0.5).tolist() == \
        pytest.approx([1.0, 2 ** 0.5, 1.0])


def test_real_camvid_pairs(camvid_root):
    pairs = find_pairs(camvid_root, "val")
    assert len(pairs) == 101
    image, mask = read_pair(pairs[0], CAMVID)
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480) and mask.max() <= 11
    arrays = load_split(pairs[:4], (352, 480), CAMVID)
    assert arrays.images.shape == (4, 352, 480, 3)
