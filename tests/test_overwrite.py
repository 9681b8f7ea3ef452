"""--overwrite removes only an earlier output of the same command, and only after its inputs
have been checked: a probe lost runs and datasets that sat inside --out."""
from __future__ import annotations

import shutil

import pytest

from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import prepare_output_folder


def test_an_earlier_output_is_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    (out / "old.txt").write_text("x")
    prepare_output_folder(out, overwrite=True, owned_marker="run.json")
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.parametrize("inside", ["data", "data/train", "."])
def test_a_folder_holding_an_input_is_never_replaced(tmp_path, inside):
    out = tmp_path / "out"
    (out / "data" / "train").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    with pytest.raises(InputError, match="`overwrite` would delete .* which this command reads"):
        prepare_output_folder(out, overwrite=True, inputs=(None, str(out / inside)),
                              owned_marker="run.json")
    assert (out / "data" / "train").is_dir()


def test_a_folder_this_command_did_not_write_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="replaces only an earlier output .*bench.json"):
        prepare_output_folder(out, overwrite=True, owned_marker="bench.json")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_an_out_that_is_a_file_or_unwritable_is_refused_before_work(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(InputError, match="^out .*file: is a file"):
        prepare_output_folder(path, overwrite=True)
    with pytest.raises(InputError, match="^out .*: cannot write there"):
        prepare_output_folder(path / "below", overwrite=False)


def _one_line_exit_2(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_train_overwrite_keeps_a_dataset_inside_out(synth_data, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(synth_data, out / "data")
    (out / "run.json").write_text("{}")
    err = _one_line_exit_2(capsys, ["train", "--data", str(out / "data"), "--out", str(out),
                                    "--input-size", "64x96", "--epochs", "1", "--overwrite"])
    assert "would delete" in err
    assert len(list((out / "data" / "train").iterdir())) == 64


def test_train_with_bad_data_leaves_the_old_run(synth_data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"earlier": "run"}')
    err = _one_line_exit_2(capsys, ["train", "--data", str(synth_data), "--out", str(out),
                                    "--input-size", "64x96", "--epochs", "1", "--overwrite",
                                    "--val-drives", "nosuchdrive"])
    assert "--val-drives: no frame of drive nosuchdrive" in err
    assert (out / "run.json").read_text() == '{"earlier": "run"}'


def test_convert_with_a_corrupt_model_keeps_the_run_in_out(synth_data, tmp_path, capsys):
    out = tmp_path / "out"
    run = out / "run"
    run.mkdir(parents=True)
    (run / "run.json").write_text("not json")
    (run / "best.weights.h5").write_bytes(b"corrupt")
    (out / "convert.json").write_text("{}")
    err = _one_line_exit_2(capsys, ["convert", "--model", str(run), "--data", str(synth_data),
                                    "--out", str(out), "--formats", "float32", "--overwrite"])
    assert str(run) in err
    assert (run / "best.weights.h5").read_bytes() == b"corrupt"


def test_bench_overwrite_keeps_the_dataset(tflite_models, synth_data, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(synth_data, out / "data")
    (out / "bench.json").write_text("{}")
    err = _one_line_exit_2(capsys, ["bench", "--models", str(tflite_models["float32"]),
                                    "--data", str(out / "data"), "--out", str(out),
                                    "--overwrite"])
    assert "would delete" in err
    assert (out / "data" / "train").is_dir()
