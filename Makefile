# Every target creates (or reuses) the virtual environment in .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: install test demo benchmarks clean-demo reproduce-table2 ablations reproduce-fid check-numbers

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The whole reproduction at smoke scale on the synthetic city, on the CPU, from nothing to report
# (DEMO/report.md, DEMO/report.html). Rerunning resumes: finished rows are not retrained. CycleGAN and its
# ablations (5 rows x 2 seeds) train as packs of DEMO_PACK runs, every other run is its own process, DEMO_JOBS
# at once with one torch thread each: two packs of five keep both cores of a 2-core machine busy with the
# longest jobs first (docs/speed.md, measured with benchmarks/demo_time.py).
DEMO_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
DEMO_PACK ?= 5
demo: $(STAMP)
	$(BIN)/repro reproduce all --scale smoke --out $(DEMO) --pack $(DEMO_PACK) --launcher local --jobs $(DEMO_JOBS)

# Paper-scale tables (GPU; one to three days per model). Every prerequisite is checked before any work,
# and a missing one prints the commands that fix it. SCALE=smoke runs the same tables on the synthetic city.
SCALE ?= paper
CITYSCAPES ?= datasets/cityscapes_raw
DATA ?= datasets/cityscapes
SEGMENTER ?= segmenters/fcn8s-cityscapes.pt
RESULTS ?= results
PAPER_ARGS = $(if $(filter paper,$(SCALE)),--cityscapes $(CITYSCAPES) --data $(DATA) --segmenter $(SEGMENTER),)
SEEDS_ARG = $(if $(SEEDS),--seeds $(SEEDS),)

reproduce-table2: $(STAMP)  # Tables 2 and 3 (each row is scored in both directions)
	$(BIN)/repro reproduce table2 --scale $(SCALE) $(PAPER_ARGS) $(SEEDS_ARG) --out $(RESULTS)/table2-$(SCALE)

# horse2zebra FID/KID under pytorch-fid's and clean-fid's protocols beside the published figures (docs/fid.md),
# with the port's pretrained generators as a row. SCALE=smoke runs it on the synthetic horse2zebra on the CPU.
H2Z_DATA ?= datasets/horse2zebra
reproduce-fid: $(STAMP)
	$(BIN)/repro reproduce horse2zebra --scale $(SCALE) $(if $(filter paper,$(SCALE)),--data $(H2Z_DATA) --pretrained,) $(SEEDS_ARG) --out $(RESULTS)/horse2zebra-fid-$(SCALE)

ablations: $(STAMP)  # Tables 4 and 5
	$(BIN)/repro reproduce table4 --scale $(SCALE) $(PAPER_ARGS) $(SEEDS_ARG) --out $(RESULTS)/ablations-$(SCALE)

# Every reproduction folder under results/ against the ranges of its scale, and the demo (if made) against
# the smoke ranges. Fails listing every cell outside its range.
check-numbers: $(STAMP)
	@status=0; found=0; \
	for dir in $(RESULTS)/*/ $(DEMO)/; do \
	  [ -f $$dir/reproduce.json ] || continue; found=1; \
	  scale=$$($(BIN)/python -c "import json,sys; print(json.load(open(sys.argv[1]))['scale'])" $$dir/reproduce.json); \
	  echo "== $$dir (scale $$scale)"; \
	  $(BIN)/repro check $$dir --ranges expected/ranges_$$scale.toml || status=1; \
	done; \
	[ $$found = 1 ] || echo "no reproduction folder under $(RESULTS)/ or $(DEMO)/: run make demo or make reproduce-table2"; \
	exit $$status

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

clean-demo:
	rm -rf $(DEMO)
