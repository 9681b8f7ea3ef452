# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FCNEDGE := $(VENV)/bin/fcnedge
OUT ?= out
DATA ?= ../shared/datasets/camvid
BUNDLED ?= models/camvid_fcn2s_mobilenetv2

.PHONY: demo demo-train test test-fast bench card arm-check install clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# MediaPipe Tasks, for the test that loads converted models in its ImageSegmenter. Without its
# dependencies: it pins absl-py 2 and opencv-contrib-python, which clash with
# tensorflow-model-optimization's absl-py 1 and replace opencv-python's cv2; it runs on ours.
$(VENV)/.mediapipe: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps "mediapipe==1.2.2"
	touch $@

test: $(VENV)/.installed $(VENV)/.mediapipe
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=25 tests

# The fast tier while editing: every test that neither trains, converts, installs nor reads
# CamVid (tests/conftest.py marks those `slow`).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" tests

# The main job: the bundled int8 CamVid model streams a clip (CamVid val frames when
# FCNEDGE_DATA or DATA points at CamVid, else a synthetic street), writes the overlay mp4 and a
# contact sheet, and benchmarks the bundled formats.
demo: $(VENV)/.installed
	FCNEDGE_DATA=$${FCNEDGE_DATA:-$(DATA)} $(FCNEDGE) demo --out $(OUT)/demo

# Training end to end on synthetic scenes (no dataset needed): data, a small FCN-8s, eval.
demo-train: $(VENV)/.installed
	rm -rf $(OUT)/demo-train/data
	$(FCNEDGE) data synth --dest $(OUT)/demo-train/data --num 96 --num-val 24 --size 192x256
	$(FCNEDGE) train --data $(OUT)/demo-train/data --out $(OUT)/demo-train/run \
		--input-size 192x256 --epochs 10 --overwrite --quiet
	$(FCNEDGE) eval --model $(OUT)/demo-train/run --data $(OUT)/demo-train/data --split val

# The README's published table: every format built from the bundled float model (QAT
# fine-tunes it again, ~10 min here), then benchmarked in one run with the Keras row.
bench: $(VENV)/.installed
	sh benchmarks/recipe.sh $(BUNDLED) $(DATA) $(OUT)/published

# The bundled model's card (models/README.md), generated from the committed records.
card: $(VENV)/.installed
	$(PY) -m fcnedge.benchmarks.model_card --bundled $(BUNDLED) benchmarks/published_bench.md models/README.md

# The runtime on aarch64 under qemu user-mode emulation against this machine, on a few CamVid
# val frames (needs root once, for the arm64 packages; see the script).
arm-check: $(VENV)/.installed
	PY=$(PY) DATA=$(DATA) bash benchmarks/arm_check.sh

clean:
	rm -rf $(VENV) out
