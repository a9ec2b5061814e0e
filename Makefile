# README's two set-up commands: `make run` and `make test`.
# Both work on a bare Debian machine with Python 3.11 (as root: system
# packages come from apt-get).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
APT_PACKAGES := redis-server chromium iproute2 nftables

.PHONY: run shell test test-fast install install-test system-deps bench bench-peers bench-peers-install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e .

install-test: $(PY)
	$(PIP) install -q -e '.[test]'

# Debian packages the tests need: a real RESP server, Chromium for the
# browser tests, iproute2 and nftables for the multi-host test bed
# (network namespaces; tests/scaleout). Installed only when missing.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: system-deps install-test
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast subset (under a minute): everything but the tests marked slow
# (processes, Chromium, network namespaces, multi-second runs).
test-fast: system-deps install-test
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# `make run` and `make shell` reinstall only when pyproject.toml changed
# (the install is editable: code changes need none); the stamp records it.
STAMP := $(VENV)/.nexq-installed

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e .
	@touch $@

run: $(STAMP)
	$(VENV)/bin/nexq run $(ARGS)

# A shell with .venv/bin first on PATH: `nexq` is the project's command there.
shell: $(STAMP)
	@echo "nexq $$($(VENV)/bin/nexq --version | cut -d' ' -f2) on PATH; exit to leave"
	@VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $${SHELL:-/bin/sh}

bench: install-test
	$(PY) benchmarks/store_ops.py
	$(PY) benchmarks/queue_ops.py

# Nexq beside arq, SAQ, RQ, Celery, Dramatiq and Huey (benchmarks/README.md).
# Their own venv: their redis-py pins (arq: < 6) must not touch .venv.
PEERS_VENV ?= .venv-peers
PEERS_PY   := $(PEERS_VENV)/bin/python

$(PEERS_PY):
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip

bench-peers-install: $(PEERS_PY)
	$(PEERS_VENV)/bin/pip install -q -e '.[bench-peers]'

bench-peers: system-deps bench-peers-install
	$(PEERS_PY) benchmarks/peers.py $(ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache build *.egg-info
