# branchwise developer targets. `make demo` and `make test` set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the agent and its tests need: command -> package.
DEB_NEEDS := git:git rg:ripgrep bwrap:bubblewrap node:nodejs npm:npm chromium:chromium tmux:tmux
# MCP servers from npm and PyPI that the tests run inside the sandbox. They must be readable there: not under
# /root, /home or /tmp (the sandbox hides those), and the Python one needs a Python that is not either (pyenv's is).
# As root they go to /opt, so that a clone anywhere (even under /root or /tmp) can run them.
MCP_SERVERS ?= $(if $(filter 0,$(shell id -u)),/opt/branchwise-test-mcp-servers,$(VENV)/mcp-servers)
MCP_STAMP := $(MCP_SERVERS)/.installed
MCP_PYTHON ?= /usr/bin/python3
export MCP_TEST_SERVERS := $(abspath $(MCP_SERVERS))

.PHONY: setup debs demo test test-fast lint format bench clean

setup: debs $(STAMP) $(MCP_STAMP)

debs:
	@missing=""; \
	for pair in $(DEB_NEEDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing" >&2; exit 4; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(MCP_STAMP): tests/mcp_servers/package.json tests/mcp_servers/package-lock.json tests/mcp_servers/requirements.txt
	@mkdir -p $(MCP_SERVERS)
	cp tests/mcp_servers/package.json tests/mcp_servers/package-lock.json $(MCP_SERVERS)/
	cd $(MCP_SERVERS) && npm ci --no-audit --no-fund --loglevel=error
	@test -x $(MCP_SERVERS)/py/bin/python || $(MCP_PYTHON) -m venv $(MCP_SERVERS)/py
	$(MCP_SERVERS)/py/bin/python -m pip install -q -r tests/mcp_servers/requirements.txt
	@touch $@

demo: setup
	@$(PY) examples/run_demo.py

test: setup
	$(PY) -m pytest -q -n 2

test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy agent tools sandbox

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The revision bench/sandbox.py compares the sandbox's per-command cost with: the foundation, before issue 8.
SANDBOX_BASELINE ?= eb6e98d

bench: setup
	@for b in bench/*.py; do echo "== $$b"; \
	  case $$b in bench/sandbox.py) args="--against $(SANDBOX_BASELINE)";; *) args="";; esac; \
	  $(PY) $$b $$args || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
