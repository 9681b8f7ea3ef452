"""Sources, sinks and the streaming loop; Ctrl-C/SIGTERM leave a playable mp4; no TensorFlow."""
import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.stream import StreamOptions, stream
from fcnedge.runtime.segmenter import Segmenter
from fcnedge.runtime.video import (ImageSequence, LiveSource, VideoFile, open_source,
                                   parse_source)


def count_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


@pytest.fixture
def image_folder(tmp_path, street_video):
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame in VideoFile(str(street_video)):
        if frame.index >= 6:
            break
        cv2.imwrite(str(folder / f"f{frame.index:03d}.png"), frame.image)
    return folder


def test_parse_source(tmp_path, street_video, image_folder):
    assert parse_source("0").kind == "camera" and parse_source("0").value == 0
    assert parse_source("rtsp://cam/stream").kind == "url"
    assert parse_source(str(image_folder)).kind == "folder"
    assert parse_source(str(image_folder / "*.png")).kind == "glob"
    assert parse_source(str(street_video)).kind == "file"
    with pytest.raises(InputError, match="not a camera index, URL"):
        parse_source(str(tmp_path / "missing.mp4"))


def test_every_source_kind_gives_frames_in_order(street_video, image_folder):
    assert [f.index for f in open_source(str(image_folder))] == list(range(6))
    assert len(list(open_source(str(image_folder / "f00[0-2].png")))) == 3
    frames = list(open_source(str(street_video)))
    assert len(frames) == 40 and frames[0].image.shape == (120, 160, 3)


def test_unopenable_sources(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError, match="cannot be opened as a video"):
        VideoFile(str(bad))
    with pytest.raises(InputError, match="no images found"):
        ImageSequence.from_glob(str(tmp_path / "*.png"))
    with pytest.raises(InputError, match="cannot open this camera"):
        LiveSource(7, opener=lambda target: FakeCapture(0, opened=False))


class FakeCapture:
    """A camera that delivers `frames` frames, then fails (like an unplugged USB camera)."""

    def __init__(self, frames, opened=True):
        self.frames, self.opened, self.read_count = frames, opened, 0

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return 30.0

    def read(self):
        time.sleep(0.002)
        if self.read_count >= self.frames:
            return False, None
        self.read_count += 1
        return True, np.full((8, 8, 3), self.read_count, np.uint8)

    def release(self):
        pass


def test_live_source_reconnects_then_ends_cleanly():
    opened = []

    def opener(target):
        # First connection: 5 frames; a failed reconnect; then 5 more; then nothing at all.
        attempt = len(opened)
        opened.append(attempt)
        if attempt == 1 or attempt >= 3:
            return FakeCapture(0, opened=False)
        return FakeCapture(5)

    source = LiveSource(0, opener=opener, max_retries=2, backoff_s=0.01)
    frames = list(source)
    source.close()
    assert source.reconnects == 1
    assert len(frames) + source.dropped == 10    # newest-frame-only: every frame seen or dropped
    assert len(opened) == 5                      # 1 + (fail, ok) + 2 failed retries


