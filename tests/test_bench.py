"""Benchmark: one process per row, every report file, failed rows, percentiles, Pareto front."""
import csv
import json
import shutil
import stat
from pathlib import Path

import pytest

from fcnedge.benchmarks.bench import _run_row, bench, pareto_front
from fcnedge.benchmarks.options import BenchOptions
from fcnedge.cli import main
from fcnedge.runtime.errors import InputError
from fcnedge.train.data import find_pairs

@pytest.fixture(scope="module")
def benched(converted, synth_data, street_video, tmp_path_factory):
    run, result = converted
    paths = {row["format"]: row["path"] for row in result["rows"]}
    folder = tmp_path_factory.mktemp("bench")
    models = (paths["float32"], paths["int8-ptq"], paths["int8-qat"], str(run))
    report = bench(BenchOptions(models=models, data=str(synth_data), out=str(folder / "out"),
                                runs=5, warmup=1, stream=str(street_video)))
    return result, report, folder / "out"


def test_every_report_file_is_written_and_parses(benched):
    _, report, out = benched
    assert set(report["files"]) == {"bench.md", "bench.csv", "bench.json", "pareto.png"}
    assert json.loads((out / "bench.json").read_text())["rows"] == report["rows"]
    with open(out / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["format"] for row in rows] == ["float32", "int8-ptq", "int8-qat",
                                               "keras float32"]
    table = (out / "bench.md").read_text().splitlines()
    assert sum(line.startswith("| ") for line in table) == 1 + 4      # header + one per model
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = report["header"]
    assert header["cores"] >= 1 and "ai-edge-litert" in header["libraries"] and header["cpu"]
    # Thread counts are explicit (LiteRT's unset default is one thread, not "all").
    assert header["threads"] >= 1 and header["stream_threads"] >= 1
    assert isinstance(header["cpu_int8_features"], list)
    columns = next(line for line in table if line.startswith("| format"))
    assert "stream/invoke %" in columns and "cold start s" in columns
    # The whole split was scored, and the table says on how many images.
    val_images = len(find_pairs(report["header"]["data"], "val"))
    assert header["images"] == val_images and not header["limited"]
    assert f"split 'val' ({val_images} images);" in (out / "bench.md").read_text()


def test_stream_columns_for_tflite_rows(benched, street_video):
    import cv2

    _, report, _ = benched
    capture = cv2.VideoCapture(str(street_video))
    video_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    threads = report["header"]["stream_threads"]
    for row in report["rows"]:
        if row["status"] != "ok" or row["format"] == "keras float32":
            assert not row.get("stream") and not row.get("cold_start_s"), row["format"]
            continue
        streamed = row["stream"]
        assert streamed["frames"] == video_frames and streamed["threads"] == threads
        assert streamed["fps"] > 0 and streamed["invoke_only_fps"] > 0
        assert streamed["ratio"] == pytest.approx(streamed["fps"] / streamed["invoke_only_fps"],
                                                  abs=1e-3)
        assert set(streamed["stages_p50_ms"]) == {"capture", "preprocess", "invoke",
                                                  "postprocess", "draw"}
        assert row["cold_start_s"] > 0


def test_rows_measure_accuracy_like_eval_and_speed(benched):
    converted_result, report, _ = benched
    rows = {row["format"]: row for row in report["rows"] if row["status"] == "ok"}
    verified = {row["format"]: row["miou"] for row in converted_result["rows"]}
    for fmt in ("float32", "int8-ptq", "int8-qat"):
        assert rows[fmt]["miou"] == verified[fmt], fmt          # the metric code eval uses
        assert rows[fmt]["tensorflow_imported"] is False         # the runtime's footprint only
        assert rows[fmt]["model_only_ms"]["count"] == 5
        assert rows[fmt]["end_to_end_ms"]["p50"] > 0 and rows[fmt]["peak_rss_mb"] > 0
    keras = rows["keras float32"]
    assert keras["device"].startswith(("CPU", "GPU")) and keras["miou"] == pytest.approx(
        converted_result["keras_miou"], abs=0.05)
    assert rows["float32"]["vs_float32_tflite"] == 1.0 and keras["vs_keras"] == 1.0
    assert rows["int8-qat"]["vs_keras"] is not None


