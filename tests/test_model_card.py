"""The model card's text: its train commands parse back, its paths are portable, the bundled
card is the generator's output, and one flag map serves cards and errors."""
import json

from fcnedge.runtime.zoo import read_zoo


def test_model_card_train_command_parses_back_to_the_run_config():
    import shlex

    from fcnedge.benchmarks.model_card import _train_command
    from fcnedge.cli import build_parser
    from fcnedge.train.models import ModelConfig
    from fcnedge.train.config import AugmentConfig
    from fcnedge.train.trainer import TrainConfig

    # Every flag the card may add, away from its default: the printed command, parsed by
    # `fcnedge train`'s own parser, must give back what the run stored.
    model = ModelConfig(arch="fcn2s", input_hw=(96, 128), alpha=0.5, decoder="transpose",
                        bn_momentum=0.99, dropout=0.2)
    config = TrainConfig(
        data="data", out="runs/x", model=model, epochs=3, batch_size=2, optimizer="sgd",
        learning_rate=0.01, weight_decay=5e-4, schedule="poly", warmup_epochs=0.5,
        class_weight_power=0.75, loss="ce+lovasz", seed=7, init_weights="runs/prev",
        teacher="runs/big", distill_weight=0.25, distill_temperature=4.0, save_every=3,
        augment=AugmentConfig(scale_min=0.5, scale_max=2.0, paste_classes=("Pole", "Bicyclist"),
                              paste_probability=0.25))
    run = {"model": model.to_dict(), "train": json.loads(json.dumps(config.to_dict()))}
    args = build_parser().parse_args(shlex.split(_train_command(run))[1:])
    assert (args.arch, args.alpha, args.input_size, args.decoder) == ("fcn2s", 0.5, "96x128",
                                                                      "transpose")
    assert (args.bn_momentum, args.dropout, args.optimizer, args.lr) == (0.99, 0.2, "sgd", 0.01)
    assert (args.weight_decay, args.schedule, args.warmup_epochs) == (5e-4, "poly", 0.5)
    assert (args.class_weight_power, args.loss, args.seed) == (0.75, "ce+lovasz", 7)
    assert (args.scale_min, args.scale_max) == (0.5, 2.0)
    assert (args.paste_classes, args.paste_prob) == ("Pole,Bicyclist", 0.25)
    assert args.init_weights == "runs/prev" and not args.no_augment and args.save_every == 3
    assert (args.teacher, args.distill_weight, args.distill_temperature) == ("runs/big", 0.25, 4.0)
    # And the flags, read back the way `fcnedge train` reads them, give the very config.
    from dataclasses import replace

    from fcnedge.train.cli import config_from_args

    rebuilt = config_from_args(args, args.epochs, model.num_classes)
    assert rebuilt == replace(config, data="$CAMVID")
    # A run at the defaults prints none of the optional flags.
    plain = TrainConfig(data="data", out="runs/y", model=ModelConfig(input_hw=(96, 128)))
    command = _train_command({"model": plain.model.to_dict(), "train": plain.to_dict()})
    for flag in ("--lr", "--paste", "--scale", "--seed", "--decoder", "--optimizer", "--loss",
                 "--save-every"):
        assert flag not in command, command
    unaugmented = plain.to_dict()
    unaugmented["augment"]["enabled"] = False
    assert _train_command({"model": plain.model.to_dict(), "train": unaugmented}).endswith(
        "--no-augment --quiet")


def test_model_card_names_runs_as_the_repository_does_not_as_the_training_machine_did():
    from fcnedge.benchmarks.model_card import _train_command
    from fcnedge.train.models import ModelConfig
    from fcnedge.train.trainer import TrainConfig

    config = TrainConfig(data="/work/shared/camvid", out="/work/main/runs/refit",
                         model=ModelConfig(input_hw=(96, 128)),
                         init_weights="/home/me/models/trainval/stage1")
    command = _train_command({"model": config.model.to_dict(), "train": config.to_dict()})
    assert "--out runs/refit " in command and "--init-weights models/trainval/stage1 " in command
    assert "/work" not in command and "/home" not in command
    # A path with neither a runs/ nor a models/ folder is the user's own: left as it is.
    config = TrainConfig(data="d", out="/data/x", model=ModelConfig(input_hw=(96, 128)))
    assert "--out /data/x " in _train_command({"model": config.model.to_dict(),
                                               "train": config.to_dict()})


def test_the_bundled_models_card_is_the_generators_output():
    """models/README.md is generated (`make card`), never edited by hand."""
    from conftest import REPO
    from fcnedge.benchmarks.model_card import bundled_records, model_card

    run_dir = REPO / "models" / "camvid_fcn2s_mobilenetv2"
    converts, bench = bundled_records(run_dir, REPO / "benchmarks" / "published_bench.md")
    text = model_card(run_dir, converts, bench)
    assert text == (REPO / "models" / "README.md").read_text(encoding="utf-8")
    for section in ("## Intended use", "## Data", "## Accuracy", "## Limitations", "## Speed"):
        assert section in text
    assert "../shared" not in text
    # What the card says of unseen streets: its own held-out figures, or for a refit (val is
    # training data) the zoo's figure for its recipe trained on train alone.
    run = json.loads((run_dir / "run.json").read_text())
    if "val" in run["train"].get("train_splits", ["train"]):
        zoo = read_zoo(REPO / "models")
        accurate = next(m for m in zoo.values() if m.file == f"{run_dir.name}_int8-qat.tflite")
        assert f"unseen val: {accurate.unseen_val_miou:.2f}" in text
    else:
        assert "held-out mIoU" in text


def test_every_train_flag_maps_to_a_config_field_and_back():
    """config.TRAIN_FLAGS is the one flag <-> field map (cards, error messages): each of its
    flags is a `fcnedge train` flag, and each field a user can set has its flag there."""
    from dataclasses import fields

    import re

    from fcnedge.runtime.validate import OneLineParser, add_common
    from fcnedge.train.cli import add_parsers
    from fcnedge.train.config import TRAIN_FLAGS, AugmentConfig, ModelConfig, TrainConfig

    subparsers = OneLineParser(prog="fcnedge").add_subparsers()
    add_parsers(subparsers, add_common)
    train_flags = set(re.findall(r"--[a-z-]+", subparsers.choices["train"].format_help()))
    mapped = {(section, field) for section, field, _ in TRAIN_FLAGS}
    assert {flag for _, _, flag in TRAIN_FLAGS} <= train_flags
    # Not flags: the class count comes from the data, photometric jitter is fixed.
    unset = {("model", "num_classes"), *(("augment", name) for name in
             ("flip", "brightness", "contrast", "saturation", "hue"))}
    for section, config in (("model", ModelConfig), ("augment", AugmentConfig),
                            ("train", TrainConfig)):
        for field in fields(config):
            if field.name not in ("model", "augment") and (section, field.name) not in unset:
                assert (section, field.name) in mapped, (section, field.name)
