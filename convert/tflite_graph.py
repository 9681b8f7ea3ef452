"""Reading a .tflite's graph (ops, tensor types and shapes) from its flatbuffer, TensorFlow-free.

Used to enforce the export rules measured on this project's target CPUs: batch 1 and static
H, W; logits out (no softmax); no SHAPE/PACK/STRIDED_SLICE left from a dynamic batch; integer
I/O for the integer formats.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.interpreter import check_model_file

# Ops a dynamic batch leaves behind; they split XNNPACK into partitions.
DYNAMIC_SHAPE_OPS = frozenset({"SHAPE", "PACK", "STRIDED_SLICE", "UNPACK", "GATHER"})


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    scale: float | None
    zero_point: int | None
    constant: bool = False      # weights and biases: data stored in the file

    @property
    def dynamic(self) -> bool:
        return any(dim < 0 for dim in self.shape_signature)


@dataclass(frozen=True)
class OpInfo:
    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class ModelGraph:
    ops: tuple[str, ...]                 # builtin (or custom) op name per node, in order
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    nodes: tuple[OpInfo, ...] = field(repr=False, default=())

    @property
    def op_counts(self) -> dict:
        return dict(Counter(self.ops))


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tensor_info(schema, model, subgraph, index: int) -> TensorInfo:
    tensor = subgraph.Tensors(index)
    buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
    constant = bool(buffer is not None and (buffer.DataLength() or buffer.Size()))
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    shape = tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    signature = (tuple(int(v) for v in tensor.ShapeSignatureAsNumpy())
                 if tensor.ShapeSignatureLength() else shape)
    scale = zero_point = None
    quant = tensor.Quantization()
    if quant is not None and quant.ScaleLength():
        scale = float(quant.Scale(0))
        zero_point = int(quant.ZeroPoint(0)) if quant.ZeroPointLength() else 0
    name = tensor.Name().decode("utf-8", "replace") if tensor.Name() else ""
    return TensorInfo(name, type_names.get(tensor.Type(), str(tensor.Type())).lower(), shape,
                      signature, scale, zero_point, constant)


def read_graph(path: str | os.PathLike) -> ModelGraph:
    """Parses the main subgraph of a .tflite file."""
    data = check_model_file(path)
    schema = _schema()
    try:
        model = schema.Model.GetRootAsModel(data, 0)
        subgraph = model.Subgraphs(0)
        op_names = {v: k for k, v in vars(schema.BuiltinOperator).items()
                    if not k.startswith("_")}
        tensors = [_tensor_info(schema, model, subgraph, i)
                   for i in range(subgraph.TensorsLength())]
        ops, nodes = [], []
        for i in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(i)
            code = model.OperatorCodes(operator.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                name = f"CUSTOM:{code.CustomCode().decode()}"
            else:
                name = op_names.get(builtin, str(builtin))
            ops.append(name)
            node_inputs = tuple(tensors[int(t)] for t in operator.InputsAsNumpy() if t >= 0) \
                if operator.InputsLength() else ()
            node_outputs = tuple(tensors[int(t)] for t in operator.OutputsAsNumpy() if t >= 0) \
                if operator.OutputsLength() else ()
            nodes.append(OpInfo(name, node_inputs, node_outputs))
        inputs = tuple(tensors[int(i)] for i in subgraph.InputsAsNumpy())
        outputs = tuple(tensors[int(i)] for i in subgraph.OutputsAsNumpy())
    except (IndexError, AttributeError, ValueError, TypeError) as err:
        raise InputError(f"{path}: TFLite flatbuffer could not be parsed ({err})") from err
    return ModelGraph(tuple(ops), inputs, outputs, tuple(nodes))


def export_rule_violations(graph: ModelGraph, integer_io: bool = False) -> list[str]:
    """Everything that breaks the export rules (empty when the model is fit to ship)."""
    problems = []
    for tensor in graph.inputs + graph.outputs:
        if tensor.dynamic:
            problems.append(f"tensor {tensor.name} has a dynamic shape {tensor.shape_signature}")
    if graph.inputs and graph.inputs[0].shape[:1] != (1,):
        problems.append(f"input batch is {graph.inputs[0].shape[:1]}, expected 1")
    leftovers = sorted(set(graph.ops) & DYNAMIC_SHAPE_OPS)
    if leftovers:
        problems.append(f"shape-computation ops left in the graph: {', '.join(leftovers)}")
    if "SOFTMAX" in graph.ops:
        problems.append("SOFTMAX in the graph: export logits, the runtime takes the argmax")
    if integer_io:
        for tensor in graph.inputs + graph.outputs:
            if tensor.dtype not in ("int8", "uint8"):
                problems.append(f"tensor {tensor.name} is {tensor.dtype}, expected int8 or uint8")
        # A float tensor between ops is a DEQUANTIZE..QUANTIZE island: slower on CPU, and where
        # the EdgeTPU compiler meets it, everything after runs on the CPU.
        islands = sorted({node.name for node in graph.nodes for tensor in node.outputs
                          if tensor.dtype == "float32"})
        if islands:
            problems.append(f"float ops inside an integer model: {', '.join(islands)}")
    return problems

