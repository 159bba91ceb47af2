# The two commands of the README: `make run` (start on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/meterchat serve $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP) typecheck
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
