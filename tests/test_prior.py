"""Prior correction: the shift, the tau sweep, folding into the head, and the CLI end to end."""
import json
import shutil

import numpy as np
import pytest

from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import CAMVID
from fcnedge.runtime.metrics import scores_from_confusion
from fcnedge.train.prior import (PriorCorrection, choose_tau, log_class_weights,
                                 loss_logit_offset, prior_correction_shift,
                                 sweep_prior_correction)


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_shift_is_minus_tau_log_weight():
    log_weights = np.log(np.array([0.5, 1.0, 4.0], np.float32))
    np.testing.assert_allclose(prior_correction_shift(log_weights, 0.5),
                               [0.5 * np.log(2), 0.0, -np.log(2)], atol=1e-6)
    assert not np.any(prior_correction_shift(log_weights, 0.0))


def test_sweep_finds_the_tau_that_undoes_the_weighting():
    # Logits that prefer the truth by 1 but carry log(w) on top, as a weighted loss leaves them:
    # the heavy classes win every pixel at tau 0 and tau 1 gives back the truth exactly.
    rng = np.random.default_rng(0)
    num = CAMVID.num_classes
    truth = rng.integers(0, num, (6, 8, 10)).astype(np.uint8)
    log_weights = np.linspace(-1.5, 1.5, num).astype(np.float32)
    logits = np.eye(num, dtype=np.float32)[truth] + log_weights
    scores = sweep_prior_correction(lambda batch: logits[batch], np.arange(len(truth)),
                                    list(truth), CAMVID, log_weights, (0.0, 0.5, 1.0, 2.0),
                                    batch_size=4)
    assert scores[1.0].mean_iou == pytest.approx(1.0)
    assert scores[0.0].mean_iou < 0.5
    assert choose_tau(scores) == 1.0


def test_choose_tau_prefers_the_smaller_correction_on_a_tie():
    perfect = scores_from_confusion(np.eye(2, dtype=np.int64) * 10, ("a", "b"))
    worse = scores_from_confusion(np.array([[5, 5], [0, 10]]), ("a", "b"))
    assert choose_tau({-0.5: perfect, 0.25: perfect, 1.0: worse}) == 0.25


def test_log_class_weights_refuses_an_unweighted_run():
    with pytest.raises(InputError, match="without class weights"):
        log_class_weights({"class_weights": [1.0] * 11}, 11, "run.json")
    with pytest.raises(InputError, match="expected 11 positive class weights"):
        log_class_weights({"class_weights": [1.0, 2.0]}, 11, "run.json")


@pytest.mark.parametrize("kind", ["ce", "ce+lovasz"])
def test_fine_tuning_loss_keeps_a_folded_correction(kind):
    # QAT fine-tunes the corrected model with the run's weighted loss. One logit vector z shared
    # by every pixel: the weighted CE is minimal where softmax(z) ~ count * weight, i.e. at the
    # logits as trained. The corrected model outputs z + shift; the loss must see z there (zero
    # gradient) or fine-tuning walks the bias back and undoes the correction.
    from fcnedge.train.losses import segmentation_loss
    from fcnedge.train.tfcompat import tf

    counts, weights = np.array([60, 30, 10]), np.array([1.0, 2.0, 6.0], np.float32)
    labels = np.repeat(np.arange(3), counts).astype(np.int32).reshape(1, 1, -1)
    trained = np.log(counts * weights).astype(np.float32)
    correction = PriorCorrection(tau=1.0, log_class_weights=tuple(np.log(weights).tolist()),
                                 weights_file="best.weights.h5", weights_sha256="0" * 64,
                                 split="train", images=1)
    deployed = tf.Variable(np.broadcast_to(trained + correction.logit_shift,
                                           (1, 1, labels.shape[-1], 3)).copy())

    def pixel_gradient(offset):
        loss_fn = segmentation_loss(kind, weights, 3, logit_offset=offset)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(tf.constant(labels), deployed))
        return tape.gradient(loss, deployed).numpy().sum(axis=(0, 1, 2))

    offset = loss_logit_offset(correction.to_dict())
    np.testing.assert_allclose(offset, -correction.logit_shift)
    if kind == "ce":   # the Lovasz term has its own optimum; only CE's is known in closed form
        np.testing.assert_allclose(pixel_gradient(offset), 0.0, atol=1e-5)
    # Without the offset the gradient pulls the rare, heavy class's logit back up.
    drift = pixel_gradient(None)
    assert drift[2] < -1e-3
    assert loss_logit_offset(None) is None
    with pytest.raises(ValueError, match="logit offset"):
        segmentation_loss(kind, weights, 3, logit_offset=np.zeros(4))


