"""Fault tests: SIGKILL mid-training, mid-write and mid-convert; a bad-input sweep of every
subcommand (exit 2, a message naming the problem, never a traceback).

SIGINT/SIGTERM during `fcnedge run` (the mp4 stays playable) is tested in test_runtime_stream.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcnedge.cli import main

REPO = Path(__file__).resolve().parents[1]


def _fcnedge(*argv, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "fcnedge", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def _wait_for(predicate, process, timeout_s=600.0, poll_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(poll_s)
    return False


def test_sigkill_mid_training_then_resume_has_no_gap_and_the_right_lr(synth_data, tmp_path):
    from fcnedge.train.optimizer import make_schedule
    from fcnedge.train.trainer import TrainConfig

    run = tmp_path / "run"
    args = ["train", "--data", str(synth_data), "--out", str(run), "--input-size", "64x96",
            "--alpha", "0.35",
            "--epochs", "6", "--limit-train", "16", "--limit-val", "4", "--batch-size", "4",
            "--threads", "1", "--quiet"]
    process = _fcnedge(*args)
    history_path = run / "history.json"
    finished_one = _wait_for(lambda: history_path.is_file()
                             and len(json.loads(history_path.read_text() or "[]")) >= 1, process)
    assert finished_one, process.stderr.read().decode()[-2000:]
    time.sleep(0.5)                                   # into the checkpoint or the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    killed_at = len(json.loads(history_path.read_text()))
    assert killed_at < 6

    # Without --epochs, as a user resumes: the run's own 6, not the CLI's default of 40.
    epochs_at = args.index("--epochs")
    assert main([*args[:epochs_at], *args[epochs_at + 2:], "--resume"]) == 0
    history = json.loads(history_path.read_text())
    assert [entry["epoch"] for entry in history] == [1, 2, 3, 4, 5, 6]
    config = TrainConfig.from_dict(json.loads((run / "run.json").read_text())["train"])
    schedule = make_schedule(config, steps_per_epoch=4)
    for entry in history:
        assert entry["lr"] == pytest.approx(float(schedule(entry["epoch"] * 4 - 1)), rel=1e-5)


KILL_DURING_SAVE = """
import os, signal, sys
from fcnedge.runtime.fileio import atomic_path
from fcnedge.train.tfcompat import keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones")])
with atomic_path(sys.argv[1]) as temporary:
    model.save_weights(str(temporary))
    os.kill(os.getpid(), signal.SIGKILL)      # after the bytes, before the rename
