"""`fcnedge demo` on the bundled model, and the bundled model's card against a fresh eval."""
import json

import cv2
import pytest

from fcnedge.demo import bundled_formats, models_dir
from fcnedge.cli import main


def _frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_bundled_model_and_card_are_in_the_box():
    model = models_dir() / bundled_formats()[0]
    card = json.loads(model.with_suffix(".json").read_text())
    assert model.stat().st_size == card["size_bytes"]
    assert card["model_format"] == "int8-qat" and card["input"]["dtype"] == "int8"
    assert card["labels"]["void_id"] == 11 and card["labels"]["names"][11] == "Void"


def test_demo_on_the_bundled_model_writes_video_sheet_and_bench(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FCNEDGE_DATA", raising=False)
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--max-frames", "8", "--json",
                 str(tmp_path / "demo.json")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["frames"] == 8 and "synthetic" in result["clip"]
    assert _frame_count(out / "demo_overlay.mp4") == 8
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    # Under the tiles, the colour key of the model's classes: every class colour is there.
    key = sheet[-50:].reshape(-1, 3)
    from fcnedge.runtime.labels import CAMVID
    for name, color in zip(CAMVID.class_names, CAMVID.palette_bgr()):
        assert (key == color).all(axis=1).any(), name
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert {row["model_format"] for row in bench["rows"]} >= {"int8-qat"}
    assert all(row["status"] == "ok" for row in bench["rows"])
    assert str(out / "demo_overlay.mp4") in printed.out


def test_demo_exits_1_when_a_bench_row_fails(tmp_path, monkeypatch, capsys):
    import fcnedge.benchmarks.bench as bench_module

    monkeypatch.delenv("FCNEDGE_DATA", raising=False)
    monkeypatch.setattr(bench_module, "_run_row", lambda spec, timeout_s: {
        "model": spec["model"], "status": "failed", "reason": "worker crashed (test)",
        "format": "int8-qat", "device": "cpu"})
    code = main(["demo", "--out", str(tmp_path / "demo"), "--max-frames", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "rows failed" in err and "worker crashed (test)" in err
    assert (tmp_path / "demo" / "demo_overlay.mp4").is_file()    # the rest still written


def test_demo_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["demo", "--out", str(out), "--no-bench", "--max-frames", "2"])
    assert code == 2 and "not a previous demo's output" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_bundled_card_figures_are_reproduced_by_eval(camvid_root, tmp_path, capsys):
    model = models_dir() / bundled_formats()[0]
    card = json.loads(model.with_suffix(".json").read_text())
    code = main(["eval", "--model", str(model), "--data", str(camvid_root), "--split", "val",
                 "--out", str(tmp_path / "eval"), "--json", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["miou"] == pytest.approx(card["verification"]["miou"], abs=0.5)


def test_bundled_float_weights_reproduce_the_runs_kept_val_score(camvid_root, tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="the float Keras model needs the [train] extra")
    run = models_dir() / "camvid_fcn2s_mobilenetv2"
    history = json.loads((run / "history.json").read_text())
    scored = [entry["val_miou"] for entry in history if entry.get("val_miou") is not None]
    keeps_last = json.loads((run / "run.json").read_text())["train"].get("keep") == "last"
    kept = scored[-1] if keeps_last else max(scored)
    code = main(["eval", "--model", str(run), "--data", str(camvid_root), "--split", "val",
                 "--uncorrected", "--out", str(tmp_path / "eval"),
                 "--json", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    # The bundled weights file is the epoch the run kept (its best, or its last for a fixed
    # schedule) with the optimizer slots left out.
    assert json.loads((tmp_path / "e.json").read_text())["miou"] == pytest.approx(kept, abs=0.5)
    # With its prior correction (if any), it is the float model the bundled files came from.
    card = json.loads((models_dir() / bundled_formats()[0]).with_suffix(".json").read_text())
    code = main(["eval", "--model", str(run), "--data", str(camvid_root), "--split", "val",
                 "--out", str(tmp_path / "eval_served"), "--json", str(tmp_path / "s.json")])
    assert code == 0, capsys.readouterr().err
    served = json.loads((tmp_path / "s.json").read_text())
    tau = (served["prior_correction"] or {}).get("tau")
    assert tau == (card.get("prior_correction") or {}).get("tau")
    assert served["miou"] == pytest.approx(card["verification"]["keras_miou"], abs=0.5)
