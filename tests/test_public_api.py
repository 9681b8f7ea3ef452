"""The package's public names, and the one-way layering they rest on."""
import ast
import subprocess
import sys

import pytest

from conftest import REPO

PARTS = ("runtime", "train", "convert", "benchmarks")


def test_the_runtime_api_imports_without_tensorflow():
    script = ("import sys\n"
              "from fcnedge.runtime import (Segmenter, SegmenterOptions, Segmentation, Delegate,\n"
              "                             InputError, LabelSet, CAMVID, dataset_labels,\n"
              "                             run_stream, StreamOptions, StreamResult)\n"
              "import fcnedge.train, fcnedge.convert\n"
              # Every option, default and choice list: read by --help before TensorFlow.
              "import fcnedge.train.config, fcnedge.convert.options, fcnedge.runtime.options\n"
              "import fcnedge.benchmarks.options\n"
              "import fcnedge.cli; fcnedge.cli.build_parser()\n"
              "print('tensorflow' in sys.modules, Delegate('cpu').value)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "cpu"]


@pytest.mark.parametrize("package, names", [
    ("fcnedge.train", ["AugmentConfig", "ModelConfig", "TrainConfig", "TrainedModel",
                       "build_fcn", "load_trained_model", "train"]),
    ("fcnedge.convert", ["ConvertOptions", "Format", "QatConfig", "convert"]),
])
def test_training_and_conversion_entry_points_resolve(package, names):
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ == names
    for name in names:
        assert callable(getattr(module, name)), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(module, "nope")


def _imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("part", PARTS)
def test_no_part_imports_the_command_line_above_it(part):
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / part).glob("*.py"))
                 if {"fcnedge.cli", "fcnedge.demo"} & set(_imported_modules(path))]
    assert offenders == []


@pytest.mark.parametrize("part, above", [
    ("runtime", ("fcnedge.train", "fcnedge.convert", "fcnedge.benchmarks")),
    ("train", ("fcnedge.convert", "fcnedge.benchmarks")),
    ("convert", ("fcnedge.benchmarks",)),
])
def test_dependencies_flow_one_way(part, above):
    offenders = [(str(path.relative_to(REPO)), module)
                 for path in sorted((REPO / part).glob("*.py"))
                 for module in _imported_modules(path) if module.startswith(above)]
    assert offenders == []
