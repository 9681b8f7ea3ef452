"""EdgeTPU readiness: a static report read from the .tflite, and the compiler when installed.

The rules are the Edge TPU's published model requirements: 8-bit quantized tensors (int32
biases allowed), static shapes, at most 3 dimensions larger than 1 (so batch 1), and ops from
its supported list. The compiler maps one contiguous graph from the input: after the first op
that falls back to the CPU, every later op runs on the CPU too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from fcnedge.convert.tflite_graph import ModelGraph

EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP",
    "EXPAND_DIMS", "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM",
    "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX",
    "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQRT", "TANH", "TRANSPOSE",
    "TRANSPOSE_CONV",
})
# Supported, but the compiler maps them only for some sizes (it checks the precision loss).
EDGETPU_SIZE_DEPENDENT = frozenset({"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"})
_EIGHT_BIT = ("int8", "uint8")


@dataclass(frozen=True)
class OpVerdict:
    index: int
    op: str
    status: str        # edgetpu, maybe, cpu
    reason: str


def _own_problem(node) -> str:
    if node.name not in EDGETPU_OPS:
        return "not in the Edge TPU's supported ops"
    for tensor in node.inputs + node.outputs:
        if tensor.dtype == "int32" and tensor.constant:
            continue   # biases and size parameters (RESIZE_*'s output size) are int32 constants
        if tensor.dtype not in _EIGHT_BIT:
            return f"tensor {tensor.name or '?'} is {tensor.dtype}; the Edge TPU runs 8-bit only"
        if tensor.dynamic:
            return f"tensor {tensor.name or '?'} has a dynamic shape {tensor.shape_signature}"
        big = [dim for dim in tensor.shape[:-3] if dim > 1]
        if big and not tensor.constant:   # the rank rule is about activations, not weights
            return (f"tensor {tensor.name or '?'} {tensor.shape} has a dimension > 1 outside "
                    "the 3 innermost (batch must be 1)")
    return ""


def edgetpu_report(graph: ModelGraph) -> dict:
    """Per op: edgetpu / maybe / cpu with the reason; and a summary."""
    verdicts, fallen = [], None
    for index, node in enumerate(graph.nodes):
        problem = _own_problem(node)
        if problem:
            verdicts.append(OpVerdict(index, node.name, "cpu", problem))
            fallen = fallen if fallen is not None else index
        elif fallen is not None:
            verdicts.append(OpVerdict(index, node.name, "cpu",
                                      f"after op {fallen} ({graph.nodes[fallen].name}) fell back; "
                                      "the compiler maps one graph from the input"))
        elif node.name in EDGETPU_SIZE_DEPENDENT:
            verdicts.append(OpVerdict(index, node.name, "maybe",
                                      "supported, but mapped only for some input/output sizes"))
        else:
            verdicts.append(OpVerdict(index, node.name, "edgetpu", ""))
    counts = {status: sum(v.status == status for v in verdicts)
              for status in ("edgetpu", "maybe", "cpu")}
    first_cpu = next((asdict(v) for v in verdicts if v.status == "cpu"), None)
    return {"ops": len(verdicts), "counts": counts, "fully_mapped": counts["cpu"] == 0,
            "first_fallback": first_cpu, "verdicts": [asdict(v) for v in verdicts]}


def format_report(report: dict, name: str) -> str:
    counts = report["counts"]
    lines = [f"EdgeTPU report for {name}: {counts['edgetpu']} ops map, {counts['maybe']} depend "
             f"on size, {counts['cpu']} fall back to the CPU"]
    seen = set()
    for verdict in report["verdicts"]:
        key = (verdict["op"], verdict["status"], verdict["reason"].split(";")[0][:60])
        if verdict["status"] != "edgetpu" and key not in seen:
            seen.add(key)
            lines.append(f"  {verdict['op']} (op {verdict['index']}): {verdict['status']}: "
                         f"{verdict['reason']}")
    return "\n".join(lines)


def compile_for_edgetpu(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path | None:
    """Runs edgetpu_compiler when it is on PATH; returns the *_edgetpu.tflite, or None."""
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return None
    completed = subprocess.run([compiler, "-s", "-o", str(out_dir), str(path)],
                               capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:
        raise RuntimeError(f"edgetpu_compiler failed on {path}: "
                           f"{completed.stderr.strip().splitlines()[-1:]}")
    return Path(out_dir) / f"{Path(path).stem}_edgetpu.tflite"
