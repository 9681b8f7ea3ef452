"""A dataset with its own classes (3 classes, void 255) through every command of the CLI."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcnedge.cli import main

NAMES = ["sky", "road", "car"]
# CamVid ids of the synthetic scenes -> ours; every other class becomes void 255.
FROM_CAMVID = {0: 0, 3: 1, 8: 2}


def _three_class_copy(source: Path, dest: Path) -> Path:
    table = np.full(256, 255, np.uint8)
    for camvid_id, own_id in FROM_CAMVID.items():
        table[camvid_id] = own_id
    for split in ("train", "val"):
        (dest / split).mkdir(parents=True)
        (dest / f"{split}annot").mkdir()
        for image in sorted((source / split).glob("*.png")):
            (dest / split / image.name).write_bytes(image.read_bytes())
            mask = cv2.imread(str(source / f"{split}annot" / image.name), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(dest / f"{split}annot" / image.name), table[mask])
    (dest / "classes.json").write_text(json.dumps({
        "names": NAMES, "colors_rgb": [[128, 128, 128], [128, 64, 128], [64, 0, 128]],
        "void_id": 255}))
    return dest


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> Path:
    from fcnedge.train.synth import write_synth_dataset

    root = tmp_path_factory.mktemp("own")
    source = write_synth_dataset(root / "camvid_ids", 8, 4, (64, 96), seed=3)
    return _three_class_copy(source, root / "data")


@pytest.fixture(scope="module")
def own_run(own_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("own_run") / "run"
    assert main(["train", "--data", str(own_data), "--out", str(run), "--input-size", "64x96",
                 "--alpha", "0.35", "--epochs", "2", "--batch-size", "4", "--quiet"]) == 0
    return run


def test_training_records_the_datasets_classes(own_run):
    info = json.loads((own_run / "run.json").read_text())
    assert info["labels"]["names"] == NAMES and info["labels"]["void_id"] == 255
    assert info["model"]["num_classes"] == 3
    assert list(info["class_weights_by_name"]) == NAMES


def test_eval_scores_under_the_datasets_names(own_run, own_data, tmp_path, capsys):
    assert main(["eval", "--model", str(own_run), "--data", str(own_data), "--out",
                 str(tmp_path / "e")]) == 0
    scores = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert list(scores["per_class_iou"]) == NAMES
    assert "Sky" not in capsys.readouterr().out


def test_convert_and_run_keep_the_names_and_ids(own_run, own_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "c"
    assert main(["convert", "--model", str(own_run), "--data", str(own_data), "--out", str(out),
                 "--formats", "int8-ptq", "--calib-samples", "4", "--limit-val", "2"]) == 0
    model = next(out.glob("*.tflite"))
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["labels"]["names"] == NAMES
    before = sorted(out.iterdir())
    assert main(["eval", "--model", str(model), "--data", str(own_data)]) == 0
    assert sorted(out.iterdir()) == before, "eval wrote beside the model"
    assert (tmp_path / f"eval-{model.stem}-val" / "scores.json").is_file()
    masks = tmp_path / "masks"
    assert main(["run", "--model", str(model), "--source", str(own_data / "val"), "--no-window",
                 "--masks", str(masks)]) == 0
    written = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted(masks.iterdir())]
    assert len(written) == 4 and max(int(mask.max()) for mask in written) <= 2
    assert main(["bench", "--models", str(model), "--data", str(own_data), "--out",
                 str(tmp_path / "b"), "--runs", "2", "--warmup", "0"]) == 0
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert list(report["rows"][0]["per_class_iou"]) == NAMES


def test_a_mask_id_outside_the_classes_is_exit_2_naming_the_file(own_data, tmp_path, capsys):
    import shutil

    data = Path(shutil.copytree(own_data, tmp_path / "data"))
    bad = sorted((data / "trainannot").iterdir())[1]
    mask = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 7
    cv2.imwrite(str(bad), mask)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--input-size",
                 "64x96", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{bad}: label id 7 is outside 0..2 and is not the void id 255" in err
    assert not (tmp_path / "r").exists()


def test_scoring_on_data_of_other_classes_is_exit_2_naming_its_classes_file(
        own_run, own_data, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"names": ["road", "sky", "car"], "void_id": 255}))
    code = main(["eval", "--model", str(own_run), "--data", str(own_data), "--classes",
                 str(other), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{other}: the model predicts sky, road, car (void 255) but the data names road" in err
