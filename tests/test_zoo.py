"""The bundled models by name: `fcnedge models` and `--model NAME`."""
import json

import pytest

from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.zoo import models_dir, read_zoo, resolve_model


def test_the_zoo_names_bundled_files_with_their_cards():
    zoo = read_zoo()
    assert "accurate" in zoo
    for model in zoo.values():
        assert model.path().is_file() and model.path().with_suffix(".json").is_file(), model


def test_models_lists_figures_read_from_the_cards(tmp_path, capsys):
    assert main(["models", "--json", str(tmp_path / "zoo.json")]) == 0
    out = capsys.readouterr().out
    rows = {row["name"]: row for row in json.loads((tmp_path / "zoo.json").read_text())["models"]}
    card = json.loads(read_zoo()["accurate"].path().with_suffix(".json").read_text())
    accurate = rows["accurate"]
    assert accurate["input_size"] == "x".join(str(v) for v in card["input"]["size"])
    assert accurate["val_miou"] == card["verification"]["miou"]
    assert f"| accurate | {accurate['input_size']} |" in out and "held-out mIoU" in out


def test_a_name_resolves_to_the_bundled_file_and_a_path_wins(tmp_path, monkeypatch):
    assert resolve_model("accurate") == str(models_dir() / read_zoo()["accurate"].file)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accurate").mkdir()
    assert resolve_model("accurate") == "accurate"
    with pytest.raises(InputError, match=r"--models fastest: not found \(neither a file nor a "
                                         r"bundled model: accurate"):
        resolve_model("fastest", "--models")
    assert resolve_model("missing/model.tflite") == "missing/model.tflite"   # its own error later


def test_run_takes_a_name(street_video, tmp_path, capsys):
    assert main(["run", "--model", "accurate", "--source", str(street_video), "--max-frames",
                 "1", "--no-window", "--json", str(tmp_path / "run.json")]) == 0
    assert json.loads((tmp_path / "run.json").read_text())["model"].endswith(
        read_zoo()["accurate"].file)


def test_a_broken_zoo_file_is_an_input_error_naming_it(tmp_path):
    (tmp_path / "zoo.json").write_text('{"models": [{"name": "x"}]}')
    with pytest.raises(InputError, match=f"{tmp_path / 'zoo.json'}: not a readable model zoo"):
        read_zoo(tmp_path)
