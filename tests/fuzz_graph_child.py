"""Run by test_graph_check: rewrites operator input and opcode indices of a .tflite and opens
each variant with the runtime in a forked child, which must end in a clean exit, never a signal
or a hang. Imports nothing but the runtime (LiteRT, numpy), so forking is safe.

    python fuzz_graph_child.py MODEL.tflite CASES SEED  ->  JSON {outcome: count, ...} on stdout
"""
import json
import os
import signal
import sys
import tempfile
import time

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

OK, REFUSED, RAISED = 0, 2, 3


def mutate(model: "schema.ModelT", rng) -> str:
    subgraph = model.subgraphs[0]
    operators, tensors = subgraph.operators, len(subgraph.tensors)
    op = operators[rng.integers(len(operators))]
    if rng.random() < 0.25:
        codes = len(model.operatorCodes)
        op.opcodeIndex = int(rng.choice([codes, codes + 7, rng.integers(codes)]))
        return "opcode"
    position = int(rng.integers(len(op.inputs)))
    op.inputs = list(op.inputs)
    op.inputs[position] = int(rng.choice([-1, -2, tensors, tensors + 100, rng.integers(tensors)]))
    return "input"


def open_and_invoke(path: str) -> int:
    from fcnedge.runtime.errors import InputError
    from fcnedge.runtime.interpreter import make_interpreter

    try:
        interpreter, _ = make_interpreter(path, num_threads=1)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except InputError:
        return REFUSED
    except Exception:
        return RAISED
    return OK


def run_case(path: str, timeout_s: float = 30.0) -> str:
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)    # LiteRT's own error lines
        os._exit(open_and_invoke(path))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
            return {OK: "ran", REFUSED: "refused", RAISED: "raised"}.get(
                os.WEXITSTATUS(status), f"exit {os.WEXITSTATUS(status)}")
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hang"


def main(model_path: str, cases: int, seed: int) -> dict:
    content = open(model_path, "rb").read()
    rng = np.random.default_rng(seed)
    outcomes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for case in range(cases):
            model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
            kind = mutate(model, rng)
            builder = flatbuffers.Builder(len(content) + 1024)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            path = os.path.join(folder, f"case{case}.tflite")
            with open(path, "wb") as handle:
                handle.write(builder.Output())
            outcome = run_case(path)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome.startswith(("signal", "hang", "exit")):
                outcomes.setdefault("examples", []).append(f"case {case} ({kind})")
    return outcomes


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
