"""The failure classes an outside probe found (issue: nothing lost, nothing crashes, one clear
line), one case per row so each failure shows on its own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import safe_file_part
from fcnedge.runtime.labels import CAMVID, LabelSet
from fcnedge.runtime.video import LiveSource, redact_url


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tflite_models):
    from fcnedge.train.synth import write_synth_dataset

    root = tmp_path_factory.mktemp("probe")
    data = write_synth_dataset(root / "data", 4, 2, (64, 96), seed=0)
    (root / "afile").write_text("x")
    (root / "dir.mp4").mkdir()
    return {"root": root, "data": data, "model": tflite_models["float32"],
            "afile": root / "afile"}


# (name, argv, expected fragment): nonsense the probe saw accepted, or reported on several lines
NUMERIC = [
    ("train --lr inf", "train --data {data} --out {root}/t --lr inf", "--lr: got inf"),
    ("train --weight-decay nan", "train --data {data} --out {root}/t --weight-decay nan",
     "--weight-decay: got nan"),
    ("train --weight-decay -1", "train --data {data} --out {root}/t --weight-decay -1",
     "--weight-decay: got -1"),
    ("train --warmup-epochs -1", "train --data {data} --out {root}/t --warmup-epochs -1",
     "--warmup-epochs: got -1"),
    ("train --threads 0", "train --data {data} --out {root}/t --threads 0", "--threads: got 0"),
    ("train --threads -1", "train --data {data} --out {root}/t --threads -1",
     "--threads: got -1"),
    ("train --dropout 2", "train --data {data} --out {root}/t --dropout 2", "--dropout: got 2"),
    ("train --fc-units -5", "train --data {data} --out {root}/t --fc-units -5",
     "--fc-units: got -5"),
    ("train --scale-min nan", "train --data {data} --out {root}/t --scale-min nan",
     "--scale-min: got nan"),
    ("train --seed -1", "train --data {data} --out {root}/t --seed -1", "--seed: got -1"),
    ("train --camera-jitter 2", "train --data {data} --out {root}/t --camera-jitter 2",
     "--camera-jitter: got 2"),
    ("train --batch-size abc", "train --data {data} --out {root}/t --batch-size abc",
     "--batch-size: got 'abc'"),
    ("run --alpha 5", "run --model {model} --source {data}/val --alpha 5", "--alpha: got 5"),
    ("run --alpha nan", "run --model {model} --source {data}/val --alpha nan",
     "--alpha: got nan"),
    ("run --alpha -1", "run --model {model} --source {data}/val --alpha -1", "--alpha: got -1"),
    ("run --reconnect -1", "run --model {model} --source 0 --reconnect -1",
     "--reconnect: got -1"),
    ("run --threads 0", "run --model {model} --source {data}/val --threads 0",
     "--threads: got 0"),
    ("run --smooth 1", "run --model {model} --source {data}/val --smooth 1", "--smooth: got 1"),
    ("convert --max-drop nan", "convert --model {root} --data {data} --out {root}/c "
     "--max-drop nan", "--max-drop: got nan"),
    ("bench --min-miou nan", "bench --models {model} --data {data} --out {root}/b "
     "--min-miou nan", "--min-miou: got nan"),
    ("bench --timeout 0", "bench --models {model} --data {data} --out {root}/b --timeout 0",
     "--timeout: got 0"),
    ("correct-prior --taus nan", "correct-prior --model {root} --data {data} --taus nan",
     "--taus: got 'nan'"),
    ("data synth --size 1x1", "data synth --dest {root}/s --size 1x1", "--size: got '1x1'"),
    ("data clip --fps inf", "data clip --source {data}/val --out {root}/c.mp4 --fps inf",
     "--fps: got inf"),
    ("data clip --fps 0", "data clip --source {data}/val --out {root}/c.mp4 --fps 0",
     "--fps: got 0"),
    ("unknown flag", "eval --model {model} --data {data} --no-such-flag",
     "unrecognized arguments: --no-such-flag"),
    ("--json is a folder", "data synth --dest {root}/s3 --json {root}", "--json"),
    ("eval --out is a file", "eval --model {model} --data {data} --out {afile}",
     "is a file; expected a folder"),
    ("run --output is a folder", "run --model {model} --source {data}/val --output {root}/dir.mp4",
     "--output {root}/dir.mp4: is a folder"),
    ("run --output not mp4", "run --model {model} --source {data}/val --output {root}/o.avi",
     "--output {root}/o.avi: expected an .mp4 file name"),
    ("clip names its own flag", "data clip --source {data}/val --out {root}/c.avi",
     "--out {root}/c.avi: expected an .mp4 file name"),
    ("synth --dest is a file", "data synth --dest {afile}", "--dest {afile}: is a file"),
]


@pytest.mark.parametrize("name,argv,expected", NUMERIC, ids=[case[0] for case in NUMERIC])
def test_refused_up_front_with_one_line(name, argv, expected, probe, capsys):
    code = main(argv.format(**probe).split())
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert expected.format(**probe) in err, (name, err)
    assert "Traceback" not in err and "usage:" not in err, (name, err)
    assert err.strip().count("\n") == 0, err
    assert not (probe["root"] / "s3").exists()        # nothing written before the check


def test_a_batch_larger_than_the_split_is_refused(probe, capsys):
    assert main(["train", "--data", str(probe["data"]), "--out", str(probe["root"] / "big"),
                 "--input-size", "64x96", "--batch-size", "100000"]) == 2
    assert "--batch-size: got 100000 (x 1 replicas), expected at most the 4 training images" \
        in capsys.readouterr().err
    assert not (probe["root"] / "big").exists()


def test_a_corrupt_history_is_named_on_resume(probe, capsys):
    from fcnedge.train.trainer import TrainConfig

    run = probe["root"] / "run"
    run.mkdir()
    config = TrainConfig(data=str(probe["data"]), out=str(run))
    (run / "run.json").write_text(json.dumps({"train": config.to_dict()}))
    (run / "history.json").write_text("{not json")
    assert main(["train", "--data", str(probe["data"]), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'history.json'}: not a readable training history" in err
    assert err.strip().count("\n") == 0


LABEL_CASES = [
    ("no colours", {"names": ["a", "b"]}, "labels need 'names' and 'colors_rgb'"),
    ("count mismatch", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0]]},
     "2 class names but 1 colours"),
    ("colour out of range", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0], [0, 0, 300]]},
     "colour 1 (b) is [0, 0, 300]"),
    ("colour not rgb", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0], "red"]},
     "colour 1 (b) is 'red'"),
    ("void id in front", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0], [1, 1, 1]],
                          "void_id": 0}, "void_id is 0, expected null, the last name's id (1)"),
    ("void id past a byte", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0], [1, 1, 1]],
                             "void_id": 256}, "void_id is 256"),
    ("void id text", {"names": ["a", "b"], "colors_rgb": [[0, 0, 0], [1, 1, 1]],
                      "void_id": "x"}, "void_id is 'x'"),
    ("too many", {"names": [f"c{i}" for i in range(300)],
                  "colors_rgb": [[0, 0, 0]] * 300}, "300 labels, but masks hold at most 256"),
    ("blank name", {"names": ["a", ""], "colors_rgb": [[0, 0, 0], [1, 1, 1]]},
     "'names' must be a list of non-empty strings"),
]


@pytest.mark.parametrize("name,labels,expected", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_a_bad_label_set_is_an_input_error_naming_its_file(name, labels, expected):
    with pytest.raises(InputError) as raised:
        LabelSet.from_dict(labels, "card.json")
    assert str(raised.value).startswith("card.json: ") and expected in str(raised.value)


def test_a_card_with_bad_labels_is_exit_2_naming_the_card(probe, tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(Path(probe["model"]).read_bytes())
    (tmp_path / "m.json").write_text(json.dumps({"labels": {"names": ["a"], "colors_rgb": []}}))
    assert main(["run", "--model", str(model), "--source", str(probe["data"] / "val"),
                 "--no-window"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'm.json'}: 1 class names but 0 colours" in err


def test_camvid_labels_still_load():
    assert LabelSet.from_dict(CAMVID.to_dict()) == CAMVID


@pytest.mark.parametrize("url, shown", [
    ("rtsp://user:secret@cam.local:554/live", "rtsp://***@cam.local:554/live"),
    ("http://token@host/a.mp4", "http://***@host/a.mp4"),
    ("rtsp://cam.local/live", "rtsp://cam.local/live"),
    ("/videos/a@b.mp4", "/videos/a@b.mp4"),
])
def test_credentials_never_reach_messages(url, shown):
    assert redact_url(url) == shown


def test_a_stream_that_cannot_open_names_it_without_its_password(probe, capsys):
    assert main(["run", "--model", str(probe["model"]), "--source",
                 "rtsp://user:secret@127.0.0.1:9/x", "--no-window", "--reconnect", "0"]) == 2
    err = capsys.readouterr().err
    assert "rtsp://***@127.0.0.1:9/x" in err and "secret" not in err


@pytest.mark.parametrize("name, part", [("Pole", "Pole"), ("../../x", "_.._x"),
                                        ("Sign Symbol", "Sign_Symbol"), ("..", "_"),
                                        ("a/b\\c", "a_b_c")])
def test_class_names_become_safe_file_names(name, part):
    assert safe_file_part(name) == part


class FiniteStream:
    """A URL to a 3-frame video file: it reports its length, then ends (and would replay)."""

    def __init__(self):
        self.read_count = 0

    def isOpened(self):
        return True

    def get(self, prop):
        import cv2

        return 3 if prop == cv2.CAP_PROP_FRAME_COUNT else 30.0

    def read(self):
        self.read_count += 1
        if self.read_count > 3:
            return False, None
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self):
        pass


def test_a_finished_file_behind_a_url_is_not_replayed():
    opened = []

    def opener(target):
        opened.append(target)
        return FiniteStream()

    source = LiveSource("http://host/clip.mp4", opener=opener, max_retries=3, backoff_s=0.01)
    frames = list(source)
    source.close()
    assert len(opened) == 1 and source.reconnects == 0
    assert 1 <= len(frames) + source.dropped <= 3


def test_ctrl_c_while_loading_is_one_line(monkeypatch, capsys):
    import fcnedge
    import fcnedge.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(fcnedge.cli, "main", interrupted)
    assert fcnedge.console_main() == fcnedge.INTERRUPTED_EXIT
    assert capsys.readouterr().err == "fcnedge: interrupted\n"


def test_convert_scratch_stays_inside_out_and_goes(tmp_path):
    import tempfile

    from fcnedge.convert.converter import scratch_tempdir

    with scratch_tempdir(tmp_path / ".scratch") as folder:
        made = Path(tempfile.mkdtemp())
        assert made.parent == folder
    assert not folder.exists() and tempfile.gettempdir() != str(folder)


def test_a_resume_clears_what_killed_saves_left(tmp_path):
    from fcnedge.train.run_folder import remove_leftovers

    (tmp_path / ".save-abc").mkdir()
    (tmp_path / ".save-abc" / "full.weights.h5").write_text("x")
    (tmp_path / ".last.x1.tmp.weights.h5").write_text("x")
    (tmp_path / "last.weights.h5").write_text("keep")
    remove_leftovers(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.weights.h5"]
