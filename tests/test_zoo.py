"""The bundled models by name: `fcnedge models` and `--model NAME`."""
import json

import pytest

from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.tflite_metadata import read_embedded_card
from fcnedge.runtime.zoo import format_zoo, models_dir, read_zoo, resolve_model, zoo_rows
from fcnedge.train.run_folder import run_weights


def test_the_zoo_names_bundled_files_with_their_cards():
    zoo = read_zoo()
    assert list(zoo) == ["fast", "balanced", "accurate"]
    for model in zoo.values():
        assert model.path().is_file() and model.path().with_suffix(".json").is_file(), model
        card, why = read_embedded_card(model.path())
        assert why is None and card == json.loads(model.path().with_suffix(".json").read_text())
        run = models_dir() / model.path().stem.rsplit("_", 1)[0]   # its float weights
        assert run_weights(run) is not None and (run / "run.json").is_file(), run


def test_the_zoo_is_a_front_no_model_slower_and_less_accurate_than_another():
    rows = zoo_rows()
    # Ranked on frames none of them trained on: a refit's own val figure is on its training data.
    for faster, slower in zip(rows, rows[1:]):
        assert faster["int8_ms"] < slower["int8_ms"]
        assert faster["unseen_val_miou"] < slower["unseen_val_miou"]
    # fast: at most a third of the accurate model's model-only time (one bench run).
    assert rows[0]["int8_ms"] <= rows[-1]["int8_ms"] / 3


@pytest.mark.parametrize("name", ["fast", "balanced", "accurate"])
def test_each_zoo_models_card_is_reproduced_by_eval(name, camvid_root, tmp_path, capsys):
    model = read_zoo()[name].path()
    card = json.loads(model.with_suffix(".json").read_text())
    code = main(["eval", "--model", name, "--data", str(camvid_root), "--split", "val",
                 "--out", str(tmp_path / "eval"), "--json", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["miou"] == pytest.approx(card["verification"]["miou"], abs=0.5)


def test_models_lists_figures_read_from_the_cards(tmp_path, capsys):
    assert main(["models", "--json", str(tmp_path / "zoo.json")]) == 0
    out = capsys.readouterr().out
    rows = {row["name"]: row for row in json.loads((tmp_path / "zoo.json").read_text())["models"]}
    card = json.loads(read_zoo()["accurate"].path().with_suffix(".json").read_text())
    accurate = rows["accurate"]
    assert accurate["input_size"] == "x".join(str(v) for v in card["input"]["size"])
    assert accurate["val_miou"] == card["verification"]["miou"]
    assert f"| accurate | {accurate['input_size']} |" in out and "held-out mIoU" in out
    # What each bundled run trained on, from its card; a refit is ranked by its recipe's
    # figure on frames that recipe never saw, not by its own val.
    for row in rows.values():
        card_path = read_zoo()[row["name"]].path().with_suffix(".json")
        trained = json.loads(card_path.read_text())["training"].get("train_splits", ["train"])
        assert row["trained_on"] == "+".join(trained)
        if "val" in trained:
            assert row["unseen_val_miou"] == read_zoo()[row["name"]].unseen_val_miou
            assert row["unseen_val_miou"] < row["val_miou"]
        else:
            assert row["unseen_val_miou"] == row["val_miou"]
    assert "| trained on |" in out and "| unseen val mIoU |" in out


def test_a_name_resolves_to_the_bundled_file_and_a_path_wins(tmp_path, monkeypatch):
    assert resolve_model("accurate") == str(models_dir() / read_zoo()["accurate"].file)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accurate").mkdir()
    assert resolve_model("accurate") == "accurate"
    with pytest.raises(InputError, match=r"^models fastest: not found \(neither a file nor a "
                                         r"bundled model: fast, balanced, accurate"):
        resolve_model("fastest", "models")
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


def test_a_refit_is_listed_as_trained_on_its_splits_and_ranked_by_its_recipe(tmp_path):
    entry = {"name": "refit", "file": "refit.tflite", "summary": "s", "gflops": 1.0,
             "int8_ms": 1.0, "int8_ms_on": "here", "held_out_miou": None, "held_out_on": None,
             "unseen_val_miou": 65.0, "unseen_val_on": "the recipe on train alone"}
    plain = {**entry, "name": "plain", "file": "plain.tflite", "unseen_val_miou": None,
             "unseen_val_on": None}
    (tmp_path / "zoo.json").write_text(json.dumps({"models": [entry, plain]}))
    # The cards beside the files (none inside them: there are no files).
    (tmp_path / "refit.json").write_text(json.dumps({
        "training": {"train_splits": ["train", "val"]}, "verification": {"miou": 80.0}}))
    (tmp_path / "plain.json").write_text(json.dumps({"verification": {"miou": 60.0}}))
    refit, plain = zoo_rows(tmp_path)
    assert refit["trained_on"] == "train+val" and refit["val_miou"] == 80.0
    assert refit["unseen_val_miou"] == 65.0
    # A model that never trained on val is its own unseen figure.
    assert plain["trained_on"] == "train" and plain["unseen_val_miou"] == 60.0
    table = format_zoo([refit, plain])
    assert "| refit |  | 1.0 |  | train+val |  | 65.0 | 1.0 |" in table
    assert "unseen val of refit (trained on val; its own val reads 80.0): the recipe" in table
