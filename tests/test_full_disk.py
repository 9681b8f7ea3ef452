"""A full disk is an error, not a broken file: videos are read back before they take their
final name. Needs a small tmpfs (root, as CI runs); skipped, saying so, where mount is refused."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from fcnedge.runtime.video import Mp4Sink, frames_in_video


@pytest.fixture
def tiny_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 512 KB tmpfs here ({done.stderr.strip() or 'not root'})")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def noise_frames(count: int, hw=(240, 320)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(count)]


def test_a_video_that_does_not_fit_is_an_error_and_leaves_nothing(tiny_disk):
    sink = Mp4Sink(tiny_disk / "out.mp4", 30.0, (240, 320))
    for frame in noise_frames(40):      # MBs of incompressible frames for 512 KB of disk
        sink.write(frame)
    with pytest.raises(OSError, match=r"of 40 frames reached the disk \(is it full\?\)"):
        sink.close()
    assert list(tiny_disk.iterdir()) == []


def test_a_video_that_fits_is_complete(tiny_disk):
    sink = Mp4Sink(tiny_disk / "out.mp4", 30.0, (240, 320))
    for frame in noise_frames(3):
        sink.write(frame // 16)
    sink.close()
    assert frames_in_video(tiny_disk / "out.mp4") == 3
    assert [p.name for p in tiny_disk.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("command", ["clip", "run"])
def test_clip_and_run_exit_1_with_one_line_on_a_full_disk(tiny_disk, tmp_path, command,
                                                          tflite_models):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(noise_frames(60)):
        cv2.imwrite(str(frames / f"f{index:03d}.png"), frame)
    target = tiny_disk / "out.mp4"
    argv = (["data", "clip", "--source", str(frames), "--out", str(target)] if command == "clip"
            else ["run", "--model", str(tflite_models["float32"]), "--source", str(frames),
                  "--no-window", "--output", str(target), "--alpha", "0.2"])
    done = subprocess.run([sys.executable, "-m", "fcnedge", *argv], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line or "failed" in line]
    assert len(lines) == 1 and "reached the disk (is it full?)" in lines[0], done.stderr
    assert "Failed to write frame" not in done.stderr
    assert not target.exists() and not any(p.suffix == ".mp4" for p in tiny_disk.iterdir())