def test_stream_writes_mp4_masks_and_stats(tflite_models, street_video, tmp_path):
    segmenter = Segmenter(tflite_models["int8"])
    output, masks = tmp_path / "out.mp4", tmp_path / "masks"
    stats = stream(segmenter, open_source(str(street_video)),
                   StreamOptions(output=str(output), masks=str(masks), view="side-by-side"))
    assert stats.frames == 40 and count_frames(output) == 40
    mask = cv2.imread(str(masks / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (120, 160) and mask.dtype == np.uint8 and mask.max() < 11
    assert len(list(masks.iterdir())) == 40
    summary = stats.summary()
    for stage in ("capture", "preprocess", "invoke", "postprocess", "draw"):
        assert summary["stages_ms"][stage]["count"] == 40
    assert summary["fps"] > 0 and summary["invoke_only_fps"] > 0
    assert not list(tmp_path.glob(".*partial*"))   # the temporary name is gone


def test_max_frames(tflite_models, street_video):
    stats = stream(Segmenter(tflite_models["float32"]), open_source(str(street_video)),
                   StreamOptions(max_frames=7))
    assert stats.frames == 7


def test_run_stream_is_the_whole_job_in_one_call(tflite_models, street_video, tmp_path):
    from fcnedge.runtime.live import run_stream

    before = signal.getsignal(signal.SIGINT)
    result = run_stream(str(tflite_models["int8"]), str(street_video),
                        stream_options=StreamOptions(max_frames=5, output=str(tmp_path / "a.mp4")))
    assert result.stats.frames == 5 and count_frames(tmp_path / "a.mp4") == 5
    # Threads left unset run on all cores but one, and the handlers it set are put back.
    assert result.interpreter["num_threads"] >= 1 and not result.interrupted
    assert signal.getsignal(signal.SIGINT) is before
    summary = result.summary()
    assert summary["frames"] == 5 and summary["source"] == str(street_video)
    assert result.line().startswith("5 frames, ")


def test_run_stream_checks_its_outputs_before_loading_the_model(tmp_path, street_video):
    from fcnedge.runtime.live import run_stream

    # The model does not exist, but the output's name is what is refused: checked first.
    with pytest.raises(InputError) as caught:
        run_stream(str(tmp_path / "none.tflite"), str(street_video),
                   stream_options=StreamOptions(output=str(tmp_path / "out.avi")))
    assert caught.value.param == "output" and "expected an .mp4 file name" in str(caught.value)


def test_run_stream_stops_when_its_stop_flag_is_set(tflite_models, street_video):
    from fcnedge.runtime.live import run_stream
    from fcnedge.runtime.stream import StopFlag

    stop = StopFlag()
    seen = []

    def on_frame(frame, segmentation):
        seen.append(frame.index)
        if len(seen) == 3:
            stop.set()

    result = run_stream(str(tflite_models["int8"]), str(street_video), stop=stop,
                        on_frame=on_frame, handle_signals=False)
    # The frames already through the model are drawn; far fewer than the clip's 40.
    assert 3 <= result.stats.frames < 40


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fcnedge", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


BAD_RUN = [
    ("missing model", ["--model", "{tmp}/none.tflite", "--source", "{video}"],
     "none.tflite: file not found"),
    ("missing source", ["--model", "{int8}", "--source", "{tmp}/x.mp4"],
     "not a camera index, URL"),
    ("no edgetpu", ["--model", "{int8}", "--source", "{video}", "--delegate", "edgetpu"],
     "could not load libedgetpu.so.1"),
    ("unwritable output", ["--model", "{int8}", "--source", "{video}", "--output",
                           "/proc/nope/out.mp4"], "--output /proc/nope"),
]


@pytest.mark.parametrize("name,args,message", BAD_RUN, ids=[c[0] for c in BAD_RUN])
def test_run_cli_bad_inputs(name, args, message, tmp_path, tflite_models, street_video):
    args = [arg.format(tmp=tmp_path, video=street_video, int8=tflite_models["int8"])
            for arg in args]
    completed = run_cli("run", "--no-window", *args)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_a_playable_mp4(sig, tmp_path, tflite_models, street_video):
    # A long clip (the 40-frame video, 25 times as a folder glob of its frames is slower to
    # make), streamed slowly enough that the signal lands mid-stream.
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = [f.image for f in VideoFile(str(street_video))]
    for index in range(400):
        cv2.imwrite(str(folder / f"{index:04d}.jpg"), frames[index % len(frames)])
    output, summary = tmp_path / "out.mp4", tmp_path / "summary.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "fcnedge", "run", "--no-window", "--model",
         str(tflite_models["float32"]), "--source", str(folder), "--output", str(output),
         "--json", str(summary), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    partial = tmp_path / ".out.partial.mp4"
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 20000):
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    # 130 after either signal, so a script can tell a cut run from a finished one.
    assert process.returncode == 130, err
    written = count_frames(output)
    result = json.loads(summary.read_text())
    assert 0 < written < 400, err
    assert result["interrupted"] and result["frames"] == written


def test_a_signal_sets_the_stop_flag_and_a_second_ctrl_c_quits_at_once(monkeypatch, capfd):
    # Raising KeyboardInterrupt in the main thread could land while a queue's lock is held and
    # hang the drawer's join (seen once in CI); the handler only sets flags.
    import os

    from fcnedge.runtime.live import stop_on_signals
    from fcnedge.runtime.stream import StopFlag

    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop, signalled = StopFlag(), StopFlag()
    restore = stop_on_signals(stop, signalled)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set() and signalled.is_set() and not exits
        signal.raise_signal(signal.SIGINT)
        assert exits == [130]
    finally:
        restore()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    err = capfd.readouterr().err
    assert "finishing the output files" in err and "quitting without finishing" in err


def test_runtime_path_never_imports_tensorflow(tflite_models, street_video, tmp_path):
    script = (
        "import sys\n"
        "from fcnedge.cli import main\n"
        f"code = main(['run', '--no-window', '--model', {str(tflite_models['int8'])!r}, "
        f"'--source', {str(street_video)!r}, '--max-frames', '5', '--output', "
        f"{str(tmp_path / 'o.mp4')!r}])\n"
        "import fcnedge.runtime.segmenter, fcnedge.runtime.stream\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'))\n"
        "print('CODE', code, 'TF', bad)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300)
    assert "CODE 0 TF []" in completed.stdout, completed.stdout + completed.stderr


def test_colorize_and_overlay_use_the_palette():
    from fcnedge.runtime.labels import CAMVID
    from fcnedge.runtime.visualize import colorize, overlay

    palette = CAMVID.palette_bgr()
    labels = np.random.default_rng(0).integers(0, len(palette), (30, 40)).astype(np.uint8)
    labels[0, 0] = 200                      # past the palette: black, not an error
    expected = np.zeros((30, 40, 3), np.uint8)
    known = labels < len(palette)
    expected[known] = palette[labels[known]]
    np.testing.assert_array_equal(colorize(labels, palette), expected)
    frame = np.full((30, 40, 3), 100, np.uint8)
    blended = overlay(frame, labels, palette, alpha=0.5)
    np.testing.assert_allclose(blended.astype(int), (expected.astype(int) + 100) / 2, atol=1)


def test_data_clip_turns_an_image_folder_into_a_video(image_folder, tmp_path, capsys):
    from fcnedge.cli import main

    out = tmp_path / "clip.mp4"
    code = main(["data", "clip", "--source", str(image_folder), "--out", str(out), "--fps", "12",
                 "--max-frames", "3"])
    assert code == 0, capsys.readouterr().err
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    first = cv2.imread(str(sorted(image_folder.iterdir())[0]))
    assert len(frames) == 3 and frames[0].shape == first.shape
    assert np.abs(frames[0].astype(int) - first).mean() < 12       # lossy, but the same picture


@pytest.mark.parametrize("argv, message", [
    (["--source", "{tmp}/none"], "--source"),
    (["--source", "{frames}", "--fps", "0"], "--fps: got 0"),
    (["--source", "{frames}", "--max-frames", "0"], "--max-frames"),
])
def test_data_clip_refuses_bad_input_with_exit_2(image_folder, tmp_path, capsys, argv, message):
    from fcnedge.cli import main

    argv = [part.format(tmp=tmp_path, frames=image_folder) for part in argv]
    code = main(["data", "clip", "--out", str(tmp_path / "x.mp4"), *argv])
    assert code == 2 and message in capsys.readouterr().err


def test_default_threads_are_explicit_and_leave_a_core_when_asked(monkeypatch):
    from fcnedge.runtime import interpreter

    monkeypatch.setattr(interpreter.os, "sched_getaffinity", lambda _: {0, 1, 2, 3},
                        raising=False)
    assert interpreter.default_threads() == 4 and interpreter.default_threads(reserve=1) == 3
    monkeypatch.setattr(interpreter.os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert interpreter.default_threads(reserve=1) == 1


def test_segmenter_reports_the_threads_it_runs(tflite_models):
    from fcnedge.runtime.interpreter import default_threads
    from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions

    model = next(iter(tflite_models.values()))
    assert Segmenter(model).info.num_threads == default_threads()
    assert Segmenter(model, SegmenterOptions(num_threads=1)).info.num_threads == 1
