"""The README's five-minute tour, command for command, on a smaller synthetic set."""
import glob
import importlib.util
import re
import shlex
import textwrap

from conftest import REPO
from fcnedge.cli import main

# The tour's sizes, scaled down so the test takes seconds per step; nothing else changes.
SMALLER = ((r"--num 48\b", "--num 6"), (r"--num-val 12\b", "--num-val 2"),
           (r"192x256", "64x96"), (r"--epochs 8\b", "--epochs 1"))


def tour_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## A five-minute tour", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_tour_shows_each_step_once():
    commands = [shlex.split(line)[1:3] for line in tour_commands()]
    assert [c[0] for c in commands] == ["data", "train", "eval", "convert", "run", "bench"]


def test_every_tour_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for line in tour_commands():
        for pattern, replacement in SMALLER:
            line = re.sub(pattern, replacement, line)
        words = shlex.split(line)
        assert words[0] == "fcnedge"
        argv = [match for word in words[1:] for match in (sorted(glob.glob(word))
                                                          if "*" in word else [word])]
        code = main(argv)
        assert code == 0, (line, capsys.readouterr().err)
    for written in ("runs/tour/run.json", "eval-tour-val/confusion.png", "out/tour/val.mp4",
                    "out/tour/bench/bench.md", "out/tour/bench/pareto.png"):
        assert (tmp_path / written).is_file(), written


def test_the_readmes_python_imports_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    assert blocks, "the README shows the Python API"
    for block in map(textwrap.dedent, blocks):   # a block inside a list item is indented
        compile(block, "README.md", "exec")
        imports = "\n".join(line for line in block.splitlines()
                            if line.startswith(("import ", "from ")))
        if "mediapipe" in imports and importlib.util.find_spec("mediapipe") is None:
            continue   # the device guide's MediaPipe snippet; `make test` installs mediapipe
        exec(imports, {})
