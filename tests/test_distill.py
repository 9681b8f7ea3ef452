"""Knowledge distillation (`fcnedge train --teacher`): the loss, the student's files, a run."""
import json

import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.train.distill import (DistilledFCN, distillation_term, pack_targets,
                                   unpack_targets)
from fcnedge.train.losses import segmentation_loss
from fcnedge.train.models import ModelConfig, build_fcn
from fcnedge.train.tfcompat import tf
from fcnedge.train.trainer import train
from fcnedge.train.warm_start import run_lineage
from fcnedge.train.weights import load_trained_model
from test_training import INPUT, small_config

CLASSES = 11


def _logits(seed, shape=(2, 4, 6, CLASSES)):
    return tf.constant(np.random.default_rng(seed).normal(0, 2, shape).astype(np.float32))


def test_packed_targets_give_back_the_labels_and_the_teacher():
    masks = tf.constant(np.random.default_rng(0).integers(0, CLASSES + 1, (2, 4, 6)), tf.uint8)
    teacher = _logits(1)
    labels, logits = unpack_targets(pack_targets(masks, teacher), CLASSES)
    np.testing.assert_array_equal(labels.numpy(), masks.numpy())
    np.testing.assert_array_equal(logits.numpy(), teacher.numpy())
    # Labels alone pass through: the same loss serves runs with and without a teacher.
    alone, none = unpack_targets(masks[..., None], CLASSES)
    assert none is None and alone.shape == (2, 4, 6, 1)


def test_distillation_term_is_zero_only_where_the_student_agrees():
    teacher = _logits(1)
    same = distillation_term(teacher, teacher, 2.0).numpy()
    np.testing.assert_allclose(same, 0.0, atol=1e-5)
    other = distillation_term(teacher, _logits(2), 2.0).numpy()
    assert other.shape == (2, 4, 6) and (other > 1e-3).all()
    # A shift common to every class changes no distribution.
    np.testing.assert_allclose(distillation_term(teacher, teacher + 5.0, 3.0).numpy(), 0.0,
                               atol=1e-4)


def test_the_loss_mixes_the_labels_and_the_teacher_by_the_weight():
    rng = np.random.default_rng(3)
    masks = tf.constant(rng.integers(0, CLASSES, (2, 4, 6)), tf.uint8)
    teacher, student = _logits(4), _logits(5)
    packed = pack_targets(masks, teacher)
    weights = np.linspace(0.5, 2.0, CLASSES).astype(np.float32)
    plain = segmentation_loss("ce", weights, CLASSES)(masks[..., None], student).numpy()
    term = distillation_term(teacher, student, 2.0).numpy()
    for weight in (0.0, 0.3, 1.0):
        mixed = segmentation_loss("ce", weights, CLASSES, distill=(weight, 2.0))(packed, student)
        np.testing.assert_allclose(mixed.numpy(), (1 - weight) * plain + weight * term,
                                   rtol=1e-5, atol=1e-6)


def test_a_distilled_student_saves_as_a_plain_fcn_without_its_teacher(tmp_path):
    config = ModelConfig(alpha=0.35, input_hw=INPUT, num_classes=CLASSES)
    teacher = build_fcn(ModelConfig(alpha=0.5, input_hw=INPUT, num_classes=CLASSES))
    student = build_fcn(config)
    distilled = DistilledFCN(student, teacher)
    assert len(distilled.weights) == len(student.weights)
    path = tmp_path / "student.weights.h5"
    distilled.save_weights(str(path))
    plain = build_fcn(config)
    plain.load_weights(str(path))
    images = tf.constant(np.random.default_rng(6).uniform(0, 255, (1, *INPUT, 3)), tf.float32)
    np.testing.assert_allclose(plain(images).numpy(), distilled(images).numpy(), atol=1e-5)
    checkpointed = tf.train.Checkpoint(model=distilled)
    saved = checkpointed.write(str(tmp_path / "ckpt" / "c"))
    names = [name for name, _ in tf.train.list_variables(saved)]
    assert len([n for n in names if "/.ATTRIBUTES/VARIABLE_VALUE" in n]) == len(student.weights)


@pytest.fixture(scope="module")
def teacher_run(synth_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    wider = ModelConfig(alpha=0.5, input_hw=INPUT)
    return train(small_config(synth_data, out, model=wider, epochs=10), verbose=0)


def test_a_student_taught_by_the_teacher_alone_learns_its_classes(teacher_run, synth_data,
                                                                   tmp_path):
    # Weight 1: the labels add nothing to the loss, so every point above chance (0.2-3.5 in
    # the first epochs) was learned from the teacher's scores. Five epochs left the student on
    # the steep part of its curve (7.6-13.9 over five runs, under a teacher of 32.3); seven
    # read 21.8-23.4 over four.
    out = tmp_path / "student"
    result = train(small_config(synth_data, out, epochs=7, teacher=str(teacher_run.run_dir),
                                distill_weight=1.0), verbose=0)
    assert teacher_run.best_miou > 20, teacher_run.history[-1]
    assert result.best_miou > 12, (result.best_miou, teacher_run.best_miou)
    stored = json.loads((out / "run.json").read_text())["train"]
    assert (stored["teacher"], stored["distill_weight"]) == (str(teacher_run.run_dir), 1.0)
    # Its records keep what taught it, and its weights load as the plain FCN it is.
    teacher_records = run_lineage(out / "teacher")
    assert teacher_records[-1][0]["model"]["alpha"] == 0.5
    assert load_trained_model(out).config.alpha == 0.35
    resumed = train(small_config(synth_data, out, epochs=8), resume=True, verbose=0)
    assert [h["epoch"] for h in resumed.history] == list(range(1, 9))


def test_teacher_errors_name_the_teacher_and_write_nothing(teacher_run, synth_data, tmp_path):
    with pytest.raises(InputError, match="teacher .*nowhere"):
        train(small_config(synth_data, tmp_path / "a", teacher=str(tmp_path / "nowhere")),
              verbose=0)
    run_file = teacher_run.run_dir / "run.json"
    other = tmp_path / "three_classes"
    other.mkdir()
    info = json.loads(run_file.read_text())
    info["labels"]["names"] = [f"Other{i}" for i, _ in enumerate(info["labels"]["names"])]
    (other / "run.json").write_text(json.dumps(info))
    (other / "best.weights.h5").write_bytes((teacher_run.run_dir / "best.weights.h5").read_bytes())
    with pytest.raises(InputError, match="teacher .*scores the classes"):
        train(small_config(synth_data, tmp_path / "b", teacher=str(other)), verbose=0)
    for name in "ab":
        assert not (tmp_path / name).exists() or not list((tmp_path / name).iterdir()), name
    with pytest.raises(InputError, match="strategy: got 'mirrored' with a teacher"):
        small_config(synth_data, tmp_path / "c", teacher=str(other), strategy="mirrored")


@pytest.mark.parametrize("flags, expected", [
    (("--distill-weight", "0.3"), "--distill-weight/--distill-temperature: .*with --teacher"),
    (("--distill-weight", "1.5", "--teacher", "x"), "--distill-weight: .*1.5"),
    (("--teacher", "nowhere"), "--teacher nowhere: expected a run folder"),
])
def test_distillation_flags_are_checked_before_any_work(synth_data, tmp_path, capsys, flags,
                                                        expected):
    import re

    from fcnedge.cli import main

    out = tmp_path / "run"
    code = main(["train", "--data", str(synth_data), "--out", str(out), "--input-size",
                 "96x128", "--epochs", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and re.search(expected, err), err
    assert not out.exists() or not list(out.iterdir())
