"""Opening a .tflite model: which interpreter package, which delegate, and clear errors.

The interpreter comes from ai_edge_litert (LiteRT, the maintained successor of tflite-runtime),
else tflite_runtime, else tf.lite; the choice is made once per call and reported. XNNPACK is the
CPU path (LiteRT applies it by default). EdgeTPU is an external delegate library. GPU is LiteRT's
own GPU accelerator (its CompiledModel API) when ai_edge_litert is installed and no library is
named, else (or when that finds no GPU) a GPU delegate library.
"""
from __future__ import annotations

import ctypes
import importlib
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.graph_check import check_graph
from fcnedge.runtime.options import Delegate

log = logging.getLogger("fcnedge.runtime")

TFLITE_IDENTIFIER = b"TFL3"   # bytes 4..8 of every TFLite flatbuffer
# The only place that knows delegate library names per platform.
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}
GPU_LIBRARY = {"Linux": "libtensorflowlite_gpu_delegate.so",
               "Darwin": "libtensorflowlite_gpu_delegate.dylib",
               "Windows": "tensorflowlite_gpu_delegate.dll"}
_WHERE = {
    "edgetpu": "Coral's Edge TPU runtime (Debian package libedgetpu1-std from Coral's apt "
               "repository)",
    "gpu": "a LiteRT/TFLite GPU delegate build (bazel target "
           "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so); pass its path "
           f"as {mention('delegate_path')}",
}
_BACKENDS = (("ai_edge_litert", "ai_edge_litert.interpreter"),
             ("tflite_runtime", "tflite_runtime.interpreter"),
             ("tensorflow", "tensorflow.lite"))



class DelegateUnavailable(InputError):
    """A delegate's library could not be loaded."""


@dataclass(frozen=True)
class Backend:
    """An interpreter package: its name, Interpreter class and load_delegate function."""

    name: str
    interpreter_class: type
    load_delegate: object


@dataclass(frozen=True)
class InterpreterInfo:
    """What was actually opened, for --verbose and the run's stats."""

    backend: str
    delegate: str
    requested_delegate: str
    num_threads: int | None
    model_path: str
    fell_back: bool = False


def find_backend(preferred: tuple[str, ...] | None = None) -> Backend:
    """Imports the first available interpreter package (see module docstring)."""
    errors = []
    for name, module_name in _BACKENDS:
        if preferred and name not in preferred:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            errors.append(f"{module_name}: {err}")
            continue
        if name == "tensorflow":
            return Backend(name, module.Interpreter, module.experimental.load_delegate)
        return Backend(name, module.Interpreter, module.load_delegate)
    raise RuntimeError("no TFLite interpreter installed (pip install ai-edge-litert); tried "
                       + "; ".join(errors))


def check_model_file(path: str | os.PathLike) -> bytes:
    """Reads a model file and checks it is a sound TFLite flatbuffer; returns its bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputError.about("model", path, "file not found")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise InputError.about("model", path, "not a TFLite model (no 'TFL3' identifier)")
    check_graph(data, path)
    return data


def delegate_library(delegate: Delegate, library: str | None = None) -> str:
    """The library to load for a delegate on this platform (or the one given)."""
    if library:
        return library
    table = EDGETPU_LIBRARY if delegate is Delegate.EDGETPU else GPU_LIBRARY
    return table.get(platform.system(), table["Linux"])


class CompiledModelInterpreter:
    """LiteRT's CompiledModel behind the Interpreter methods this runtime calls.

    LiteRT 2.x reaches the GPU through CompiledModel's hardware accelerators, not a delegate
    object. CompiledModel reports no quantization parameters, so the tensor details (scale, zero
    point, index) come from a classic interpreter over the same bytes, never allocated.
    """

    def __init__(self, content: bytes, details_source, accelerators, num_threads: int):
        from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, Options

        self._inputs = details_source.get_input_details()
        self._outputs = details_source.get_output_details()
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ValueError("CompiledModel path: expected one input and one output tensor")
        self._content = content    # the compiled model may point into these bytes
        self._model = CompiledModel.from_buffer(
            content, options=Options(hardware_accelerators=accelerators,
                                     cpu_options=CpuOptions(num_threads=num_threads)))
        self._input_buffers = self._model.create_input_buffers(0)
        self._output_buffers = self._model.create_output_buffers(0)
        self._output_shape = tuple(int(n) for n in self._outputs[0]["shape"])
        self._output_size = int(np.prod(self._output_shape))
        self.fully_accelerated = self._model.is_fully_accelerated()

    def allocate_tensors(self) -> None:
        pass    # buffers exist from construction

    def get_input_details(self) -> list:
        return self._inputs

    def get_output_details(self) -> list:
        return self._outputs

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        if index != self._inputs[0]["index"]:
            raise ValueError(f"tensor {index} is not this model's input")
        self._input_buffers[0].write(np.ascontiguousarray(value))

    def invoke(self) -> None:
        self._model.run_by_index(0, self._input_buffers, self._output_buffers)

    def get_tensor(self, index: int) -> np.ndarray:
        details = self._outputs[0]
        if index != details["index"]:
            raise ValueError(f"tensor {index} is not this model's output")
        return self._output_buffers[0].read(self._output_size,
                                            details["dtype"]).reshape(self._output_shape)


def open_gpu_accelerator(content: bytes, details_source, num_threads: int):
    """The model on LiteRT's GPU accelerator; RuntimeError or ValueError when it cannot start
    (no GPU, no driver, an op it cannot place), ImportError on a LiteRT without CompiledModel.
    `details_source`: a classic interpreter over `content` (see CompiledModelInterpreter)."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    # CPU beside GPU: ops the GPU lacks run on XNNPACK instead of failing the whole model.
    return CompiledModelInterpreter(content, details_source,
                                    HardwareAccelerator.GPU | HardwareAccelerator.CPU,
                                    num_threads)


