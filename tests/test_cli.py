"""The command line: exit codes and one-line messages (the contract in ../shared/docs/cli.md)."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fcnedge.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_synth_writes_a_dataset_and_json(tmp_path, capsys):
    code, _, _ = run_cli(capsys, "data", "synth", "--dest", str(tmp_path / "d"), "--num", "4",
                         "--size", "64x96", "--json", str(tmp_path / "r.json"))
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["train"] == 4
    assert len(list((tmp_path / "d" / "train").iterdir())) == 4
    assert len(list((tmp_path / "d" / "valannot").iterdir())) == 1


def test_camvid_download_offline_is_exit_1_with_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "camvid", "--dest", str(tmp_path / "c"),
                           "--url", "http://127.0.0.1:9/camvid.zip", "--timeout", "5")
    assert code == 1
    assert err.count("\n") == 1 and "could not download CamVid" in err and "--data" in err


@pytest.fixture
def broken_data(tmp_path):
    from fcnedge.train.synth import write_synth_dataset

    return write_synth_dataset(tmp_path / "data", 2, 1, (64, 96), seed=0)


def break_label(root):
    mask_path = sorted((root / "trainannot").iterdir())[0]
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 40
    cv2.imwrite(str(mask_path), mask)
    return mask_path


@pytest.mark.parametrize("case", ["missing-data", "bad-size", "bad-label", "empty-split",
                                  "orphan-image", "bad-weight-power", "power-without-weights",
                                  "bad-paste-class", "bad-paste-prob", "bad-save-every"])
def test_train_bad_input_is_exit_2_with_one_line(case, broken_data, tmp_path, capsys):
    data, size, expect = broken_data, "64x96", None
    if case == "missing-data":
        data, expect = tmp_path / "nothing", "dataset folder not found"
    elif case == "bad-size":
        size, expect = "65x96", "65x96, expected both sides to be multiples of 32"
    elif case == "bad-label":
        expect = f"{break_label(broken_data).name}: label id 40 is outside 0..11"
    elif case == "empty-split":
        for folder in ("val", "valannot"):
            for item in (broken_data / folder).iterdir():
                item.unlink()
        expect = "split 'val' is empty"
    elif case == "orphan-image":
        victim = sorted((broken_data / "valannot").iterdir())[0]
        victim.unlink()
        expect = f"{victim.name}: image has no mask"
    extra = []
    if case == "bad-weight-power":
        extra, expect = ["--class-weight-power", "1.5"], "--class-weight-power: got 1.5"
    elif case == "power-without-weights":
        extra = ["--class-weights", "none", "--class-weight-power", "0.5"]
        expect = "nothing to temper with --class-weights none"
    elif case == "bad-paste-class":
        extra = ["--paste-classes", "Pole,Cyclist"]
        expect = "--paste-classes: unknown class Cyclist; expected names from Sky, Building"
    elif case == "bad-paste-prob":
        extra, expect = ["--paste-classes", "Pole", "--paste-prob", "-0.1"], "--paste-prob: got -0.1"
    elif case == "bad-save-every":
        extra, expect = ["--save-every", "-2"], "--save-every: got -2"
    code, _, err = run_cli(capsys, "train", "--data", str(data), "--out", str(tmp_path / "run"),
                           "--input-size", size, "--epochs", "1", "--quiet", *extra)
    assert code == 2, err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err


def test_eval_bad_model_path(tmp_path, broken_data, capsys):
    code, _, err = run_cli(capsys, "eval", "--model", str(tmp_path / "nope"), "--data",
                           str(broken_data))
    assert code == 2 and "nope: not found" in err


def test_train_then_eval_writes_scores_and_confusion_png(broken_data, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)     # eval writes into the current folder by default
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", str(broken_data), "--out", str(run),
                           "--input-size", "64x96", "--alpha", "0.35", "--epochs", "1",
                           "--batch-size", "2",
                           "--quiet")
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "--model", str(run), "--data", str(broken_data),
                             "--json", str(tmp_path / "eval.json"), "--error-class", "road",
                             "--error-images", "1")
    assert code == 0, err
    assert "| **mIoU** |" in out and "| Pedestrian |" in out
    result = json.loads((tmp_path / "eval.json").read_text())
    # One 64x96 tile under the colour key; a one-epoch model misses some road on any image.
    assert result["error_sheet"] == str(tmp_path / "eval-run-val" / "errors-Road.png")
    assert cv2.imread(result["error_sheet"]).shape == (26 + 64, 96, 3)
    assert set(result["per_class_iou"]) == {"Sky", "Building", "Pole", "Road", "Pavement", "Tree",
                                            "SignSymbol", "Fence", "Car", "Pedestrian",
                                            "Bicyclist"}
    png = cv2.imread(str(tmp_path / "eval-run-val" / "confusion.png"))
    assert png is not None and png.shape[0] > 200
    confusion = np.asarray(result["confusion_matrix"])
    assert confusion.shape == (11, 11)
    # Recall in the report is read off the same confusion matrix (rows are truth).
    sky = confusion[0, 0] / confusion[0].sum() if confusion[0].sum() else None
    assert result["per_class_recall"]["Sky"] == (None if sky is None else round(100 * sky, 2))
    assert "recall %" in out and "mean class accuracy" in out

    # The FCN is fully convolutional: scored at another size, into a folder of its own.
    code, out, err = run_cli(capsys, "eval", "--model", str(run), "--data", str(broken_data),
                             "--input-size", "96x128", "--json", str(tmp_path / "eval96.json"))
    assert code == 0, err
    assert "at 96x128 on val" in out
    assert json.loads((tmp_path / "eval96.json").read_text())["input_size"] == "96x128"
    assert json.loads((tmp_path / "eval.json").read_text())["input_size"] == "64x96"
    assert (tmp_path / "eval-run-val-96x128" / "confusion.png").is_file()
    assert json.loads((tmp_path / "eval-run-val" / "scores.json").read_text())[
        "input_size"] == "64x96"
    assert not list(run.glob("eval*")), "eval wrote into the model's folder"

    code, _, err = run_cli(capsys, "eval", "--model", str(run), "--data", str(broken_data),
                           "--input-size", "70x96")
    assert code == 2 and "--input-size: got 70x96" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "eval", "--model", str(run), "--data", str(broken_data),
                           "--error-class", "Lamppost")
    assert code == 2 and "--error-class: got 'Lamppost', expected one of Sky, " in err
    code, _, err = run_cli(capsys, "eval", "--model", str(run), "--data", str(broken_data),
                           "--error-class", "Pole", "--error-images", "0")
    assert code == 2 and "--error-images: got 0" in err and err.count("\n") == 1
    tflite = tmp_path / "fixed.tflite"
    tflite.write_bytes(b"")
    code, _, err = run_cli(capsys, "eval", "--model", str(tflite), "--data", str(broken_data),
                           "--input-size", "96x128")
    assert code == 2 and "fixed.tflite has its input size fixed at export" in err
    code, _, err = run_cli(capsys, "eval", "--model", str(tflite), "--data", str(broken_data),
                           "--uncorrected")
    assert code == 2 and "--uncorrected: " in err and "score the run folder" in err


def test_console_script_is_installed():
    """The `fcnedge` entry point of the installed distribution (editable or not) is the
    package's console_main, and `python -m fcnedge` serves the same commands."""
    from importlib.metadata import entry_points

    import fcnedge

    (script,) = [entry for entry in entry_points(group="console_scripts")
                 if entry.name == "fcnedge"]
    assert script.value == "fcnedge:console_main" and script.load() is fcnedge.console_main
    completed = subprocess.run([sys.executable, "-m", "fcnedge", "--help"], capture_output=True,
                               text=True, check=True)
    for command in ("data", "train", "eval", "convert", "run", "bench", "demo", "models"):
        assert command in completed.stdout


