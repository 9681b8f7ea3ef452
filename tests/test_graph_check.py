"""A malformed .tflite is exit 2 with one line, never a signal: the graph is checked before
LiteRT sees it (runtime/graph_check.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as schema

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.graph_check import graph_problems
from fcnedge.runtime.interpreter import check_model_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def rewritten(source: Path, dest: Path, edit) -> Path:
    content = source.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    edit(model)
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dest.write_bytes(builder.Output())
    return dest


def first_op(model, name: str):
    code = getattr(schema.BuiltinOperator, name)
    return next(op for op in model.subgraphs[0].operators
                if max(model.operatorCodes[op.opcodeIndex].builtinCode,
                       model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) == code)


@pytest.mark.parametrize("path", sorted(str(p) for p in (REPO / "models").glob("*.tflite")))
def test_the_bundled_models_are_sound(path):
    assert graph_problems(Path(path).read_bytes()) == []


def _filter_missing(op_name):
    def edit(model):
        op = first_op(model, op_name)
        op.inputs = [op.inputs[0], -1, *op.inputs[2:]]
    return edit


def _opcode_out_of_range(model):
    model.subgraphs[0].operators[0].opcodeIndex = len(model.operatorCodes) + 3


def _buffer_out_of_range(model):
    model.subgraphs[0].tensors[0].buffer = len(model.buffers) + 9


def _output_out_of_range(model):
    model.subgraphs[0].outputs = [len(model.subgraphs[0].tensors) + 1]


def _no_bias_is_fine(model):
    op = first_op(model, "CONV_2D")
    op.inputs = [*op.inputs[:2], -1]


@pytest.mark.parametrize("edit, message", [
    (_filter_missing("CONV_2D"), r"op \d+ \(CONV_2D\) input 1 is tensor -1"),
    (_filter_missing("DEPTHWISE_CONV_2D"), r"op \d+ \(DEPTHWISE_CONV_2D\) input 1 is tensor -1"),
    (_opcode_out_of_range, r"op 0 has opcode \d+ of \d+"),
    (_buffer_out_of_range, r"tensor 0 names buffer \d+ of \d+"),
    (_output_out_of_range, r"subgraph 0 output is tensor \d+ of \d+"),
], ids=["conv filter -1", "depthwise filter -1", "opcode", "buffer", "output"])
def test_a_malformed_graph_is_an_input_error_naming_the_file(tflite_models, tmp_path, edit,
                                                             message):
    bad = rewritten(tflite_models["int8"], tmp_path / "bad.tflite", edit)
    with pytest.raises(InputError, match=rf"model .*bad.tflite: malformed TFLite graph: .*"
                                         rf"{message}"):
        check_model_file(bad)


def test_an_optional_input_left_out_is_not_a_problem(tflite_models, tmp_path):
    fine = rewritten(tflite_models["float32"], tmp_path / "fine.tflite", _no_bias_is_fine)
    assert graph_problems(fine.read_bytes()) == []


@pytest.mark.parametrize("argv", [
    ["run", "--model", "{bad}", "--source", "{data}/val", "--no-window", "--max-frames", "2"],
    ["eval", "--model", "{bad}", "--data", "{data}", "--limit", "2"],
], ids=["run", "eval"])
def test_run_and_eval_refuse_it_with_exit_2_and_one_line(tflite_models, synth_data, tmp_path,
                                                         argv):
    bad = rewritten(tflite_models["int8"], tmp_path / "bad.tflite", _filter_missing("CONV_2D"))
    argv = [part.format(bad=bad, data=synth_data) for part in argv]
    done = subprocess.run([sys.executable, "-m", "fcnedge", *argv], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "malformed TFLite graph" in done.stderr


@pytest.mark.parametrize("kind, cases, seed", [("int8", 200, 1), ("float32", 100, 2)])
def test_fuzzed_operator_and_opcode_indices_never_kill_the_process(tflite_models, kind, cases,
                                                                   seed):
    # Each variant opens in a forked child of a process that imports only the runtime.
    done = subprocess.run([sys.executable, str(HERE / "fuzz_graph_child.py"),
                           str(tflite_models[kind]), str(cases), str(seed)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = json.loads(done.stdout)
    assert sum(v for k, v in outcomes.items() if k != "examples") == cases
    assert set(outcomes) <= {"ran", "refused"}, outcomes
    assert outcomes.get("refused", 0) > cases // 2     # most rewrites do break the graph
