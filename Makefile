# bluegreen-operator: every entry point a user or CI needs.
#   make run    local control plane (when KUBECONFIG reaches no cluster), CRDs, operator
#   make test   everything: lint, types, generated files, unit and end-to-end tests
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
comma := ,
PY := $(VENV)/bin/python
CLUSTER_KUBECONFIG := $(CURDIR)/.cluster/kubeconfig

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create the virtualenv with the package and its dev tools

.PHONY: binaries
binaries: ## build (or reuse) the control-plane binaries from pinned Go modules
	hack/build-control-plane.sh

.PHONY: argocd
argocd: ## build (or reuse) Argo CD from its pinned Go module, for the GitOps tests
	hack/build-argocd.sh

.PHONY: cluster
cluster: binaries ## start the local control plane (reuses one already up)
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the local control plane and remove its state
	hack/cluster.sh down

.PHONY: node-binaries
node-binaries: ## build (or reuse) the real node's binaries and images (and Prometheus), where this host can run one
	@if why=$$(hack/real-node.sh check-host); then \
	  hack/build-node.sh && hack/build-go-tool.sh coredns >/dev/null && hack/node-images.sh && \
	  hack/build-go-tool.sh prometheus >/dev/null; \
	else echo "no real node on this host ($$why): its tests will skip"; fi

.PHONY: proxy
proxy: ## build (or reuse) Traefik and copy the Gateway API CRDs from their pins, for the proxy tests on the real node
	@if why=$$(hack/real-node.sh check-host); then hack/build-traefik.sh >/dev/null; \
	else echo "no real node on this host ($$why): the proxy tests will skip"; fi

.PHONY: gateway-api
gateway-api: ## copy (or reuse) the Gateway API CRDs from their pin, for the install tests
	hack/gateway-api-crds.sh >/dev/null

.PHONY: edge
edge: cluster proxy ## start Traefik on 127.0.0.1 with a Gateway (and the Gateway API CRDs) beside the local control plane
	hack/edge.sh up

.PHONY: edge-down
edge-down: ## stop Traefik
	hack/edge.sh down

.PHONY: browser
browser: ## Debian's chromium and chromedriver for the dashboard's browser tests (installed as root)
	@if [[ $$(id -u) == 0 ]]; then hack/host-packages.sh browser; \
	elif ! hack/host-packages.sh browser 2>/dev/null; then echo "no chromium or chromedriver, and not root to install them: the dashboard's browser tests will skip"; fi

.PHONY: helm
helm: ## build (or reuse) Helm from its pinned Go module, for the chart's tests
	hack/build-go-tool.sh helm >/dev/null

.PHONY: alertmanager
alertmanager: ## fetch (or reuse) Debian's Alertmanager at its pinned version, for the notification tests
	hack/alertmanager.sh >/dev/null

.PHONY: image
image: ## build (or reuse) the operator's image from the Dockerfile (buildah, Debian base); size and layers
	@if [[ $$(id -u) == 0 ]]; then hack/build-image.sh >/dev/null; \
	else echo "building the image needs root (buildah, mmdebstrap): its tests will skip"; fi

.PHONY: real-node
real-node: cluster node-binaries ## add a real node (containerd, kubelet, kube-proxy) beside the kwok nodes
	hack/real-node.sh up

.PHONY: real-node-down
real-node-down: ## remove the real node and every trace of it on the host
	hack/real-node.sh down

.PHONY: crds
crds: venv ## generate crds/ from the pydantic models
	$(PY) -m bluegreen.tools.crdgen crds/

.PHONY: docs
docs: venv ## regenerate the API reference in README.md from the models
	$(PY) -m bluegreen.tools.docgen README.md

.PHONY: generate
generate: crds docs ## everything generated from the models

.PHONY: lint
lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy

.PHONY: test
test: venv lint binaries argocd node-binaries gateway-api proxy image helm browser alertmanager ## everything, set-up included
	$(VENV)/bin/pytest

.PHONY: argo-rollouts
argo-rollouts: ## build (or reuse) Argo Rollouts from its pinned Go module, for make bench
	hack/build-argo-rollouts.sh

.PHONY: bench
bench: venv binaries argo-rollouts ## this operator and Argo Rollouts side by side: one table
	$(PY) bench/peer.py $(ARGS)

.PHONY: bench-ours
bench-ours: venv binaries ## this operator alone: switch latency, scale, idle writes
	$(PY) bench/benchmark.py $(ARGS)

.PHONY: bench-scale
bench-scale: venv binaries ## this operator at 200, 1,000 and 5,000 apps: one table of how each cost grows
	$(PY) bench/scale.py $(or $(ARGS),--apps 200$(comma)1000$(comma)5000)

.PHONY: bench-traffic
bench-traffic: venv binaries node-binaries proxy ## switches under real traffic on a real node: tables and charts
	$(PY) bench/traffic.py $(ARGS)

.PHONY: run
run: venv binaries ## local control plane if needed, the CRDs, then the operator in the foreground
	hack/run.sh

.PHONY: demo
demo: venv binaries ## the README walk-through, unattended, on the local control plane
	hack/demo.sh
