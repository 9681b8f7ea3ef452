"""A .tflite's structure checked before LiteRT sees it, so a malformed file is an error, not a
signal.

LiteRT trusts the indices inside a flatbuffer: a conv whose filter index is -1 segfaulted
`allocate_tensors` (a probe rewrote each of the bundled model's 58 conv ops that way, and every
one killed the process). This reads the file with LiteRT's own generated schema and checks what
the interpreter would dereference: buffer, tensor and opcode indices in range, required inputs
present, buffers that hold a tensor's data large enough for its shape.
"""
from __future__ import annotations

import numpy as np

from fcnedge.runtime.errors import InputError

# Inputs an op may leave out (index -1), by builtin name; an op listed here has no other
# optional inputs. Ops not listed (LSTMs and the like have many optional inputs) are only
# range-checked.
OPTIONAL_INPUTS = {
    "CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3},
    "ADD": set(), "SUB": set(), "MUL": set(), "DIV": set(), "CONCATENATION": set(),
    "QUANTIZE": set(), "DEQUANTIZE": set(), "PAD": set(), "PADV2": set(), "MEAN": set(),
    "AVERAGE_POOL_2D": set(), "MAX_POOL_2D": set(), "RESIZE_BILINEAR": set(),
    "RESIZE_NEAREST_NEIGHBOR": set(), "RESHAPE": {1}, "ARG_MAX": set(), "SOFTMAX": set(),
    "RELU": set(), "RELU6": set(), "LOGISTIC": set(), "HARD_SWISH": set(), "TANH": set(),
    "MAXIMUM": set(), "MINIMUM": set(), "SQUEEZE": set(), "TRANSPOSE": set(),
}
# Bytes per element of the tensor types a segmentation model holds data for.
_ELEMENT_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT8": 1, "INT64": 8,
                  "INT16": 2, "BOOL": 1, "FLOAT64": 8}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    return schema


def _names(enum_class) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}


def graph_problems(content: bytes) -> list[str]:
    """What in a TFLite flatbuffer would make the interpreter read out of bounds; empty when
    it is sound (or when no schema module is installed to read it with)."""
    schema = _schema()
    if schema is None:
        return []
    try:
        return _problems(schema, content)
    except Exception as err:   # flatbuffers raises plain struct/index errors on garbage
        return [f"the flatbuffer could not be read ({type(err).__name__}: {err})"]


def _problems(schema, content: bytes) -> list[str]:
    model = schema.Model.GetRootAsModel(content, 0)
    problems: list[str] = []
    buffers, codes = model.BuffersLength(), model.OperatorCodesLength()
    op_names, type_names = _names(schema.BuiltinOperator), _names(schema.TensorType)
    if model.SubgraphsLength() < 1:
        return ["the model has no subgraph"]
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        tensors = subgraph.TensorsLength()
        for t in range(tensors):
            tensor = subgraph.Tensors(t)
            if not 0 <= tensor.Buffer() < max(buffers, 1):
                problems.append(f"tensor {t} names buffer {tensor.Buffer()} of {buffers}")
                continue
            if buffers and tensor.ShapeLength():
                problems += _data_problems(model, tensor, t, type_names)
        for kind, indices in (("input", subgraph.InputsAsNumpy()),
                              ("output", subgraph.OutputsAsNumpy())):
            if isinstance(indices, int) or not len(indices):
                problems.append(f"subgraph {g} has no {kind} tensor")
                continue
            problems += [f"subgraph {g} {kind} is tensor {int(i)} of {tensors}"
                         for i in indices if not 0 <= int(i) < tensors]
        for o in range(subgraph.OperatorsLength()):
            problems += _operator_problems(model, subgraph.Operators(o), o, tensors, codes,
                                           op_names)
        if len(problems) > 20:
            break
    return problems


def _data_problems(model, tensor, index: int, type_names: dict) -> list[str]:
    buffer = model.Buffers(tensor.Buffer())
    stored = buffer.DataLength() if buffer is not None else 0
    if not stored:
        return []      # an activation, or data kept outside the flatbuffer (offset/size)
    shape = tensor.ShapeAsNumpy()
    if np.any(shape < 0):
        return [f"tensor {index} holds data but has a dynamic shape"]
    element = _ELEMENT_BYTES.get(type_names.get(tensor.Type(), ""))
    if element and stored < int(np.prod(shape, dtype=np.int64)) * element:
        return [f"tensor {index} needs {int(np.prod(shape)) * element} bytes, its buffer has "
                f"{stored}"]
    return []


def _operator_problems(model, operator, index: int, tensors: int, codes: int,
                       op_names: dict) -> list[str]:
    if not 0 <= operator.OpcodeIndex() < codes:
        return [f"op {index} has opcode {operator.OpcodeIndex()} of {codes}"]
    code = model.OperatorCodes(operator.OpcodeIndex())
    name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
    optional = OPTIONAL_INPUTS.get(name)
    problems = []
    inputs = operator.InputsAsNumpy() if operator.InputsLength() else ()
    for position, tensor in enumerate(int(i) for i in inputs):
        if tensor == -1 and (optional is None or position in optional):
            continue
        if not 0 <= tensor < tensors:
            problems.append(f"op {index} ({name}) input {position} is tensor {tensor} of "
                            f"{tensors}")
    outputs = operator.OutputsAsNumpy() if operator.OutputsLength() else ()
    if not len(outputs):
        problems.append(f"op {index} ({name}) has no output")
    problems += [f"op {index} ({name}) output is tensor {int(t)} of {tensors}"
                 for t in outputs if not 0 <= int(t) < tensors]
    return problems


def check_graph(content: bytes, path) -> None:
    """Raises InputError naming the file and the first problems, if there are any."""
    problems = graph_problems(content)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError.about("model", path, f"malformed TFLite graph: {'; '.join(problems[:3])}"
                               f"{more}")