def test_resume_names_the_flags_it_does_not_apply():
    from fcnedge.train.cli import flags_ignored_on_resume

    argv = ["--verbose", "train", "--data", "d", "--out", "r", "--resume", "--lr", "0.1",
            "--batch-size=4", "--epochs", "9", "--threads", "1", "--json", "r.json"]
    assert flags_ignored_on_resume(argv) == ["--batch-size", "--lr"]
    assert flags_ignored_on_resume(["train", "--data", "d", "--out", "r", "--resume"]) == []


def test_train_flag_defaults_are_the_config_defaults_and_the_recipe():
    """The parser and the dataclasses agree, and both are the recipe's first stage."""
    from fcnedge.cli import build_parser
    from fcnedge.train.config import AugmentConfig, ModelConfig, TrainConfig

    args = build_parser().parse_args(["train", "--data", "d", "--out", "r"])
    train, model, augment = TrainConfig(data="d", out="r"), ModelConfig(), AugmentConfig()
    pairs = {"alpha": model.alpha, "arch": model.arch, "backbone": model.backbone,
             "decoder": model.decoder, "dropout": model.dropout, "context": model.context,
             "context_units": model.context_units, "bn_momentum": model.bn_momentum,
             "batch_size": train.batch_size, "optimizer": train.optimizer,
             "lr": train.learning_rate, "weight_decay": train.weight_decay,
             "schedule": train.schedule, "warmup_epochs": train.warmup_epochs,
             "class_weights": train.class_weights, "loss": train.loss,
             "seed": train.seed, "keep": train.keep, "scale_min": augment.scale_min,
             "scale_max": augment.scale_max, "camera_jitter": augment.camera_jitter,
             "paste_prob": augment.paste_probability}
    assert {flag: getattr(args, flag) for flag in pairs} == pairs
    from fcnedge.train.cli import class_weight_power
    assert class_weight_power(args) == train.class_weight_power == 0.5
    unweighted = build_parser().parse_args(["train", "--data", "d", "--out", "r",
                                            "--class-weights", "none"])
    assert class_weight_power(unweighted) == 1.0
    assert TrainConfig(data="d", out="r", class_weights="none").class_weight_power == 1.0
    assert (model.alpha, train.batch_size, train.class_weight_power, train.epochs) == (
        0.75, 4, 0.5, 90)


def test_every_flag_shows_its_default_once_in_help(capsys):
    from fcnedge.cli import build_parser

    parser = build_parser()
    for command in ("train", "eval", "convert", "run", "bench"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text and "(default: False)" not in text, command
        for flag in ("--arch", "--backbone", "--optimizer", "--dropout") if command == "train" \
                else ():
            entry = text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
            assert entry.count("default") == 1, (flag, entry)


def test_quiet_training_prints_only_its_own_lines(broken_data, tmp_path):
    """--quiet: no Keras progress, and (from the real command line) none of TensorFlow's
    start-up or checkpoint chatter: one line per epoch and the summary."""
    completed = subprocess.run(
        [sys.executable, "-m", "fcnedge", "train", "--data", str(broken_data), "--out",
         str(tmp_path / "run"), "--input-size", "64x96", "--alpha", "0.35", "--epochs", "2",
         "--batch-size", "2", "--quiet"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert [line.split()[0] for line in lines] == ["loading", "epoch", "epoch", "best"], lines
