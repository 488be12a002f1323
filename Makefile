# Two commands do all the set-up on a fresh Debian machine:
#   make render   install blueprint in .venv and render the shipped config
#   make test     install the real tools the tests need (Quadlet, Caddy, LiteLLM, PostgreSQL, Redis)
#                 and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/pytest -n 2 --dist loadgroup --durations=15

.PHONY: install render tools test boot-test boot-down golden fuzz bench lint clean

$(BIN)/blueprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

$(BIN)/pytest: $(BIN)/blueprint
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(BIN)/blueprint

render: install
	$(BIN)/blueprint render

tools: $(BIN)/pytest
	bash scripts/install-tools.sh

test: tools
	$(PYTEST)

# Only the booted tests (tests/boot/: the rendered stack under a real systemd --user; root, minutes).
boot-test: tools
	$(BIN)/pytest -p no:xdist -v tests/boot

# End a booted machine left up (scripts/boot-stack up, or BLUEPRINT_BOOT_KEEP=1); the cache stays.
boot-down:
	scripts/boot-stack down

# Rewrite tests/golden/ and tests/golden-kubernetes/ from tests/fixtures/ (then review the diff before committing it).
golden: $(BIN)/pytest
	BLUEPRINT_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py

# A longer property-based run of the input boundary than the one in `make test`.
fuzz: tools
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:xdist tests/test_fuzz.py

# blueprint's own speed (bench/run.py), then the booted stack's (bench/stack.py: root, minutes).
bench: tools
	$(BIN)/python bench/run.py
	$(BIN)/python bench/stack.py

lint: $(BIN)/pytest
	$(BIN)/ruff check blueprint tests bench

clean:
	[ ! -e .tools/boot/state/holder.pid ] || TOOLS_DIR=.tools scripts/boot-stack down
	rm -rf $(VENV) .tools .pytest_cache .hypothesis
