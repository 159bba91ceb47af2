# The two commands of the README: `make run` (start on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean axe

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

test: $(STAMP) typecheck $(AXE)
	$(BIN)/ruff check server chain tests bench tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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