@pytest.mark.parametrize("problem", ["truncated", "one-dimensional", "run without weights"])
def test_a_model_no_row_could_run_is_refused_before_any_row(converted, synth_data, tmp_path,
                                                            tflite_models, problem):
    run, result = converted
    paths = {row["format"]: row["path"] for row in result["rows"]}
    if problem == "truncated":
        bad = tmp_path / "corrupt.tflite"
        bad.write_bytes(open(paths["int8-qat"], "rb").read()[:2000])
    elif problem == "one-dimensional":
        bad = tmp_path / "vector.tflite"
        bad.write_bytes(_vector_model())
    else:
        bad = tmp_path / "run"
        bad.mkdir()
        (bad / "run.json").write_text((run / "run.json").read_text())
    with pytest.raises(InputError, match=rf"models .*{bad.name}"):
        bench(BenchOptions(models=(paths["float32"], str(bad)), data=str(synth_data),
                           out=str(tmp_path / "out"), runs=1, warmup=0))
    assert not (tmp_path / "out").exists()


def _vector_model() -> bytes:
    from fcnedge.train.tfcompat import tf

    spec = tf.TensorSpec([1, 8], tf.float32)
    concrete = tf.function(lambda x: x * 2.0).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert()


def test_failed_rows_make_the_command_fail_after_the_report():
    from fcnedge.benchmarks.cli import raise_for_failed_rows

    raise_for_failed_rows({"rows": [{"model": "a", "status": "ok"}]})
    with pytest.raises(RuntimeError, match=r"1 of 2 rows failed: b.tflite \(no GPU\)"):
        raise_for_failed_rows({"rows": [{"model": "a", "status": "ok"},
                                        {"model": "b.tflite", "status": "failed",
                                         "reason": "no GPU"}]})


