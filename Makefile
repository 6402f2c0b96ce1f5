# Shopfloor: one Python environment for the operator, the workloads and the tests.
# `make test` and `make demo` install everything they need on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv system-deps binaries test-tools lint format typecheck unit test test-integration test-e2e \
        crds crds-check cluster-up cluster-down demo bench clean images

help:
	@echo "make test          install everything, lint, type-check and run the whole suite"
	@echo "make demo          the simulated edge site with the example production line (ONCE=1: run the story and exit)"
	@echo "make cluster-up    start the local control plane in the background (kubeconfig: .cluster/kubeconfig;"
	@echo "                   REAL_NODES=1 adds real-rt-1, a real kubelet and containerd)"
	@echo "make cluster-down  stop it"
	@echo "make binaries      build the control plane binaries from Go modules (cached per version)"
	@echo "make images        build the operator, vPLC, bridge and pause images as OCI archives (root; cached by content)"
	@echo "make crds          regenerate crds/ from the pydantic models"
	@echo "make bench         run the benchmarks under bench/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# Source roots on sys.path directly, so a package added later needs no reinstall.
	printf '%s\n' "$(CURDIR)/operator" "$(CURDIR)/workloads" "$(CURDIR)/localsite" \
	  > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/shopfloor-src.pth"
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the suite talks to for real: Mosquitto (the MQTT broker), Prometheus (promtool evaluates the
# alert rules, a real Prometheus scrapes the real metrics for the dashboard tests), mbpoll (libmodbus, a Modbus
# client we did not write), and what a real edge node is made of: containerd, runc, the CNI plugins, and debootstrap
# for the images' root filesystem. Their services stay off.
DEBIAN_PACKAGES := mosquitto prometheus mbpoll containerd runc containernetworking-plugins debootstrap
system-deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  for s in $(DEBIAN_PACKAGES); do \
	    $$SUDO systemctl disable --now $$s >/dev/null 2>&1 || $$SUDO service $$s stop >/dev/null 2>&1 || true; \
	  done; \
	fi

binaries: $(STAMP)
	$(PY) -m shopfloor_localsite.build

# The suite's Go programs (tests/gitops/healthcheck: Argo CD's Lua health checks and kstatus), cached like binaries.
test-tools: $(STAMP)
	$(PY) -m shopfloor_localsite.build --test-tools

# Images for `ctr images import` without Docker or a registry (needs root: debootstrap and chroot).
images: $(STAMP)
	$(PY) -m shopfloor_localsite.images

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy operator workloads localsite

# pytest exits 5 when it collected nothing: for this suite that means tests went missing, a failure.
define run_pytest
	$(PY) -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is missing" >&2; exit 1; fi; exit $$rc
endef

unit: $(STAMP)
	$(call run_pytest,tests/unit)

test: $(STAMP) system-deps binaries test-tools lint typecheck
	$(call run_pytest,tests)

test-integration: $(STAMP) system-deps binaries
	$(call run_pytest,tests/integration)

crds: $(STAMP)
	$(PY) -m shopfloor_api.crdgen crds

crds-check: $(STAMP)
	$(PY) -m shopfloor_api.crdgen --check crds

# REAL_NODES=1 adds real-rt-1, a real kubelet with containerd (root; builds the images on first use).
cluster-up: $(STAMP) binaries
	$(PY) -m shopfloor_localsite.cli up --dir .cluster $(if $(REAL_NODES),--real-nodes $(REAL_NODES),)

cluster-down: $(STAMP)
	$(PY) -m shopfloor_localsite.cli down --dir .cluster

# The production line on the simulated edge site; ONCE=1 runs the story once and exits.
demo: $(STAMP) system-deps binaries
	$(PY) -m shopfloor_localsite.demo $(if $(filter 1,$(ONCE)),--once,)

bench: $(STAMP) system-deps binaries
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: cluster-down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
