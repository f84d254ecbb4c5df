# Every target creates (or reuses) the virtual environment in .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: install test demo benchmarks clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The main job on the embedded synthetic city, from nothing, on the CPU.
demo: $(STAMP)
	$(BIN)/repro data synth-city --out $(DEMO)/synth-city --seed 0
	$(BIN)/repro data cityscapes --gtfine $(DEMO)/synth-city --leftimg $(DEMO)/synth-city --out $(DEMO)/cityscapes --size 128
	$(BIN)/repro train smoke/cyclegan --data $(DEMO)/cityscapes --out $(DEMO)/runs/cyclegan --device auto \
		$(if $(wildcard $(DEMO)/runs/cyclegan/checkpoint.pt),--resume,)
	$(BIN)/repro translate $(DEMO)/runs/cyclegan --direction labels2photo --input $(DEMO)/cityscapes/testB --out $(DEMO)/runs/cyclegan/labels2photo
	$(BIN)/repro translate $(DEMO)/runs/cyclegan --direction photo2labels --input $(DEMO)/cityscapes/testA --out $(DEMO)/runs/cyclegan/photo2labels

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

clean-demo:
	rm -rf $(DEMO)
