"""Drive parsing, pooled splits and drive-held-out validation (train/splits.py)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.train.data import limit_pairs
from fcnedge.train.splits import (drive_counts, filter_drives, find_split_pairs, frame_drive,
                                  hold_out_drives, parse_names, run_training_pairs)

# A miniature CamVid: the real drives and name forms, a few frames each.
FRAMES = {"train": ["0001TP_006690", "0001TP_006720", "0006R0_f00930", "0006R0_f00960",
                    "0016E5_00390", "0016E5_00420", "0016E5_00450"],
          "val": ["0016E5_07959", "0016E5_07961"],
          "test": ["Seq05VD_f00000", "Seq05VD_f00030", "0001TP_008550"]}


@pytest.fixture
def mini_camvid(tmp_path) -> Path:
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    for split, stems in FRAMES.items():
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for stem in stems:
            cv2.imwrite(str(tmp_path / split / f"{stem}.png"), image)
            cv2.imwrite(str(tmp_path / f"{split}annot" / f"{stem}.png"), mask)
    return tmp_path


def stems(pairs) -> list[str]:
    return [pair.image.stem for pair in pairs]


@pytest.mark.parametrize("name, drive", [
    ("0001TP_006690.png", "0001TP"), ("0006R0_f00930.png", "0006R0"),
    ("0016E5_08010.png", "0016E5"), ("Seq05VD_f00000.png", "Seq05VD"),
    ("/data/camvid/train/0016E5_08010.png", "0016E5"), ("frame42.png", "frame42"),
])
def test_frame_drive_is_the_name_before_the_first_underscore(name, drive):
    assert frame_drive(name) == drive


@pytest.mark.parametrize("text, names", [
    (None, ()), ("", ()), ("0006R0", ("0006R0",)), ("train, val", ("train", "val")),
    ("a,,b,a", ("a", "b")),
])
def test_parse_names(text, names):
    assert parse_names(text, "--x") == names


def test_parse_names_refuses_only_commas():
    with pytest.raises(InputError, match="val_drives: got ','"):
        parse_names(",", "val_drives")


def test_pooled_splits_hold_every_frame_once_in_name_order(mini_camvid):
    pooled = find_split_pairs(mini_camvid, ("train", "val"))
    assert stems(pooled) == sorted(FRAMES["train"] + FRAMES["val"])
    assert drive_counts(pooled) == {"0001TP": 2, "0006R0": 2, "0016E5": 5}


def test_splits_that_share_a_frame_are_refused(mini_camvid):
    for folder in ("val", "valannot"):
        (mini_camvid / folder / "0016E5_00390.png").write_bytes(
            (mini_camvid / folder.replace("val", "train") / "0016E5_00390.png").read_bytes())
    with pytest.raises(InputError, match="0016E5_00390 is also in .*overlap"):
        find_split_pairs(mini_camvid, ("train", "val"))


def test_no_frame_of_a_held_out_drive_trains(mini_camvid):
    train_pool = find_split_pairs(mini_camvid, ("train",))
    val_pool = find_split_pairs(mini_camvid, ("val",))
    train, val = hold_out_drives(train_pool, val_pool, ("0016E5",))
    assert {frame_drive(p.image.name) for p in train} == {"0001TP", "0006R0"}
    # Validation is every frame of the drive, from the training split and from val.
    assert stems(val) == sorted(["0016E5_00390", "0016E5_00420", "0016E5_00450",
                                 "0016E5_07959", "0016E5_07961"])
    assert not set(stems(train)) & set(stems(val))


def test_two_drives_held_out_together(mini_camvid):
    train, val = hold_out_drives(find_split_pairs(mini_camvid, ("train",)),
                                 find_split_pairs(mini_camvid, ("val",)), ("0001TP", "0006R0"))
    assert drive_counts(train) == {"0016E5": 3}
    assert drive_counts(val) == {"0001TP": 2, "0006R0": 2}


def test_without_held_out_drives_the_splits_stay_as_they_are(mini_camvid):
    train_pool = find_split_pairs(mini_camvid, ("train",))
    val_pool = find_split_pairs(mini_camvid, ("val",))
    assert hold_out_drives(train_pool, val_pool, ()) == (train_pool, val_pool)


@pytest.mark.parametrize("drives, message", [
    (("0016E6",), r"val_drives: no frame of drive 0016E6 here; .*0001TP \(2\), 0006R0 \(2\), "
                  r"0016E5 \(5\)"),
    (("0001TP", "0006R0", "0016E5"), "holds out every training frame"),
])
def test_a_bad_hold_out_is_refused_naming_the_parameter(mini_camvid, drives, message):
    with pytest.raises(InputError, match=message):
        hold_out_drives(find_split_pairs(mini_camvid, ("train",)),
                        find_split_pairs(mini_camvid, ("val",)), drives)


@pytest.mark.parametrize("run_train, expected", [
    ({}, {"0001TP": 2, "0006R0": 2, "0016E5": 3}),                    # a run before splits
    ({"train_splits": ["train"], "val_drives": ["0016E5"]}, {"0001TP": 2, "0006R0": 2}),
    ({"train_splits": ["train", "val"], "val_drives": []}, {"0001TP": 2, "0006R0": 2,
                                                           "0016E5": 5}),
])
def test_an_export_calibrates_on_the_frames_its_run_trained_on(mini_camvid, run_train,
                                                                expected):
    assert drive_counts(run_training_pairs(mini_camvid, run_train)) == expected


def test_filter_drives_keeps_or_drops(mini_camvid):
    test = find_split_pairs(mini_camvid, ("test",))
    assert stems(filter_drives(test, keep=("Seq05VD",))) == ["Seq05VD_f00000", "Seq05VD_f00030"]
    assert stems(filter_drives(test, drop=("Seq05VD",))) == ["0001TP_008550"]
    with pytest.raises(InputError, match="exclude_drives: no frame of drive X"):
        filter_drives(test, drop=("X",), param="exclude_drives")


def test_limit_pairs_names_its_parameter(mini_camvid):
    pairs = find_split_pairs(mini_camvid, ("train",))
    assert limit_pairs(pairs, None) == pairs
    assert stems(limit_pairs(pairs, 2)) == stems(pairs)[:2]
    with pytest.raises(InputError, match="^limit_train: got 0"):
        limit_pairs(pairs, 0, "limit_train")


def test_the_trainer_holds_drives_out_and_refuses_a_best_epoch_picked_on_training_frames(
        mini_camvid):
    from fcnedge.train.splits import select_train_val
    from fcnedge.train.trainer import TrainConfig

    held = TrainConfig(data=str(mini_camvid), out="-", val_drives=("0006R0",))
    train, val = select_train_val(held)
    assert drive_counts(train) == {"0001TP": 2, "0016E5": 3}
    assert drive_counts(val) == {"0006R0": 2}

    refit = TrainConfig(data=str(mini_camvid), out="-", train_splits=("train", "val"))
    with pytest.raises(InputError, match="2 of the 2 validation frames also train.*`keep` last"):
        select_train_val(refit)
    train, val = select_train_val(TrainConfig(data=str(mini_camvid), out="-",
                                              train_splits=("train", "val"), keep="last"))
    assert len(train) == 9 and stems(val) == FRAMES["val"]


def test_a_run_file_from_before_pooled_splits_still_loads():
    from fcnedge.train.trainer import TrainConfig

    stored = TrainConfig(data="d", out="o").to_dict()
    stored.pop("train_splits"), stored.pop("val_splits"), stored.pop("val_drives")
    stored.update(train_split="train", val_split="val")
    config = TrainConfig.from_dict(json.loads(json.dumps(stored)))
    assert (config.train_splits, config.val_splits, config.val_drives) == (("train",), ("val",),
                                                                           ())
    again = TrainConfig.from_dict(json.loads(json.dumps(
        TrainConfig(data="d", out="o", val_drives=("0006R0",)).to_dict())))
    assert again.val_drives == ("0006R0",)


def test_camvid_drives_and_a_held_out_drive(camvid_root):
    train_pool = find_split_pairs(camvid_root, ("train",))
    val_pool = find_split_pairs(camvid_root, ("val",))
    assert drive_counts(train_pool) == {"0001TP": 62, "0006R0": 101, "0016E5": 204}
    assert drive_counts(val_pool) == {"0016E5": 101}
    train, val = hold_out_drives(train_pool, val_pool, ("0006R0",))
    assert len(train) == 266 and drive_counts(val) == {"0006R0": 101}
    train, val = hold_out_drives(train_pool, val_pool, ("0016E5",))
    assert drive_counts(train) == {"0001TP": 62, "0006R0": 101}
    assert len(val) == 305


def test_eval_scores_a_held_out_drive_from_pooled_splits(tflite_models, mini_camvid, tmp_path):
    from fcnedge.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tflite_models["float32"]), "--data", str(mini_camvid),
                 "--split", "train,val", "--drives", "0016E5", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["images"] == 5 and scores["drives"] == {"0016E5": 5}
    assert main(["eval", "--model", str(tflite_models["float32"]), "--data", str(mini_camvid),
                 "--split", "train", "--exclude-drives", "0016E5,0001TP", "--out",
                 str(out)]) == 0
    assert json.loads((out / "scores.json").read_text())["drives"] == {"0006R0": 2}


def test_eval_names_a_drive_that_is_not_there(tflite_models, mini_camvid, tmp_path, capsys):
    from fcnedge.cli import main

    assert main(["eval", "--model", str(tflite_models["float32"]), "--data", str(mini_camvid),
                 "--split", "val", "--drives", "0006R0", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "--drives: no frame of drive 0006R0 here; the frames' drives are 0016E5 (2)" in err
    assert not (tmp_path / "e").exists()