@pytest.mark.parametrize("arch", ["fcn32s", "fcn8s"])
def test_folding_shifts_every_output_pixel_by_the_shift(arch):
    from fcnedge.train.models import ModelConfig, build_fcn
    from fcnedge.train.prior import fold_logit_shift

    model = build_fcn(ModelConfig(alpha=0.35, arch=arch, input_hw=(64, 96)))
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 96, 3)).astype(np.float32)
    before = model.predict(images, verbose=0)
    shift = np.linspace(-1, 1, model.output_shape[-1]).astype(np.float32)
    fold_logit_shift(model, arch, shift)
    after = model.predict(images, verbose=0)
    np.testing.assert_allclose(after - before, np.broadcast_to(shift, before.shape), atol=1e-4)


def test_correct_prior_then_eval_and_convert_use_it(converted, synth_data, tmp_path, capsys,
                                                    caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(converted[0], run)
    data = str(synth_data)
    code, out, err = run_cli(capsys, "correct-prior", "--model", str(run), "--data", data,
                             "--split", "val", "--taus", "1", "--json",
                             str(tmp_path / "prior.json"))
    assert code == 0, err
    swept = json.loads((tmp_path / "prior.json").read_text())
    assert swept["tau"] == 1.0 and "1 (chosen)" in out
    stored = json.loads((run / "prior_correction.json").read_text())
    assert stored["tau"] == 1.0 and stored["weights_file"] == "best.weights.h5"

    # eval folds it into the model: its scores are the sweep's at tau 1.
    code, out, err = run_cli(capsys, "eval", "--model", str(run), "--data", data,
                             "--json", str(tmp_path / "corrected.json"))
    assert code == 0, err
    corrected = json.loads((tmp_path / "corrected.json").read_text())
    assert corrected["prior_correction"]["tau"] == 1.0 and "prior correction tau 1" in out
    assert corrected["miou"] == pytest.approx(swept["sweep"][0]["miou"], abs=0.1)
    code, _, err = run_cli(capsys, "eval", "--model", str(run), "--data", data, "--uncorrected",
                           "--json", str(tmp_path / "raw.json"))
    assert code == 0, err
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert raw["prior_correction"] is None
    assert raw["confusion_matrix"] != corrected["confusion_matrix"]
    assert (tmp_path / "eval-run-val-uncorrected" / "scores.json").is_file()

    # Every exported format carries it, and scores as the corrected Keras model does.
    code, _, err = run_cli(capsys, "convert", "--model", str(run), "--data", data, "--out",
                           str(tmp_path / "conv"), "--formats", "float32", "--json",
                           str(tmp_path / "conv.json"))
    assert code == 0, err
    card = json.loads(next((tmp_path / "conv").glob("*float32*.json")).read_text())
    assert card["prior_correction"] == {"tau": 1.0, "split": "val", "images": 16}
    assert card["verification"]["miou"] == pytest.approx(corrected["miou"], abs=0.1)

    # QAT fine-tunes the corrected model with a loss offset by minus the shift (see
    # test_fine_tuning_loss_keeps_a_folded_correction for why).
    from fcnedge.convert import qat
    passed = {}
    real_fine_tune = qat.fine_tune

    def spy(*args, **kwargs):
        passed.update(kwargs)
        return real_fine_tune(*args, **kwargs)

    monkeypatch.setattr(qat, "fine_tune", spy)
    code, _, err = run_cli(capsys, "convert", "--model", str(run), "--data", data, "--out",
                           str(tmp_path / "conv_qat"), "--formats", "int8-qat", "--qat-epochs",
                           "1", "--calib-samples", "8")
    assert code == 0, err
    np.testing.assert_allclose(passed["logit_offset"],
                               -PriorCorrection.from_dict(stored).logit_shift)

    # Weights it was not computed for are not shifted: a warning, and the model as trained.
    stored["weights_sha256"] = "0" * 64
    (run / "prior_correction.json").write_text(json.dumps(stored))
    code, _, err = run_cli(capsys, "eval", "--model", str(run), "--data", data,
                           "--json", str(tmp_path / "stale.json"))
    assert code == 0 and "computed for other weights" in caplog.text
    assert json.loads((tmp_path / "stale.json").read_text())["prior_correction"] is None


def test_correct_prior_bad_input_is_exit_2(converted, synth_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "correct-prior", "--model", str(converted[0]), "--data",
                           str(synth_data), "--taus", "half")
    assert code == 2 and "--taus: got 'half'" in err and err.count("\n") == 1
    run = tmp_path / "unweighted"
    shutil.copytree(converted[0], run)
    info = json.loads((run / "run.json").read_text())
    info["class_weights"] = [1.0] * len(info["class_weights"])
    (run / "run.json").write_text(json.dumps(info))
    code, _, err = run_cli(capsys, "correct-prior", "--model", str(run), "--data",
                           str(synth_data))
    assert code == 2 and "trained without class weights" in err
    assert not (run / "prior_correction.json").exists()