def test_a_crashing_interpreter_process_becomes_a_failed_row(tmp_path, monkeypatch):
    # A stand-in for an interpreter that segfaults: the child kills itself with SIGSEGV.
    crasher = tmp_path / "crash.sh"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(crasher.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr("fcnedge.benchmarks.bench.sys.executable", str(crasher))
    row = _run_row({"model": "m.tflite"}, timeout_s=30)
    assert row["status"] == "failed" and "killed by signal 11" in row["reason"]


def test_a_row_whose_delegate_cannot_load_says_so_in_bench_flags(tmp_path, monkeypatch,
                                                                 tflite_models):
    from fcnedge.benchmarks import worker

    spec = {"model": str(tflite_models["int8"]), "kind": "tflite", "delegate": "edgetpu",
            "threads": 1}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    # Only the row's model is opened; its data and timings are not reached.
    monkeypatch.setattr(worker, "measure", worker.TfliteRow)
    assert worker.main([str(tmp_path / "spec.json"), str(tmp_path / "row.json")]) == 0
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["status"] == "failed"
    assert row["reason"].startswith("--delegate edgetpu: could not load libedgetpu.so.1")
    assert "Use `fcnedge run --fallback cpu`" in row["reason"]


def test_rows_sharing_a_format_get_distinct_labels():
    from fcnedge.benchmarks.report import distinct_labels

    rows = [{"format": "int8-qat", "model": "a/fast_int8-qat.tflite"},
            {"format": "int8-qat", "model": "b/accurate_int8-qat.tflite"},
            {"format": "float32", "model": "a/x_float32.tflite"},
            {"format": "float32", "model": "b/x_float32.tflite"},
            {"format": "keras float32", "model": "runs/r"}]
    distinct_labels(rows)
    assert [row["format"] for row in rows] == [
        "int8-qat (fast_int8-qat)", "int8-qat (accurate_int8-qat)",
        "float32 (a/x_float32.tflite)", "float32 (b/x_float32.tflite)", "keras float32"]


def test_pareto_front_keeps_the_undominated_rows():
    def row(name, ms, miou, status="ok"):
        return {"model": name, "status": status, "miou": miou, "model_only_ms": {"p50": ms}}

    rows = [row("slow-good", 10, 60), row("fast-bad", 2, 40), row("dominated", 12, 50),
            row("mid", 5, 55), row("broken", 1, None, "failed")]
    assert [r["model"] for r in pareto_front(rows)] == ["fast-bad", "mid", "slow-good"]


def test_min_miou_floor_exits_1(converted, synth_data, tmp_path, capsys):
    _, result = converted
    path = next(row["path"] for row in result["rows"] if row["format"] == "int8-ptq")
    code = main(["bench", "--models", path, "--data", str(synth_data), "--out",
                 str(tmp_path / "b"), "--runs", "2", "--limit", "2", "--min-miou", "100"])
    assert code == 1 and "below the floor" in capsys.readouterr().err


BAD_BENCH = [
    ("missing model", ["--models", "{tmp}/missing.tflite"], "missing.tflite: not found"),
    ("no runs", ["--runs", "0"], "--runs: got 0"),
    ("empty split", ["--data", "{empty}"], "val"),
    ("a dataset as model", ["--models", "{data}"],
     "expected a .tflite file or a training run folder"),
    ("missing stream", ["--stream", "{tmp}/no.mp4"], "--stream"),
    ("live stream", ["--stream", "0"], "live source"),
    ("no stream threads", ["--stream-threads", "0"], "--stream-threads: got 0"),
]


@pytest.mark.parametrize("name,extra,message", BAD_BENCH, ids=[c[0] for c in BAD_BENCH])
def test_bad_bench_inputs(name, extra, message, converted, synth_data, tmp_path, capsys):
    _, result = converted
    empty = tmp_path / "empty"
    (empty / "val").mkdir(parents=True)
    (empty / "valannot").mkdir()
    argv = {"--models": result["rows"][0]["path"], "--data": str(synth_data),
            "--out": str(tmp_path / "o")}
    for flag, value in zip(extra[::2], extra[1::2]):
        argv[flag] = value.format(tmp=tmp_path, empty=empty, data=synth_data)
    code = main(["bench", *[item for pair in argv.items() for item in pair]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_bench_options_need_a_model():
    with pytest.raises(InputError, match="no models given"):
        BenchOptions(models=(), data=".", out=".")


def test_model_card_is_written_from_the_records(benched, converted, tmp_path):
    from fcnedge.benchmarks.model_card import main as card_main

    run, result = converted
    _, report, out = benched
    convert_json = tmp_path / "convert.json"
    convert_json.write_text(json.dumps(result))
    assert card_main([str(run), str(out / "bench.json"), str(tmp_path / "card.md"),
                      str(convert_json)]) == 0
    text = (tmp_path / "card.md").read_text()
    assert f"| Keras float32 | | {result['keras_miou']:.2f} | |" in text
    assert "| int8-qat |" in text and "| Pedestrian |" in text and "fcnedge train" in text
    assert f"`{run.name}_int8-qat.tflite`" in text and "--batch-size" in text


def test_model_card_tells_a_prior_correction_apart_from_the_weights_as_trained(
        benched, converted, tmp_path):
    from fcnedge.benchmarks.model_card import model_card

    run, result = converted
    _, report, _ = benched
    corrected = tmp_path / run.name
    shutil.copytree(run, corrected)
    (corrected / "prior_correction.json").write_text(json.dumps(
        {"tau": 0.75, "split": "train", "images": 64, "sweep": [{"tau": 0.0}, {"tau": 0.75}]}))
    text = model_card(corrected, [result], report)
    assert (f"fcnedge correct-prior --model models/{run.name} --data $CAMVID "
            "--split train --taus 0,0.75\n") in text
    assert "tau 0.75, chosen by mIoU on the train split (64 images)" in text
    assert "| Keras as trained (best epoch) |" in text and "; prior_correction.json" in text
    assert "tau" not in model_card(run, [result], report)


def test_model_card_of_a_warm_started_run_tells_every_stage(benched, converted, tmp_path):
    from fcnedge.benchmarks.model_card import model_card

    run, result = converted
    _, report, _ = benched
    first = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    second = json.loads(json.dumps(first))
    second["train"].update(learning_rate=0.001, init_weights="runs/stage1", epochs=3,
                           loss="ce+lovasz")
    first_h, first_w = first["model"]["input_hw"]
    second["model"]["input_hw"] = [2 * first_h, 2 * first_w]
    staged = tmp_path / "staged"
    (staged / "init").mkdir(parents=True)
    (staged / "init" / "run.json").write_text(json.dumps(first))
    (staged / "init" / "history.json").write_text(json.dumps(history))
    (staged / "run.json").write_text(json.dumps(second))
    (staged / "history.json").write_text(json.dumps(history[:3]))
    text = model_card(staged, [result], report)
    total = len(history) + 3
    assert f"{total} epochs in 2 stages (stage 1: from scratch, {len(history)} epochs" in text
    assert ("stage 2: from stage 1's best weights (`--init-weights`), a fresh schedule, 3 epochs "
            f"at {2 * first_h}x{2 * first_w}, ") in text
    assert f"{len(history)} epochs at {first_h}x{first_w}, " in text
    commands = text.split("```bash")[1].splitlines()
    assert "--init-weights" not in commands[1]
    assert "--lr 0.001" in commands[2] and "--init-weights runs/stage1" in commands[2]
    assert "--loss" not in commands[1] and "--loss ce+lovasz" in commands[2]
    assert "lr 0.001 cosine, loss ce+lovasz" in text
    assert "Training: the train split's 367 frames" in text and "best.weights.h5" in text

    # A refit on train+val with a fixed schedule: its val is training data, and says so.
    for stage in (first, second):
        stage["train"].update(train_splits=["train", "val"], keep="last")
    (staged / "init" / "run.json").write_text(json.dumps(first))
    (staged / "run.json").write_text(json.dumps(second))
    text = model_card(staged, [result], report)
    assert "from stage 1's last weights (`--init-weights`)" in text
    scored = [h for h in history[:3] if h.get("val_miou") is not None]
    assert f"last epoch kept, val mIoU {scored[-1]['val_miou']:.2f}" in text
    assert "on CamVid train+val" in text and "last.weights.h5: the float model" in text
    assert ("Training: the train and val splits' 468 frames of 0001TP (62), 0006R0 (101), "
            "0016E5 (305)") in text
    assert "is training data here" in text and "Val is training data here" in text
    assert "Keras (last epoch)" in text


def test_rows_of_several_input_sizes_are_labelled_with_their_size(converted, synth_data,
                                                                  tmp_path):
    _, result = converted
    path = next(row["path"] for row in result["rows"] if row["format"] == "float32")
    card = json.loads(open(path.replace(".tflite", ".json")).read())
    from fcnedge.convert.metadata import with_metadata

    other = tmp_path / "other.tflite"
    card["input"]["size"] = [64, 64]           # only the label reads it; the card is inside
    other.write_bytes(with_metadata(open(path, "rb").read(), card))
    report = bench(BenchOptions(models=(path, str(other)), data=str(synth_data),
                                out=str(tmp_path / "o"), runs=1, warmup=0, limit=1))
    assert [row["format"] for row in report["rows"]] == ["float32 96x128", "float32 64x64"]
    # --limit scores a subset: the table must not pass it off as the split's mIoU.
    assert "split 'val' (first 1 image by name);" in (tmp_path / "o" / "bench.md").read_text()


def test_speedups_compare_against_float32_of_the_same_input_size():
    from fcnedge.benchmarks.report import add_speedups

    def row(fmt, size, p50):
        return {"model_format": fmt, "input_size": size, "status": "ok",
                "model_only_ms": {"p50": p50}}

    rows = [row("float32", [352, 480], 10.0), row("int8-ptq", [352, 480], 5.0),
            row("float32", [224, 224], 4.0), row("int8-ptq", [224, 224], 8.0),
            row("keras float32", [352, 480], 40.0)]
    add_speedups(rows)
    assert [r["vs_float32_tflite"] for r in rows] == [1.0, 2.0, 1.0, 0.5, 0.25]
    assert [r["vs_keras"] for r in rows] == [4.0, 8.0, 10.0, 5.0, 1.0]


def test_pareto_labels_whose_boxes_overlap_are_stacked_apart():
    from fcnedge.benchmarks.pareto_plot import stack_labels

    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    # Three labels of one model's formats on top of each other, one far to the left at the
    # same height, one far below: only the cluster moves, and its top label stays put.
    boxes = [(100, 300, 220, 310), (105, 298, 210, 308), (102, 302, 230, 312),
             (10, 300, 60, 310), (100, 100, 220, 110)]
    shifts = stack_labels(boxes)
    placed = [(x0, y0 - d, x1, y1 - d) for (x0, y0, x1, y1), d in zip(boxes, shifts)]
    assert all(not overlap(placed[i], placed[j])
               for i in range(len(placed)) for j in range(i + 1, len(placed)))
    assert shifts[2] == 0 and shifts[0] > 0 and shifts[1] > shifts[0]
    assert shifts[3] == 0 and shifts[4] == 0
    assert stack_labels([]) == []
    # A marker in the way counts as a settled box: the label goes under it.
    assert stack_labels([(100, 300, 220, 310)], [(150, 295, 160, 305)]) == [17.0]


def test_model_card_keeps_rows_of_another_input_size_apart(benched, converted, tmp_path):
    """recipe.sh also exports float32 at 224x224; that row must not stand in for the
    full-size float32 in the card (it once did: float32 read 56.05 against Keras' 68.43)."""
    from fcnedge.benchmarks.model_card import model_card

    run, result = converted
    _, report, _ = benched
    full = next(row for row in result["rows"] if row["format"] == "float32")
    card = json.loads(Path(full["path"]).with_suffix(".json").read_text())
    card["input"]["size"] = [64, 64]
    small_path = tmp_path / "small_float32.tflite"
    small_path.with_suffix(".json").write_text(json.dumps(card))
    small = dict(full, path=str(small_path), miou=full["miou"] - 11.11)
    text = model_card(run, [result, {"rows": [small]}], report)
    assert f"| float32 | {full['size_mb']:.2f} | {full['miou']:.2f} |" in text
    assert f"| float32 64x64 | {small['size_mb']:.2f} | {small['miou']:.2f} |" in text