def load_delegate(backend: Backend, delegate: Delegate, library: str | None = None,
                  device: str | None = None, tried: str = ""):
    """Loads an external delegate, or raises DelegateUnavailable naming the library (and
    `tried`, what was attempted before it)."""
    name = delegate_library(delegate, library)
    options = {"device": device} if (device and delegate is Delegate.EDGETPU) else None
    try:
        # Probe with ctypes first: LiteRT's Delegate object, when its library fails to load,
        # prints a spurious traceback from __del__ at exit.
        ctypes.CDLL(name)
        return backend.load_delegate(name, options)
    except (ValueError, OSError, RuntimeError) as err:
        raise DelegateUnavailable.about(
            "delegate", delegate.value, f"{tried}could not load {name} ({str(err).strip()}); "
            f"it comes with {_WHERE[delegate.value]}") from err


def _rejected(model_path, err: Exception) -> InputError:
    text = str(err).strip()
    return InputError.about("model", model_path, f"the interpreter rejected it "
                            f"({text.splitlines()[0] if text else err})")


def default_threads(reserve: int = 0) -> int:
    """CPU threads for the interpreter: the cores this process may use, less `reserve`, >= 1.

    Always explicit: LiteRT's own default (num_threads unset) runs XNNPACK on one thread, which
    measured here as half the speed of two on a 2-core machine. A streaming loop reserves one
    core for capture, drawing and encoding, which run beside the model.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - reserve)


def make_interpreter(model_path: str | os.PathLike, delegate: Delegate | str = Delegate.CPU,
                     num_threads: int | None = None, *, device: str | None = None,
                     delegate_path: str | None = None, fallback_cpu: bool = False,
                     backend: Backend | None = None):
    """Opens a model with tensors allocated.

    Args:
      model_path: a .tflite file (an EdgeTPU model is the compiler's *_edgetpu.tflite).
      delegate: cpu (XNNPACK), gpu or edgetpu.
      num_threads: CPU threads (None: default_threads(), every core).
      device: EdgeTPU device, such as 'usb:0' or 'pci:0'.
      delegate_path: the delegate library, when not the platform's default name.
      fallback_cpu: when the delegate cannot load, log a warning and use the CPU.

    Returns:
      (interpreter, InterpreterInfo)

    Raises:
      InputError: the file is missing, not TFLite, or rejected by the interpreter.
      DelegateUnavailable: the delegate library cannot be loaded (and no fallback).
    """
    delegate = Delegate(delegate)
    if num_threads is not None and num_threads < 1:
        raise InputError(f"got {num_threads}, expected a positive integer", "num_threads")
    num_threads = num_threads or default_threads()
    content = check_model_file(model_path)
    backend = backend or find_backend()
    delegates, used, fell_back = [], delegate, False
    tried = ""
    if delegate is Delegate.GPU and not delegate_path and backend.name == "ai_edge_litert":
        try:
            details_source = backend.interpreter_class(model_content=content)
        except (ValueError, RuntimeError) as err:
            raise _rejected(model_path, err) from err
        try:
            interpreter = open_gpu_accelerator(content, details_source, num_threads)
        except (ImportError, RuntimeError, ValueError) as err:   # ImportError: LiteRT < 2
            log.debug("LiteRT GPU accelerator: %s", err)
            tried = "LiteRT's GPU accelerator found no usable GPU, and "
        else:
            if not interpreter.fully_accelerated:
                log.warning("%s: some ops run on the CPU beside the GPU", model_path)
            info = InterpreterInfo("ai_edge_litert (CompiledModel)", Delegate.GPU.value,
                                   delegate.value, num_threads, str(model_path))
            return interpreter, info
    if delegate is not Delegate.CPU:
        try:
            delegates = [load_delegate(backend, delegate, delegate_path, device, tried)]
        except DelegateUnavailable as err:
            if not fallback_cpu:
                raise DelegateUnavailable(
                    f"{err.detail}. Use {mention('fallback_cpu')} to run on the CPU instead",
                    err.param, separator=err.separator) from err
            log.warning("%s; running on the CPU instead (--fallback cpu)", err)
            used, fell_back = Delegate.CPU, True
    try:
        interpreter = backend.interpreter_class(
            model_content=content, experimental_delegates=delegates or None,
            num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise _rejected(model_path, err) from err
    info = InterpreterInfo(backend.name, used.value, delegate.value, num_threads,
                           str(model_path), fell_back)
    log.debug("opened %s with %s on %s", model_path, backend.name, used.value)
    return interpreter, info
