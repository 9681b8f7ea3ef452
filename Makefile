# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out/demo

.PHONY: demo test install clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# Until a trained CamVid model is bundled, the demo shows the toolkit end to end on synthetic
# street scenes: make a dataset, train a small MobileNetV2 FCN-8s, evaluate it.
demo: $(VENV)/.installed
	rm -rf $(OUT)/data
	$(VENV)/bin/fcnedge data synth --dest $(OUT)/data --num 96 --num-val 24 --size 192x256
	$(VENV)/bin/fcnedge train --data $(OUT)/data --out $(OUT)/run --input-size 192x256 \
		--epochs 10 --overwrite --quiet
	$(VENV)/bin/fcnedge eval --model $(OUT)/run --data $(OUT)/data --split val

clean:
	rm -rf $(VENV) out
