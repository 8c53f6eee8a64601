# spikeprof — `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Setup

$(VENV)/.installed: pyproject.toml tools/cluster/py/pyproject.toml
	python3.11 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e tools/cluster/py
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python environment (.venv) with the operator, dev tools and the test kit (localcluster).

.PHONY: system-packages
system-packages: ## Install the Debian packages the tests need, if missing (as root; otherwise print the apt-get command and stop).
	tools/setup/system-packages.sh

.PHONY: binaries
binaries: ## Build (or reuse from ~/.cache/spikeprof) etcd, kube-apiserver, kubectl, helm, MinIO, fake-gcs-server, pprof-target, kubelet-standin, daprd; install Azurite.
	tools/cluster/build.sh
	tools/azurite/install.sh >/dev/null

##@ Checks

.PHONY: lint
lint: venv ## ruff, and the import-linter layering contract.
	$(VENV)/bin/ruff check operator tests tools bench
	$(VENV)/bin/ruff format --check operator tests tools bench
	$(VENV)/bin/lint-imports

.PHONY: typecheck
typecheck: venv ## mypy --strict on operator/.
	@# Its cache lives with the binaries' (not in the work tree), so that a fresh clone, as CI's,
	@# checks again only the files whose contents differ: mypy compares hashes when paths differ.
	MYPY_CACHE_DIR=$${SPIKEPROF_CACHE:-$$HOME/.cache/spikeprof}/mypy $(VENV)/bin/mypy

.PHONY: test-unit
test-unit: venv ## Unit tests of the pure core (no cluster, no network).
	$(PYTEST) tests/unit

.PHONY: test-integration
test-integration: system-packages venv binaries ## Adapters against real pprof-target processes (no cluster).
	$(PYTEST) tests/integration

.PHONY: test-e2e
test-e2e: system-packages venv binaries ## End-to-end tests on the local control plane.
	$(PYTEST) tests/e2e

.PHONY: test
test: system-packages venv binaries lint typecheck ## Everything CI runs (.ci/run is this): installs what is missing, then lint, types, unit, integration and end-to-end tests.
	$(PYTEST) tests

##@ Local cluster

.PHONY: cluster-up
cluster-up: venv binaries ## Start etcd, kube-apiserver, controller-manager and the pod stand-in.
	$(PY) -m localcluster up

.PHONY: cluster-down
cluster-down: venv ## Stop the local control plane and every process it started.
	$(PY) -m localcluster down

##@ Run

.PHONY: run
run: venv ## Run the operator against .cluster/kubeconfig (make cluster-up first).
	KUBECONFIG=$(CURDIR)/.cluster/kubeconfig SPIKEPROF_ARTIFACT_ROOT=$(CURDIR)/artifacts \
	  $(VENV)/bin/spikeprof run

.PHONY: demo
demo: venv ## One command: local cluster, a spiking pod, the operator capturing it (builds only the binaries it uses).
	$(PY) tools/demo/demo.py

.PHONY: bench
bench: system-packages venv binaries ## Benchmarks under bench/ (figures kept in bench/results/), ending with one table of figures against goals.
	$(PY) bench/spike_latency.py
	$(PY) bench/alert_latency.py
	$(PY) bench/evaluation_cost.py
	$(PY) bench/pprof_analysis.py
	$(PY) bench/port_forward_cost.py
	$(PY) bench/oom_lead_time.py
	$(PY) bench/failover.py
	$(PY) bench/capture_fanout.py
	$(PY) bench/report.py

.PHONY: manifests
manifests: ## Render deploy/ and the chart README's values table from charts/spikeprof (copies crds/ into the chart first).
	tools/render-manifests.sh

##@ Image

.PHONY: image
image: ## Build the operator image with buildah on a Debian base made by mmdebstrap (cached).
	tools/image/build.sh
