"""Shared fixtures: a small synthetic dataset, and the real CamVid folder when present."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers
CAMVID = Path(os.environ.get("FCNEDGE_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """64 train and 16 val synthetic street scenes at 96x128, SegNet layout."""
    from fcnedge.train.synth import write_synth_dataset

    return write_synth_dataset(tmp_path_factory.mktemp("synth"), 64, 16, (96, 128), seed=1)


# `make test` runs the files on pytest-xdist workers (two on the 2-core CI VM, at most four),
# one file at a time each, longest first (as measured there), so the workers finish together
# instead of one running the last long file alone. The first builds `converted` while the
# second trains, which needs no conversion.
LONGEST_FIRST = ("test_bench.py", "test_training.py", "test_qat.py", "test_faults.py",
                 "test_own_classes.py", "test_readme_tour.py", "test_prior.py", "test_distill.py",
                 "test_demo.py",
                 "test_distributed.py", "test_models.py", "test_convert.py", "test_cli.py")


# The slow tier (`-m slow`; `make test-fast` runs the rest, unit tests in seconds): every test
# that trains, converts or installs (the files below, and any test using one of these
# fixtures), and the ones on the real CamVid.
SLOW_FILES = (*LONGEST_FIRST, "test_runtime_install.py", "test_fixture_models.py",
              "test_metadata.py", "test_zoo.py", "test_full_disk.py")
SLOW_FIXTURES = {"converted", "trained_run", "own_run", "benched", "camvid_root"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains, converts, installs or reads CamVid "
                            "(make test-fast leaves these out)")


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    for item in items:
        if item.path.name in SLOW_FILES or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def built_once(tmp_path_factory, name: str, build):
    """`build()` (JSON-able) made by one pytest-xdist worker and read back by the others.

    Session fixtures are per process: under `pytest -n N` each worker would train and convert
    its own copy of the same thing at the same time, on the same cores. The first worker to
    take the lock builds into its own temp folder (kept until the session ends); the others
    wait for it and read its result.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build()
    import fcntl  # POSIX only: a run without workers (any OS) never gets here

    shared = tmp_path_factory.getbasetemp().parent    # the session's folder, above each worker's
    record = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            record.write_text(json.dumps(build()))
        return json.loads(record.read_text())


@pytest.fixture(scope="session")
def converted(synth_data, tmp_path_factory):
    """A briefly trained run (96x128), converted to every format with verification."""
    def build():
        from fcnedge.convert.converter import convert
        from fcnedge.convert.options import ConvertOptions, Format, QatConfig
        from fcnedge.train.models import ModelConfig
        from fcnedge.train.trainer import TrainConfig, train

        root = tmp_path_factory.mktemp("convert")
        run = train(TrainConfig(data=str(synth_data), out=str(root / "run"),
                                model=ModelConfig(alpha=0.35, input_hw=(96, 128)), epochs=6,
                                learning_rate=3e-3, batch_size=8, class_weight_power=1.0),
                     verbose=0).run_dir    # the settings the tests' thresholds were measured with
        result = convert(ConvertOptions(model=str(run), data=str(synth_data),
                                        out=str(root / "out"), formats=tuple(Format),
                                        calib_samples=16,
                                        qat=QatConfig(epochs=1, learning_rate=1e-4)))
        return str(run), result

    run, result = built_once(tmp_path_factory, "converted", build)
    return Path(run), result


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID} (set FCNEDGE_CAMVID to its folder)")
    return CAMVID


FIXTURE_MODELS = Path(__file__).resolve().parent / "fixtures"
FIXTURE_KINDS = ("float32", "int8", "uint8")


@pytest.fixture(scope="session")
def tflite_models(tmp_path_factory) -> dict:
    """A float32, an int8 and a uint8-I/O .tflite of a small random FCN-8s (64x96 input):
    tests/fixtures' files, made by tflite_models.make_tflite (test_fixture_models checks they
    still are), so runtime tests need no TensorFlow. Copies: a test may rewrite its model."""
    import shutil

    folder = tmp_path_factory.mktemp("tflite")
    return {kind: Path(shutil.copy(FIXTURE_MODELS / f"fcn8s_{kind}.tflite", folder))
            for kind in FIXTURE_KINDS}


@pytest.fixture(scope="session")
def street_video(tmp_path_factory) -> Path:
    """A 40-frame synthetic street clip as mp4 (120x160, 10 FPS)."""
    import cv2

    from fcnedge.train.synth import synth_clip

    path = tmp_path_factory.mktemp("video") / "street.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for frame in synth_clip(40, 120, 160, seed=4):
        writer.write(frame)
    writer.release()
    return path