"""


def test_sigkill_during_a_weights_write_keeps_the_previous_file(tmp_path):
    from fcnedge.train.tfcompat import keras

    target = tmp_path / "best.weights.h5"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3,
                                                                    kernel_initializer="zeros")])
    model.save_weights(str(target))
    completed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(target)],
                               capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert completed.returncode == -signal.SIGKILL
    model.load_weights(str(target))                  # still the complete previous file
    assert np.all(model.get_weights()[0] == 0)
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert leftovers and all(name.startswith(".best.") and ".tmp." in name for name in leftovers)


def test_sigkill_during_convert_leaves_no_partial_tflite(converted, synth_data, tmp_path):
    from fcnedge.convert.tflite_graph import read_graph

    run, _ = converted
    out = tmp_path / "out"
    process = _fcnedge("convert", "--model", str(run), "--data", str(synth_data), "--out",
                       str(out), "--formats", "float32,float16,dynamic,int8-ptq", "--no-verify",
                       "--calib-samples", "4")
    started = _wait_for(lambda: out.is_dir() and any(out.iterdir()), process, poll_s=0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert started and process.returncode == -signal.SIGKILL
    visible = sorted(out.glob("[!.]*.tflite"))
    assert len(visible) < 4                            # it was killed before the end
    for path in visible:                               # whatever is there is whole
        assert read_graph(path).ops
    assert all(".tmp." in p.name for p in out.glob(".*"))


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory, tflite_models):
    from fcnedge.train.synth import write_synth_dataset

    root = tmp_path_factory.mktemp("sweep")
    data = write_synth_dataset(root / "data", 2, 1, (64, 96), seed=0)
    bad_ids = write_synth_dataset(root / "bad_ids", 2, 1, (64, 96), seed=0)
    mask_path = sorted((bad_ids / "trainannot").iterdir())[0]
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 99
    cv2.imwrite(str(mask_path), mask)
    shape = write_synth_dataset(root / "shape", 2, 1, (64, 96), seed=0)
    mask_path = sorted((shape / "trainannot").iterdir())[0]
    cv2.imwrite(str(mask_path), np.zeros((10, 10), np.uint8))
    truncated = root / "truncated.tflite"
    truncated.write_bytes(Path(tflite_models["int8"]).read_bytes()[:500])
    text = root / "notes.tflite"
    text.write_text("not a model")
    empty = root / "empty"
    (empty / "val").mkdir(parents=True)
    (empty / "valannot").mkdir()
    (empty / "train").mkdir()
    (empty / "trainannot").mkdir()
    return {"data": data, "bad_ids": bad_ids, "shape": shape, "truncated": truncated,
            "text": text, "empty": empty, "root": root,
            "model": Path(tflite_models["int8"]), "gray": tflite_models.get("float32")}


# (name, argv with {placeholders}, expected fragment of the one-line error)
SWEEP = [
    ("data synth: size", "data synth --dest {root}/s1 --size 0x96", "--size"),
    ("data synth: count", "data synth --dest {root}/s2 --num 0", "--num"),
    ("train: missing data", "train --data {root}/nothing --out {root}/t1", "not found"),
    ("train: empty split", "train --data {empty} --out {root}/t2", "empty"),
    ("train: label out of range", "train --data {bad_ids} --out {root}/t3 --input-size 64x96",
     "label id 99 is outside 0..11"),
    ("train: mask shape", "train --data {shape} --out {root}/t4 --input-size 64x96",
     "mask is 10x10 but its image is 96x64"),
    ("train: size not /32", "train --data {data} --out {root}/t5 --input-size 100x96",
     "multiples of 32"),
    ("train: epochs", "train --data {data} --out {root}/t6 --epochs 0", "--epochs: got 0"),
    ("train: unwritable out", "train --data {data} --out {text}/run --input-size 64x96",
     "notes.tflite"),
    ("eval: missing model", "eval --model {root}/none.tflite --data {data}", "none.tflite"),
    ("eval: corrupt model", "eval --model {truncated} --data {data}", "truncated.tflite"),
    ("eval: text as model", "eval --model {text} --data {data}", "notes.tflite"),
    ("convert: formats", "convert --model {root} --data {data} --out {root}/c1 --formats int4",
     "--formats"),
    ("convert: model type", "convert --model {text} --data {data} --out {root}/c2",
     "expected a run folder"),
    ("convert: calib 0", "convert --model {root} --data {data} --out {root}/c3 "
     "--calib-samples 0", "--calib-samples: got 0"),
    ("run: missing model", "run --model {root}/none.tflite --source {data}/val --no-window",
     "none.tflite"),
    ("run: truncated model", "run --model {truncated} --source {data}/val --no-window",
     "truncated.tflite"),
    ("run: bad source", "run --model {model} --source {root}/nothing.mp4 --no-window",
     "nothing.mp4"),
    ("run: unwritable masks", "run --model {model} --source {data}/val --no-window "
     "--masks {text}/m", "notes.tflite"),
    ("bench: runs 0", "bench --models {model} --data {data} --out {root}/b1 --runs 0",
     "--runs: got 0"),
    ("bench: missing model", "bench --models {root}/none.tflite --data {data} --out {root}/b2",
     "none.tflite"),
    ("bench: empty split", "bench --models {model} --data {empty} --out {root}/b3", "empty"),
]


@pytest.mark.parametrize("name,argv,expected", SWEEP, ids=[case[0] for case in SWEEP])
def test_bad_input_sweep(name, argv, expected, sweep_inputs, capsys):
    code = main(argv.format(**sweep_inputs).split())
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert expected in err and "Traceback" not in err, (name, err)
    assert err.strip().count("\n") == 0, err
