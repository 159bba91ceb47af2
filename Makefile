# The two commands of the README: `make run` (start on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test suite fuzz lint typecheck bench clean axe

# Python's bytecode caches are written (some machines set PYTHONDONTWRITEBYTECODE): else each
# of the suite's processes, and every server a test starts, compiles every module again and
# pytest rewrites every test file again (collecting the suite: 14.6 s of CPU -> 5.6 s).
unexport PYTHONDONTWRITEBYTECODE

# axe-core, the accessibility checker of the browser tests: the npm package, fetched into a
# git-ignored folder of the test environment (never served with the pages).
AXE_VERSION := 4.10.3
AXE := tests/.vendor/axe-core-$(AXE_VERSION)/axe.min.js

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/meterchat serve $(if $(CONFIG),--config $(CONFIG))

$(AXE):
	rm -rf tests/.vendor/axe-core-$(AXE_VERSION) && mkdir -p tests/.vendor/axe-core-$(AXE_VERSION)
	cd tests/.vendor && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null \
		&& tar -xzf axe-core-$(AXE_VERSION).tgz -C axe-core-$(AXE_VERSION) --strip-components=1 \
		&& rm axe-core-$(AXE_VERSION).tgz
	test -s $(AXE)

axe: $(AXE)

# `make test` runs its four parts side by side (the types, the lint, the suite, the API fuzz
# test), each part's output printed whole when it ends, and fails if any part fails. The
# suite runs on TEST_WORKERS processes (pytest-xdist) on the two cores: many tests wait on
# sockets, timers or a child process rather than on a core. A test file stays on one worker (its module
# fixtures are made once), the files in the order tests/conftest.py sorts them (the long ones
# first), not xdist's default of the files with the most tests first. The API fuzz test runs
# in a process of its own: its schemathesis cases share one node id, which xdist cannot tell
# apart (tests/conftest.py refuses such tests on a worker). `make suite TEST_WORKERS=0` runs
# the suite alone in one process.
TEST_WORKERS ?= 4

test: $(STAMP) $(AXE)
	@$(MAKE) --no-print-directory -j4 --output-sync=target typecheck lint suite fuzz

suite: $(STAMP) $(AXE)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--ignore=tests/test_fuzz_api.py $(PYTEST_ARGS)

fuzz: $(STAMP)
	$(BIN)/python -m pytest -n 0 -p no:cacheprovider tests/test_fuzz_api.py $(PYTEST_ARGS)

# mypy reads modules by their import names: a tree of links gives the folders of the
# checkout their place in the one namespace (server/ -> meterchat, chain/ -> meterchat.chain).
typecheck: $(STAMP)
	rm -rf .mypy_tree && mkdir .mypy_tree
	cp -as "$(CURDIR)/server" .mypy_tree/meterchat
	cp -as "$(CURDIR)/chain" .mypy_tree/meterchat/chain
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check server chain tests bench tools

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .mypy_cache .mypy_tree
